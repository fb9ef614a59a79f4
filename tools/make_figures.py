"""Make the README's alignment pictures with the project's own plotting code.

    python tools/make_figures.py                        # toy task: bad vs good alignments
    python tools/make_figures.py --checkpoint RUN/checkpoints/best.pt --sentence "Ein Hund läuft."
    python tools/make_figures.py --tab                  # screenshots of TensorBoard's attention tab

The toy pictures come from a tiny reversal model: the same sentence after 120 training steps
(attention smeared over neighbours, the output partly wrong) and after 600 (a clean
anti-diagonal, the right output).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as ``python tools/NAME.py``: make ``tools`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seq2seq.checkpoint.store import load_model
from seq2seq.config.schema import DataConfig, TrainRunConfig
from seq2seq.decode.translator import DecodeOptions, Translator
from seq2seq.inspect.plotting import plot_attention
from seq2seq.training.trainer import Trainer, train
from tests.helpers import headless

HERE = Path(__file__).resolve().parent.parent / "docs"  # where the figures go
TOY_SENTENCE = "d a h c f b e g"


def toy_config(steps: int) -> TrainRunConfig:
    cfg = TrainRunConfig()
    cfg.data = DataConfig(name="toy_reverse", src_lang="src", trg_lang="trg", vocab_size=64, toy_symbols=12)
    m, t = cfg.model, cfg.train
    m.emb_dim, m.hidden_size, m.attention_dim, m.dropout, m.emb_dropout = 64, 64, 64, 0.1, 0.1
    t.batch_tokens, t.max_steps, t.max_epochs, t.warmup_steps, t.progress = 512, steps, None, 0, False
    t.valid_every = 1000
    cfg.test.enabled = False
    return cfg


def save(translation, path: Path, title: str) -> None:
    fig = plot_attention(translation.attention, translation.src_tokens, translation.trg_tokens, title)
    fig.savefig(path, dpi=80)
    print(f"{path}: {translation.source!r} -> {translation.text!r}")


def toy_figures() -> None:
    snapshots = {
        120: ("alignment_bad.png", "after 120 steps: smeared, partly wrong"),
        600: ("alignment_good.png", "after 600 steps: reversal = anti-diagonal"),
    }
    last = max(snapshots)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer.build(toy_config(last), Path(run_dir))
        translator = Translator(trainer.model, trainer.data.tokenizers, DecodeOptions(return_attention=True))
        epoch = 0
        while trainer.progress.step < last:
            for group in trainer.update_groups(epoch, 0):
                trainer.train_step(group)
                if trainer.progress.step in snapshots:
                    name, title = snapshots[trainer.progress.step]
                    save(translator.translate([TOY_SENTENCE])[0], HERE / name, title)
                if trainer.progress.step == last:
                    break
            epoch += 1


def checkpoint_figure(checkpoint: str, sentence: str, out: Path) -> None:
    model, tokenizers, _, _ = load_model(checkpoint)
    translator = Translator(model, tokenizers, DecodeOptions(beam_size=5, return_attention=True))
    save(translator.translate([sentence])[0], out, "Multi30k de-en")


def attention_tab_figures(out_dir: Path = HERE) -> None:
    """Screenshots of TensorBoard's attention tab (headless Chromium) on the toy run above, validated
    every 120 steps: the longest example sentence at the last validation (heatmap) and the first (lines)."""
    cfg = toy_config(600)
    cfg.train.valid_every = 120
    with tempfile.TemporaryDirectory() as run_dir:
        train(cfg, run_dir)
        with headless.tensorboard(Path(run_dir) / "tensorboard", load_fast=True) as base:
            examples = json.loads(headless.get(f"{base}{headless.DATA}/examples?run=.")[2])["examples"]
            example = max(examples, key=lambda e: len(e["source"].split()))["id"]
            page = f"{base}{headless.ENTRY}#run=.&example={example}&focus=2"
            headless.screenshot(page, out_dir / "attention_tab.png", size=(780, 420))
            headless.screenshot(f"{page}&step=120&view=lines", out_dir / "attention_tab_lines.png", size=(780, 420))
    print(f"{out_dir / 'attention_tab.png'}, {out_dir / 'attention_tab_lines.png'}: {example}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--tab", action="store_true", help="screenshots of TensorBoard's attention tab")
    parser.add_argument("--sentence", default="Ein Mann, der auf einer Bank sitzt und Zeitung liest.")
    parser.add_argument("--output", default=str(HERE / "alignment_multi30k.png"))
    args = parser.parse_args()
    if args.tab:
        attention_tab_figures()
    elif args.checkpoint:
        checkpoint_figure(args.checkpoint, args.sentence, Path(args.output))
    else:
        toy_figures()
