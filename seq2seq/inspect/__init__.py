"""Looking inside translations: alignments and heatmaps (:mod:`.alignments`), subword pieces
back to words (:mod:`.word_merging`), pure matplotlib figures (:mod:`.plotting`), sacreBLEU metrics
(:mod:`.metrics`), and the attention records of the TensorBoard tab (:mod:`.attention_records`,
laid out as :mod:`.record_format` says): validation and translation write records through it,
and :mod:`seq2seq.tbplugin` reads them.

May import decode and everything below it; never training.
"""
