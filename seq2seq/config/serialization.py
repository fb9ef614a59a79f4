"""Configs as plain data: to and from the dicts stored in checkpoints and logs, and the upgrade of
configs stored by earlier versions (renamed keys) to today's schema."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from seq2seq.utils.errors import ConfigError

# Keys moved since configs were first stored: (old section, old key) -> new dotted key. The search
# settings of valid/test moved into valid.decode/test.decode (one DecodeConfig); test decoding
# used valid's output-length cap then, so it is copied into test.decode too.
MOVED: dict[tuple[str, str], list[str]] = {
    ("valid", "batch_size"): ["valid.decode.batch_size"],
    ("valid", "max_output_ratio"): ["valid.decode.max_output_ratio", "test.decode.max_output_ratio"],
    ("valid", "max_output_extra"): ["valid.decode.max_output_extra", "test.decode.max_output_extra"],
    ("test", "beam_size"): ["test.decode.beam_size"],
    ("test", "length_penalty"): ["test.decode.length_penalty"],
    ("test", "min_length"): ["test.decode.min_length"],
    ("test", "batch_size"): ["test.decode.batch_size"],
}


def upgrade_train_config(data: dict[str, Any]) -> dict[str, Any]:
    """A stored training config (plain dict) with keys of earlier versions moved to where the
    schema has them now (:data:`MOVED`); ``data`` itself is left as it is."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for (section, key), targets in MOVED.items():
        if not isinstance(out.get(section), dict) or key not in out[section]:
            continue
        value = out[section].pop(key)
        for target in targets:
            new_section, sub, name = target.split(".")
            parent = out.setdefault(new_section, {})
            parent[sub] = {name: value, **parent.get(sub, {})}  # a key already in its new place wins
    return out


def to_container(cfg: Any) -> dict[str, Any]:
    """A plain, enum-free dict of a config (dataclass or DictConfig), for checkpoints and logs."""
    node = OmegaConf.structured(cfg) if not OmegaConf.is_config(cfg) else cfg
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True)  # type: ignore[return-value]


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def from_container(schema: type, data: dict[str, Any]) -> Any:
    """Rebuild a typed config from :func:`to_container` output, filling new fields with defaults.

    ``data`` is plain data (e.g. read from a checkpoint): a value that OmegaConf would take for
    an interpolation (``${oc.env:SECRET}``) is refused, never resolved.
    """
    key = find_interpolation(data)
    if key is not None:
        raise ConfigError(f"config value {key} contains '${{': interpolations are not allowed in stored configs")
    merged = OmegaConf.merge(OmegaConf.structured(schema), data)
    return OmegaConf.to_object(merged)


def find_interpolation(data: Any, prefix: str = "") -> str | None:
    """The dotted key of the first string in ``data`` (nested dicts/lists) containing ``${``, else None."""
    if isinstance(data, str):
        return prefix or "(top level)" if "${" in data else None
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list | tuple) else ()
    for key, value in items:
        found = find_interpolation(value, f"{prefix}.{key}" if prefix else str(key))
        if found is not None:
            return found
    return None
