"""The settings: typed schemas registered in Hydra's ConfigStore (:mod:`.schema`), the allowed
values of enumerated keys (:mod:`.choices`), composing configs outside Hydra's entry points
(:mod:`.compose`), range checks of values (:mod:`.values`), configs as plain data and the
upgrade of stored ones (:mod:`.serialization`), and the special token ids every vocabulary
shares (:mod:`.special_ids`).

May import only :mod:`seq2seq.utils`.
"""
