"""An exact early stop for beam search (exact_early_stop.patch): a sentence leaves the batch once
no live beam can still reach its n_best best finished hypotheses (a live score s can at best end
as s / lp(its length cap)). Counts the beam rows the decoder steps over and the batch steps, and
times val (1,014 sentences, bf16, beam 5, one thread) in batches of 16 and 64.
Usage (from /tmp): PYTHONPATH=CHECKOUT python probe.py bf16 LABEL; then cmp the LABEL.*.txt files."""
import gzip, time, sys, torch
from dataclasses import replace
from seq2seq.decode.loading import build_translator
import seq2seq
prec, out = sys.argv[1], sys.argv[2]
torch.set_num_threads(1)
sents = [l.strip() for l in gzip.open("/work/shared/data/multi30k/val.de.gz", "rt")]
tr = build_translator("/work/runs_serve/rnn/checkpoints/best.pt", precision=prec)
tr.options = replace(tr.options, parallel_batches=1)
count = {"rows": 0, "steps": 0}
step = tr.model.decoder.step
def counted(*a, **k):
    count["rows"] += a[0].numel()
    count["steps"] += 1
    return step(*a, **k)
tr.model.decoder.step = counted
for batch in (16, 64):
    count.update(rows=0, steps=0)
    t = time.perf_counter()
    hyps = []
    for i in range(0, len(sents), batch):
        hyps += [r.text for r in tr.translate(sents[i:i + batch])]
    dt = time.perf_counter() - t
    open(f"{out}.b{batch}.txt", "w").write("\n".join(hyps) + "\n")
    print(f"{out} ({seq2seq.__file__.rsplit('/', 2)[0]}) batch {batch}: {len(sents) / dt:.1f} sent/s, "
          f"{count['steps']} steps, {count['rows']} beam rows")
