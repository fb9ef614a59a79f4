import torch, warnings
from seq2seq.config.schema import ModelConfig
from seq2seq.model.seq2seq import build_model
from seq2seq.model.decoders import RNNDecoderState
torch.manual_seed(0)
model = build_model(ModelConfig(), 8000, 8000).eval().requires_grad_(False)
dec = model.decoder
K = 5
class Step(torch.nn.Module):
    def __init__(self, dec):
        super().__init__(); self.dec = dec
    def forward(self, prev, hidden, feed, keys, values, mask):
        emb = self.dec.embed(prev)
        f, st, w = self.dec.advance(emb, RNNDecoderState(hidden, None, feed, keys), values, mask)
        return self.dec.output(f), st.hidden, st.feed, w
def args(B, S):
    src = torch.randint(4, 8000, (B, S)); lengths = torch.randint(1, S + 1, (B,)); lengths[0] = S
    enc = model.encode(src, lengths)
    st = dec.init_state(enc).reorder(torch.arange(B).repeat_interleave(K))
    return (torch.randint(4, 8000, (B * K,)), st.hidden, st.feed, st.keys, enc.states, enc.mask)
for prec in ("fp32", "bf16"):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=prec == "bf16"):
        step = Step(dec)
        frozen = torch.jit.freeze(torch.jit.trace(step, args(16, 12), check_trace=False).eval())
        for B, S in ((16, 12), (3, 7), (40, 30)):
            a = args(B, S)
            e = step(*a); f = frozen(*a)
            print(prec, B, S, [tuple(x.shape) == tuple(y.shape) and bool(torch.equal(x, y)) for x, y in zip(e, f)],
                  [float((x.float() - y.float()).abs().max()) for x, y in zip(e, f)])
