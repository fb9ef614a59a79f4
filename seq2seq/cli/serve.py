"""``seq2seq-serve``: check the settings, then run the app (:mod:`seq2seq.serve.app`) under uvicorn.

The server listens at once and loads the model in the background (``/health`` says 503 until it
is ready); Ctrl-C or SIGTERM stops taking new connections, answers the requests in flight, then
exits with status 0.
"""

from __future__ import annotations

import logging
import signal
import time

from seq2seq.config.schema import ServeConfig
from seq2seq.config.values import check_serve
from seq2seq.utils.devices import set_up_process
from seq2seq.utils.errors import ConfigError
from seq2seq.utils.files import check_readable

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Seconds the requests in flight get to finish after SIGTERM.
GRACEFUL_SECONDS = 30


def check_serve_config(cfg: ServeConfig) -> None:
    """The server's keys (:func:`seq2seq.config.values.check_serve`) and the checkpoint, one line
    each, before anything starts."""
    check_serve(cfg)
    if str(cfg.engine) != "ctranslate2":
        check_readable(cfg.checkpoint, "checkpoint")


def run_server(cfg: ServeConfig) -> None:
    """Serve ``cfg.checkpoint`` on ``cfg.host:cfg.port`` until Ctrl-C or SIGTERM."""
    try:
        import uvicorn

        from seq2seq.serve.app import create_app
        from seq2seq.serve.model import load_served_model
    except ImportError as err:
        raise ConfigError(
            f'seq2seq-serve needs the serve extra ({err.name} is missing): pip install -e ".[serve]"'
        ) from None
    check_serve_config(cfg)
    set_up_process(cfg.threads)  # threads and allocator: an entry point's decisions
    if cfg.host not in LOOPBACK:
        log.warning("listening on %s: reachable from other machines (host=127.0.0.1 keeps it local)", cfg.host)
    start = time.perf_counter()

    def load():
        model = load_served_model(cfg)
        log.info("ready at http://%s:%d/ after %.1f s", cfg.host, cfg.port, time.perf_counter() - start)
        return model

    app = create_app(cfg, load)
    log.info("serving %s at http://%s:%d/ (loading the model)", cfg.checkpoint, cfg.host, cfg.port)
    # uvicorn answers the requests in flight on SIGTERM, then raises the signal again with the
    # handler it found installed: this one, so that a stop asked for ends with status 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(
        app,
        host=cfg.host,
        port=cfg.port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        access_log=False,
    )
