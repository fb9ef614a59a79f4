"""Export: ``python scripts/export.py checkpoint=PATH format=ctranslate2 output=DIR``."""

from seq2seq.cli.commands import export_main

if __name__ == "__main__":
    export_main()
