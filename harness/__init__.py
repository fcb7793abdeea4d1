"""Agentic experiment automation for sparse-autoencoder research.

One idea flows one way through stages (baseline, experiments, plots, writeup); every
hand-off is a file in the idea's git workspace. See DESIGN.md.
"""

__version__ = "0.1.0"
