"""Deployment formats: a checkpoint exported as a CTranslate2 model directory, and vocabulary
shortlists built from the training data (:mod:`.export`); the CTranslate2 engine that reads an
export is :mod:`seq2seq.decode.ctranslate2`.

May import decode and everything below it; never training.
"""
