#!/usr/bin/env bash
# Parts of a batch on threads against worker processes, alternating (the same checkpoint, engine
# and settings; only seq2seq-serve's search_workers key differs), with worker_processes.patch applied
# (the code was not kept). Usage: ab.sh CHECKPOINT ROUNDS [KEY=VALUE ...]
set -euo pipefail
checkpoint=$1 rounds=$2
shift 2
for round in $(seq "$rounds"); do
  for workers in threads processes; do
    echo "## search_workers=$workers, round $round, $(date +%H:%M:%S)"
    seq2seq-benchmark serve checkpoint="$checkpoint" data.root="${MULTI30K_ROOT:-../shared/data/multi30k}" \
      "bench.serve_args=['search_workers=$workers']" "$@" 2>/dev/null | grep -v '^{'
  done
done
