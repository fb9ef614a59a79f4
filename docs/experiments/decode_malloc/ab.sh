#!/bin/bash
# Before (23ca020: glibc malloc's defaults while decoding) against after (keep_freed_memory() in the
# decoding commands), alternating. 1) seq2seq-translate on test_2016_flickr (1,000 sentences, beam 5)
# as a whole process, each model and precision; the translation time is from its log (the
# "loaded" line to the "translated" line). 2) the 32-client serve benchmark (bf16).
# Usage (from /tmp): bash ab.sh > ab.txt 2>&1
. /work/main/.venv/bin/activate
cd /tmp
zcat /work/shared/data/multi30k/test_2016_flickr.de.gz > /tmp/malloc_test.de
seconds() { date -d "${1:1:23}" +%s.%N; }
for round in 1 2 3 4; do
  for code in before after; do
    [ $code = before ] && export PYTHONPATH=/work/ab_before || export PYTHONPATH=/work/main
    for model in rnn tf; do
      for precision in bf16 fp32; do
        log=$(seq2seq-translate checkpoint=/work/runs_serve/$model/checkpoints/best.pt input=/tmp/malloc_test.de \
          output=/tmp/malloc_$code.$model.$precision.en precision=$precision 2>&1)
        start=$(seconds "$(grep ' - loaded ' <<< "$log")"); end=$(seconds "$(grep 'translated 1000 lines' <<< "$log")")
        echo "translate round $round $code $model $precision: $(python -c "print(f'{1000 / ($end - $start):.1f}')") sentences/s"
      done
    done
  done
done
for round in 1 2 3 4 5 6; do
  for code in before after; do
    [ $code = before ] && export PYTHONPATH=/work/ab_before || export PYTHONPATH=/work/main
    echo "== serve $code round $round"
    seq2seq-benchmark serve checkpoint=/work/runs_serve/rnn/checkpoints/best.pt data.root=/work/shared/data/multi30k \
      "bench.serve_concurrency=[32]" bench.serve_precision=bf16 2>&1 | grep '"mode": "serve"'
  done
done
for f in /tmp/malloc_before.*.en; do cmp -s "$f" "${f/before/after}" && echo "same output: ${f#/tmp/malloc_before.}" || echo "DIFFERENT: $f"; done
