"""Sentence-steps/s of the RNN decoder step (+ log_softmax, topk) by batch size, eager vs traced
vs traced+frozen; 1 thread on 1 intra-op thread, and 2 threads on 1 each."""
import sys, threading, time
import torch
from seq2seq.config.schema import ModelConfig
from seq2seq.model.seq2seq import build_model
from seq2seq.model.decoders import RNNDecoderState

torch.manual_seed(0)
model = build_model(ModelConfig(), 8000, 8000).eval().requires_grad_(False)
dec = model.decoder
K, S = 5, 16
precision = sys.argv[1]
seconds = 2.0

class Step(torch.nn.Module):
    def __init__(self, dec):
        super().__init__(); self.dec = dec
    def forward(self, prev, hidden, feed, keys, values, mask):
        emb = self.dec.embed(prev)
        f, st, w = self.dec.advance(emb, RNNDecoderState(hidden, None, feed, keys), values, mask)
        return torch.log_softmax(self.dec.output(f).float(), -1), st.hidden, st.feed, w

def ctx():
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)

def setup(B):
    src = torch.randint(4, 8000, (B, S)); lengths = torch.full((B,), S)
    with torch.no_grad(), ctx():
        enc = model.encode(src, lengths)
        st = dec.init_state(enc).reorder(torch.arange(B).repeat_interleave(K))
        args = (torch.full((B * K,), 5), st.hidden, st.feed, st.keys, enc.states, enc.mask)
        eager = Step(dec)
        traced = torch.jit.trace(eager, args, check_trace=False)
        frozen = torch.jit.freeze(torch.jit.trace(eager, args, check_trace=False).eval())
        for f in (traced, frozen):
            for _ in range(5): f(*args)
    return args, {"eager": eager, "traced": traced, "frozen": frozen}

def loop(fn, args, B, out, i, stop):
    n = 0
    with torch.no_grad(), ctx():
        h, f = args[1], args[2]
        while time.perf_counter() < stop:
            lp, h, f, w = fn(args[0], h, f, args[3], args[4], args[5])
            lp.view(B, K, -1).topk(10, -1)
            n += 1
    out[i] = n * B

def rate(fn, args, B, threads):
    torch.set_num_threads(1)
    out = [0] * threads
    stop = time.perf_counter() + seconds
    ts = [threading.Thread(target=loop, args=(fn, args, B, out, i, stop)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    return sum(out) / (time.perf_counter() - t0)

setups = {B: setup(B) for B in (16, 32, 64)}
for rnd in range(int(sys.argv[2]) if len(sys.argv) > 2 else 2):
    for B, (args, fns) in setups.items():
        cells = []
        for name, fn in fns.items():
            cells.append(f"{name} {rate(fn, args, B, 1):6.0f}/{rate(fn, args, B, 2):6.0f}")
        print(f"{precision} round {rnd} B={B:3d} sentence-steps/s 1thr/2thr: " + " | ".join(cells), flush=True)
