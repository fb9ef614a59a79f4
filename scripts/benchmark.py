"""Speed benchmarks, printed as a table plus a JSON line (see seq2seq/bench/modes.py).

python scripts/benchmark.py train experiment=rnn_bahdanau_small data.root=DIR bench.steps=100
python scripts/benchmark.py translate checkpoint=PATH data.root=DIR
"""

from seq2seq.cli.commands import benchmark_main

if __name__ == "__main__":
    benchmark_main()
