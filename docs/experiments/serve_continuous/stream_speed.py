import gzip, sys, time, torch, numpy as np
from seq2seq.decode.loading import build_translator
from seq2seq.config.schema import DecodeConfig
from seq2seq.decode.search import beam_search, max_output_lengths
from seq2seq.decode.stream import BeamStream
from seq2seq.config.special_ids import PAD
from seq2seq.utils.devices import autocast
torch.set_num_threads(1)
tr = build_translator(sys.argv[1], DecodeConfig(beam_size=5), engine="torch", device="cpu", precision="auto")
model = tr.model.eval()
N=320
sents = gzip.open("/work/shared/data/multi30k/val.de.gz","rt").read().splitlines()[:N]
ids = tr.tokenizers.encode_sources(sents); ids=[ids[i] for i in range(len(sents))]
def batch(rows):
    L=max(len(ids[i]) for i in rows); src=torch.full((len(rows),L),PAD)
    for r,i in enumerate(rows): src[r,:len(ids[i])]=torch.tensor(ids[i])
    return src, torch.tensor([len(ids[i]) for i in rows])
def static(rows):
    src,l=batch(rows); return beam_search(model,src,l,max_output_lengths(l,1.5,10),5,1,1.0,False,0)
order=np.random.RandomState(0).permutation(N).tolist()
srt=sorted(range(N),key=lambda i:len(ids[i]))
def stream(width, chunk=1):
    st=BeamStream(model,5); nxt=0; done=0
    while done<N:
        if nxt<N and len(st)<=width-chunk:
            m=min(N-nxt, width-len(st)); rows=order[nxt:nxt+m]; nxt+=m; st.add(*batch(rows),rows)
        done+=len(st.step())
with autocast(torch.device("cpu"), "bf16")(), torch.no_grad():
  static(order[:16])
  for rep in range(3):
    r={}
    t=time.perf_counter(); [static(order[s:s+16]) for s in range(0,N,16)]; r["static random 16"]=N/(time.perf_counter()-t)
    t=time.perf_counter(); [static(srt[s:s+64]) for s in range(0,N,64)]; r["static sorted 64"]=N/(time.perf_counter()-t)
    t=time.perf_counter(); stream(16); r["stream 16"]=N/(time.perf_counter()-t)
    t=time.perf_counter(); stream(16,4); r["stream 16 refill by 4"]=N/(time.perf_counter()-t)
    print(" | ".join(f"{k} {v:.1f}" for k,v in r.items()))
