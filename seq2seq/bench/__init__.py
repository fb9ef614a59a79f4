"""The ``seq2seq-benchmark`` modes (:mod:`.modes`: train, translate, latency, profile, scale) and
the FLOP counting behind model FLOPs utilisation (:mod:`.flops`).

Imported by :mod:`seq2seq.cli` only; may import training and everything below.
"""
