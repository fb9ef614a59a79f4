"""The network: attention (:mod:`.attention`), embeddings, encoders, decoders that step, and the
:class:`~seq2seq.model.seq2seq.Seq2Seq` composition with its factory; the CPU kernels of the
recurrence (:mod:`.rnn_kernels`) and dropout (:mod:`.dropout`).

May import :mod:`seq2seq.config` and :mod:`seq2seq.utils`; never data, decoding or training.
"""
