"""Translate: ``python scripts/translate.py checkpoint=PATH [input=FILE] [output=FILE] ...``."""

from seq2seq.cli.commands import translate_main

if __name__ == "__main__":
    translate_main()
