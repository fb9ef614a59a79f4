"""Means of ab.txt: seq2seq-translate sentences/s per model and precision, before and after, and
the 32-client serve rows. Usage: python summary.py ab.txt > summary.txt"""
import json, re, statistics, sys
translate, serve, code = {}, {}, None
for line in open(sys.argv[1]):
    m = re.match(r"translate round \d+ (\w+) (\w+) (\w+): ([\d.]+) sentences/s", line)
    if m:
        translate.setdefault((m[2], m[3]), {}).setdefault(m[1], []).append(float(m[4]))
    elif line.startswith("== serve"):
        code = line.split()[2]
    elif line.startswith("{"):
        serve.setdefault(code, []).append(json.loads(line))
    elif line.startswith(("same output", "DIFFERENT")):
        print(line.strip())
print("seq2seq-translate, test_2016_flickr, beam 5 (sentences/s, mean of 4 alternating rounds):")
for (model, precision), runs in translate.items():
    b, a = statistics.mean(runs["before"]), statistics.mean(runs["after"])
    print(f"  {model} {precision}: before {b:.1f} ({' '.join(f'{x:.0f}' for x in runs['before'])}), "
          f"after {a:.1f} ({' '.join(f'{x:.0f}' for x in runs['after'])}): {a / b:.2f}x")
print("seq2seq-benchmark serve, 32 clients, bf16 (mean of 6 alternating rounds):")
for code, rows in serve.items():
    mean = lambda key: statistics.mean(r[key] for r in rows)
    ratios = " ".join(f"{r['ratio']:.2f}" for r in rows)
    print(f"  {code}: served {mean('sentences_per_sec'):.1f} sent/s, offline {mean('offline_sentences_per_sec'):.1f}, "
          f"ratio {mean('ratio'):.3f} ({ratios}); same outputs in "
          f"{sum(r['same_outputs'] for r in rows)} of {len(rows)}")
