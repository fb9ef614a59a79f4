"""Reading and checking request bodies: every mistake is a :class:`BadRequest` naming the field.

Bodies are read up to ``max_body_bytes`` (413 beyond), must be UTF-8 JSON, and are checked field
by field: ``text`` a non-empty list of at most ``max_sentences`` strings, each of at most
``max_sentence_tokens`` subword tokens (413 beyond: a served sentence is never cut), search
settings of the right type and range. Unknown fields are refused (a misspelt ``beamsize`` would
otherwise be ignored silently). A client that closes its connection before its body has arrived
is counted (kind ``disconnected``, status 499 as nginx logs it); no answer can reach it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request

from seq2seq.config.schema import ServeConfig
from seq2seq.data.tokenizer import Tokenizers
from seq2seq.serve.batching import Search

TRANSLATE_FIELDS = {"text", "beam_size", "n_best", "length_penalty", "min_length", "attention"}
MAX_BEAM = 64
CLIENT_CLOSED = 499  # nginx's status for a client that closed the connection first


class BadRequest(Exception):
    """A request the server refuses: HTTP ``status``, and one line naming the field."""

    def __init__(self, message: str, status: int = 422, field: str | None = None, kind: str = "invalid") -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.kind = kind  # for the errors metric: invalid, too_large, malformed, ...

    def body(self) -> dict[str, Any]:
        return {"error": str(self), **({"field": self.field} if self.field else {})}


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request's JSON body, read up to ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BadRequest(f"body of {declared} bytes is over max_body_bytes={max_bytes}", 413, kind="too_large")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise BadRequest(f"body is over max_body_bytes={max_bytes}", 413, kind="too_large")
    except ClientDisconnect:
        message = f"the client closed the connection after {len(body)} bytes of the body"
        raise BadRequest(message, CLIENT_CLOSED, kind="disconnected") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadRequest(f"body is not UTF-8 (byte {err.start})", 400, kind="malformed") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise BadRequest(
            f"body is not JSON: {err.msg} at line {err.lineno} column {err.colno}", 400, kind="malformed"
        ) from None


@dataclass
class TranslateRequest:
    """A checked ``POST /v1/translate`` body."""

    text: list[str]
    tokens: int  # source tokens in all
    search: Search


def translate_request(body: Any, cfg: ServeConfig, tokenizers: Tokenizers) -> TranslateRequest:
    """``{"text": [...], "beam_size": 5, "n_best": 1, "length_penalty": 1.0, "min_length": 1, "attention": false}``."""
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {_kind(body)}")
    unknown = sorted(set(body) - TRANSLATE_FIELDS)
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(TRANSLATE_FIELDS))})", field=unknown[0]
        )
    if "text" not in body:
        raise BadRequest("text is required: a list of sentences", field="text")
    text = checked_sentences(body["text"], "text", cfg)
    beam = _integer(body, "beam_size", cfg.beam_size, 1, MAX_BEAM)
    search = Search(
        beam_size=beam,
        n_best=_integer(body, "n_best", min(cfg.n_best, beam), 1, beam),
        length_penalty=_number(body, "length_penalty", cfg.length_penalty),
        min_length=_integer(body, "min_length", cfg.min_length, 0, 1024),
        attention=_boolean(body, "attention", False),
    )
    return TranslateRequest(text, count_tokens(text, "text", cfg, tokenizers), search)


def checked_sentences(value: Any, name: str, cfg: ServeConfig) -> list[str]:
    """A non-empty list of at most ``max_sentences`` strings."""
    if not isinstance(value, list) or not value:
        raise BadRequest(f"{name} must be a non-empty list of strings, got {_kind(value)}", field=name)
    if len(value) > cfg.max_sentences:
        raise BadRequest(
            f"{name} has {len(value)} sentences, more than max_sentences={cfg.max_sentences}", 413, name, "too_large"
        )
    for i, sentence in enumerate(value):
        if not isinstance(sentence, str):
            raise BadRequest(f"{name}[{i}] must be a string, got {_kind(sentence)}", field=f"{name}[{i}]")
    return value


def count_tokens(sentences: list[str], name: str, cfg: ServeConfig, tokenizers: Tokenizers) -> int:
    """Source tokens of ``sentences`` (``</s>`` included); a sentence over the limit is refused, not cut."""
    total = 0
    for i, ids in enumerate(tokenizers.src.encode_batch(sentences)):
        if len(ids) + 1 > cfg.max_sentence_tokens:
            raise BadRequest(
                f"{name}[{i}] has {len(ids) + 1} subword tokens, "
                f"more than max_sentence_tokens={cfg.max_sentence_tokens}",
                413,
                f"{name}[{i}]",
                "too_large",
            )
        total += len(ids) + 1
    return total


def _integer(body: dict, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if type(value) is not int or not low <= value <= high:
        raise BadRequest(f"{name} must be an integer from {low} to {high}, got {value!r:.40}", field=name)
    return value


def _number(body: dict, name: str, default: float) -> float:
    value = body.get(name, default)
    if type(value) not in (int, float) or not -10.0 <= value <= 10.0:
        raise BadRequest(f"{name} must be a number from -10 to 10, got {value!r:.40}", field=name)
    return float(value)


def _boolean(body: dict, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if type(value) is not bool:
        raise BadRequest(f"{name} must be true or false, got {value!r:.40}", field=name)
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )
