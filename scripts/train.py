"""Train a model: ``python scripts/train.py [data=...] [model=...] [key=value ...]``."""

from seq2seq.cli.commands import train_main

if __name__ == "__main__":
    train_main()
