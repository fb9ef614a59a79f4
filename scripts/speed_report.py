"""Run every speed benchmark and fill the README's speed tables (see seq2seq/speed_report.py).

python scripts/speed_report.py --data-root DIR --checkpoint LABEL=PATH [...] [--readme README.md] [--collect]
"""

from seq2seq.speed_report import main

if __name__ == "__main__":
    main()
