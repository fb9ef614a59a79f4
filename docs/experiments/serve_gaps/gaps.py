import collections, sys
rows = [l.split() for l in open(sys.argv[1])]
rows = sorted(((int(a), float(b), float(c), float(d), int(e)) for a, b, c, d, e in rows), key=lambda r: r[1])
tot = 0; sel = []
for r in reversed(rows):
    sel.append(r); tot += r[4]
    if tot >= 1000: break
sel.reverse()
t0, t1 = sel[0][1], max(r[2] for r in sel)
print(f"{len(sel)} batches, {tot} sentences, span {t1 - t0:.2f}s -> {tot / (t1 - t0):.1f} sent/s")
by = collections.defaultdict(list)
for r in sel: by[r[0]].append(r)
for tid, rs in by.items():
    busy = sum(r[2] - r[1] for r in rs); cpu = sum(r[3] for r in rs)
    gaps = [b[1] - a[2] for a, b in zip(rs, rs[1:])]
    print(f"  thread: {len(rs)} batches, busy {busy / (t1 - t0):.2f} of wall, cpu {cpu / (t1 - t0):.2f}, "
          f"gaps mean {1000 * sum(gaps) / len(gaps):.1f} ms max {1000 * max(gaps):.1f}, batch mean {sum(r[4] for r in rs) / len(rs):.1f}, "
          f"batch ms mean {1000 * busy / len(rs):.0f}")
