import gzip, sys, time, torch, numpy as np, multiprocessing as mp
from dataclasses import replace
CK=sys.argv[1]; N=640
def load():
    from seq2seq.decode.loading import build_translator
    from seq2seq.config.schema import DecodeConfig
    torch.set_num_threads(1)
    tr = build_translator(CK, DecodeConfig(beam_size=5), engine="torch", device="cpu", precision="auto", threads=1)
    tr.options = replace(tr.options, parallel_batches=1)
    sents = gzip.open("/work/shared/data/multi30k/val.de.gz","rt").read().splitlines()[:N]
    order=np.random.RandomState(0).permutation(N).tolist()
    return tr, sents, order
def worker(k, barrier, q, size):
    tr, sents, order = load()
    from seq2seq.utils.devices import autocast
    autocast(tr.device, tr.options.precision)().__enter__()
    tr.translate(sents[:16])
    for rep in range(3):
        barrier.wait()
        for s in range(k*size, N, 2*size): tr.translate([sents[i] for i in order[s:s+size]])
        barrier.wait()
if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    for size in (16,):
        barrier = ctx.Barrier(3); q=ctx.Queue()
        ps=[ctx.Process(target=worker,args=(k,barrier,q,size)) for k in (0,1)]
        [p.start() for p in ps]
        for rep in range(3):
            barrier.wait(); t=time.perf_counter(); barrier.wait()
            print(f"2 processes, independent {size}/process: {N/(time.perf_counter()-t):.0f} sent/s", flush=True)
        [p.join() for p in ps]
