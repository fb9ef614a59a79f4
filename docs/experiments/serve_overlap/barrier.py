"""Two threads x 1 intra-op thread: offline (sorted 64s), 16-sentence arrival-order chunks with no
barrier (each thread takes the next chunk when free), and 32-chunks dealt to 2 parts (a barrier
after each chunk, as seq2seq-serve searches a batch)."""
import gzip, random, sys, time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
import torch
from seq2seq.decode.loading import build_translator
from seq2seq.serve.batching import deal_by_length
from seq2seq.utils.devices import autocast
precision = sys.argv[1]
sents = [l.strip() for l in gzip.open("/work/shared/data/multi30k/val.de.gz", "rt")][:640]
tr = build_translator("/work/runs_serve/rnn/checkpoints/best.pt", precision=precision)
base = tr.options
one = replace(base, parallel_batches=1)
rng = random.Random(0); arrival = sents[:]; rng.shuffle(arrival)
pool = ThreadPoolExecutor(2, initializer=lambda: autocast(tr.device, base.precision)().__enter__())
def offline():
    tr.options = base; t = time.perf_counter(); tr.translate(sents); return len(sents) / (time.perf_counter() - t)
def free16():
    tr.options = one; torch.set_num_threads(1); t = time.perf_counter()
    list(pool.map(tr.translate, [arrival[i:i + 16] for i in range(0, len(arrival), 16)]))
    r = len(sents) / (time.perf_counter() - t); torch.set_num_threads(2); return r
def barrier32():
    tr.options = one; torch.set_num_threads(1); t = time.perf_counter()
    for c in range(0, len(arrival), 32):
        chunk = arrival[c:c + 32]
        list(pool.map(lambda p: tr.translate([chunk[i] for i in p]), deal_by_length(chunk, 2)))
    r = len(sents) / (time.perf_counter() - t); torch.set_num_threads(2); return r
offline(); free16(); barrier32()
for rnd in range(3):
    o1 = offline(); f = free16(); b = barrier32(); o2 = offline(); o = (o1 + o2) / 2
    print(f"{precision} round {rnd}: offline {o:.1f} | free16 {f:.1f} ({f / o:.2f}) | barrier32 {b:.1f} ({b / o:.2f})", flush=True)
