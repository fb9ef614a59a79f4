"""The model a server serves: its translator (from the one front door) and what ``/v1/models`` says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """``GET /v1/models``' entry: from what the translator loaded (the file is not read again)."""
    trained, exported = translator.config, isinstance(translator, CT2Translator)
    bleu = None if exported else translator.metadata.get("metrics", {}).get("bleu")
    return {
        "id": Path(cfg.checkpoint).name,
        "checkpoint": str(cfg.checkpoint),
        "src_lang": trained.data.src_lang if trained else None,
        "trg_lang": trained.data.trg_lang if trained else None,
        "engine": str(cfg.engine),
        "device": str(translator.device),
        "precision": translator.precision if exported else translator.options.precision,
        "parameters": None if exported else count_parameters(translator.model),
        "step": translator.metadata.get("step"),  # an export's seq2seq.json, or the checkpoint's progress
        "dev_bleu": None if bleu is None else round(float(bleu), 2),
    }
