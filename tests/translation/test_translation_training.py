"""End-to-end: training steps, generation, checkpointing, exact resume and checkpoint averaging."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from shapeshifter.experiment.checkpoints import (
    average_checkpoints,
    checkpoint_callbacks,
    epoch_checkpoints,
    last_checkpoint,
    load_checkpoint,
    load_model_weights,
    model_state_dict,
    save_model_weights,
)
from shapeshifter.translation.bleu import read_lines, sacrebleu_detok, tokenized_bleu
from shapeshifter.translation.datamodule import TranslationDataModule
from shapeshifter.translation.evaluate import evaluate_translation
from shapeshifter.translation.fairseq_model import build_transformer
from shapeshifter.translation.generate import detokenize, translate, write_translations
from shapeshifter.translation.module import TranslationModule

POLICY = {
    "embedding": {"rank": 2, "order": 2, "scheme": "balanced"},
    "attention": {"rank": 2, "order": 2, "scheme": "balanced"},
    "ffn": {"rank": 2, "order": 2, "scheme": "balanced"},
    "output": "dense",
    "other": "dense",
}


def _setup(data_bin: Path, overrides: dict, policy: dict | None = None, **module_kwargs):
    dm = TranslationDataModule(str(data_bin), "de", "en", max_tokens=64, seed=1)
    src, tgt = dm.load_dictionaries()
    model, _ = build_transformer("transformer_iwslt_de_en", src, tgt, overrides, policy=policy, seed=1)
    kwargs = dict(lr=5e-3, warmup_updates=4, bleu_max_sentences=6, beam=2, seed=1) | module_kwargs
    return dm, TranslationModule(model, tgt, src, **kwargs)


class BatchOrder(L.Callback):
    """Records the first sentence id of every training batch, per epoch."""

    def __init__(self) -> None:
        self.epochs: dict[int, list[int]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.epochs.setdefault(trainer.current_epoch, []).append(int(batch["id"][0]))


def _trainer(max_epochs: int, ckpt_dir: Path | None = None, extra=(), **kwargs) -> L.Trainer:
    callbacks = checkpoint_callbacks(ckpt_dir, keep_last_epochs=2) if ckpt_dir else []
    callbacks += list(extra)
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=callbacks,
        enable_checkpointing=ckpt_dir is not None,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=True,
        **kwargs,
    )


@pytest.mark.parametrize("shapeshifted", [False, True], ids=["dense", "shapeshifted"])
def test_train_steps_then_translate(data_bin, tiny_overrides, tmp_path, shapeshifted):
    if shapeshifted:
        pytest.importorskip("shapeshifter.surgery")
    dm, module = _setup(data_bin, tiny_overrides, POLICY if shapeshifted else None)
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    trainer = _trainer(1, limit_train_batches=3, gradient_clip_val=1.0)
    trainer.fit(module, dm)
    assert trainer.global_step == 3
    metrics = trainer.callback_metrics
    for key in ("train_loss", "valid_loss", "valid_nll_loss", "valid_ppl", "valid_bleu", "train_wps"):
        assert torch.isfinite(metrics[key]), key
    changed = [k for k, v in module.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed

    dm.setup("test")
    results = translate(module.model, dm.test_dataloader(), dm.src_dict, dm.tgt_dict, beam=2)
    assert [t.id for t in results] == list(range(12))
    assert all("@@" not in t.hypothesis and "@@" not in t.reference for t in results)
    refs_tok = read_lines(data_bin / "test.tok.en")
    assert [t.reference for t in results] == refs_tok  # binarized refs decode back to the tokenized text
    detok = detokenize([t.hypothesis for t in results], "en")
    raw_refs = read_lines(data_bin / "test.raw.en")
    assert 0.0 <= sacrebleu_detok(detok, raw_refs, lowercase=True).score <= 100.0
    assert 0.0 <= tokenized_bleu([t.hypothesis for t in results], refs_tok).score <= 100.0
    paths = write_translations(tmp_path / "out", results, detok, raw_refs)
    assert len(read_lines(paths["detok"])) == 12 and len(read_lines(paths["tok"])) == 12
    tsv = read_lines(paths["tsv"])
    assert tsv[0] == "id\tsource\treference\thypothesis" and len(tsv) == 13
    assert tsv[1].split("\t")[2] == raw_refs[0]


def test_resume_after_interrupt_matches_uninterrupted_run(data_bin, tiny_overrides, tmp_path):
    """2 epochs straight == 1 epoch, stop, resume from last.ckpt for epoch 2 (dropout on)."""
    dm, straight = _setup(data_bin, tiny_overrides)
    order = BatchOrder()
    trainer = _trainer(2, tmp_path / "straight", extra=[order])
    trainer.fit(straight, dm)
    assert order.epochs[0] != order.epochs[1]  # batches are reshuffled per epoch

    dm, first = _setup(data_bin, tiny_overrides)
    _trainer(1, tmp_path / "resumed").fit(first, dm)
    ckpt = last_checkpoint(tmp_path / "resumed")
    assert ckpt is not None
    dm, resumed = _setup(data_bin, tiny_overrides)
    resumed_order = BatchOrder()
    resumed_trainer = _trainer(2, tmp_path / "resumed", extra=[resumed_order])
    resumed_trainer.fit(resumed, dm, ckpt_path=str(ckpt))
    assert resumed_order.epochs == {1: order.epochs[1]}  # the resumed epoch sees the same batch order

    assert resumed_trainer.global_step == trainer.global_step > 0
    opt_steps = {
        name: [s["step"] for s in t.optimizers[0].state_dict()["state"].values()]
        for name, t in (("straight", trainer), ("resumed", resumed_trainer))
    }
    assert opt_steps["straight"] == opt_steps["resumed"]
    for (name, a), b in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    # The per-epoch files, last.ckpt and the best-by-valid_bleu file are all there.
    names = {p.name for p in (tmp_path / "straight").iterdir()}
    assert {"last.ckpt", "epoch0000.ckpt", "epoch0001.ckpt"} <= names
    assert any(n.startswith("best-epoch") for n in names)


def test_checkpoint_averaging_and_loading(data_bin, tiny_overrides, tmp_path):
    dm, module = _setup(data_bin, tiny_overrides)
    _trainer(3, tmp_path / "ckpt", limit_train_batches=2, limit_val_batches=1).fit(module, dm)
    paths = epoch_checkpoints(tmp_path / "ckpt", n=2)
    assert [p.name for p in paths] == ["epoch0001.ckpt", "epoch0002.ckpt"]
    states = [model_state_dict(load_checkpoint(p)) for p in paths]
    averaged = average_checkpoints(paths)
    for key, value in averaged.items():
        torch.testing.assert_close(value, (states[0][key] + states[1][key]) / 2)

    out = save_model_weights(averaged, tmp_path / "avg.pt")
    load_model_weights(module.model, out)
    for key, value in module.model.state_dict().items():
        torch.testing.assert_close(value, averaged[key])


def test_evaluate_translation_report(data_bin, tiny_overrides, tmp_path):
    import json

    dm, module = _setup(data_bin, tiny_overrides)
    dm.setup("test")
    report = evaluate_translation(
        module.model, dm.test_dataloader(), dm.src_dict, dm.tgt_dict, tmp_path / "eval", "en",
        raw_references=data_bin / "test.raw.en", tok_references=data_bin / "test.tok.en", beam=2,
    )  # fmt: skip
    json.dumps(report)
    assert report["num_sentences"] == 12 and "case:lc" in report["sacrebleu_signature"]
    assert 0.0 <= report["tokenized_bleu"] <= 100.0 and 0.0 <= report["sacrebleu"] <= 100.0
    assert len(read_lines(report["files"]["detok"])) == 12


def test_bleu_every_n_epochs(data_bin, tiny_overrides):
    dm, module = _setup(data_bin, tiny_overrides, bleu_every_n_epochs=2)
    trainer = _trainer(1, limit_train_batches=1)
    trainer.fit(module, dm)
    assert "valid_loss" in trainer.callback_metrics and "valid_bleu" not in trainer.callback_metrics


def test_checkpoint_hparams_are_plain_for_weights_only_load(data_bin, tiny_overrides, tmp_path):
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {"betas": [0.9, 0.98], "model": {"arch": "transformer_iwslt_de_en", "policy": None}}
    )
    dm, module = _setup(data_bin, tiny_overrides, betas=cfg.betas, model_config=cfg.model)
    trainer = _trainer(1, tmp_path / "ckpt", limit_train_batches=1)
    trainer.fit(module, dm)
    checkpoint = load_checkpoint(last_checkpoint(tmp_path / "ckpt"))  # weights_only=True
    assert checkpoint["hyper_parameters"]["betas"] == (0.9, 0.98)
    assert checkpoint["hyper_parameters"]["model_config"] == {
        "arch": "transformer_iwslt_de_en",
        "policy": None,
    }


def test_bad_checkpoint_files_are_named(data_bin, tiny_overrides, tmp_path):
    _, module = _setup(data_bin, tiny_overrides)
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.ckpt"):
        load_model_weights(module.model, junk)
    with pytest.raises(FileNotFoundError, match="nothing.ckpt"):
        load_checkpoint(tmp_path / "nothing.ckpt")
    wider = tiny_overrides | {"encoder_embed_dim": 32, "decoder_embed_dim": 32}
    bigger, _ = build_transformer("transformer_iwslt_de_en", module.src_dict, module.tgt_dict, wider)
    wrong = save_model_weights(bigger.state_dict(), tmp_path / "wrong_shapes.pt")
    with pytest.raises(ValueError, match=r"wrong_shapes\.pt.*embed_tokens\.weight: file \(16, 32\)"):
        load_model_weights(module.model, wrong)
