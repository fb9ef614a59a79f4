"""The attention tab with malformed records and bad page addresses: skipped, counted, named.

A record the tab cannot draw (meta that is not JSON, missing blobs, weights that do not fit the
pieces, wrong field types) is left out of the routes' answers, counted and named in one warning
line; the page's hash values are checked by ``static/hash.js`` (run here by Node). The same
records under both data servers, and the page in Chromium: ``test_tbplugin.py``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard import errors
from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.plugins.base_plugin import TBContext
from torch.utils.tensorboard import SummaryWriter
from werkzeug.test import Client

from seq2seq.inspect.attention_records import AttentionRecord, record_summary, write_record
from seq2seq.inspect.record_format import PLUGIN_NAME
from seq2seq.tbplugin.plugin import STATIC, AttentionPlugin
from seq2seq.tbplugin.views import MalformedRecord, parse_record

SRC = ["▁Ein", "▁Hu", "nd", "▁läuft", ".", "</s>"]  # words: Ein Hund läuft.
TRG = ["▁A", "▁dog", "▁ru", "ns", "▁.", "</s>"]  # words: A dog runs .


def toy_record(encoder: bool = True) -> AttentionRecord:
    g = torch.Generator().manual_seed(0)
    cross = torch.rand(2, 2, len(TRG), len(SRC), generator=g).softmax(-1).numpy()
    self_attention = torch.rand(2, 2, len(SRC), len(SRC), generator=g).softmax(-1).numpy() if encoder else None
    return AttentionRecord("dev 0", "dev", "Ein Hund läuft.", "A dog runs .", SRC, TRG, cross, self_attention)


def tampered(record: AttentionRecord, **meta) -> list[bytes]:
    """``record``'s blobs with some of its meta fields replaced."""
    blobs = record.blobs()
    return [json.dumps({**json.loads(blobs[0]), **meta}).encode(), *blobs[1:]]


def with_nan(record: AttentionRecord) -> list[bytes]:
    record.cross[0, 0, 0, 0] = np.nan
    return record.blobs()


MALFORMED = {  # blobs of a broken record -> the reason the plugin gives
    "not json": (lambda r: [b"{not json", *r.blobs()[1:]], "meta is not UTF-8 JSON (JSONDecodeError)"),
    "not utf-8": (lambda r: [b"\xff\xfe", *r.blobs()[1:]], "meta is not UTF-8 JSON (UnicodeDecodeError)"),
    "a list": (lambda r: [b"[1, 2]", *r.blobs()[1:]], "meta is a JSON list, not an object"),
    "no blobs": (lambda r: [], "0 blob(s), a record has meta and cross attention"),
    "meta only": (lambda r: r.blobs()[:1], "1 blob(s), a record has meta and cross attention"),
    "shape": (lambda r: tampered(r, cross_shape=[2, 2, 7, 6]), "cross_shape [2, 2, 7, 6] does not match 6 x 6 pieces"),
    "no shape": (lambda r: tampered(r, cross_shape=None), "cross_shape is None, not 4 positive integers"),
    "short": (lambda r: [*r.blobs()[:1], r.blobs()[1][:-2]], "cross attention has 286 bytes, cross_shape"),
    "no encoder": (lambda r: r.blobs()[:2], "encoder attention has 0 bytes, encoder_shape [2, 2, 6, 6] needs 288"),
    "nan": (with_nan, "cross attention has non-finite weights"),
    "bleu": (lambda r: tampered(r, bleu="high"), "bleu is 'high', not a finite number"),
    "pieces": (lambda r: tampered(r, src_pieces="Ein Hund"), "src_pieces is not a non-empty list of strings"),
    "label": (lambda r: tampered(r, label=3), "label is a int, not a string"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_parse_record_names_what_is_wrong(case):
    make, reason = MALFORMED[case]
    with pytest.raises(MalformedRecord) as caught:
        parse_record(make(toy_record()))
    assert str(caught.value).startswith(reason)


def write_blobs(writer: SummaryWriter, example: str, blobs: list[bytes], step: int) -> None:
    """Log ``blobs`` as a record of our plugin, whatever they hold (``write_record`` writes good ones)."""
    summary = record_summary(example, toy_record())
    tensor = summary.value[0].tensor
    del tensor.string_val[:]
    tensor.string_val.extend(blobs)
    tensor.tensor_shape.dim[0].size = len(blobs)
    writer._get_file_writer().add_summary(summary, step)


BROKEN_EXAMPLES = [("example_0", [1, 3]), ("example_2", [2]), ("example_4", [1])]  # what /examples keeps
BROKEN_PROBLEMS = [
    "example_0 step 2: meta is not UTF-8 JSON (JSONDecodeError)",
    "example_1 step 1: cross_shape [2, 2, 7, 6] does not match 6 x 6 pieces",
    "example_2 step 1: 0 blob(s), a record has meta and cross attention",
    "example_3 step 1: bleu is 'high', not a finite number",
]


def write_broken_run(directory: Path) -> None:
    """Good records (the package's writer) and four malformed ones, as listed in BROKEN_*."""
    writer = SummaryWriter(str(directory))
    write_record(writer, "example_0", toy_record(), 1)
    write_blobs(writer, "example_0", MALFORMED["not json"][0](toy_record()), 2)
    write_record(writer, "example_0", toy_record(), 3)
    write_blobs(writer, "example_1", MALFORMED["shape"][0](toy_record()), 1)  # no good record left
    write_blobs(writer, "example_2", [], 1)
    write_record(writer, "example_2", toy_record(), 2)
    write_blobs(writer, "example_3", MALFORMED["bleu"][0](toy_record()), 1)
    write_record(writer, "example_4", toy_record(encoder=False), 1)
    writer.close()


def in_process_plugin(logdir: Path) -> AttentionPlugin:
    """The plugin over TensorBoard's Python data provider, without a server."""
    multiplexer = EventMultiplexer(tensor_size_guidance={PLUGIN_NAME: 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    return AttentionPlugin(TBContext(data_provider=MultiplexerDataProvider(multiplexer, str(logdir)), logdir=logdir))


def test_malformed_records_are_skipped_counted_and_logged_once(tmp_path, caplog):
    write_broken_run(tmp_path / "broken")
    apps = in_process_plugin(tmp_path).get_plugin_apps()
    caplog.set_level(logging.WARNING, logger="seq2seq.tbplugin.plugin")
    response = Client(apps["/examples"]).get("/?run=broken")
    assert Client(apps["/examples"]).get("/?run=broken").get_json() == response.get_json()  # a page reload
    assert response.status_code == 200
    body = response.get_json()
    assert [(e["id"], e["steps"]) for e in body["examples"]] == BROKEN_EXAMPLES
    assert body["examples"][0]["source"] == "Ein Hund läuft."
    assert body["skipped"] == 4 and body["problems"] == BROKEN_PROBLEMS
    attention = Client(apps["/attention"])
    last = attention.get("/?run=broken&example=example_0").get_json()
    assert (last["step"], last["steps"], last["skipped"]) == (3, [1, 3], 1)
    with pytest.raises(
        errors.NotFoundError, match=r"example_0 step 2: meta is not UTF-8 JSON \(JSONDecodeError\): skipped$"
    ):
        attention.get("/?run=broken&example=example_0&step=2")
    with pytest.raises(
        errors.NotFoundError, match=r"no readable attention for 'example_1': 1 malformed record\(s\) skipped"
    ):
        attention.get("/?run=broken&example=example_1")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        warnings
        == [  # one line, and not again for the same records
            f"attention tab, run 'broken': 4 malformed record(s) skipped: {'; '.join(BROKEN_PROBLEMS[:3])}; ..."
        ]
    )


# ------------------------------------------------------------------------------------------------
# The page's address: hash values are checked (static/hash.js, run by Node)


def parse_hash(hash_: str) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed: static/hash.js not run outside a browser")
    script = (
        f"import {{ parseHash }} from {json.dumps((STATIC / 'hash.js').as_uri())};"
        "const r = parseHash(process.argv[1]);"
        "console.log(JSON.stringify({settings: Object.fromEntries(r.settings), ignored: r.ignored}));"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script, hash_], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_hash_values_are_checked_and_refusals_named():
    parsed = parse_hash("#run=toy&example=example_0&unit=constructor&layer=abc&head=__proto__&view=toString")
    assert parsed["settings"] == {"run": "toy", "example": "example_0"}
    assert parsed["ignored"] == [
        "unit=constructor (expected words or pieces)",
        "layer=abc (expected a layer number from 1)",
        "head=__proto__ (expected avg or a head number from 1)",
        "view=toString (expected heatmap or lines)",
    ]
    parsed = parse_hash("#layer=2&head=1&step=300&focus=0&unit=pieces&attention=encoder&layer=3&__proto__=1&step=1e3")
    assert parsed["settings"] == {
        "layer": 1,
        "head": 0,
        "step": 300,
        "focus": 0,
        "unit": "pieces",
        "attention": "encoder",
    }
    assert parsed["ignored"] == ["layer=3 (repeated)", "__proto__=1 (unknown key)", "step=1e3 (repeated)"]
    assert parse_hash("#layer=0&head=-1&focus=1.5&step=")["ignored"] == [
        "layer=0 (expected a layer number from 1)",
        "head=-1 (expected avg or a head number from 1)",
        "focus=1.5 (expected a row number from 0)",
        "step= (expected a logged step)",
    ]
