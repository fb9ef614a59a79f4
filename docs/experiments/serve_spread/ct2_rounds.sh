#!/bin/bash
# Repeated 32-client serve benchmarks of the CTranslate2 engine (transformer_small's export), fp32
# and int8 alternating, beam 5, all 1,000 test sentences; as rounds.sh.
cd /tmp
. /work/main/.venv/bin/activate
for round in ${ROUNDS:-1 2 3}; do
  for precision in fp32 int8; do
    echo "== ct2-$precision round $round"
    seq2seq-benchmark serve checkpoint=/work/runs_serve/tf_ct2 data.root=/work/shared/data/multi30k \
      "bench.serve_concurrency=[32]" bench.serve_engine=ctranslate2 bench.serve_precision=$precision 2>&1 | grep '"mode": "serve"'
  done
done
