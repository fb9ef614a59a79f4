import asyncio, json, time
from seq2seq.bench.serve import Level, REQUEST_SECONDS


async def raw_clients(server, sentences, beam, concurrency, budget, seconds):
    host, port = server.url.rsplit("//", 1)[1].split(":")
    level = Level(concurrency, [], {}, 0.0)
    sent = 0
    start = time.perf_counter()
    deadline = start + seconds

    async def loop():
        nonlocal sent
        reader, writer = await asyncio.open_connection(host, int(port))
        while sent < budget and time.perf_counter() < deadline:
            i, sent = sent, sent + 1
            body = json.dumps({"text": [sentences[i]], "beam_size": beam}).encode()
            asked = time.perf_counter()
            writer.write(
                b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body)
            )
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
            data = await reader.readexactly(length)
            level.latencies_ms.append(1000 * (time.perf_counter() - asked))
            level.texts[i] = json.loads(data)["translations"][0]["text"]
        writer.close()

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    level.seconds = time.perf_counter() - start
    return level


async def aio_clients(server, sentences, beam, concurrency, budget, seconds):
    import aiohttp

    level = Level(concurrency, [], {}, 0.0)
    sent = 0
    async with aiohttp.ClientSession(server.url, connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        start = time.perf_counter()
        deadline = start + seconds

        async def loop():
            nonlocal sent
            while sent < budget and time.perf_counter() < deadline:
                i, sent = sent, sent + 1
                asked = time.perf_counter()
                async with session.post("/v1/translate", json={"text": [sentences[i]], "beam_size": beam}) as r:
                    data = await r.json()
                level.latencies_ms.append(1000 * (time.perf_counter() - asked))
                level.texts[i] = data["translations"][0]["text"]

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        level.seconds = time.perf_counter() - start
    return level


async def httpx_clients(server, sentences, beam, concurrency, budget, seconds):
    """The benchmark's clients before this change (httpx.AsyncClient)."""
    import httpx

    level = Level(concurrency, [], {}, 0.0)
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_SECONDS, limits=limits) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def loop():
            nonlocal sent
            while sent < budget and time.perf_counter() < deadline:
                i, sent = sent, sent + 1
                asked = time.perf_counter()
                answer = await client.post("/v1/translate", json={"text": [sentences[i]], "beam_size": beam})
                level.latencies_ms.append(1000 * (time.perf_counter() - asked))
                level.texts[i] = answer.json()["translations"][0]["text"]

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        level.seconds = time.perf_counter() - start
    return level
