"""Parallel corpora and what turns them into batches: local files, the hub and the toy task
(:mod:`.corpus`, :mod:`.hub`), sentencepiece (:mod:`.tokenizer`), token-budget batches
(:mod:`.batching`), streaming (:mod:`.streaming`) and subword sampling (:mod:`.subword_sampling`).

May import :mod:`seq2seq.config` and :mod:`seq2seq.utils`; never the model.
"""
