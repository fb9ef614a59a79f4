"""Alignment error rate of Pharaoh alignments against a gold file.

    python scripts/aer.py HYP.align GOLD.align [--reverse]

One line per sentence pair in both files; links are ``i-j`` (source word i, target word j,
from 0). In the gold file ``i-j`` (or ``i-j-S``) is a sure link and ``i?j`` (or ``i-j-P``) a
possible one. ``--reverse`` swaps i and j in the gold file (for gold files written target-first).
"""

from seq2seq.cli.commands import aer_main

if __name__ == "__main__":
    aer_main()
