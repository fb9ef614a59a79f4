"""The model a server serves: its translator (from the one front door) and what ``/v1/models`` says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seq2seq.checkpoint.store import load_checkpoint
from seq2seq.config.schema import ServeConfig
from seq2seq.data.tokenizer import Tokenizers
from seq2seq.decode.ctranslate2 import CT2Translator
from seq2seq.decode.loading import build_translator
from seq2seq.decode.translator import Translator
from seq2seq.model.seq2seq import count_parameters


@dataclass
class ServedModel:
    translator: Translator | CT2Translator
    info: dict[str, Any]  # the body of GET /v1/models (one entry)

    @property
    def tokenizers(self) -> Tokenizers:
        return self.translator.tokenizers

    def describe(self) -> str:
        i = self.info
        size = f"{i['parameters'] / 1e6:.2f}M parameters, " if i.get("parameters") else ""
        return (
            f"{i['src_lang']}->{i['trg_lang']}, {size}engine {i['engine']}, {i['device']}, precision {i['precision']}"
        )


def load_served_model(cfg: ServeConfig) -> ServedModel:
    """The translator of ``cfg`` (as ``seq2seq-translate`` builds it), searching with ``cfg``'s
    defaults, and its description: languages, size, engine, precision, step and dev BLEU."""
    translator = build_translator(
        cfg.checkpoint,
        cfg,  # a ServeConfig is a DecodeConfig: the requests' default search settings
        engine=str(cfg.engine),
        device=str(cfg.device),
        precision=str(cfg.precision),
        shortlist=cfg.shortlist,
        max_input_tokens=None,  # a served sentence is never cut: longer ones are refused (max_sentence_tokens)
        threads=cfg.threads,
    )
    return ServedModel(translator, model_info(cfg, translator))


def model_info(cfg: ServeConfig, translator: Translator | CT2Translator) -> dict[str, Any]:
    trained = translator.config
    info: dict[str, Any] = {
        "id": Path(cfg.checkpoint).name,
        "checkpoint": str(cfg.checkpoint),
        "src_lang": trained.data.src_lang if trained else None,
        "trg_lang": trained.data.trg_lang if trained else None,
        "engine": str(cfg.engine),
        "device": str(translator.device),
        "precision": translator.precision if isinstance(translator, CT2Translator) else translator.options.precision,
        "parameters": None,
        "step": None,
        "dev_bleu": None,
    }
    if isinstance(translator, CT2Translator):
        info["step"] = translator.metadata.get("step")
        return info
    info["parameters"] = count_parameters(translator.model)
    payload = load_checkpoint(cfg.checkpoint)  # already checked by the load: its progress and metrics
    info["step"] = (payload.get("progress") or {}).get("step")
    bleu = (payload.get("metrics") or {}).get("bleu")
    info["dev_bleu"] = None if bleu is None else round(float(bleu), 2)
    return info
