"""Idea generation (`run_harness.py ideas`): a model proposes ideas for a template, refines
them, and checks each against the literature before it is written as an idea file."""
