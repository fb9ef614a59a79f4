#!/bin/bash
# The serving numbers again on the code that keeps freed memory while decoding (691ed3d): the
# engines table (1, 8 and 32 clients), then the 32-client level repeated for each engine.
# Usage (from /tmp): bash run.sh OUT_DIR
out=$1
. /work/main/.venv/bin/activate
cd /tmp
bash /work/main/docs/experiments/serve_overlap/engines.sh /work/runs_serve/rnn/checkpoints/best.pt \
  /work/runs_serve/tf/checkpoints/best.pt /work/runs_serve/tf_ct2 > "$out/engines.txt" 2>&1
ROUNDS="1 2 3 4 5 6 7 8" bash /work/main/docs/experiments/serve_spread/rounds.sh > "$out/rounds.txt" 2>&1
ROUNDS="1 2 3 4 5 6" bash /work/main/docs/experiments/serve_spread/ct2_rounds.sh > "$out/ct2_rounds.txt" 2>&1
