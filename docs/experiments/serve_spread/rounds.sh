#!/bin/bash
# Repeated 32-client serve benchmarks of one engine (main as committed), to see the ratio's spread:
# PyTorch fp32 and bf16 alternating, rnn_bahdanau_small, beam 5, all 1,000 test sentences.
cd /tmp
. /work/main/.venv/bin/activate
for round in ${ROUNDS:-1 2 3}; do
  for precision in fp32 bf16; do
    echo "== $precision round $round"
    seq2seq-benchmark serve checkpoint=/work/runs_serve/rnn/checkpoints/best.pt data.root=/work/shared/data/multi30k \
      "bench.serve_concurrency=[32]" bench.serve_precision=$precision 2>&1 | grep '"mode": "serve"'
  done
done
