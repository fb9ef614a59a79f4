"""Turning a trained model into translations: greedy and beam search (:mod:`.search`), the
translator for raw sentences and corpora (:mod:`.translator`), vocabulary shortlists
(:mod:`.shortlist`), int8 quantisation (:mod:`.int8`) and the CTranslate2 engine
(:mod:`.ctranslate2`).

May import checkpoint, model, data, config and utils; never training.
"""
