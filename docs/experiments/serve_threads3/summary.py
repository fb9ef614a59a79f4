"""Two search threads (extra 0) against three (extra 1): each round's 32-client ratio, the means,
and the paired differences (from ab.txt). Usage: python summary.py ab.txt > summary.txt"""
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    if line.startswith("=="):
        extra = line.split()[2]
        continue
    rows.setdefault(extra, []).append(json.loads(line))
for extra, ds in rows.items():
    r = [d["ratio"] for d in ds]
    print(f"search threads {2 + int(extra)}: {len(r)} runs, ratio mean {statistics.mean(r):.3f} (sd {statistics.stdev(r):.3f}), "
          f"served {statistics.mean(d['sentences_per_sec'] for d in ds):.1f} sent/s, offline "
          f"{statistics.mean(d['offline_sentences_per_sec'] for d in ds):.1f}, mean batch "
          f"{statistics.mean(d['mean_batch_sentences'] for d in ds):.1f}; same outputs in {sum(d['same_outputs'] for d in ds)} of {len(ds)}")
    print("  ratios: " + " ".join(f"{x:.2f}" for x in r))
diff = [b["ratio"] - a["ratio"] for a, b in zip(rows["0"], rows["1"])]
print(f"paired difference (three minus two): mean {statistics.mean(diff):+.3f}, sd {statistics.stdev(diff):.3f}, "
      f"three threads better in {sum(d > 0 for d in diff)} of {len(diff)}")
