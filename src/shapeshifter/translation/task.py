"""Translation as a task of the run skeleton (`experiment.task`), named in the config by ``adapter._target_``
(``conf/adapter/translation.yaml``, chosen by each translation ``conf/data`` file): prepare data, build (and
shapeshift) a fairseq Transformer, train it with Lightning, evaluate with beam search; score a finished run
folder again (``pipelines/evaluate.py``).

Everything cheap is validated first (policy, model overrides, data config, the dense source of a projected
run, the schedule); data preparation is cached.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from shapeshifter.experiment.checkpoints import (
    average_checkpoints,
    checkpoint_callbacks,
    epoch_checkpoints,
    load_model_weights,
)
from shapeshifter.experiment.policy import check_smaller_than_dense, policy_from_config
from shapeshifter.experiment.records import config_hash, file_sha256
from shapeshifter.experiment.resolvers import config_root
from shapeshifter.experiment.run_folder import find_checkpoint
from shapeshifter.experiment.task import Task, csv_log, plain
from shapeshifter.experiment.training import logged_before
from shapeshifter.nn.compiled import CompileCounter, compile_model
from shapeshifter.params import count_parameters, parse_assignments
from shapeshifter.paths import anchored
from shapeshifter.surgery import shapeshift
from shapeshifter.translation.bleu import read_lines, sacrebleu_detok, tokenized_bleu
from shapeshifter.translation.data import DataError, prepare_translation_data
from shapeshifter.translation.data.recipe import data_content as corpus_content
from shapeshifter.translation.data.smoke import ensure_slice
from shapeshifter.translation.data_node import data_config
from shapeshifter.translation.datamodule import TranslationDataModule
from shapeshifter.translation.distill import TranslationDistillation
from shapeshifter.translation.distill_module import DistillTranslationModule
from shapeshifter.translation.evaluate import evaluate_translation
from shapeshifter.translation.fairseq_model import build_transformer, transformer_args
from shapeshifter.translation.module import TranslationModule


def copy_baseline(prepared, split: str = "test") -> dict[str, float]:
    """BLEU of copying the source sentence as the translation: the floor every model must clear."""
    files = prepared.splits[split]
    src_tok, ref_tok = read_lines(files.tok[prepared.src_lang]), read_lines(files.tok[prepared.tgt_lang])
    src_raw, ref_raw = read_lines(files.raw[prepared.src_lang]), read_lines(files.raw[prepared.tgt_lang])
    return {"tokenized_bleu": tokenized_bleu(src_tok, ref_tok).score,
            "sacrebleu": sacrebleu_detok(src_raw, ref_raw, lowercase=True).score}


def dense_source_checkpoint(cfg: DictConfig) -> Path | None:
    """The trained dense checkpoint named by ``shapeshift.init_from`` (a ``.ckpt`` file or a run folder).

    A run folder resolves to its best checkpoint (``checkpoints/best-*.ckpt``), the weights that run was
    evaluated with. Checked before any data is prepared: a missing source is an error naming the path.
    """
    source = cfg.shapeshift.get("init_from")
    if not source:
        return None
    if cfg.shapeshift.get("init", "random") != "project":
        raise ValueError("shapeshift.init_from needs shapeshift.init=project (the factors are fitted to its weights)")
    try:
        return find_checkpoint(anchored(str(source), config_root(cfg)))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"shapeshift.init_from: {err} (train the dense run first)") from err


# Layer types whose matrices have a vocabulary-sized side, unknown until the data's dictionaries exist.
VOCAB_SIZED = ("embedding", "output")


def check_policy_fits(arch: str, overrides: dict[str, Any], policy: dict[str, Any] | None,
                      allow_larger: bool = False) -> None:
    """Factorize the architecture's vocabulary-independent matrices (attention, FFN, ...) by ``policy`` once,
    on a model with a placeholder vocabulary: a shape that cannot hold such a matrix (e.g. an explicit
    attention shape too small for d_model), or factors larger than the dense matrices (`check_smaller_than_dense`),
    fail here, naming the layer, before the data is prepared. The embedding and output layers are checked when
    the dictionaries exist."""
    if not policy or not any(spec is not None for key, spec in policy.items() if key not in VOCAB_SIZED):
        return
    from fairseq.data import Dictionary

    placeholder = Dictionary()
    without_vocab = {key: None if key in VOCAB_SIZED else spec for key, spec in policy.items()}
    _, report = build_transformer(arch, placeholder, placeholder, overrides, without_vocab)
    check_smaller_than_dense(report, allow_larger, types=tuple(k for k in without_vocab if k not in VOCAB_SIZED))


def check_warmup(cfg: DictConfig) -> None:
    value = cfg.optim.warmup_updates
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"optim.warmup_updates must be an integer >= 1, got {value!r}")


def check_batching(cfg: DictConfig) -> None:
    """Batch sizes that fairseq's batching would reject (or loop on) only once training starts."""
    for key in ("max_tokens", "max_sentences"):
        value = cfg.batching.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"batching.{key} must be a positive integer or null, got {value!r}")
    if cfg.batching.get("max_tokens") is None and cfg.batching.get("max_sentences") is None:
        raise ValueError("batching.max_tokens and batching.max_sentences are both null: set at least one")


def check_same_data(prepared: str | None, named: str | None, name: str) -> None:
    """The data the stages prepared is the data the run was named by (its identity, taken before any work): a file
    changed in between would train a run whose hash names other data."""
    if prepared != named:
        raise DataError(f"data {name}: its files changed after the run was named (identity {named} when the run "
                        f"started, {prepared} when the data was prepared); start the run again")


class TranslationTask(Task):
    """A fairseq Transformer trained on a prepared translation corpus; evaluated by beam search on test."""

    kind = "translation"

    def make_local_inputs(self, root: Path) -> None:
        if self.cfg.data.get("raw_dir") is not None:
            ensure_slice(str(self.cfg.data.name), anchored(self.cfg.data.raw_dir, root))

    def data_content(self, fetch: bool) -> str | None:
        """The identity of the corpus the run reads (`translation.data.recipe.data_content`). A named slice of
        the committed sample is written first (cheap, local). ``fetch``: fetch a recipe's archive first, as the
        run would, and raise a `DataError` naming what is missing; otherwise None when the inputs are not (yet)
        here."""
        from dataclasses import replace

        dcfg = data_config(self.cfg)
        if dcfg.raw_dir is not None:
            ensure_slice(str(self.cfg.data.name), Path(dcfg.raw_dir))
        if fetch:
            return corpus_content(dcfg)
        try:
            return corpus_content(replace(dcfg, download=False), log=lambda s: None)
        except DataError:
            return None

    def require_translation(self, tool: str, run: Any) -> None:
        """Every translation run folder can be exported and translated."""

    def evaluate_folder(self, run: Any, args: Any) -> tuple[dict[str, Any], str]:
        return evaluate_translation_run(run, args)

    def validate(self) -> dict[str, Any]:
        cfg = self.cfg
        self.policy = policy_from_config(cfg.shapeshift)
        self.overrides = plain(cfg.arch.overrides) or {}
        transformer_args(cfg.arch.name, self.overrides)  # unknown arch / override keys fail here
        check_policy_fits(cfg.arch.name, self.overrides, self.policy, bool(cfg.run.get("allow_larger", False)))
        self.distillation = TranslationDistillation(cfg, self.overrides, self.identity)  # the teacher is checked here
        self.dcfg = data_config(cfg)
        self.init_from = dense_source_checkpoint(cfg)
        check_warmup(cfg)
        check_batching(cfg)
        header: dict[str, Any] = {"policy": self.policy}
        if self.init_from is not None:
            header["init_from"] = {"path": str(self.init_from), "sha256": file_sha256(self.init_from)}
        if self.distillation.active:
            header["distill"] = self.distillation.summary
        return header

    def setup(self, record: dict[str, Any]) -> tuple[Any, Any]:
        cfg = self.cfg
        if self.dcfg.raw_dir is not None:  # none for data=parallel_files
            ensure_slice(str(cfg.data.name), Path(self.dcfg.raw_dir))  # a named slice of the committed sample
        t0 = time.perf_counter()
        self.prepared = prepare_translation_data(self.dcfg)
        record["timings"] = {"data_s": time.perf_counter() - t0}
        check_same_data(self.prepared.data_content, self.identity(), str(cfg.data.name))

        def datamodule(data_bin: Path) -> TranslationDataModule:
            dm = TranslationDataModule(str(data_bin), self.prepared.src_lang, self.prepared.tgt_lang,
                                       max_tokens=cfg.batching.max_tokens, max_sentences=cfg.batching.max_sentences,
                                       seed=cfg.seed, max_source_positions=cfg.arch.max_positions,
                                       max_target_positions=cfg.arch.max_positions)
            self.dicts = dm.load_dictionaries()
            dm.check_max_tokens()  # a sentence longer than batching.max_tokens fails here, not in fairseq's batching
            return dm

        dm = datamodule(self.prepared.data_bin)
        if self.distillation.active:  # dictionaries compared, teacher frozen; sequence-level: its translations
            self.distillation.load_teacher(*self.dicts)
            student_bin = self.distillation.student_data_bin(cfg, dm, self.prepared.data_bin,
                                                             Path(self.dcfg.work_dir), record)
            dm = datamodule(student_bin) if student_bin is not None else dm
        return self.build_module(record), dm

    def build_module(self, record: dict[str, Any]) -> Any:
        cfg, (src_dict, tgt_dict) = self.cfg, self.dicts
        dense_model, _ = build_transformer(cfg.arch.name, src_dict, tgt_dict, self.overrides, None, seed=cfg.seed)
        dense_counts = count_parameters(dense_model)
        del dense_model
        model, report = build_transformer(cfg.arch.name, src_dict, tgt_dict, self.overrides, self.policy,
                                          seed=cfg.seed, init=cfg.shapeshift.get("init", "random"),
                                          init_from=self.init_from)
        check_smaller_than_dense(report, bool(cfg.run.get("allow_larger", False)))  # now the vocabulary-sized too
        counts = count_parameters(model)
        record["params"] = {"dense_model_total": dense_counts["total"], **counts,
                            "reduction_vs_dense": dense_counts["total"] / counts["total"]}
        record["shapeshift_report"] = report.to_dict() if report is not None else None
        self.compile_counter = None
        if cfg.run.get("compile"):  # in place: parameter names (and checkpoints) stay those of the eager model
            self.compile_counter = CompileCounter()
            compile_model(model, self.compile_counter)
        o, e = cfg.optim, cfg.eval
        extra = self.distillation.module_options()  # word / hidden: the teacher runs in every training step
        module_class = DistillTranslationModule if extra else TranslationModule
        return module_class(
            model, tgt_dict, src_dict, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay,
            warmup_updates=o.warmup_updates, warmup_init_lr=o.warmup_init_lr, label_smoothing=o.label_smoothing,
            seed=cfg.seed, bleu_every_n_epochs=e.bleu_every_n_epochs, bleu_max_sentences=e.bleu_max_sentences,
            beam=e.beam, max_len_a=e.max_len_a, max_len_b=e.max_len_b, lenpen=e.lenpen, bpe=self.prepared.bpe,
            model_config={"arch": cfg.arch.name, "overrides": self.overrides, "policy": self.policy},
            factor_lr_scale=float(o.get("factor_lr_scale", 1.0)), **extra,
        )

    @property
    def monitor(self) -> tuple[str, str]:
        monitor = str(self.cfg.ckpt.monitor)
        return monitor, "max" if "bleu" in monitor else "min"

    def checkpoint_callbacks(self, ckpt_dir: Path) -> list[Any]:
        cfg = self.cfg
        every = cfg.eval.bleu_every_n_epochs if "bleu" in cfg.ckpt.monitor else 1
        return checkpoint_callbacks(ckpt_dir, monitor=cfg.ckpt.monitor, every_n_epochs=every,
                                    keep_last_epochs=cfg.ckpt.average_last, save_last=False)

    def train_timings(self, trainer: Any, module: Any, train_s: float) -> dict[str, Any]:
        log = csv_log(trainer.loggers)
        self.metrics = {**logged_before(log, trainer.current_epoch),  # a resume after the last epoch
                        **{k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}}
        timings = {"train_s": train_s, "train_steps": trainer.global_step,
                   "train_step_s": self.metrics.get("train_step_s_epoch"),
                   "train_wps": self.metrics.get("train_wps_epoch")}
        if getattr(self, "compile_counter", None) is not None:  # run.compile: graphs compiled, recompilations too
            timings["compiled_graphs"] = self.compile_counter.compiles
        return timings

    def load_evaluated_weights(self, module: Any, ckpt_dir: Path, best: str | None) -> str:
        """The average of the last ``ckpt.average_last`` epochs, else the best checkpoint, else the final
        weights; returns which."""
        n = self.cfg.ckpt.average_last
        if n and len(epoch_checkpoints(ckpt_dir)) > 1:
            module.model.load_state_dict(average_checkpoints(epoch_checkpoints(ckpt_dir, n)))
            return f"average of last {n} epochs"
        if best:
            load_model_weights(module.model, best)
        return best or "final"

    def evaluate(self, trainer: Any, module: Any, dm: Any, best_checkpoint: str | None,
                 record: dict[str, Any], out_dir: Path) -> None:
        """Beam search over the whole test set on global rank zero (the other DDP ranks have nothing to add: the
        fit is over and the test set is small next to training)."""
        if not trainer.is_global_zero:
            return
        cfg, prepared, (src_dict, tgt_dict) = self.cfg, self.prepared, self.dicts
        record["evaluated_weights"] = self.load_evaluated_weights(module, out_dir / "checkpoints", best_checkpoint)
        dm.setup("test")
        module.model.eval()
        t0 = time.perf_counter()
        test = evaluate_translation(
            module.model, dm.test_dataloader(), src_dict, tgt_dict, out_dir / "translations", prepared.tgt_lang,
            raw_references=prepared.reference("test", "raw") if prepared.splits else None,
            tok_references=prepared.reference("test", "tok") if prepared.splits else None,
            lowercase=bool(self.dcfg.lowercase), name="test", beam=cfg.eval.beam, max_len_a=cfg.eval.max_len_a,
            max_len_b=cfg.eval.max_len_b, lenpen=cfg.eval.lenpen, bpe=prepared.bpe,
        )
        record["timings"]["test_generate_s"] = time.perf_counter() - t0
        metrics = self.metrics
        record["metrics"] = {
            "valid": {k: v for k, v in metrics.items() if k.startswith("valid")},
            "train": {k: v for k, v in metrics.items() if k in ("train_loss_epoch", "train_nll_loss_epoch")},
            "test": test,
            "copy_baseline": copy_baseline(prepared) if prepared.splits else None,
        }

    def summary(self, record: dict[str, Any]) -> dict[str, float]:
        test = record["metrics"]["test"]
        out = {"test_tokenized_bleu": test["tokenized_bleu"], "params_total": record["params"]["total"],
               "params_reduction_vs_dense": record["params"]["reduction_vs_dense"],
               "test_generate_s": record["timings"]["test_generate_s"]}
        if test.get("sacrebleu") is not None:
            out["test_sacrebleu"] = test["sacrebleu"]
        return out


def chosen_weights(run: Any, checkpoint: Path | None, average_last: int) -> tuple[list[Path], str]:
    """The checkpoint file(s) to evaluate (several: their average) and the label of the result files."""
    if average_last:
        paths = epoch_checkpoints(run.checkpoints, average_last)
        if len(paths) < 2:
            raise SystemExit(f"--average-last needs >= 2 epoch checkpoints in {run.checkpoints}, found {len(paths)} "
                             "(train with ckpt.average_last=N to keep them)")
        return paths, f"avg{len(paths)}"
    try:
        ckpt = run.checkpoint(checkpoint) if checkpoint else run.best_or_last()
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
    return [Path(ckpt)], Path(ckpt).stem


def rebuilt_model(cfg: Any, dicts: tuple[Any, Any], weights: list[Path]) -> Any:
    """The run's model (arch, overrides, policy from its config) with the chosen weights, in eval mode."""
    src_dict, tgt_dict = dicts
    overrides = plain(cfg.arch.overrides) or {}
    model, _ = build_transformer(cfg.arch.name, src_dict, tgt_dict, overrides, policy_from_config(cfg.shapeshift),
                                 seed=cfg.seed)
    if len(weights) > 1:
        model.load_state_dict(average_checkpoints(weights))
    else:
        load_model_weights(model, weights[0])
    return model.eval()


def projection_policy(cfg: Any, assignments: list[str] | None) -> dict[str, Any] | None:
    """The policy ``--project`` names (None without it); only a dense run's weights can be projected."""
    if assignments is None:
        return None
    if policy_from_config(cfg.shapeshift):
        raise ValueError("--project fits factors to a dense model's weights; this run is already factorized "
                         f"({cfg.shapeshift.get('name')})")
    return parse_assignments(assignments)


def project(model: Any, policy: dict[str, Any]) -> dict[str, Any]:
    """Replace ``model``'s layers by ``policy``'s factors fitted to its weights; what the result file says of it."""
    dense = count_parameters(model)["total"]
    report = shapeshift(model, policy, init="project")
    total = count_parameters(model)["total"]
    return {"policy": policy, "policy_hash": config_hash(policy), "params": total, "reduction_vs_dense": dense / total,
            "mean_reconstruction_error": report.mean_error_by_type()}


def evaluate_translation_run(run: Any, args: Any) -> tuple[dict[str, Any], str]:
    """Beam search over the chosen split of a translation run; returns ``(report, result label)``."""
    cfg = run.config
    policy = projection_policy(cfg, args.project)  # a bad policy fails before the data and the model are built
    weights, label = chosen_weights(run, args.checkpoint, args.average_last)
    dcfg = data_config(cfg)
    prepared = prepare_translation_data(dcfg)
    dm = TranslationDataModule(str(prepared.data_bin), prepared.src_lang, prepared.tgt_lang,
                               max_tokens=args.max_tokens or cfg.batching.max_tokens, seed=cfg.seed,
                               max_source_positions=cfg.arch.max_positions,
                               max_target_positions=cfg.arch.max_positions)
    src_dict, tgt_dict = dm.load_dictionaries()
    model = rebuilt_model(cfg, (src_dict, tgt_dict), weights)
    projected = project(model, policy) if policy is not None else None
    if projected is not None:
        label += f"-project-{projected['policy_hash']}"
    dm.setup("test" if args.split == "test" else "validate")
    loader = dm.test_dataloader() if args.split == "test" else dm.val_dataloader()
    result = evaluate_translation(
        model, loader, src_dict, tgt_dict, run.path / "eval", prepared.tgt_lang,
        raw_references=prepared.reference(args.split, "raw") if prepared.splits else None,
        tok_references=prepared.reference(args.split, "tok") if prepared.splits else None,
        lowercase=bool(dcfg.lowercase), name=f"{args.split}-{label}", beam=args.beam or cfg.eval.beam,
        max_len_a=cfg.eval.max_len_a, max_len_b=cfg.eval.max_len_b, lenpen=cfg.eval.lenpen, bpe=prepared.bpe,
    )
    if projected is not None:
        result["projected"] = projected
    return result, label
