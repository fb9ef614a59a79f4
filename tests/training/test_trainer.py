"""End to end: train the toy reversal task through the real CLI, then inspect the run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seq2seq.checkpoint.store import load_model
from seq2seq.config.schema import DataConfig, TrainRunConfig
from seq2seq.data.batching import TokenizedCorpus
from seq2seq.data.corpus import encode_split, load_split
from seq2seq.decode.translator import DecodeOptions, decode_corpus
from seq2seq.training.trainer import train


def events(run_dir: Path) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_run_directory_layout(toy_run):
    for name in ("checkpoints/best.pt", "checkpoints/latest.pt", "train.log", "spm.model", ".hydra/config.yaml"):
        assert (toy_run / name).is_file(), name
    assert list((toy_run / "tensorboard").glob("events.out.tfevents.*"))
    log = (toy_run / "train.log").read_text()
    assert "validation at step 400" in log  # final validation even though 400 % 150 != 0
    assert not list(toy_run.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_tensorboard_holds_scalars_images_and_text(toy_run):
    acc = events(toy_run)
    tags = acc.Tags()
    for tag in ("train/loss", "train/lr", "train/tokens_per_sec", "valid/loss", "valid/ppl", "valid/bleu"):
        assert tag in tags["scalars"], tag
    images = [t for t in tags["images"] if t.startswith("attention/")]
    assert len(images) == 3  # valid.attention_examples
    steps = [e.step for e in acc.Images(images[0])]
    assert steps == [150, 300, 400]  # one heatmap per validation, to scroll through
    assert acc.Images(images[0])[-1].encoded_image_string.startswith(b"\x89PNG")
    assert any("translations" in t for t in tags["tensors"])


def test_the_model_learned_to_reverse(toy_run):
    bleu = [e.value for e in events(toy_run).Scalars("valid/bleu")]
    assert bleu[-1] > 80, bleu
    model, tokenizers, cfg, _ = load_model(toy_run / "checkpoints" / "best.pt")
    raw = load_split(cfg.data, "valid")
    corpus = TokenizedCorpus(encode_split(raw, tokenizers))
    hyps = decode_corpus(model, corpus, DecodeOptions(return_attention=True))
    outputs = [tokenizers.trg.decode(h[0].tokens) for h in hyps]
    exact = np.mean([out == ref for out, ref in zip(outputs, raw["trg"])])
    assert exact > 0.7, exact
    # The alignment is anti-diagonal: output word t attends to source word n-1-t.
    hits = total = 0
    for h, src in zip(hyps, raw["src"]):
        n = len(src.split())
        if tokenizers.trg.decode(h[0].tokens) != " ".join(src.split()[::-1]):
            continue
        weights = h[0].attention[:, 0, 0]  # (T+1, S): one piece per word plus </s>
        argmax = weights[:n].argmax(-1)
        hits += int((argmax == torch.arange(n - 1, -1, -1)).sum())
        total += n
    assert hits / total > 0.9, hits / total


def test_in_process_training_learns_with_transformer_encoder(tmp_path):
    cfg = TrainRunConfig()
    cfg.data = DataConfig(
        name="toy_reverse", src_lang="src", trg_lang="trg", vocab_size=64, toy_max_len=8, toy_symbols=12
    )
    m = cfg.model
    m.encoder, m.attention, m.attention_general = "transformer", "dot", False
    m.emb_dim, m.hidden_size, m.enc_layers, m.heads, m.ff_size = 64, 64, 2, 4, 128
    m.dropout = m.emb_dropout = m.attention_dropout = 0.1
    t = cfg.train
    t.batch_tokens, t.max_steps, t.max_epochs, t.valid_every, t.warmup_steps, t.lr = 512, 400, None, 1000, 50, 2e-3
    t.progress = False
    metrics = train(cfg, tmp_path)
    assert metrics["step"] == 400
    assert metrics["bleu"] > 80, metrics
