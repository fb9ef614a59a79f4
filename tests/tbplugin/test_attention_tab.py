"""The "attention" tab: records, the plugin's routes under both data servers, the page in Chromium.

The trained toy run (validations at steps 150, 300 and 400), a beam-search translation with it
and a tiny Transformer's records are logged; TensorBoard serves them on 127.0.0.1 with the Python
loader (``--load_fast=false``) and the Rust data server (``--load_fast=true``); headless Chromium
renders the tab's page.
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto.summary_pb2 import DATA_CLASS_BLOB_SEQUENCE
from torch.utils.tensorboard import SummaryWriter

from seq2seq.cli.translate import run_translate
from seq2seq.config.schema import TranslateConfig
from seq2seq.decode.translator import DecodeOptions, search
from seq2seq.inspect.attention_records import (
    AttentionRecord,
    cross_attention,
    encoder_self_attention,
    record_summary,
    write_record,
)
from seq2seq.inspect.record_format import PLUGIN_NAME
from seq2seq.inspect.word_merging import words
from seq2seq.tbplugin.views import attention_response, parse_record
from tests.conftest import padded_batch, tiny_model, write_lines
from tests.helpers import headless
from tests.tbplugin.test_malformed_records import BROKEN_EXAMPLES, BROKEN_PROBLEMS, TRG, toy_record, write_broken_run

# ------------------------------------------------------------------------------------------------
# Records, without a server


def test_record_round_trip_merges_pieces_into_words():
    record = toy_record()
    blobs = list(record_summary("example_0", record).value[0].tensor.string_val)
    body = attention_response(".", "example_0", 7, [7], parse_record(blobs))
    assert body["source"] == "Ein Hund läuft." and body["step"] == 7
    cross = body["views"]["words"]["cross"]
    assert cross["rows"] == ["A", "dog", "runs", "."] and cross["cols"] == ["Ein", "Hund", "läuft.", "</s>"]
    weights = np.array(cross["weights"])  # (L, H, rows, cols)
    assert weights.shape == (2, 2, 4, 4)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=2e-3)  # float16 storage, then 4 digits
    expected = record.cross[1, 0, 2:4, 1:3].sum(-1).mean()  # "runs" (2 pieces) looking at "Hund" (2 pieces)
    assert abs(weights[1, 0, 2, 1] - expected) < 2e-3
    pieces = body["views"]["pieces"]
    assert pieces["cross"]["rows"] == TRG and np.array(pieces["encoder"]["weights"]).shape == (2, 2, 6, 6)
    assert body["views"]["words"]["encoder"]["rows"] == ["Ein", "Hund", "läuft."]


def test_record_without_encoder_attention():
    record = toy_record(encoder=False)
    blobs = list(record_summary("line_00001", record).value[0].tensor.string_val)
    body = attention_response(".", "line_00001", 0, [0], parse_record(blobs))
    assert body["views"]["words"]["encoder"] is None and body["views"]["pieces"]["encoder"] is None


def test_records_are_blob_sequences_of_our_plugin(tmp_path):
    writer = SummaryWriter(str(tmp_path))
    for step in (3, 5):
        write_record(writer, "example_0", toy_record(), step)
    writer.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    acc.Reload()
    tag = f"{PLUGIN_NAME}/example_0"
    assert [e.step for e in acc.Tensors(tag)] == [3, 5]
    metadata = acc.SummaryMetadata(tag)
    assert metadata.plugin_data.plugin_name == PLUGIN_NAME
    assert metadata.data_class == DATA_CLASS_BLOB_SEQUENCE


# ------------------------------------------------------------------------------------------------
# TensorBoard and Chromium


def tiny_transformer_record() -> AttentionRecord:
    """The record of an untrained tiny Transformer (2 layers x 2 heads) on one random sentence."""
    model = tiny_model("transformer", "dot", "transformer")
    src, lengths = padded_batch([6])
    (nbest,) = search(model, src, lengths, DecodeOptions(return_attention=True, max_output_extra=4))
    src_pieces = [("\u2581" if k % 2 == 0 else "") + f"s{i}" for k, i in enumerate(src[0, :-1].tolist())] + ["</s>"]
    trg_pieces = [f"\u2581t{i}" for i in nbest[0].tokens] + ["</s>"]
    cross = cross_attention(nbest[0].attention)
    encoder = encoder_self_attention(model, src, lengths)
    return AttentionRecord("dev 0", "dev", "source", "output", src_pieces, trg_pieces, cross, encoder)


@pytest.fixture(scope="module")
def logdir(toy_checkpoint, tmp_path_factory) -> Path:
    """Four runs: ``toy``, the trained toy model's validations (steps 150, 300, 400; RNN); ``translate``,
    its beam-search translation of three lines; ``transformer``, a tiny Transformer's records;
    ``broken``, good and malformed records (:func:`write_broken_run`)."""
    root = tmp_path_factory.mktemp("attention_tab")
    shutil.copytree(toy_checkpoint.parent.parent / "tensorboard", root / "toy")
    source = write_lines(root / "in.txt", ["a b c d", "", "e f"])
    cfg = TranslateConfig(checkpoint=str(toy_checkpoint), input=str(source), output=str(root / "out.txt"), beam_size=3)
    cfg.tensorboard = str(root / "translate")
    run_translate(cfg)
    writer = SummaryWriter(str(root / "transformer"))
    for step in (1, 2):
        write_record(writer, "example_0", tiny_transformer_record(), step)
    writer.close()
    write_broken_run(root / "broken")
    return root


@pytest.fixture(scope="module", params=[False, True], ids=["load_fast=false", "load_fast=true"])
def server(request, logdir) -> str:
    if request.param and not headless.data_server_available():
        pytest.skip("the Rust data server (tensorboard-data-server) is not installed: --load_fast=true not tested")
    with headless.tensorboard(logdir, load_fast=request.param) as base:
        yield base


def get_json(url: str):
    status, content_type, body = headless.get(url)
    assert status == 200, (url, status, body[:500])
    assert content_type.startswith("application/json")
    return json.loads(body)


def test_plugin_is_listed_and_enabled(server):
    listing = get_json(f"{server}/data/plugins_listing")[PLUGIN_NAME]
    assert listing["enabled"] is True
    assert listing["tab_name"] == "attention"
    assert listing["loading_mechanism"] == {"type": "IFRAME", "module_path": f"{headless.DATA}/index.js"}
    for asset, kind in [("index.js", "text/javascript"), ("heatmap.js", "text/javascript"), ("style.css", "text/css")]:
        status, content_type, _ = headless.get(f"{server}{headless.DATA}/{asset}")
        assert status == 200 and content_type.startswith(kind), asset


def test_data_routes(server, logdir):
    data = server + headless.DATA
    assert get_json(f"{data}/runs") == ["broken", "toy", "transformer", "translate"]
    listing = get_json(f"{data}/examples?run=toy")
    assert (listing["skipped"], listing["problems"]) == (0, [])
    examples = listing["examples"]
    assert [(e["id"], e["kind"], e["steps"]) for e in examples] == [
        (f"example_{n}", "dev", [150, 300, 400])
        for n in range(3)  # valid.attention_examples, every validation
    ]
    body = get_json(f"{data}/attention?run=toy&example=example_1&step=300")
    assert (body["step"], body["steps"], body["source"]) == (300, [150, 300, 400], examples[1]["source"])
    assert isinstance(body["bleu"], float) and body["reference"] == examples[1]["reference"]
    cross, pieces = body["views"]["words"]["cross"], body["views"]["pieces"]["cross"]
    assert cross["rows"] == words(pieces["rows"]) and cross["cols"] == words(pieces["cols"]) + ["</s>"]
    assert cross["cols"] == body["source"].split() + ["</s>"]
    weights = np.array(cross["weights"])
    assert weights.shape == (1, 1, len(cross["rows"]), len(cross["cols"]))  # the RNN decoder: one "head"
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-2)
    assert body["views"]["words"]["encoder"] is None  # an RNN encoder
    outputs = (logdir / "out.txt").read_text(encoding="utf-8").split("\n")
    lines = get_json(f"{data}/examples?run=translate")["examples"]
    assert [(e["id"], e["kind"], e["source"], e["steps"]) for e in lines] == [
        ("line_00001", "translate", "a b c d", [0]),
        ("line_00003", "translate", "e f", [0]),
    ]
    beam = get_json(f"{data}/attention?run=translate&example=line_00003")
    assert beam["output"] == outputs[2] == "f e"
    assert beam["views"]["words"]["cross"]["rows"] == ["f", "e"]


def test_malformed_records_are_skipped_by_both_data_servers(server):
    data = server + headless.DATA
    body = get_json(f"{data}/examples?run=broken")
    assert [(e["id"], e["steps"]) for e in body["examples"]] == BROKEN_EXAMPLES
    assert body["skipped"] == 4 and body["problems"] == BROKEN_PROBLEMS
    assert get_json(f"{data}/attention?run=broken&example=example_2")["steps"] == [2]
    status, _, text = headless.get(f"{data}/attention?run=broken&example=example_0&step=2")
    assert status == 404 and b"example_0 step 2: meta is not UTF-8 JSON (JSONDecodeError): skipped" in text


def test_transformer_layers_heads_and_encoder(server):
    body = get_json(f"{server}{headless.DATA}/attention?run=transformer&example=example_0&step=1")
    assert body["steps"] == [1, 2]
    views = body["views"]["words"]
    assert len(body["views"]["pieces"]["cross"]["cols"]) == 6 and len(views["cross"]["cols"]) == 4  # 3 words, </s>
    cross = np.array(views["cross"]["weights"])
    assert cross.shape[:2] == (2, 2)  # layers x heads
    encoder = np.array(views["encoder"]["weights"])
    assert encoder.shape == (2, 2, len(views["encoder"]["rows"]), len(views["encoder"]["cols"]))
    np.testing.assert_allclose(encoder.sum(-1), 1.0, atol=1e-2)


@pytest.mark.parametrize(
    "query, status",
    [
        ("", 400),
        ("?run=toy", 400),
        ("?run=toy&example=nope", 404),
        ("?run=toy&example=example_0&step=3", 404),
        ("?run=toy&example=example_0&step=x", 400),
    ],
)
def test_bad_queries(server, query, status):
    assert headless.get(f"{server}{headless.DATA}/attention{query}")[0] == status


class Page(HTMLParser):
    """What the tab drew: heatmap row and column labels, cells, the info fields, the state."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[str] = []
        self.cols: list[str] = []
        self.fields: dict[str, str] = {}
        self.cells, self.state = 0, None
        self._text: list[str] | None = None  # the text of the label or field being read
        self._where: tuple[list[str] | dict[str, str], str | None] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if "s2s-app" in classes:
            self.state = attrs.get("data-state")
        self.cells += tag == "td" and "s2s-cell" in classes
        if tag == "th" and "s2s-row" in classes:
            self._where = (self.rows, None)
        elif tag == "th" and "s2s-col" in classes:
            self._where = (self.cols, None)
        elif tag == "dd":
            self._where = (self.fields, attrs.get("data-field"))
        else:
            return
        self._text = []

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag not in ("th", "dd") or self._where is None:
            return
        target, key = self._where
        text = "".join(self._text or [])
        if key is None:
            target.append(text)
        else:
            target[key] = text
        self._where = self._text = None


def test_tab_renders_in_chromium(server):
    if headless.chromium() is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium); .ci/run installs it")
    data = server + headless.DATA
    body = get_json(f"{data}/attention?run=toy&example=example_0")
    page = Page(headless.dump_dom(f"{server}{headless.ENTRY}#run=toy&example=example_0"))
    assert page.state == "ready"
    cross = body["views"]["words"]["cross"]
    assert page.rows == cross["rows"] and page.cols == cross["cols"]
    assert page.cells == len(cross["rows"]) * len(cross["cols"])  # one cell per output word x source word
    assert page.fields["source"] == body["source"] and page.fields["output"] == body["output"]
    assert set(body["source"].split()) <= set(page.cols)


def test_bad_hash_values_leave_the_page_drawn_and_are_named(server):
    if headless.chromium() is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium); .ci/run installs it")
    body = get_json(f"{server}{headless.DATA}/attention?run=toy&example=example_0")
    html = headless.dump_dom(f"{server}{headless.ENTRY}#run=toy&example=example_0&unit=constructor&layer=abc&head=9")
    page = Page(html)
    assert page.state == "ready"
    assert page.rows == body["views"]["words"]["cross"]["rows"]  # the default unit, words
    refused = "unit=constructor (expected words or pieces), layer=abc (expected a layer number from 1)"
    assert f"Not taken from the address: {refused}, head=9 (1 head(s) here)" in html


def test_page_names_the_skipped_records(server):
    if headless.chromium() is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium); .ci/run installs it")
    html = headless.dump_dom(f"{server}{headless.ENTRY}#run=broken")
    assert Page(html).state == "ready"
    assert f"4 records skipped (malformed): {BROKEN_PROBLEMS[0]}; ..." in html


def test_empty_state(tmp_path):
    if headless.chromium() is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium); .ci/run installs it")
    with headless.tensorboard(tmp_path, load_fast=False, need_data=False) as base:
        html = headless.dump_dom(base + headless.ENTRY)
    assert Page(html).state == "empty" and "No attention logged yet." in html
