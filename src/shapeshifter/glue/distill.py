"""The ``distill`` config group in a GLUE run: logit and hidden-state distillation from a finished classifier run.

`GlueDistillation` is built in `GlueTask.validate` (settings, teacher folder, finished record, same data,
tokenizer, layer counts: before any data is read), checks the label set and vocabulary once the data is loaded,
and loads the frozen teacher. Everything the record says about distillation is in ``record["distill"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from shapeshifter.distill.settings import DistillSettings
from shapeshifter.distill.teacher import TeacherError, check_layers, find_teacher_run, freeze, teacher_summary
from shapeshifter.experiment.resolvers import config_root
from shapeshifter.experiment.task import build_task, plain
from shapeshifter.glue.evaluate import build_evaluation_module, load_weights
from shapeshifter.paths import anchored


class GlueDistillation:
    """What ``distill`` asks of one GLUE run: logit (``word``) and hidden-state distillation from a finished
    classifier run on the same data, label set and vocabulary."""

    def __init__(self, cfg: DictConfig, arch: dict[str, Any], data_identity: Callable[[], str | None]) -> None:
        self.settings = DistillSettings.from_config(plain(cfg.get("distill")))
        self.teacher: Any = None
        if not self.settings.kinds:
            return
        if translation_only := sorted({"sequence", "attention"} & set(self.settings.kinds)):
            raise ValueError(f"distill: {' and '.join(translation_only)} distillation is for translation; GLUE runs "
                             "take word (logits) and hidden")
        self.folder = anchored(str(self.settings.teacher), config_root(cfg))
        self.run = find_teacher_run(self.folder, "glue", data_identity())
        self.teacher_arch = plain(self.run.config.arch) or {}
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
