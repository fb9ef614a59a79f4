"""In-process, RNN checkpoint, 640 val sentences: offline (parallel_batches=2, sorted batches)
against 16-sentence arrival-order chunks on two threads (1 intra-op thread each, inside autocast)
at GIL switch intervals of 5 ms (Python's default), 10, 50 and 250 us, and offline at 50 us.
Usage: python inproc_switch.py bf16 ROUNDS (run from /tmp) -> inproc_switch_bf16.txt."""
import gzip, random, sys, time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
import torch
from seq2seq.decode.loading import build_translator
from seq2seq.utils.devices import autocast
precision = sys.argv[1]
sents = [l.strip() for l in gzip.open("/work/shared/data/multi30k/val.de.gz", "rt")][:640]
tr = build_translator("/work/runs_serve/rnn/checkpoints/best.pt", precision=precision)
base = tr.options
one = replace(base, parallel_batches=1)
rng = random.Random(0); arrival = sents[:]; rng.shuffle(arrival)
pool = ThreadPoolExecutor(2, initializer=lambda: autocast(tr.device, base.precision)().__enter__())
pool1 = ThreadPoolExecutor(1, initializer=lambda: autocast(tr.device, base.precision)().__enter__())
def offline(interval=0.005):
    old = sys.getswitchinterval(); sys.setswitchinterval(interval)
    tr.options = base; t = time.perf_counter(); tr.translate(sents); r = len(sents) / (time.perf_counter() - t)
    sys.setswitchinterval(old); return r
def free16(interval):
    old = sys.getswitchinterval(); sys.setswitchinterval(interval)
    tr.options = one; torch.set_num_threads(1); t = time.perf_counter()
    list(pool.map(tr.translate, [arrival[i:i + 16] for i in range(0, len(arrival), 16)]))
    r = len(sents) / (time.perf_counter() - t); torch.set_num_threads(2); sys.setswitchinterval(old); return r
def one32():
    tr.options = one; t = time.perf_counter()
    list(pool1.map(tr.translate, [arrival[i:i + 32] for i in range(0, len(arrival), 32)]))
    return len(sents) / (time.perf_counter() - t)
variants = {"sw5ms": lambda: free16(0.005), "sw10us": lambda: free16(1e-5), "sw50us": lambda: free16(5e-5), "sw250us": lambda: free16(2.5e-4), "off50us": lambda: offline(5e-5)}
offline(); [v() for v in variants.values()]
for rnd in range(int(sys.argv[2])):
    o1 = offline(); res = {k: v() for k, v in variants.items()}; o2 = offline(); o = (o1 + o2) / 2
    print(f"{precision} round {rnd}: offline {o:.1f} | " + " | ".join(f"{k} {r:.1f} ({r / o:.2f})" for k, r in res.items()), flush=True)
