"""Page faults and speed of offline decoding (512 val sentences, rnn_bahdanau_small, one and two
parallel batches), with glibc malloc's defaults or, with MALLOPT=BYTES, its mmap and trim thresholds
fixed by mallopt in the process. Usage (from /tmp): [MALLOPT=268435456] python faults.py bf16|fp32"""
import gzip, time, sys, resource, torch, ctypes, os
if os.environ.get("MALLOPT"):
    libc = ctypes.CDLL("libc.so.6"); v = int(os.environ["MALLOPT"])
    print("mallopt", libc.mallopt(-1, v), libc.mallopt(-3, v))
from dataclasses import replace
from seq2seq.decode.loading import build_translator
sents = [l.strip() for l in gzip.open("/work/shared/data/multi30k/val.de.gz", "rt")][:512]
tr = build_translator("/work/runs_serve/rnn/checkpoints/best.pt", precision=sys.argv[1])
tr.translate(sents[:64])
for pb in (1, 2):
    tr.options = replace(tr.options, parallel_batches=pb)
    r0 = resource.getrusage(resource.RUSAGE_SELF); t = time.perf_counter()
    tr.translate(sents)
    dt = time.perf_counter() - t; r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(f"parallel_batches={pb}: {len(sents)/dt:.1f} sent/s, minor faults {r1.ru_minflt - r0.ru_minflt} ({(r1.ru_minflt - r0.ru_minflt)/len(sents):.0f}/sentence), sys {r1.ru_stime - r0.ru_stime:.2f} s user {r1.ru_utime - r0.ru_utime:.2f} s")
