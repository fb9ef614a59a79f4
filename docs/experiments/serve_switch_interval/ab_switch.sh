#!/bin/bash
# A/B with the bracketed serve benchmark: main (4aae4cb: Python's 5 ms GIL switch interval) vs
# the switch interval cut to 50 us while several threads search (switch_interval.patch); alternating,
# bf16 (auto) on the RNN, beam 5, all 1,000 test sentences, 32 clients.
# ab_switch_bf16.txt: rounds 1-12 (ROUNDS="1 ... 12"); ab_switch_bf16_b.txt: rounds 13-28.
# Summary: ../serve_overlap/ab_summary.py (its column labels renamed) -> ab_summary_switch.txt.
# /work/ab_main: a worktree of 4aae4cb; /work/ab_new: 4aae4cb with switch_interval.patch.
cd /tmp
. /work/main/.venv/bin/activate
for round in ${ROUNDS:-1 2 3}; do
  for side in main new; do
    root=/work/ab_new; [ $side = main ] && root=/work/ab_main
    echo "== $side round $round"
    PYTHONPATH=$root seq2seq-benchmark serve checkpoint=/work/runs_serve/rnn/checkpoints/best.pt \
      data.root=/work/shared/data/multi30k "bench.serve_concurrency=${LEVELS:-[32]}" "$@" 2>&1 | grep '"mode": "serve"'
  done
done
