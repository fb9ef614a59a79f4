#!/bin/bash
# A/B with the bracketed serve benchmark: main (one batch at a time, parts in lockstep) vs
# overlapping batches; alternating, bf16 (auto) on the RNN, beam 5, 1,000 test sentences.
# Rounds 8-17 (ab_bench_bf16_32b.txt): ab_bench.sh with "new" at /work/ab_new (32b38ee with overlapping_batches.patch)
# and "main" at /work/ab_main (32b38ee), ROUNDS="8 ... 17" LEVELS="[32]".
# /work/ab_main: a worktree of 32b38ee; /work/main: 32b38ee with overlapping_batches.patch.
# ab_bench_bf16.txt: rounds 1-3; ab_bench_bf16_32.txt: ROUNDS="4 5 6 7" LEVELS="[32]".
cd /tmp
. /work/main/.venv/bin/activate
for round in ${ROUNDS:-1 2 3}; do
  for side in main new; do
    root=/work/ab_new; [ $side = main ] && root=/work/ab_main
    echo "== $side round $round"
    PYTHONPATH=$root seq2seq-benchmark serve checkpoint=/work/runs_serve/rnn/checkpoints/best.pt \
      data.root=/work/shared/data/multi30k "bench.serve_concurrency=${LEVELS:-[8,32]}" "$@" 2>&1 | grep '"mode": "serve"'
  done
done
