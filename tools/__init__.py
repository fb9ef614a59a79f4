"""This repository's lab tools (not installed with the package): reproducing the results table,
the speed report, side-by-side speed comparisons, dropout timing and the README's figures.

Run each as ``python tools/NAME.py`` from the repository root.
"""
