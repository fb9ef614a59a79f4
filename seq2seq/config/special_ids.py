"""Ids of the special symbols, shared by every vocabulary (``<pad> <unk> <s> </s>`` = 0-3).

A module of its own so the model, the search and the batching need not import the tokenizer
(and sentencepiece) to know them; :mod:`seq2seq.data.tokenizer` reserves these ids in every
sentencepiece model it trains.
"""

PAD, UNK, BOS, EOS = 0, 1, 2, 3
