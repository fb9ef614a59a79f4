"""Offline (translate all, default batching) vs a server's pattern in-process (32-sentence chunks
of val dealt to 2 parts, 2 threads x 1 intra-op thread, staying in autocast), eager vs frozen step."""
import gzip, sys, time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
import torch
from seq2seq.decode.loading import build_translator
from seq2seq.serve.batching import deal_by_length
from seq2seq.utils.devices import autocast

precision = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 640
sents = [l.strip() for l in gzip.open("/work/shared/data/multi30k/val.de.gz", "rt")][:n]
tr = build_translator("/work/runs_serve/rnn/checkpoints/best.pt", precision=precision)
frozen = tr.step
base = tr.options
pool = ThreadPoolExecutor(2, initializer=lambda: autocast(tr.device, base.precision)().__enter__())

def offline():
    tr.options = base
    t = time.perf_counter(); out = tr.translate(sents); return len(sents) / (time.perf_counter() - t), [x.text for x in out]

def served():
    tr.options = replace(base, parallel_batches=1)
    torch.set_num_threads(1)
    res = [None] * len(sents)
    t = time.perf_counter()
    for c in range(0, len(sents), 32):
        chunk = sents[c:c + 32]
        parts = deal_by_length(chunk, 2)
        outs = list(pool.map(lambda p: tr.translate([chunk[i] for i in p]), parts))
        for p, o in zip(parts, outs):
            for i, x in zip(p, o): res[c + i] = x.text
    r = len(sents) / (time.perf_counter() - t)
    torch.set_num_threads(2)
    return r, res

outs = {}
for name, step in (("eager", None), ("frozen", frozen)):
    tr.step = step; offline(); served()  # warm
for rnd in range(3):
    row = []
    for name, step in (("eager", None), ("frozen", frozen)):
        tr.step = step
        o, ot = offline(); s, st = served()
        outs.setdefault(name, ot)
        row.append(f"{name}: offline {o:6.1f} served-pattern {s:6.1f} ratio {s/o:.2f} same {ot == st}")
    print(precision, rnd, " | ".join(row), flush=True)
print("frozen == eager outputs:", sum(a == b for a, b in zip(outs["eager"], outs["frozen"])), "of", len(sents))
