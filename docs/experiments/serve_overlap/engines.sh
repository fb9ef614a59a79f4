#!/usr/bin/env bash
# The serve benchmark for each engine and precision, one after another (overlapping batches).
# Usage: engines.sh RNN_CHECKPOINT TRANSFORMER_CHECKPOINT CT2_DIR
set -euo pipefail
rnn=$1 transformer=$2 ct2=$3
data="data.root=${MULTI30K_ROOT:-../shared/data/multi30k}"
run() { echo "## $*, $(date +%H:%M:%S)"; seq2seq-benchmark serve "$data" "$@" 2>/dev/null | grep -v '^{'; }
run checkpoint="$rnn" bench.serve_precision=bf16
run checkpoint="$rnn" bench.serve_precision=fp32
run checkpoint="$ct2" bench.serve_engine=ctranslate2 bench.serve_precision=fp32
run checkpoint="$ct2" bench.serve_engine=ctranslate2 bench.serve_precision=int8
run checkpoint="$transformer" bench.serve_precision=bf16
