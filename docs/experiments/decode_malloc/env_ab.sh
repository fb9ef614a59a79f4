#!/bin/bash
# 32-client serve benchmark, bf16, alternating: glibc malloc defaults against fixed 256 MiB
# mmap/trim thresholds (environment of the whole benchmark: its offline translation and the server).
cd /tmp
. /work/main/.venv/bin/activate
for round in 1 2 3 4 5 6; do
  for mode in default fixed; do
    echo "== $mode round $round"
    if [ $mode = fixed ]; then export MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=268435456; else unset MALLOC_MMAP_THRESHOLD_ MALLOC_TRIM_THRESHOLD_; fi
    seq2seq-benchmark serve checkpoint=/work/runs_serve/rnn/checkpoints/best.pt data.root=/work/shared/data/multi30k \
      "bench.serve_concurrency=[32]" bench.serve_precision=bf16 2>&1 | grep '"mode": "serve"'
  done
done
