"""CPU split at one concurrency: client process vs server process vs wall."""

import os, resource, sys, time, tempfile
from pathlib import Path
from omegaconf import OmegaConf
from seq2seq.config.schema import BenchmarkConfig
from seq2seq.bench import serve as S
from seq2seq.data.corpus import load_split
import gzip

conc = int(sys.argv[1])
kind = sys.argv[2]
extra = sys.argv[3:]
sys.path.insert(0, "/work/runs_serve")
import clients

S._clients = getattr(clients, kind + "_clients")
cfg = OmegaConf.to_object(
    OmegaConf.merge(OmegaConf.structured(BenchmarkConfig), {"checkpoint": "/work/runs_serve/rnn/checkpoints/best.pt"})
)
cfg.bench.serve_args = extra
sents = (
    gzip.open("/work/shared/data/multi30k/test_2016_flickr.de.gz", "rt")
    .read()
    .splitlines()[: int(os.environ.get("N", 1000))]
)


def threads(pid):
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        s = open(f"/proc/{pid}/task/{t}/stat").read()
        name = s[s.index("(") + 1 : s.rindex(")")]
        f = s.rsplit(")", 1)[1].split()
        out[(t, name)] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return out


def proc_cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


with tempfile.TemporaryDirectory() as tmp, S.running_server(cfg, Path(tmp)) as server:
    S._wait_ready(server)
    S._load(server, sents, 5, 8, 8, 60)
    if os.environ.get("PYSPY"):
        import subprocess

        spy = subprocess.Popen(
            [
                "py-spy",
                "record",
                "-p",
                str(server.process.pid),
                "-o",
                os.environ["PYSPY"],
                "-f",
                "raw",
                "-r",
                "200",
                "--threads",
                "-d",
                "8",
            ]
        )
        time.sleep(1)
    for _ in range(2):
        t0 = threads(server.process.pid)
        import httpx

        def bsec():
            for line in httpx.get(server.url + "/metrics").text.splitlines():
                if line.startswith("seq2seq_batch_seconds_sum"):
                    return float(line.split()[-1])

        b0 = bsec()
        s0 = proc_cpu(server.process.pid)
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        w0 = time.perf_counter()
        lvl = S._measured(server, sents, cfg, conc)
        s1 = proc_cpu(server.process.pid)
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        w1 = time.perf_counter()
        n = len(lvl.texts)
        print("batch seconds", round(bsec() - b0, 2), "of wall", round(w1 - w0, 2))
        t1 = threads(server.process.pid)
        print({k[0] + k[1][:6]: round(t1[k] - t0.get(k, 0), 2) for k in t1 if t1[k] - t0.get(k, 0) > 0.01})
        ccpu = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
        print(
            f"{kind} conc {conc} {extra}: {n / lvl.seconds:.1f} sent/s wall {w1 - w0:.2f}s server cpu {s1 - s0:.2f}s ({1000 * (s1 - s0) / n:.2f} ms/sent) client cpu {ccpu:.2f}s ({1000 * ccpu / n:.2f} ms/req) mean batch {lvl.mean_batch}"
        )
    S.stop_server(server)
