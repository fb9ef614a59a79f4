#!/bin/bash
cd /tmp
. /work/main/.venv/bin/activate
for round in 1 2 3 4 5 6 7 8; do
  for extra in 0 1; do
    echo "== extra $extra round $round"
    EXTRA_SEARCH_THREADS=$extra PYTHONPATH=/work/ab_t3 seq2seq-benchmark serve checkpoint=/work/runs_serve/rnn/checkpoints/best.pt data.root=/work/shared/data/multi30k \
      "bench.serve_concurrency=[32]" bench.serve_precision=bf16 2>&1 | grep '"mode": "serve"'
  done
done
