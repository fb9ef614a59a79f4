#!/usr/bin/env bash
# Batches against continuous batching, alternating (the same checkpoint, engine and settings; only
# seq2seq-serve's continuous_batching key differs). Run with continuous_batching.patch applied (the code was not kept).
# Usage: ab.sh CHECKPOINT ROUNDS [KEY=VALUE ...]
set -euo pipefail
checkpoint=$1 rounds=$2
shift 2
for round in $(seq "$rounds"); do
  for continuous in false true; do
    echo "## continuous_batching=$continuous, round $round, $(date +%H:%M:%S)"
    seq2seq-benchmark serve checkpoint="$checkpoint" data.root="${MULTI30K_ROOT:-../shared/data/multi30k}" \
      "bench.serve_args=['continuous_batching=$continuous']" "$@" 2>/dev/null | grep -v '^{'
  done
done
