"""Serve a model over HTTP: ``python scripts/serve.py checkpoint=PATH [host=127.0.0.1] [port=8000] ...``."""

from seq2seq.cli.commands import serve_main

if __name__ == "__main__":
    serve_main()
