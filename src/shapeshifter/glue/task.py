"""GLUE-style classification as a task of the run skeleton (`experiment.task`), named in the config by
``adapter._target_`` (``conf/adapter/glue.yaml``, chosen by each GLUE ``conf/data`` file): load a GLUE task or the
user's own files, build a from-scratch encoder or a pretrained BERT, shapeshift it, train with Lightning, evaluate.

As in the translation task, everything cheap is validated first (policy, arch, data and ``glue`` nodes, the
task name, file paths) so that a bad config fails before a record is written or a Trainer is built. The
``glue`` node holds GLUE-only settings; missing keys take the defaults in `GLUE_DEFAULTS`::

    glue:
      batch_size: 32          # training batch size
      eval_batch_size: 256
      max_length: 128         # tokens per (pair) example, specials included
      min_count: 1            # word tokenizer (from-scratch models): minimum count in the training split
      max_vocab: 30000
      max_examples: null      # int: keep the first N rows of every split (affordable subsets)
      warmup_steps: null      # null: warmup_ratio * total steps
      warmup_ratio: 0.1
      num_workers: 0

The optimiser reads ``optim.lr``, ``optim.betas``, ``optim.eps``, ``optim.weight_decay`` and
``optim.clip_norm``; the schedule length is ``trainer.max_steps`` when positive, else
``trainer.max_epochs`` x batches per epoch.

``ckpt.patience`` (optional) stops training after that many epochs without a better validation score (the
monitored metric is the task's main one, e.g. ``val/accuracy``). The linear warmup/decay still spans
``trainer.max_epochs``, which is then a ceiling: a run stopped early ends with its learning rate not yet
decayed to zero, and the ceiling is part of the configuration (changing it changes the schedule).

A run resumed from ``last.ckpt`` continues the schedule where it stopped and reproduces an uninterrupted run
(batch order drawn from (seed, epoch), dropout from seed + step); its record is "done" only once the
schedule is complete or early stopping ended it (`shapeshifter.experiment.training`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from shapeshifter.experiment.data_identity import folder_digest, named_digest
from shapeshifter.experiment.ddp import world_size
from shapeshifter.experiment.policy import check_smaller_than_dense, policy_from_config
from shapeshifter.experiment.resolvers import config_root
from shapeshifter.experiment.task import Task, plain
from shapeshifter.glue.data import GlueDataModule
from shapeshifter.glue.distill import GlueDistillation
from shapeshifter.glue.distill_module import GlueDistillModule
from shapeshifter.glue.evaluate import evaluate_glue
from shapeshifter.glue.models import PretrainedEncoderClassifier, TransformerEncoderClassifier, apply_shapeshift
from shapeshifter.glue.module import GlueClassifierModule
from shapeshifter.glue.smoke import ensure_tiny_bert
from shapeshifter.glue.tasks import generic_task, get_task, split_tag
from shapeshifter.params import count_parameters
from shapeshifter.paths import anchored, repo_root

ROOT = repo_root()

GLUE_DEFAULTS: dict[str, Any] = {
    "batch_size": 32,
    "eval_batch_size": 256,
    "max_length": 128,
    "min_count": 1,
    "max_vocab": 30000,
    "max_examples": None,
    "warmup_steps": None,
    "warmup_ratio": 0.1,
    "num_workers": 0,
}
DATA_KEYS = {"kind", "name", "name_in_tables", "task", "source", "data_dir", "cache_dir", "train",
             "validation", "test", "fmt", "text_fields", "label_field", "regression", "label_names"}
ARCH_KEYS = {
    # label: the architecture's name in run names and tables (narrow variants, e.g. d16)
    "scratch": {"kind", "name", "label", "d_model", "n_layers", "n_heads", "d_ff", "dropout", "activation"},
    "pretrained": {"kind", "name", "label", "name_or_path", "config", "tokenizer", "dropout"},
}


def _path(value: str | None, root: Path = ROOT) -> Path | None:
    """A data path as given, or under the project folder ``root`` when it does not exist from the cwd
    (`shapeshifter.paths.anchored`)."""
    return None if value is None else anchored(value, root)


def glue_settings(cfg: DictConfig) -> dict[str, Any]:
    """The ``glue`` node over `GLUE_DEFAULTS`; an unknown key is an error (typos would be silently ignored)."""
    node = plain(cfg.get("glue")) or {}
    unknown = set(node) - set(GLUE_DEFAULTS)
    if unknown:
        raise ValueError(f"glue config: unknown key(s) {sorted(unknown)}; known: {sorted(GLUE_DEFAULTS)}")
    settings = {**GLUE_DEFAULTS, **node}
    for key in ("batch_size", "eval_batch_size", "max_length"):
        if not isinstance(settings[key], int) or settings[key] < 1:
            raise ValueError(f"glue.{key} must be a positive integer, got {settings[key]!r}")
    if settings["max_examples"] is not None and (not isinstance(settings["max_examples"], int)
                                                 or settings["max_examples"] < 1):
        raise ValueError(f"glue.max_examples must be null or a positive integer, got {settings['max_examples']!r}")
    return settings


def check_arch(cfg: DictConfig) -> dict[str, Any]:
    """The ``arch`` node of a GLUE run, checked: ``kind`` is ``scratch`` or ``pretrained`` with known fields."""
    arch = plain(cfg.arch) or {}
    kind = arch.get("kind")
    if kind not in ARCH_KEYS:
        raise ValueError(f"arch {arch.get('name')!r} is not a GLUE encoder (arch.kind={kind!r}); use "
                         "arch=encoder_small, arch=bert_pretrained or arch=bert_tiny_random (or experiment=glue/...)")
    unknown = set(arch) - ARCH_KEYS[kind]
    if unknown:
        raise ValueError(f"arch ({kind}): unknown key(s) {sorted(unknown)}; known: {sorted(ARCH_KEYS[kind])}")
    if kind == "pretrained" and (arch.get("name_or_path") is None) == (arch.get("config") is None):
        raise ValueError("arch (pretrained): set exactly one of name_or_path (weights to load) or config "
                         "(a BertConfig for a randomly initialised encoder)")
    if kind == "pretrained" and arch.get("name_or_path") is None and arch.get("tokenizer", "word") != "word":
        raise ValueError("arch (pretrained) with a config and no weights needs tokenizer: word")
    return arch


def check_data(cfg: DictConfig) -> dict[str, Any]:
    """The ``data`` node, checked without reading any data: a known GLUE task, or generic files that exist.

    Returns ``{"spec": TaskSpec | None, "root": project folder, **node}``; the spec of a GLUE task is resolved
    here so that a bad task name fails before anything is written.
    """
    root = config_root(cfg)  # relative data paths: from the cwd when they exist there, else from here
    data = plain(cfg.data) or {}
    unknown = set(data) - DATA_KEYS
    if unknown:
        raise ValueError(f"data (glue): unknown key(s) {sorted(unknown)}; known: {sorted(DATA_KEYS)}")
    task, train = data.get("task"), data.get("train")
    if (task is None) == (train is None):
        raise ValueError("data (glue): set exactly one of data.task (a GLUE task, e.g. cola) or data.train "
                         "(your own training file, with data.text_fields / data.label_field)")
    if task is not None:
        spec = get_task(task)  # ValueError naming the known tasks
        source = data.get("source", "auto")
        if source not in ("auto", "local", "hub"):
            raise ValueError(f"data.source must be auto, local or hub, got {source!r}")
        if source == "local" and not data.get("data_dir"):
            raise ValueError("data.source=local needs data.data_dir (a folder of train/validation files)")
        if data.get("data_dir") and not _path(data["data_dir"], root).is_dir():
            raise FileNotFoundError(f"data.data_dir {data['data_dir']!r} is not a directory")
        return {**data, "spec": spec, "root": root}
    fields = data.get("text_fields")
    if not fields:
        raise ValueError("data (glue files): data.text_fields is required (one or two column names)")
    spec = generic_task(fields if isinstance(fields, str) else tuple(fields), data.get("label_field") or "label",
                        name=str(data.get("name") or "custom"), regression=bool(data.get("regression")),
                        label_names=data.get("label_names"))
    for split in ("train", "validation", "test"):
        p = _path(data.get(split), root)
        if p is not None and not p.is_file():
            raise FileNotFoundError(f"data.{split}: file not found: {data[split]}")
    return {**data, "spec": spec, "root": root}


def glue_data_content(cfg: DictConfig, fetch: bool) -> str | None:
    """The identity of a GLUE run's data (`shapeshifter.experiment.data_identity`): its split files, or its local
    ``data_dir``; None for a task read from the Hugging Face hub (named by the task). ``fetch``: a missing or bad
    data setting raises, naming it; otherwise it gives None (the run will say what is wrong)."""
    try:
        data = check_data(cfg)
    except (ValueError, FileNotFoundError):
        if fetch:
            raise
        return None
    root = data["root"]
    if data.get("task") is None:
        return named_digest({split: _path(data[split], root) for split in ("train", "validation", "test")
                             if data.get(split)})
    if data.get("data_dir") and data.get("source", "auto") != "hub":
        return folder_digest(_path(data["data_dir"], root))
    return None


def load_datamodule(data: dict[str, Any], arch: dict[str, Any], settings: dict[str, Any], seed: int):
    """A `GlueDataModule` with the tokenizer the arch needs (word vocabulary, or the pretrained one)."""
    tokenizer = None
    tok_name = arch.get("tokenizer", "word") if arch["kind"] == "pretrained" else "word"
    if tok_name != "word":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tok_name)
    kwargs = {"tokenizer": tokenizer, "max_length": settings["max_length"], "batch_size": settings["batch_size"],
              "eval_batch_size": settings["eval_batch_size"], "num_workers": settings["num_workers"],
              "min_count": settings["min_count"], "max_vocab": settings["max_vocab"],
              "max_examples": settings["max_examples"], "seed": seed}
    root = data.get("root", ROOT)
    if data.get("task") is not None:
        return GlueDataModule.from_glue(data["task"], data_dir=_path(data.get("data_dir"), root),
                                        source=data.get("source", "auto"), cache_dir=data.get("cache_dir"), **kwargs)
    fields = data["text_fields"]
    return GlueDataModule.from_files(
        fields if isinstance(fields, str) else tuple(fields), _path(data["train"], root),
        _path(data.get("validation"), root), _path(data.get("test"), root),
        label_field=data.get("label_field") or "label", regression=bool(data.get("regression")),
        label_names=data.get("label_names"), fmt=data.get("fmt"),
        name=str(data.get("name") or "custom"), **kwargs)


def build_model(arch: dict[str, Any], dm: Any, max_length: int):
    """The dense classifier (shapeshifted afterwards, so that the dense size is counted on the same model)."""
    num_labels = dm.spec.num_labels
    if arch["kind"] == "scratch":
        kw = {k: arch[k] for k in ("d_model", "n_layers", "n_heads", "d_ff", "dropout", "activation") if k in arch}
        return TransformerEncoderClassifier(vocab_size=dm.vocab_size, num_labels=num_labels, max_len=max_length,
                                            pad_id=dm.pad_id, **kw)
    if arch.get("name_or_path") is not None:
        return PretrainedEncoderClassifier.from_pretrained(arch["name_or_path"], num_labels,
                                                           dropout=arch.get("dropout"))
    config = dict(arch["config"])
    config.update(vocab_size=dm.vocab_size, pad_token_id=dm.pad_id)
    if config.get("max_position_embeddings", 512) < max_length:
        raise ValueError(f"arch.config.max_position_embeddings={config['max_position_embeddings']} is below "
                         f"glue.max_length={max_length}")
    return PretrainedEncoderClassifier.from_config(config, num_labels, arch.get("dropout"))


def main_metric(spec: Any) -> str:
    """The task's headline metric key (MNLI: ``accuracy_matched``), as logged under ``val/`` and ``test/``."""
    tag = split_tag(spec, spec.validation_splits[0]) if spec.validation_splits else None
    return spec.metrics[0] + (f"_{tag}" if tag else "")


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


class GlueTask(Task):
    """A GLUE-style classifier (from-scratch encoder or pretrained BERT); evaluated on validation and test."""

    kind = "glue"

    def data_content(self, fetch: bool) -> str | None:
        return glue_data_content(self.cfg, fetch)

    def make_local_inputs(self, root: Path) -> None:
        """The tiny local BERT that smoke runs of pretrained models load (``scale.glue_pretrained``)."""
        path = (self.cfg.get("scale") or {}).get("glue_pretrained")
        if path:
            ensure_tiny_bert(anchored(path, root), anchored(self.cfg.data.train, root))

    def require_translation(self, tool: str, run: Any) -> None:
        """A GLUE run folder gets a pointer to its scores instead of a traceback."""
        where = run.record_file or "its record (run.records/<group>/<name>-<config hash>.json)"
        raise ValueError(
            f"{run.path} is a GLUE run (data.kind=glue); {tool} works on translation runs. Its validation and "
            f"test scores are in {where}; to score a checkpoint of it again: pipelines/evaluate.py {run.path}")

    def evaluate_folder(self, run: Any, args: Any) -> tuple[dict[str, Any], str]:
        """The task's metrics of one checkpoint of the run (`glue.evaluate`); translation options refused."""
        unused = [flag for flag, value in (("--average-last", args.average_last), ("--beam", args.beam),
                                           ("--max-tokens", args.max_tokens), ("--project", args.project)) if value]
        if unused:
            raise ValueError(f"{', '.join(unused)}: translation options; {run.path} is a GLUE run")
        ckpt = run.checkpoint(args.checkpoint) if args.checkpoint else run.evaluated_weights()[0]
        return evaluate_glue(self, ckpt, args.split), Path(ckpt).stem

    def validate(self) -> dict[str, Any]:
        cfg = self.cfg
        self.policy = policy_from_config(cfg.shapeshift)
        self.arch = check_arch(cfg)
        self.data = check_data(cfg)
        self.settings = glue_settings(cfg)
        self.init = "random" if self.arch["kind"] == "scratch" else "project"
        self.distillation = GlueDistillation(cfg, self.arch, self.identity)  # the teacher is checked here
        header = {"policy": self.policy, "shapeshift_init": self.init}
        if self.distillation.active:
            header["distill"] = self.distillation.summary
        return header

    def load_data(self) -> Any:
        """The run's data, read and checked, with its tokenizer (seeded as in training, so the same word
        vocabulary when a finished run is evaluated again)."""
        import lightning as L

        L.seed_everything(self.cfg.seed, verbose=False)
        self.dm = load_datamodule(self.data, self.arch, self.settings, self.cfg.seed)
        self.dm.setup()
        return self.dm

    def setup(self, record: dict[str, Any]) -> tuple[Any, Any]:
        # data: read, check fields and labels, build the tokenizer (errors here still precede the Trainer)
        t0 = time.perf_counter()
        dm = self.load_data()
        spec = dm.spec
        record["task"] = {"name": spec.name, "num_labels": spec.num_labels, "regression": spec.is_regression,
                          "label_names": list(spec.label_names) if spec.label_names else None,
                          "examples": {s: len(d) for s, d in dm.datasets.items()}, "vocab_size": dm.vocab_size}
        record["timings"] = {"data_s": time.perf_counter() - t0}
        if self.distillation.active:  # label set and vocabulary compared, teacher frozen
            self.distillation.load_teacher(dm)
        return self.build_module(record), dm

    def build_module(self, record: dict[str, Any]) -> Any:
        """Count the dense model, shapeshift it in place, wrap it with its schedule."""
        cfg, dm, settings = self.cfg, self.dm, self.settings
        model = build_model(self.arch, dm, settings["max_length"])
        dense_counts = count_parameters(model)
        report = apply_shapeshift(model, self.policy, init=self.init)
        check_smaller_than_dense(report, bool(cfg.run.get("allow_larger", False)))
        counts = count_parameters(model)
        # from_pretrained returns the encoder in eval mode and Lightning keeps each submodule's mode: without this
        # fine-tuning would run without dropout
        model.train()
        record["params"] = {"dense_model_total": dense_counts["total"], **counts,
                            "reduction_vs_dense": dense_counts["total"] / counts["total"]}
        record["shapeshift_report"] = report.to_dict() if report is not None else None
        # glue.batch_size is per rank; under DDP each rank takes ceil(n / world) examples an epoch
        per_rank = math.ceil(len(dm.datasets[dm.spec.train_split]) / world_size(cfg.trainer))
        steps_per_epoch = math.ceil(per_rank / settings["batch_size"])
        max_steps = cfg.trainer.max_steps if (cfg.trainer.get("max_steps") or -1) > 0 else \
            cfg.trainer.max_epochs * steps_per_epoch
        warmup = settings["warmup_steps"]
        warmup = int(settings["warmup_ratio"] * max_steps) if warmup is None else int(warmup)
        record["schedule"] = {"max_steps": max_steps, "warmup_steps": warmup, "steps_per_epoch": steps_per_epoch}
        # the teacher is loaded in setup (training); rebuilding a run to evaluate it needs no teacher
        distillation = getattr(self, "distillation", None)
        extra = distillation.module_options() if distillation is not None and distillation.teacher is not None else {}
        module_class = GlueDistillModule if extra else GlueClassifierModule
        return module_class(
            model, dm.spec, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, warmup_steps=warmup,
            max_steps=max_steps, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps, shapeshift_report=report,
            validation_splits=dm.validation_split_names, test_splits=dm.test_split_names, seed=cfg.seed,
            factor_lr_scale=float(cfg.optim.get("factor_lr_scale", 1.0)), **extra,
        )

    @property
    def monitor(self) -> tuple[str, str] | None:
        return (f"val/{main_metric(self.dm.spec)}", "max") if self.dm.validation_split_names else None

    def checkpoint_callbacks(self, ckpt_dir: Path) -> list[Any]:
        from lightning.pytorch.callbacks import ModelCheckpoint

        monitor = self.monitor[0] if self.monitor else None
        return [ModelCheckpoint(dirpath=str(ckpt_dir), filename="best", monitor=monitor, mode="max", save_top_k=1,
                                auto_insert_metric_name=False)]

    def trainer_options(self) -> dict[str, Any]:
        return {} if self.dm.validation_split_names else {"limit_val_batches": 0}

    def train_timings(self, trainer: Any, module: Any, train_s: float) -> dict[str, Any]:
        # this attempt's steps: fewer after a resume, none when resumed after the last epoch (no step time then)
        steps_run = trainer.global_step - (module.first_step if module.first_step is not None else trainer.global_step)
        return {"train_s": train_s, "train_steps": trainer.global_step,
                "train_step_s": train_s / steps_run if steps_run else None}

    def evaluate(self, trainer: Any, module: Any, dm: Any, best_checkpoint: str | None,
                 record: dict[str, Any], out_dir: Path) -> None:
        """Validation and test scores of the best checkpoint (the final weights without validation data)."""
        record["evaluated_weights"] = best_checkpoint or "final"
        module.metrics.clear()
        module.examples.clear()
        if dm.validation_split_names:
            t0 = time.perf_counter()
            trainer.validate(module, datamodule=dm, ckpt_path=best_checkpoint, verbose=False)
            record["timings"]["validate_s"] = time.perf_counter() - t0
        if dm.test_split_names:
            t0 = time.perf_counter()
            trainer.test(module, datamodule=dm, ckpt_path=best_checkpoint, verbose=False)
            test_s = time.perf_counter() - t0
            n_test = sum(len(dm.datasets[s]) for s in dm.test_split_names)
            record["timings"].update({"test_s": test_s, "test_examples_per_s": n_test / test_s if test_s else None})
        record["metrics"] = self.scores(module)
        errors = module.reconstruction_errors()
        record["reconstruction_errors"] = errors
        if errors:
            record["reconstruction_error_summary"] = {"mean": sum(errors.values()) / len(errors),
                                                      "max": max(errors.values())}

    def scores(self, module: Any) -> dict[str, Any]:
        dm, scores = self.dm, module.metrics
        majority = {} if dm.spec.is_regression else {
            s: _finite(dm.majority_rate(s)) for s in (*dm.validation_split_names, *dm.test_split_names)}
        return {
            "validation": {k.removeprefix("val/"): v for k, v in scores.items() if k.startswith("val/")},
            "test": {k.removeprefix("test/"): v for k, v in scores.items() if k.startswith("test/")},
            "majority_rate": majority,
            "main_metric": main_metric(dm.spec),
            "examples": dict(module.examples),  # per split: the predictions scored (all ranks' together)
        }

