"""One optimisation step end-to-end (data module -> model -> Lightning) on the committed SNLI sample."""

from __future__ import annotations

import importlib.util
import itertools
import os
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lightning as L  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from shapeshifter.glue.data import GlueDataModule  # noqa: E402
from shapeshifter.glue.models import (  # noqa: E402
    PretrainedEncoderClassifier,
    TransformerEncoderClassifier,
    build_pretrained_classifier,
    build_scratch_classifier,
)
from shapeshifter.glue.module import GlueClassifierModule, linear_warmup_decay  # noqa: E402

SNLI = Path(__file__).resolve().parents[2] / "data" / "snli"
TINY_BERT = {
    "vocab_size": 100,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}
HAS_SURGERY = importlib.util.find_spec("shapeshifter.surgery") is not None
POLICY = {
    "embedding": {"rank": 2, "order": 2},
    "attention": {"rank": 2, "order": 2},
    "ffn": {"rank": 2, "order": 2},
    "output": "dense",
    "other": "dense",
}


@pytest.fixture()
def snli_head(tmp_path: Path) -> dict[str, Path]:
    """First 64 lines of each committed SNLI file."""
    out = {}
    for split in ("train", "validation", "test"):
        with (SNLI / f"{split}.jsonl").open(encoding="utf-8") as fh:
            lines = list(itertools.islice(fh, 64))
        out[split] = tmp_path / f"{split}.jsonl"
        out[split].write_text("".join(lines), encoding="utf-8")
    return out


def _snli_dm(files: dict[str, Path], **kw: object) -> GlueDataModule:
    return GlueDataModule.from_files(
        ("sentence1", "sentence2"), files["train"], files["validation"], files["test"],
        label_field="gold_label", max_length=48, batch_size=16, **kw,
    )


def _trainer(steps: int = 1, logger: object = False) -> L.Trainer:
    return L.Trainer(
        max_steps=steps, limit_train_batches=steps, limit_val_batches=2, accelerator="cpu", devices=1, logger=logger,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def _fit_one_step(
    module: GlueClassifierModule, dm: GlueDataModule, logger: object = False
) -> dict[str, torch.Tensor]:
    before = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
    trainer = _trainer(logger=logger)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 1
    return before


def test_committed_snli_sample_counts() -> None:
    counts = {s: sum(1 for _ in (SNLI / f"{s}.jsonl").open()) for s in ("train", "validation", "test")}
    assert counts == {"train": 20000, "validation": 2000, "test": 2000}
    assert sum((SNLI / f"{s}.jsonl").stat().st_size for s in counts) < 5_000_000


def test_scratch_model_one_step_on_snli(snli_head: dict[str, Path]) -> None:
    torch.manual_seed(0)
    dm = _snli_dm(snli_head)
    assert dm.spec.label_names == ("contradiction", "entailment", "neutral")
    model, report = build_scratch_classifier(
        dm.vocab_size, dm.spec.num_labels, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_len=48
    )
    assert report is None
    names = dict(model.named_modules())
    for n in ("embed_tokens", "embed_positions", "layers.0.self_attn.q_proj", "layers.1.self_attn.out_proj",
              "layers.0.fc1", "layers.0.fc2", "classifier"):
        assert n in names
    module = GlueClassifierModule(model, dm.spec, lr=1e-3, max_steps=1)
    before = _fit_one_step(module, dm)
    after = model.state_dict()
    assert not torch.equal(before["layers.0.self_attn.q_proj.weight"], after["layers.0.self_attn.q_proj.weight"])
    metrics = module.final_metrics()
    assert set(metrics) == {"val/accuracy", "val/macro_f1"}
    assert 0.0 <= metrics["val/accuracy"] <= 1.0
    _trainer().test(module, datamodule=dm, verbose=False)
    assert module.test_predictions["test"].shape == (64,)
    assert "test/accuracy" in module.final_metrics()


def test_scratch_model_padding_invariance() -> None:
    torch.manual_seed(0)
    model = TransformerEncoderClassifier(50, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=16,
                                         num_labels=3, dropout=0.0).eval()
    ids = torch.tensor([[2, 7, 8, 3]])
    padded = torch.tensor([[2, 7, 8, 3, 0, 0]])
    a = model(ids, torch.ones_like(ids), torch.zeros_like(ids))
    b = model(padded, padded.ne(0).long(), torch.zeros_like(padded))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="exceeds max_len=16"):
        model(torch.ones(1, 17, dtype=torch.long))


def test_tiny_bert_dense_one_step_on_snli(snli_head: dict[str, Path], tmp_path: Path) -> None:
    from transformers import BertTokenizerFast

    torch.manual_seed(0)
    tokens = (t.strip('".,!?:') for t in snli_head["train"].read_text().lower().split())
    words = sorted({t for t in tokens if t.isalpha()})[:90]
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = BertTokenizerFast.from_pretrained(str(tmp_path))
    dm = _snli_dm(snli_head, tokenizer=tok)
    cfg = dict(TINY_BERT, vocab_size=dm.vocab_size)
    model, report = build_pretrained_classifier(dm.spec.num_labels, config=cfg)
    assert report is None and isinstance(model, PretrainedEncoderClassifier)
    assert "encoder.encoder.layer.0.attention.self.query" in dict(model.named_modules())
    module = GlueClassifierModule(model, dm.spec, lr=1e-3, warmup_steps=1, max_steps=10)
    before = _fit_one_step(module, dm)
    key = "encoder.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(before[key], model.state_dict()[key])
    assert "val/accuracy" in module.final_metrics()


@pytest.mark.skipif(not HAS_SURGERY, reason="shapeshifter.surgery not available yet")
def test_tiny_bert_projected_shapeshift_one_step(snli_head: dict[str, Path], tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    from shapeshifter.params import count_parameters

    torch.manual_seed(0)
    dm = _snli_dm(snli_head)
    dense, _ = build_pretrained_classifier(dm.spec.num_labels, config=dict(TINY_BERT, vocab_size=dm.vocab_size))
    n_dense = count_parameters(dense)["total"]
    model, report = build_pretrained_classifier(
        dm.spec.num_labels, config=dict(TINY_BERT, vocab_size=dm.vocab_size), policy=POLICY
    )
    assert report is not None
    assert count_parameters(model)["total"] < n_dense
    module = GlueClassifierModule(model, dm.spec, lr=1e-3, max_steps=1, shapeshift_report=report)
    errors = module.reconstruction_errors()
    assert errors and all(0.0 <= e <= 1.0 + 1e-6 for e in errors.values())
    _fit_one_step(module, dm, logger=CSVLogger(str(tmp_path), name="run"))
    logged = (tmp_path / "run" / "version_0" / "metrics.csv").read_text()
    assert "shapeshift/reconstruction_error/encoder.encoder.layer.0.attention.self.query" in logged
    final = module.final_metrics()
    assert "val/accuracy" in final and final["shapeshift/reconstruction_error_max"] == max(errors.values())


@pytest.mark.skipif(not HAS_SURGERY, reason="shapeshifter.surgery not available yet")
def test_scratch_random_shapeshift_one_step(snli_head: dict[str, Path]) -> None:
    torch.manual_seed(0)
    dm = _snli_dm(snli_head)
    model, report = build_scratch_classifier(
        dm.vocab_size, dm.spec.num_labels, policy=POLICY, d_model=32, n_layers=1, n_heads=2, d_ff=64,
        max_len=48,
    )
    assert report is not None
    module = GlueClassifierModule(model, dm.spec, lr=1e-3, max_steps=1, shapeshift_report=report)
    _fit_one_step(module, dm)
    assert "val/accuracy" in module.final_metrics()


def test_regression_module_uses_mse(tmp_path: Path) -> None:
    rows = "".join(f'{{"a": "w{i} x", "b": "y z{i % 3}", "s": {i % 5}.5}}\n' for i in range(24))
    (tmp_path / "t.jsonl").write_text(rows)
    dm = GlueDataModule.from_files(("a", "b"), tmp_path / "t.jsonl", tmp_path / "t.jsonl", label_field="s",
                                   regression=True, batch_size=8)
    model, _ = build_scratch_classifier(dm.vocab_size, 1, d_model=16, n_layers=1, n_heads=2, d_ff=32)
    module = GlueClassifierModule(model, dm.spec, max_steps=1)
    _fit_one_step(module, dm)
    assert set(module.final_metrics()) == {"val/pearson", "val/spearman"}
    dm.setup()
    batch = next(iter(dm.val_dataloader()))
    assert batch["labels"].dtype == torch.float32
    logits = module(batch)
    assert logits.shape == (8, 1)
    torch.testing.assert_close(module._loss(logits, batch["labels"]),
                               ((logits.squeeze(-1) - batch["labels"]) ** 2).mean())


def test_linear_warmup_decay_schedule() -> None:
    got = [linear_warmup_decay(s, 2, 6) for s in range(7)]
    assert got == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0])


def test_mnli_two_validation_loaders_logged_separately(tmp_path: Path) -> None:
    d = tmp_path / "mnli"
    d.mkdir()
    header = "premise\thypothesis\tlabel\n"
    labels = ("entailment", "neutral", "contradiction")
    train = "".join(f"a man {i}\ta dog {i % 4}\t{labels[i % 3]}\n" for i in range(12))
    (d / "train.tsv").write_text(header + train)
    (d / "dev_matched.tsv").write_text(header + "x y\tz\t0\nq r\ts\t1\n")
    (d / "dev_mismatched.tsv").write_text(header + "x\ty\t2\nq\tr\t2\nu\tv\t2\n")
    dm = GlueDataModule.from_glue("mnli", data_dir=tmp_path, batch_size=4)
    model, _ = build_scratch_classifier(dm.vocab_size, 3, d_model=16, n_layers=1, n_heads=2, d_ff=32)
    module = GlueClassifierModule(model, dm.spec, max_steps=1)
    _fit_one_step(module, dm)
    metrics = module.final_metrics()
    assert set(metrics) == {"val/accuracy_matched", "val/accuracy_mismatched"}
    model.eval()
    for split, key in (("validation_matched", "val/accuracy_matched"),
                       ("validation_mismatched", "val/accuracy_mismatched")):
        batch = next(iter(dm._loader(split, train=False)))
        with torch.no_grad():
            expected = (module(batch).argmax(-1) == batch["labels"]).float().mean().item()
        assert metrics[key] == pytest.approx(expected)
