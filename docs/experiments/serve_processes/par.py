import gzip, sys, time, torch, numpy as np
from concurrent.futures import ThreadPoolExecutor
from seq2seq.decode.loading import build_translator
from seq2seq.config.schema import DecodeConfig
from seq2seq.serve.batching import deal_by_length
from seq2seq.utils.devices import autocast
from dataclasses import replace
N=int(sys.argv[2]) if len(sys.argv)>2 else 640
tr = build_translator(sys.argv[1], DecodeConfig(beam_size=5), engine="torch", device="cpu", precision="auto")
sents = gzip.open("/work/shared/data/multi30k/val.de.gz","rt").read().splitlines()[:N]
order=np.random.RandomState(0).permutation(N).tolist()
base=tr.options
threads=torch.get_num_threads()
def stay(): autocast(tr.device, base.precision)().__enter__()
pool=ThreadPoolExecutor(2, initializer=stay)
one=replace(base, parallel_batches=1)
def offline():
    tr.options=base; torch.set_num_threads(threads); tr.translate(sents)
def served_like(size=32):
    tr.options=one; torch.set_num_threads(1)
    for s in range(0,N,size):
        b=[sents[i] for i in order[s:s+size]]
        parts=deal_by_length(b,2)
        list(pool.map(tr.translate, [[b[i] for i in p] for p in parts]))
def independent(size=16):
    tr.options=one; torch.set_num_threads(1)
    def worker(k):
        for s in range(k*size, N, 2*size): tr.translate([sents[i] for i in order[s:s+size]])
    list(pool.map(worker,[0,1]))
def sorted_parts(size=32):
    # each batch of 32 split into short half / long half
    tr.options=one; torch.set_num_threads(1)
    for s in range(0,N,size):
        b=sorted((sents[i] for i in order[s:s+size]), key=len)
        list(pool.map(tr.translate, [b[:size//2], b[size//2:]]))
offline(); served_like()
for rep in range(3):
    r={}
    for name,f in [("offline",offline),("served-like 2x16",served_like),("independent 16/thread",independent),("served 32 split short/long", sorted_parts), ("served-like 2x32 (64 clients)", lambda: served_like(64))]:
        t=time.perf_counter(); f(); r[name]=N/(time.perf_counter()-t)
    print(" | ".join(f"{k} {v:.0f}" for k,v in r.items()), f"| ratio served/offline {r['served-like 2x16']/r['offline']:.2f}", flush=True)
