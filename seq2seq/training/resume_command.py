"""The command that continues a stopped training run, for the last line of its log.

Hydra's default run directory is time-stamped (``outputs/DATE/TIME``), so running "the same
command again" would start a new run elsewhere. :func:`resume_command` gives the command line
the user ran with ``hydra.run.dir=`` of this run added (or replaced), quoted for a POSIX shell:
running it continues the run from ``checkpoints/latest.pt``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

RUN_DIR_KEY = "hydra.run.dir"
MULTIRUN_FLAGS = ("-m", "--multirun")


def resume_command(run_dir: str | Path, settings: dict[str, str] | None = None) -> str | None:
    """The command that continues the run in ``run_dir``, with ``settings`` (``key: value``) changed.

    None when training was not started from the command line (``train()`` called from Python).
    A run of a sweep (``-m``) is continued on its own, with the sweep's values for this run.
    """
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:  # pragma: no cover - hydra is a dependency
        return None
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    args = list(hydra_cfg.overrides.task) if hydra_cfg.mode == RunMode.MULTIRUN else sys.argv[1:]
    return build_command(invocation(sys.argv[0]), args, run_dir, settings)


def how_to_continue(run_dir: str | Path, settings: dict[str, str] | None = None, fallback: str = "") -> str:
    """``"run: COMMAND"`` (see :func:`resume_command`), or ``fallback`` (default: calling ``train()``
    again with ``run_dir``) when training was started from Python."""
    command = resume_command(run_dir, settings)
    if command:
        return f"run: {command}"
    return fallback or "call train() again with this run directory"


def build_command(
    program: Sequence[str], args: Sequence[str], run_dir: str | Path, settings: dict[str, str] | None = None
) -> str:
    """``program args`` without sweep flags and old values of the changed keys, plus the new values.

    ``train.resume=false`` is dropped too: it would refuse the very directory to continue in.
    """
    settings = {RUN_DIR_KEY: shown_path(run_dir), **(settings or {})}
    kept = [a for a in args if a not in MULTIRUN_FLAGS and override_key(a) not in settings and not _refuses_resume(a)]
    added = [f"{key}={value}" for key, value in settings.items()]
    return " ".join(shlex.quote(part) for part in [*program, *kept, *added])


def override_key(arg: str) -> str | None:
    """The key of a Hydra override (``+key=v``, ``++key=v``, ``~key`` included); None for a flag."""
    if arg.startswith("-"):
        return None
    key = arg.split("=", 1)[0] if "=" in arg else (arg if arg.startswith("~") else None)
    return key.lstrip("+~") if key else None


def _refuses_resume(arg: str) -> bool:
    return override_key(arg) == "train.resume" and arg.split("=", 1)[-1].strip().lower() in ("false", "no", "0")


def invocation(argv0: str) -> list[str]:
    """How the program was started: ``seq2seq-train``, ``python scripts/train.py`` or under torchrun."""
    launcher = _torchrun() if "TORCHELASTIC_RUN_ID" in os.environ else []
    path = Path(argv0)
    if path.suffix == ".py":
        return [*(launcher or [_python()]), argv0]
    if _same_file(shutil.which(path.name), argv0):
        return [*launcher, path.name]  # a console script on PATH
    return [*launcher, argv0]


def _python() -> str:
    """``python`` when that is this interpreter (an active virtual environment), else its full path."""
    return "python" if _same_file(shutil.which("python"), sys.executable) else sys.executable


def _same_file(found: str | None, path: str) -> bool:
    """Whether ``found`` is ``path`` itself; links are not followed (a virtual environment's python
    links to the system's, which lacks the environment's packages)."""
    return bool(found) and os.path.abspath(found) == os.path.abspath(path)


def _torchrun() -> list[str]:
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    nodes = int(os.environ.get("WORLD_SIZE", local)) // max(int(local), 1)
    return ["torchrun", f"--nproc_per_node={local}", *([f"--nnodes={nodes}"] if nodes > 1 else [])]


def shown_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies inside it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)
