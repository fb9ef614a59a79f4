"""Where the CPU goes while seq2seq-serve answers 32 single-sentence clients: server threads
(by name) and the client process, in CPU-seconds per wall-second, beside the served rate."""
import asyncio, gzip, os, resource, subprocess, sys, time, urllib.request
import aiohttp, uvloop

port = 8765
precision = sys.argv[1]
extra = sys.argv[2:]
sents = [l.strip() for l in gzip.open("/work/shared/data/multi30k/val.de.gz", "rt")][:1000]
srv = subprocess.Popen(["seq2seq-serve", "checkpoint=/work/runs_serve/rnn/checkpoints/best.pt", f"port={port}",
                        f"precision={precision}", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
url = f"http://127.0.0.1:{port}"
for _ in range(600):
    try:
        if urllib.request.urlopen(url + "/health").status == 200: break
    except Exception: time.sleep(0.2)
tick = os.sysconf("SC_CLK_TCK")

def threads():
    out = {}
    for t in os.listdir(f"/proc/{srv.pid}/task"):
        try:
            name = open(f"/proc/{srv.pid}/task/{t}/comm").read().strip()
            f = open(f"/proc/{srv.pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
            out[(t, name)] = (int(f[11]) + int(f[12])) / tick
        except FileNotFoundError: pass
    return out

async def load(n):
    sent = 0
    async with aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=32)) as s:
        async def one():
            nonlocal sent
            while sent < n:
                i, sent = sent, sent + 1
                async with s.post("/v1/translate", json={"text": [sents[i]], "beam_size": 5}) as r:
                    await r.json()
        await asyncio.gather(*(one() for _ in range(32)))

uvloop.run(load(128))
for rnd in range(2):
    t0, c0, r0 = time.perf_counter(), threads(), resource.getrusage(resource.RUSAGE_SELF)
    uvloop.run(load(len(sents)))
    wall, c1, r1 = time.perf_counter() - t0, threads(), resource.getrusage(resource.RUSAGE_SELF)
    by = {}
    for k, v in c1.items():
        name = "event-loop" if k[0] == str(srv.pid) else "search-threads"
        by[name] = by.get(name, 0) + v - c0.get(k, 0)
    client = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    parts = " ".join(f"{k}={v / wall:.2f}" for k, v in sorted(by.items(), key=lambda kv: -kv[1]) if v / wall >= 0.01)
    print(f"{precision} {' '.join(extra)} round {rnd}: {len(sents) / wall:.1f} sent/s | cores busy: server {parts} | clients={client / wall:.2f}", flush=True)
srv.terminate(); srv.wait()
