"""Per precision: the 32-client ratio of each round, its mean and spread (from rounds.txt)."""
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith("=="):
        _, precision, _, rnd = line.split(); continue
    d = json.loads(line); rows.setdefault(precision, []).append(d)
for precision, ds in rows.items():
    r = [d["ratio"] for d in ds]
    print(f"{precision}: {len(r)} runs, ratio mean {statistics.mean(r):.3f} (min {min(r):.2f}, max {max(r):.2f}, sd {statistics.stdev(r):.3f}), "
          f">= 0.70 in {sum(x >= 0.7 for x in r)}; served {statistics.mean(d['sentences_per_sec'] for d in ds):.1f} sent/s, "
          f"offline {statistics.mean(d['offline_sentences_per_sec'] for d in ds):.1f}; same outputs in {sum(d['same_outputs'] for d in ds)} of {len(ds)}")
    print("  ratios: " + " ".join(f"{x:.2f}" for x in r))
