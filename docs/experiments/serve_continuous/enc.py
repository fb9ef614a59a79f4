import sys, time, torch
sys.argv=[sys.argv[0], sys.argv[1]]
exec(open("stream_speed.py").read().split("with autocast")[0])
with autocast(torch.device("cpu"), "bf16")(), torch.no_grad():
    for n in (1, 2, 4, 8, 16, 32):
        rows = order[:n]; src, l = batch(rows)
        for _ in range(3): model.encode(src, l)
        t = time.perf_counter()
        for _ in range(20): model.encode(src, l)
        print(n, f"{1000*(time.perf_counter()-t)/20:.2f} ms", "S", src.size(1))
    for chunk in (1, 2, 4, 8):
        t=time.perf_counter(); stream(16, chunk); print("refill by", chunk, f"{N/(time.perf_counter()-t):.1f}/s")
