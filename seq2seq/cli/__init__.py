"""The console entry points (``seq2seq-train``, ``seq2seq-translate``, ...): thin Hydra and
argparse wrappers over the library's functions (:mod:`.commands`), and the file and prompt
handling of ``seq2seq-translate`` (:mod:`.translate`).

The top layer: nothing imports it.
"""
