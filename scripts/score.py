"""Score: ``python scripts/score.py hyp=FILE ref=FILE [format=json]``."""

from seq2seq.cli.commands import score_main

if __name__ == "__main__":
    score_main()
