"""Small helpers every layer may use: one-line user errors (:mod:`.errors`), reading inputs and
atomic writes (:mod:`.files`), devices, precisions, threads and seeds (:mod:`.devices`).

The bottom layer: imports nothing else of seq2seq.
"""
