"""Per-step cost of beam search (one thread, beam 5, RNN checkpoint) by batch size, on val
sentences of 12-14 words: the fixed cost of a step against its cost per sentence.
Usage (from /tmp): python step_cost.py bf16 -> step_cost_bf16.txt."""
import gzip, time, sys
import torch
from dataclasses import replace
from seq2seq.decode.loading import build_translator
from seq2seq.utils.devices import autocast
torch.set_num_threads(1)
sents = [l.strip() for l in gzip.open("/work/shared/data/multi30k/val.de.gz", "rt")]
tr = build_translator("/work/runs_serve/rnn/checkpoints/best.pt", precision=sys.argv[1])
tr.options = replace(tr.options, parallel_batches=1, max_output_extra=0)
# sentences of 12-14 words
mid = [s for s in sents if 12 <= len(s.split()) <= 14]
print(len(mid), "mid-length sentences")
calls = {"n": 0}
with autocast(tr.device, tr.options.precision)():
    for b in [1, 4, 16, 64]:
        batch = mid[:b]
        tr.translate(batch)
        step = tr.model.decoder.step
        def counted(*a, **k):
            calls["n"] += 1
            return step(*a, **k)
        tr.model.decoder.step = counted
        calls["n"] = 0
        reps = max(1, 64 // b)
        t = time.perf_counter()
        for r in range(reps):
            tr.translate(mid[r * b:(r + 1) * b] if (r + 1) * b <= len(mid) else batch)
        dt = time.perf_counter() - t
        del tr.model.decoder.step
        n = calls["n"]
        print(f"batch {b:3d}: {reps * b / dt:6.1f} sent/s, {n / reps:.1f} steps/batch, {1000 * dt / n:.2f} ms/step, {1000 * dt / (reps * b):.2f} ms/sentence")
