"""The served pattern in-process: two threads, one intra-op thread each, searching 16-sentence chunks
of val inside autocast; page faults and speed with malloc's defaults (default) or keep_freed_memory()
(kept), optionally one arena (_arena1) or a 256 MiB top pad (_pad).
Usage (from /tmp): python threads_faults.py bf16 default|kept|kept_arena1|kept_pad|kept_arena1_pad"""
import gzip, time, sys, resource, torch, threading, os
from dataclasses import replace
from seq2seq.decode.loading import build_translator
from seq2seq.utils.devices import keep_freed_memory, autocast
import ctypes
libc = ctypes.CDLL("libc.so.6")
if sys.argv[2].startswith("kept"): print("kept", keep_freed_memory())
if "arena1" in sys.argv[2]: print("arena", libc.mallopt(-8, 1))
if "pad" in sys.argv[2]: print("pad", libc.mallopt(-2, 256 << 20))
sents = [l.strip() for l in gzip.open("/work/shared/data/multi30k/val.de.gz", "rt")][:640]
tr = build_translator("/work/runs_serve/rnn/checkpoints/best.pt", precision=sys.argv[1])
tr.options = replace(tr.options, parallel_batches=1)
torch.set_num_threads(1)
chunks = [sents[i:i+16] for i in range(0, len(sents), 16)]
def work(part):
    with autocast(tr.device, tr.options.precision)():
        for c in part: tr.translate(c)
work(chunks[:2])
r0 = resource.getrusage(resource.RUSAGE_SELF); t = time.perf_counter()
ths = [threading.Thread(target=work, args=(chunks[i::2],)) for i in range(2)]
[t_.start() for t_ in ths]; [t_.join() for t_ in ths]
dt = time.perf_counter() - t; r1 = resource.getrusage(resource.RUSAGE_SELF)
print(f"{sys.argv[2]}: two threads on 16-sentence chunks: {len(sents)/dt:.1f} sent/s, minor faults/sentence {(r1.ru_minflt-r0.ru_minflt)/len(sents):.0f}, sys {r1.ru_stime-r0.ru_stime:.2f} s")
