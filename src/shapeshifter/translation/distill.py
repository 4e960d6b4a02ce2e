"""The ``distill`` config group in a translation run: teacher checks, the sequence-level data stage, the module.

`TranslationDistillation` is built in `TranslationTask.validate` (cheap checks: settings, teacher folder, finished
record, same data, layer counts; before any data is prepared), loads the frozen teacher once the dictionaries
exist (compared symbol by symbol first), runs the sequence-level stage when asked and says which LightningModule
trains the student. Everything the record says about distillation is in ``record["distill"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from shapeshifter.distill.settings import DistillSettings
from shapeshifter.distill.teacher import (
    TeacherError,
    check_dictionaries,
    check_layers,
    find_teacher_run,
    freeze,
    teacher_summary,
)
from shapeshifter.experiment.data_identity import data_bin_digest
from shapeshifter.experiment.resolvers import config_root
from shapeshifter.experiment.task import plain
from shapeshifter.paths import anchored
from shapeshifter.translation.distill_stage import sequence_data_bin, stage_key
from shapeshifter.translation.export import build_model
from shapeshifter.translation.fairseq_model import transformer_args
from shapeshifter.translation.run_model import read_run


def model_dims(arch: str, overrides: dict[str, Any]) -> dict[str, int]:
    args = transformer_args(arch, overrides)
    return {k: int(getattr(args, k)) for k in ("encoder_layers", "decoder_layers", "encoder_embed_dim",
                                                "decoder_embed_dim")}


class TranslationDistillation:
    """What ``distill`` asks of one translation run (nothing when ``kinds`` is empty)."""

    def __init__(self, cfg: DictConfig, student_overrides: dict[str, Any],
                 data_identity: Callable[[], str | None]) -> None:
        self.settings = DistillSettings.from_config(plain(cfg.get("distill")))
        self.run: Any = None
        self.teacher: Any = None
        if not self.settings.kinds:
            return
        folder = anchored(str(self.settings.teacher), config_root(cfg))
        self.run = find_teacher_run(folder, "translation", data_identity())
        teacher_overrides = plain(self.run.config.arch.overrides) or {}
        self.teacher_dims = model_dims(str(self.run.config.arch.name), teacher_overrides)
        self.student_dims = model_dims(str(cfg.arch.name), student_overrides)
        if {"hidden", "attention"} & set(self.settings.kinds):
            check_layers(self.teacher_dims, self.student_dims, folder)
        if "hidden" in self.settings.kinds:
            for dims, who in ((self.teacher_dims, "teacher"), (self.student_dims, "student")):
                if dims["encoder_embed_dim"] != dims["decoder_embed_dim"]:
                    raise TeacherError(f"hidden-state distillation needs encoder_embed_dim == decoder_embed_dim "
                                       f"(one projection for both); the {who} has {dims}")
        self.weights = self.run.evaluated_weights()
        self.summary = teacher_summary(self.run, self.weights, self.settings)

    @property
    def active(self) -> bool:
        return bool(self.settings.kinds)

    def load_teacher(self, src_dict: Any, tgt_dict: Any) -> Any:
        """The teacher's model with its evaluated weights, frozen, after the dictionary check."""
        source = read_run(self.run.path)
        loaded = build_model(source)
        check_dictionaries(loaded.src_dict, src_dict, "source", self.run.path)
        check_dictionaries(loaded.tgt_dict, tgt_dict, "target", self.run.path)
        self.teacher = freeze(loaded.model)
        return self.teacher

    def student_data_bin(self, cfg: DictConfig, dm: Any, data_bin: Path, work_dir: Path,
                         record: dict[str, Any]) -> Path | None:
        """Sequence-level: the data-bin of the teacher's translations of the training set (made, resumed or
        reused); None without the sequence kind."""
        if "sequence" not in self.settings.kinds:
            return None

        e = cfg.eval
        settings = {"beam": self.settings.beam, "max_len_a": float(e.max_len_a), "max_len_b": int(e.max_len_b),
                    "lenpen": float(e.lenpen), "max_tokens": int(cfg.batching.max_tokens or 4096)}
        key = stage_key(data_bin_digest(data_bin), self.summary["teacher"]["weights"][0]["sha256"], settings)
        t0 = time.perf_counter()
        progress = cfg.trainer.get("progress_bar", "rich") not in (None, False, "none", "off", "false")
        accelerator = str(cfg.trainer.get("accelerator", "auto")).lower()
        if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
            self.teacher.to("cuda")  # the student's fit moves it again to its own device (on_fit_start)
        stage = sequence_data_bin(self.teacher, dm, work_dir / "distill", key,
                                  with_references=self.settings.with_references, progress=progress, **settings)
        record.setdefault("timings", {})["teacher_decode_s"] = stage.decode_s
        record["timings"]["sequence_stage_s"] = time.perf_counter() - t0
        self.summary["sequence"] = {"data_bin": str(stage.data_bin), "key": stage.key,
                                    "sentences": stage.sentences, "decode_s": stage.decode_s,
                                    "reused": stage.reused, **settings}
        record["distill"] = self.summary
        return stage.data_bin

    def module_options(self) -> dict[str, Any]:
        """The extra arguments of `DistillTranslationModule` (empty: the plain module trains the student)."""
        if not self.settings.online:
            return {}
        return {"teacher": self.teacher, "kinds": self.settings.kinds, "alpha": self.settings.alpha,
                "temperature": self.settings.temperature, "hidden_weight": self.settings.hidden_weight,
                "attention_weight": self.settings.attention_weight,
                "teacher_dim": self.teacher_dims["encoder_embed_dim"],
                "student_dim": self.student_dims["encoder_embed_dim"]}
