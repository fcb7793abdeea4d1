"""Test suites. Shared helpers live in tests/support.py (a package, so both suites import it by one name)."""
