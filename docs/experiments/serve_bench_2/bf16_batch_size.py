"""Does bf16 translation of the Transformer depend on the batch a sentence is in, without a server?
seq2seq-translate's batches of 64 against batch_size=1, test_2016_flickr's first 300 sentences."""

import gzip
from dataclasses import replace

from seq2seq.config.schema import DecodeConfig
from seq2seq.decode.loading import build_translator

t = build_translator(
    "/work/runs_serve/tf/checkpoints/best.pt", DecodeConfig(beam_size=5), device="cpu", precision="bf16"
)
text = gzip.open("/work/shared/data/multi30k/test_2016_flickr.de.gz", "rt").read().splitlines()
sentences = [s for s in text if s.strip()][:300]
batched = [x.text for x in t.translate(sentences)]
t.options = replace(t.options, batch_size=1)
alone = [x.text for x in t.translate(sentences)]
print(
    "transformer_small bf16, batch_size=64 vs 1: differ",
    sum(a != b for a, b in zip(batched, alone)),
    "of",
    len(sentences),
)
