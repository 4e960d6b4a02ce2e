"""One translation run: prepare data, build (and shapeshift) a fairseq Transformer, train with Lightning,
evaluate with beam search, and write the run record.

Order of work is chosen so that a bad config fails before anything expensive: the policy, the model
overrides and the data config are validated first; data preparation is cached; a run whose record is
already complete is skipped; a run with a ``last.ckpt`` resumes from it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from shapeshifter.app.loggers import finish_wandb, make_loggers
from shapeshifter.app.policy import policy_from_config
from shapeshifter.app.records import claim_checkpoint_dir, file_sha256, finish_record, new_record, write_record
from shapeshifter.app.run_folder import find_checkpoint
from shapeshifter.app.wandb_records import attach_record
from shapeshifter.params import count_parameters


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def data_config(cfg: DictConfig):
    """`TranslationDataConfig` from the ``data`` node (validated on construction)."""
    from shapeshifter.data import TranslationDataConfig

    fields = {k: v for k, v in _plain(cfg.data).items() if k not in ("kind", "name_in_tables")}
    return TranslationDataConfig(**fields)


def copy_baseline(prepared, split: str = "test") -> dict[str, float]:
    """BLEU of copying the source sentence as the translation: the floor every model must clear."""
    from shapeshifter.translation.bleu import read_lines, sacrebleu_detok, tokenized_bleu

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
        return find_checkpoint(Path(str(source)))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"shapeshift.init_from: {err} (train the dense run first)") from err


def validate_schedule(cfg: DictConfig) -> float:
    """Fail before any work on a schedule that cannot train; returns the factor lr scale."""
    checks = {"optim.lr": (cfg.optim.lr, lambda v: v > 0), "optim.warmup_updates": (cfg.optim.warmup_updates,
              lambda v: v >= 1), "optim.factor_lr_scale": (cfg.optim.get("factor_lr_scale", 1.0), lambda v: v > 0)}
    for key, (value, ok) in checks.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or not ok(value):
            raise ValueError(f"{key} must be a positive number (warmup_updates >= 1), got {value!r}")
    if cfg.trainer.max_epochs is not None and cfg.trainer.max_epochs < 1 and (cfg.trainer.get("max_steps") or -1) <= 0:
        raise ValueError(f"trainer.max_epochs must be >= 1 (or set trainer.max_steps), got {cfg.trainer.max_epochs}: "
                         "a run that trains nothing would be recorded as done")
    return float(cfg.optim.get("factor_lr_scale", 1.0))




def run_translation(cfg: DictConfig, out_dir: Path, record_path: Path) -> dict[str, Any]:
    import lightning as L
    from lightning.pytorch.callbacks import RichProgressBar

    from shapeshifter.app.training import last_checkpoint_callback, stopping_callbacks, training_summary
    from shapeshifter.data import prepare_translation_data
    from shapeshifter.translation.checkpoints import (
        average_checkpoints,
        checkpoint_callbacks,
        epoch_checkpoints,
        last_checkpoint,
        load_model_weights,
    )
    from shapeshifter.translation.datamodule import TranslationDataModule
    from shapeshifter.translation.evaluate import evaluate_translation
    from shapeshifter.translation.fairseq_model import build_transformer, transformer_args
    from shapeshifter.translation.module import TranslationModule

    config = _plain(cfg)
    # 1. validate everything cheap first
    policy = policy_from_config(cfg.shapeshift)
    overrides = _plain(cfg.arch.overrides) or {}
    transformer_args(cfg.arch.name, overrides)  # unknown arch / override keys fail here
    dcfg = data_config(cfg)
    init_from = dense_source_checkpoint(cfg)
    factor_lr_scale = validate_schedule(cfg)
    record = new_record(config, kind="translation")
    record["policy"] = policy
    if init_from is not None:
        record["init_from"] = {"path": str(init_from), "sha256": file_sha256(init_from)}
    write_record(record, record_path)

    # 2. data (cached stages; a named slice of the committed sample is written on first use)
    from shapeshifter.data.smoke import ensure_slice

    ensure_slice(str(cfg.data.name), Path(str(cfg.data.raw_dir)))
    t0 = time.perf_counter()
    prepared = prepare_translation_data(dcfg)
    record["timings"] = {"data_s": time.perf_counter() - t0}

    # 3. model
    dm = TranslationDataModule(str(prepared.data_bin), prepared.src_lang, prepared.tgt_lang,
                               max_tokens=cfg.batching.max_tokens, max_sentences=cfg.batching.max_sentences,
                               seed=cfg.seed, max_source_positions=cfg.arch.max_positions,
                               max_target_positions=cfg.arch.max_positions)
    src_dict, tgt_dict = dm.load_dictionaries()
    dense_model, _ = build_transformer(cfg.arch.name, src_dict, tgt_dict, overrides, None, seed=cfg.seed)
    dense_counts = count_parameters(dense_model)
    del dense_model
    model, report = build_transformer(cfg.arch.name, src_dict, tgt_dict, overrides, policy, seed=cfg.seed,
                                      init=cfg.shapeshift.get("init", "random"), init_from=init_from)
    counts = count_parameters(model)
    record["params"] = {"dense_model_total": dense_counts["total"], **counts,
                        "reduction_vs_dense": dense_counts["total"] / counts["total"]}
    record["shapeshift_report"] = report.to_dict() if report is not None else None
    write_record(record, record_path)

    module = TranslationModule(
        model, tgt_dict, src_dict, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
        weight_decay=cfg.optim.weight_decay, warmup_updates=cfg.optim.warmup_updates,
        warmup_init_lr=cfg.optim.warmup_init_lr, label_smoothing=cfg.optim.label_smoothing, seed=cfg.seed,
        bleu_every_n_epochs=cfg.eval.bleu_every_n_epochs, bleu_max_sentences=cfg.eval.bleu_max_sentences,
        beam=cfg.eval.beam, max_len_a=cfg.eval.max_len_a, max_len_b=cfg.eval.max_len_b, lenpen=cfg.eval.lenpen,
        bpe=prepared.bpe, model_config={"arch": cfg.arch.name, "overrides": overrides, "policy": policy},
        factor_lr_scale=factor_lr_scale,
    )

    # 4. train (resuming from last.ckpt when a previous attempt was interrupted)
    ckpt_dir = claim_checkpoint_dir(out_dir / "checkpoints", record["config_hash"])
    monitors_bleu = "bleu" in cfg.ckpt.monitor
    callbacks = checkpoint_callbacks(ckpt_dir, monitor=cfg.ckpt.monitor,
                                     every_n_epochs=cfg.eval.bleu_every_n_epochs if monitors_bleu else 1,
                                     keep_last_epochs=cfg.ckpt.average_last, save_last=False)
    callbacks.append(last_checkpoint_callback(ckpt_dir))  # every epoch, after the monitored ones (resume point)
    callbacks += stopping_callbacks(cfg.ckpt.get("patience"), cfg.ckpt.monitor, "max" if monitors_bleu else "min")
    if cfg.trainer.get("progress_bar", "rich") == "rich":
        callbacks.append(RichProgressBar())
    loggers = make_loggers(cfg.get("logger"), out_dir, cfg.run.name, cfg.run.group, config)
    trainer_kwargs = {k: v for k, v in _plain(cfg.trainer).items() if k != "progress_bar"}
    trainer = L.Trainer(default_root_dir=str(out_dir), callbacks=callbacks, logger=loggers,
                        gradient_clip_val=cfg.optim.clip_norm or None, enable_progress_bar=True,
                        **trainer_kwargs)
    resume = last_checkpoint(ckpt_dir) if cfg.run.resume else None
    record["resumed_from"] = str(resume) if resume else None
    try:
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume else None)
        train_s = time.perf_counter() - t0
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        record["training"] = training_summary(trainer, callbacks)
        record["timings"].update({
            "train_s": train_s, "train_steps": trainer.global_step,
            "train_step_s": metrics.get("train_step_s_epoch"), "train_wps": metrics.get("train_wps_epoch"),
        })

        # 5. pick the weights to evaluate: average of the last N epochs, or the best checkpoint
        if cfg.ckpt.average_last and len(epoch_checkpoints(ckpt_dir)) > 1:
            state = average_checkpoints(epoch_checkpoints(ckpt_dir, cfg.ckpt.average_last))
            module.model.load_state_dict(state)
            record["evaluated_weights"] = f"average of last {cfg.ckpt.average_last} epochs"
        else:
            best = callbacks[0].best_model_path
            if best:
                load_model_weights(module.model, best)
            record["evaluated_weights"] = best or "final"

        # 6. evaluate on test with beam search; time inference
        dm.setup("test")
        module.model.eval()
        t0 = time.perf_counter()
        test = evaluate_translation(
            module.model, dm.test_dataloader(), src_dict, tgt_dict, out_dir / "translations", prepared.tgt_lang,
            raw_references=prepared.reference("test", "raw") if prepared.splits else None,
            tok_references=prepared.reference("test", "tok") if prepared.splits else None,
            lowercase=bool(dcfg.lowercase), name="test", beam=cfg.eval.beam, max_len_a=cfg.eval.max_len_a,
            max_len_b=cfg.eval.max_len_b, lenpen=cfg.eval.lenpen, bpe=prepared.bpe,
        )
        record["timings"]["test_generate_s"] = time.perf_counter() - t0
        record["metrics"] = {
            "valid": {k: v for k, v in metrics.items() if k.startswith("valid")},
            "train": {k: v for k, v in metrics.items() if k in ("train_loss_epoch", "train_nll_loss_epoch")},
            "test": test,
            "copy_baseline": copy_baseline(prepared) if prepared.splits else None,
        }
        log_summary(loggers, record)
        finish_record(record, record_path)
        attach_record(record)  # the final record also goes to the W&B run, before it is closed
    finally:
        finish_wandb()  # one W&B run per job, closed even when the job fails
    return record


def log_summary(loggers: list, record: dict[str, Any]) -> None:
    """Send the final test metrics and parameter counts to every logger (W&B summary, CSV)."""
    test = record["metrics"]["test"]
    summary = {"test_tokenized_bleu": test["tokenized_bleu"], "params_total": record["params"]["total"],
               "params_reduction_vs_dense": record["params"]["reduction_vs_dense"],
               "test_generate_s": record["timings"]["test_generate_s"]}
    if test.get("sacrebleu") is not None:
        summary["test_sacrebleu"] = test["sacrebleu"]
    for logger in loggers:
        logger.log_metrics(summary)
        logger.save()
