"""Train the Multi30k recipes and write docs/results.md and docs/results.json (see seq2seq/reproduce.py).

python scripts/reproduce.py [--recipes ...] [--seeds ...] [--directions de-en en-de] [--minutes M]
"""

from seq2seq.reproduce import main

if __name__ == "__main__":
    main()
