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

from omegaconf import DictConfig

from shapeshifter.distill.sequence import sequence_data_bin, stage_key
from shapeshifter.distill.settings import DistillSettings
from shapeshifter.distill.teacher import TeacherError, check_dictionaries, check_layers, freeze
from shapeshifter.experiment.glue_evaluate import build_evaluation_module, load_weights
from shapeshifter.experiment.records import file_sha256
from shapeshifter.experiment.resolvers import config_root
from shapeshifter.experiment.run_folder import find_run
from shapeshifter.experiment.run_model import read_run
from shapeshifter.experiment.task import build_task
from shapeshifter.paths import anchored
from shapeshifter.translation.data.identity import data_bin_digest
from shapeshifter.translation.export import build_model
from shapeshifter.translation.fairseq_model import transformer_args


def _plain(node: Any) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def model_dims(arch: str, overrides: dict[str, Any]) -> dict[str, int]:
    args = transformer_args(arch, overrides)
    return {k: int(getattr(args, k)) for k in ("encoder_layers", "decoder_layers", "encoder_embed_dim",
                                                "decoder_embed_dim")}


def find_teacher_run(path: str | Path, kind: str, data_content: str | None) -> Any:
    """The teacher's `RunFolder` after the cheap checks (folder, finished, task, data); `TeacherError` otherwise."""
    folder = Path(path)
    if not folder.is_dir():
        raise TeacherError(f"distill.teacher={folder}: no such run folder (train the teacher first)")
    try:
        run = find_run(folder)
    except (FileNotFoundError, ValueError) as err:
        raise TeacherError(f"distill.teacher={folder}: {err}") from None
    status = (run.record or {}).get("status")
    if status != "done":
        where = run.record_file or "its record (not found under the teacher's run.records)"
        raise TeacherError(f"distill.teacher={folder} is not a finished run ({where}: status={status!r}); "
                           "let it finish (it resumes) or pass another run")
    if run.kind != kind:
        raise TeacherError(f"distill.teacher={folder} is a {run.kind} run; the student is a {kind} run")
    if data_content is not None and run.data_content != data_content:
        raise TeacherError(f"distill.teacher={folder} was trained on other data (data identity {run.data_content} "
                           f"vs the student's {data_content}; data {run.config.data.get('name')})")
    return run


def teacher_summary(run: Any, weights: list[Path], settings: DistillSettings) -> dict[str, Any]:
    """What the student's record says about its teacher and the distillation settings."""
    return {"kinds": list(settings.kinds), "alpha": settings.alpha, "temperature": settings.temperature,
            "hidden_weight": settings.hidden_weight, "beam": settings.beam,
            "with_references": settings.with_references,
            "teacher": {"run_dir": str(run.path), "config_hash": run.config_hash,
                        "name": str(run.config.run.name),
                        "record": str(run.record_file) if run.record_file else None,
                        "weights": [{"name": p.name, "sha256": file_sha256(p)} for p in weights]}}


class TranslationDistillation:
    """What ``distill`` asks of one translation run (nothing when ``kinds`` is empty)."""

    def __init__(self, cfg: DictConfig, student_overrides: dict[str, Any],
                 data_identity: Callable[[], str | None]) -> None:
        self.settings = DistillSettings.from_config(_plain(cfg.get("distill")))
        self.run: Any = None
        self.teacher: Any = None
        if not self.settings.kinds:
            return
        folder = anchored(str(self.settings.teacher), config_root(cfg))
        self.run = find_teacher_run(folder, "translation", data_identity())
        teacher_overrides = _plain(self.run.config.arch.overrides) or {}
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
        import torch

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


class GlueDistillation:
    """What ``distill`` asks of one GLUE run: logit (``word``) and hidden-state distillation from a finished
    classifier run on the same data, label set and vocabulary."""

    def __init__(self, cfg: DictConfig, arch: dict[str, Any], data_identity: Callable[[], str | None]) -> None:
        self.settings = DistillSettings.from_config(_plain(cfg.get("distill")))
        self.teacher: Any = None
        if not self.settings.kinds:
            return
        if translation_only := sorted({"sequence", "attention"} & set(self.settings.kinds)):
            raise ValueError(f"distill: {' and '.join(translation_only)} distillation is for translation; GLUE runs "
                             "take word (logits) and hidden")
        self.folder = anchored(str(self.settings.teacher), config_root(cfg))
        self.run = find_teacher_run(self.folder, "glue", data_identity())
        self.teacher_arch = _plain(self.run.config.arch) or {}
        self.student_arch = arch
        tokenizers = [a.get("tokenizer", "word") if a.get("kind") == "pretrained" else "word"
                      for a in (self.teacher_arch, arch)]
        if tokenizers[0] != tokenizers[1]:
            raise TeacherError(f"distill.teacher={self.folder}: tokenizer {tokenizers[0]} vs the student's "
                               f"{tokenizers[1]} (the teacher must read the same input ids)")
        if "hidden" in self.settings.kinds:
            if "scratch" != self.teacher_arch.get("kind") or "scratch" != arch.get("kind"):
                raise TeacherError("distill=hidden on GLUE needs from-scratch encoders (arch.kind=scratch) for "
                                   f"teacher ({self.teacher_arch.get('name')}) and student ({arch.get('name')})")
            check_layers({"n_layers": self.teacher_arch.get("n_layers")}, {"n_layers": arch.get("n_layers")},
                         self.folder)
        self.weights = self.run.evaluated_weights()
        self.summary = teacher_summary(self.run, self.weights, self.settings)

    @property
    def active(self) -> bool:
        return bool(self.settings.kinds)

    def check_task(self, dm: Any) -> None:
        """Same label set and vocabulary as the teacher's run (its record's ``task``)."""
        task = (self.run.record or {}).get("task") or {}
        spec = dm.spec
        ours = {"num_labels": spec.num_labels, "label_names": list(spec.label_names) if spec.label_names else None,
                "vocab_size": dm.vocab_size}
        for key, value in ours.items():
            if key in task and task[key] != value:
                raise TeacherError(f"distill.teacher={self.folder}: {key} {task[key]} vs the student's {value}")

    def load_teacher(self, dm: Any) -> Any:
        """The teacher classifier over the student's data, its evaluated weights loaded, frozen."""
        self.check_task(dm)
        task = build_task(self.run.config)  # the teacher's own task (its folder is a GLUE run: checked)
        task.validate()
        task.dm = dm
        module = build_evaluation_module(task)
        load_weights(module, self.weights[0])
        self.teacher = freeze(module.model)
        return self.teacher

    def module_options(self) -> dict[str, Any]:
        if not self.active:
            return {}
        return {"teacher": self.teacher, "kinds": self.settings.kinds, "alpha": self.settings.alpha,
                "temperature": self.settings.temperature, "hidden_weight": self.settings.hidden_weight,
                "teacher_dim": self.teacher_arch.get("d_model"), "student_dim": self.student_arch.get("d_model")}
