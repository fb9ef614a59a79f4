"""Pairs of 32-client rows (as it is / overlapping) from ab_bench output files: a table and the paired differences."""
import json, statistics, sys
rows = {}
for f in sys.argv[1:]:
    side = rnd = None
    for line in open(f):
        if line.startswith("=="):
            _, side, _, rnd = line.split(); continue
        d = json.loads(line)
        if d["concurrency"] == 32:
            rows.setdefault(int(rnd), {})[side] = d
print("| round | as it is: sent/s | offline beside | ratio | p50 ms | overlapping: sent/s | offline beside | ratio | p50 ms |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
diffs, rate_diffs, ratios = [], [], {"main": [], "new": []}
for r in sorted(rows):
    if len(rows[r]) < 2: continue
    m, n = rows[r]["main"], rows[r]["new"]
    print(f"| {r} | {m['sentences_per_sec']} | {m['offline_sentences_per_sec']} | {m['ratio']:.2f} | {m['p50_ms']:.0f} | {n['sentences_per_sec']} | {n['offline_sentences_per_sec']} | {n['ratio']:.2f} | {n['p50_ms']:.0f} |")
    diffs.append(n["ratio"] - m["ratio"]); rate_diffs.append(n["sentences_per_sec"] / m["sentences_per_sec"] - 1)
    ratios["main"].append(m["ratio"]); ratios["new"].append(n["ratio"])
print(f"\n{len(diffs)} pairs: mean ratio as it is {statistics.mean(ratios['main']):.3f}, overlapping {statistics.mean(ratios['new']):.3f}; "
      f"difference mean {statistics.mean(diffs):+.3f} (sd {statistics.stdev(diffs):.3f}, {sum(d > 0 for d in diffs)} of {len(diffs)} positive); "
      f"served rate {statistics.mean(rate_diffs):+.1%} on average; ratio >= 0.70 in {sum(x >= 0.7 for x in ratios['main'])} / {sum(x >= 0.7 for x in ratios['new'])} runs")
