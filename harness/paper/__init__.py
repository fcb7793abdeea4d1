"""The paper: compiling LaTeX (latex.py), finding the numbers a text states (texscan.py),
and checking each against the run files (claims.py)."""
