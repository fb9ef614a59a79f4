"""Composing configs outside Hydra's entry points: where ``configs/`` is, the composed config as a
typed dataclass, and one line describing a composition error (naming the valid keys/options).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.errors import MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from seq2seq.config.serialization import MOVED, from_container
from seq2seq.utils.errors import ConfigError


def config_dir() -> str:
    """``configs/`` beside the package (source checkout) or inside it (installed wheel)."""
    package = Path(__file__).resolve().parent.parent  # seq2seq/
    here = package
    for candidate in (package / "configs", package.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise RuntimeError(f"seq2seq: configs/ not found next to {here}")


def describe_config_error(err: BaseException) -> str:
    """One line for a Hydra/OmegaConf composition error, naming the valid keys or options."""
    cause = err.__cause__ if isinstance(err.__cause__, OmegaConfBaseException) else err
    text = str(err)
    if isinstance(err, MissingConfigException) or "Could not find" in text:
        first = text.strip().splitlines()[0]
        match = re.search(r"Available options in '([^']+)':\n((?:\t.*\n?)+)", text)
        if match:
            options = ", ".join(line.strip() for line in match.group(2).splitlines() if line.strip())
            return f"{first}; available options for {match.group(1)}: {options}"
        return first
    if isinstance(cause, MissingMandatoryValue):
        key = getattr(cause, "full_key", None) or "a value"
        return f"{key} is required: add {key}=..."
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None) or ""
        message = str(cause).strip().splitlines()[0]
        if isinstance(cause, ConfigKeyError) or "not in" in message:
            valid = _field_names(getattr(cause, "object_type", None))
            where = key.rsplit(".", 1)[0] if "." in key else "the config"
            hint = f"; valid keys of {where}: {', '.join(valid)}" if valid else ""
            moved = MOVED.get(tuple(key.split(".", 1)))  # type: ignore[arg-type]
            if moved:
                hint = f"; it moved to {moved[0]}"
            return f"unknown config key '{key}'{hint}"
        return f"{key}: {message}" if key else message
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def _field_names(object_type: Any) -> list[str]:
    """The dataclass's own fields first (``checkpoint``, ``input`` ...), then inherited ones."""
    if object_type is None or not dataclasses.is_dataclass(object_type):
        return []
    names = [f.name for f in dataclasses.fields(object_type)]
    own = set(vars(object_type).get("__annotations__", {}))
    return [n for n in names if n in own] + [n for n in names if n not in own]


def typed_config(cfg: DictConfig, schema: type) -> Any:
    """The composed config as a ``schema`` dataclass; keys added with ``+key=`` are rejected too."""
    return from_container(schema, OmegaConf.to_container(cfg, resolve=True))


def compose_config(config_name: str, overrides: Sequence[str], schema: type) -> Any:
    """``configs/{config_name}.yaml`` with command-line ``overrides`` (``key=value``, ``group=option``)
    as a ``schema`` dataclass, outside Hydra's entry points; a mistake is one :class:`ConfigError` line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from seq2seq.config.schema import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides))
        return typed_config(cfg, schema)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(describe_config_error(err)) from None
    finally:
        GlobalHydra.instance().clear()
