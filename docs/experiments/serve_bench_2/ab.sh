#!/bin/bash
# Before (HEAD d44f9d5, its serve extra: no uvloop/httptools) / after (working tree), alternating, same hour.
set -e
cd /work/runs_serve
. /work/main/.venv/bin/activate
OUT=/work/runs_serve/ab.txt
CK=/work/runs_serve/rnn/checkpoints/best.pt
for r in 1 2; do
  pip install -q --no-deps -e /work/head 2>/dev/null; pip uninstall -q -y uvloop httptools 2>/dev/null
  echo "## before (d44f9d5), round $r, $(date -u +%H:%M)" >> $OUT
  seq2seq-benchmark serve checkpoint=$CK data.root=/work/shared/data/multi30k 2>&1 | grep -v "^{" >> $OUT
  pip install -q --no-deps -e /work/main 2>/dev/null; pip install -q uvloop httptools 2>/dev/null
  echo "## after, round $r, $(date -u +%H:%M)" >> $OUT
  seq2seq-benchmark serve checkpoint=$CK data.root=/work/shared/data/multi30k 2>&1 | grep -v "^{" >> $OUT
done
