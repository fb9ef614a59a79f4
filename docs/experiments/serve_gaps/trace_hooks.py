"""Trace hooks for a served benchmark, loaded as ``sitecustomize`` (copy to DIR/sitecustomize.py,
run ``seq2seq-benchmark serve`` with PYTHONPATH=DIR and TRACE_SEARCH=PREFIX, TRACE_FILL=PREFIX):
every ``Translator.translate`` call (thread, start, end, thread CPU seconds, sentences) and every
``Batcher._fill`` (start, seconds, sentences queued before/after, searching before/after,
expected), one file per process (PREFIX.PID). ``gaps.py`` summarises the search trace."""
import atexit, os, threading, time
if os.environ.get("TRACE_SEARCH"):
    from seq2seq.decode.translator import Translator
    log = []
    orig = Translator.translate
    def traced(self, sentences):
        t0 = time.perf_counter(); c0 = time.thread_time()
        out = orig(self, sentences)
        log.append((threading.get_ident(), t0, time.perf_counter(), time.thread_time() - c0, len(sentences)))
        return out
    Translator.translate = traced
    def dump():
        with open(os.environ["TRACE_SEARCH"] + f".{os.getpid()}", "w") as f:
            for row in log:
                f.write("%d %.6f %.6f %.6f %d\n" % row)
    atexit.register(dump)
if os.environ.get("TRACE_FILL"):
    from seq2seq.serve import batching as B
    flog = []
    orig_fill = B.Batcher._fill
    async def fill(self, queue):
        t0 = time.perf_counter(); w0 = sum(len(j.sentences) for j in queue); s0 = self.searching
        await orig_fill(self, queue)
        flog.append((t0, time.perf_counter() - t0, w0, sum(len(j.sentences) for j in queue), s0, self.searching, self._expected))
    B.Batcher._fill = fill
    def dump2():
        with open(os.environ["TRACE_FILL"] + f".{os.getpid()}", "w") as f:
            for row in flog:
                f.write("%.6f %.6f %d %d %d %d %d\n" % row)
    atexit.register(dump2)
