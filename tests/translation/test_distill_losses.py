"""Distillation losses and the distilling LightningModule on tiny fairseq Transformers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from shapeshifter.criterion import label_smoothed_nll_loss
from shapeshifter.distill.losses import attention_kl, hidden_mse, hidden_projection, word_kd_loss
from shapeshifter.distill.teacher import freeze

pytestmark = pytest.mark.usefixtures("one_thread")
PAD = 1


def _logits(seed: int, shape: tuple[int, ...] = (3, 5, 11)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3


def _target(shape: tuple[int, int] = (3, 5), vocab: int = 11) -> torch.Tensor:
    target = torch.randint(2, vocab, shape, generator=torch.Generator().manual_seed(7))
    target[0, -2:] = PAD
    return target


@given(st.floats(0.0, 1.0), st.floats(0.25, 8.0), st.integers(0, 1000))
@settings(max_examples=25, deadline=None)
def test_kl_is_zero_when_the_student_is_the_teacher(alpha: float, temperature: float, seed: int) -> None:
    logits, target = _logits(seed), _target()
    loss, nll, kl = word_kd_loss(logits, logits.clone(), target, alpha=alpha, temperature=temperature,
                                 epsilon=0.1, padding_idx=PAD)
    assert abs(float(kl)) < 1e-4
    ce, plain_nll = label_smoothed_nll_loss(F.log_softmax(logits, -1).view(-1, 11), target.view(-1), 0.1, PAD)
    assert torch.allclose(loss, (1 - alpha) * ce, atol=1e-3) and torch.allclose(nll, plain_nll)


def test_word_loss_matches_an_independent_kl_with_the_temperature_squared() -> None:
    student, teacher, target = _logits(1), _logits(2), _target()
    alpha, temperature = 0.7, 2.5
    loss, _, kl = word_kd_loss(student, teacher, target, alpha=alpha, temperature=temperature, epsilon=0.1,
                               padding_idx=PAD)
    keep = target.view(-1).ne(PAD)
    s, t = student.view(-1, 11)[keep], teacher.view(-1, 11)[keep]
    oracle = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1), log_target=True,
                      reduction="sum")
    assert torch.allclose(kl, oracle, rtol=1e-5)
    ce, _ = label_smoothed_nll_loss(F.log_softmax(s, -1), target.view(-1)[keep], 0.1, PAD)
    assert torch.allclose(loss, (1 - alpha) * ce + alpha * temperature**2 * oracle, rtol=1e-5)


def test_word_loss_refuses_bad_settings_and_other_vocabularies() -> None:
    student, target = _logits(1), _target()
    with pytest.raises(ValueError, match="alpha"):
        word_kd_loss(student, student, target, alpha=1.5, temperature=1.0, epsilon=0.1, padding_idx=PAD)
    with pytest.raises(ValueError, match="temperature"):
        word_kd_loss(student, student, target, alpha=0.5, temperature=0.0, epsilon=0.1, padding_idx=PAD)
    with pytest.raises(ValueError, match="target dictionary"):
        word_kd_loss(student, _logits(1, (3, 5, 12)), target, alpha=0.5, temperature=1.0, epsilon=0.1,
                     padding_idx=PAD)


def test_hidden_mse_is_zero_for_equal_states_and_ignores_padding() -> None:
    states = [torch.randn(4, 2, 8) for _ in range(2)]
    keep = torch.ones(2, 4, dtype=torch.bool)
    keep[1, 3] = False
    assert float(hidden_mse(states, [s.clone() for s in states], keep)) == 0.0
    moved = [s.clone() for s in states]
    for s in moved:
        s[3, 1] += 100.0  # a padding position: not counted
    assert float(hidden_mse(states, moved, keep)) == 0.0
    moved[0][0, 0] += 1.0  # one real position of one layer, every feature off by 1
    assert math.isclose(float(hidden_mse(states, moved, keep)), 1.0 / 7, rel_tol=1e-5)  # 7 real positions
    with pytest.raises(ValueError, match="projection"):
        hidden_mse([torch.randn(4, 2, 4)], [torch.randn(4, 2, 8)], keep)
    with pytest.raises(ValueError, match="layer i"):
        hidden_mse(states, states[:1], keep)
    assert hidden_projection(8, 8) is None and hidden_projection(4, 8).weight.shape == (8, 4)


def test_attention_kl_is_zero_for_equal_distributions_and_counts_real_queries_only() -> None:
    probs = [torch.softmax(torch.randn(2, 4, 5), dim=-1) for _ in range(3)]
    keep = [torch.ones(2, 4, dtype=torch.bool) for _ in range(3)]
    keep[0][1, 3] = False
    assert abs(float(attention_kl(probs, [p.clone() for p in probs], keep))) < 1e-7
    moved = [p.clone() for p in probs]
    moved[0][1, 3] = torch.tensor([1.0, 0, 0, 0, 0])  # a padding query of module 0: not counted
    assert abs(float(attention_kl(probs, moved, keep))) < 1e-7
    moved[1][0, 0] = torch.tensor([0.0, 0, 0, 0, 1])  # one real query of module 1, all mass on key 4
    expected = -math.log(float(probs[1][0, 0, 4])) / 8  # KL(one-hot || p) = -log p[4], over 8 real queries
    assert math.isclose(float(attention_kl(probs, moved, keep)), expected, rel_tol=1e-4)
    with pytest.raises(ValueError, match="module i"):
        attention_kl(probs, probs[:1], keep)
    with pytest.raises(ValueError, match="same batch"):
        attention_kl(probs[:1], [torch.softmax(torch.randn(2, 4, 6), -1)], keep[:1])


# --------------------------------------------------------------------------------------- the module
def _models(data_bin: Path, overrides: dict, student_dim: int = 16):
    from fairseq.data import Dictionary

    from shapeshifter.translation.fairseq_model import build_transformer

    src, tgt = (Dictionary.load(str(data_bin / f"dict.{lang}.txt")) for lang in ("de", "en"))
    teacher, _ = build_transformer("transformer_iwslt_de_en", src, tgt, overrides, None, seed=3)
    narrow = {**overrides, "encoder_embed_dim": student_dim, "decoder_embed_dim": student_dim}
    student, _ = build_transformer("transformer_iwslt_de_en", src, tgt, narrow, None, seed=4)
    return src, tgt, freeze(teacher), student


def _batch(data_bin: Path):
    from shapeshifter.translation.datamodule import TranslationDataModule

    dm = TranslationDataModule(str(data_bin), "de", "en", max_tokens=256)
    dm.setup("fit")
    return next(iter(dm.train_dataloader()))


@pytest.mark.parametrize("student_dim", [16, 8])
def test_gradients_reach_only_the_student_and_the_teacher_is_never_saved(data_bin: Path, tiny_overrides: dict,
                                                                        student_dim: int) -> None:
    from shapeshifter.translation.distill_module import DistillTranslationModule

    src, tgt, teacher, student = _models(data_bin, tiny_overrides, student_dim)
    module = DistillTranslationModule(student, tgt, src, teacher=teacher, kinds=("word", "hidden"),
                                      teacher_dim=16, student_dim=student_dim, warmup_updates=10)
    loss, _, ntokens, extra = module.training_loss(_batch(data_bin))
    (loss / ntokens).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters() if p.requires_grad)
    assert set(extra) == {"train_kl", "train_hidden_mse"} and float(extra["train_hidden_mse"]) > 0
    assert not any(k.startswith("teacher") for k in module.state_dict())
    assert "teacher" not in module.hparams and not teacher.training
    assert (module.hidden_projection is None) == (student_dim == 16)
    if module.hidden_projection is not None:  # trained (in the optimizer), not part of the exported model
        assert module.hidden_projection.weight.grad is not None
        params = {id(p) for g in module.configure_optimizers()["optimizer"].param_groups for p in g["params"]}
        assert id(module.hidden_projection.weight) in params
        assert not any("hidden_projection" in k for k in module.model.state_dict())
    module.train()
    assert not teacher.training  # Lightning's .train() never reaches the teacher


def test_a_student_equal_to_its_teacher_has_zero_distillation_terms(data_bin: Path, tiny_overrides: dict) -> None:
    import copy

    from shapeshifter.translation.distill_module import DistillTranslationModule

    src, tgt, teacher, _ = _models(data_bin, tiny_overrides)
    student = copy.deepcopy(teacher).requires_grad_(True).eval()  # eval: no dropout, same function
    module = DistillTranslationModule(student, tgt, src, teacher=teacher, kinds=("word", "hidden"),
                                      teacher_dim=16, student_dim=16, warmup_updates=10)
    _, _, _, extra = module.training_loss(_batch(data_bin))
    assert abs(float(extra["train_kl"])) < 1e-5 and float(extra["train_hidden_mse"]) < 1e-10


def test_attention_distillation_pairs_every_attention_module_and_trains_the_student_alone(
        data_bin: Path, tiny_overrides: dict) -> None:
    """The teacher's encoder self-, decoder self- and cross-attention distributions teach a narrower student (other
    width, same layers); the KL is zero for a student equal to its teacher, and the layers' own outputs are not
    changed by asking for the weights."""
    import copy

    from shapeshifter.translation.distill_module import (
        DistillTranslationModule,
        attention_modules,
        forward_with_attention,
        forward_with_states,
    )

    src, tgt, teacher, student = _models(data_bin, tiny_overrides, student_dim=8)
    batch = _batch(data_bin)
    encoder, decoder = attention_modules(teacher)
    layers = tiny_overrides.get("encoder_layers", 6), tiny_overrides.get("decoder_layers", 6)
    assert len(encoder) == layers[0] and len(decoder) == 2 * layers[1]
    logits, _, _, enc, dec = forward_with_attention(teacher, batch["net_input"], hidden=False)
    plain = forward_with_states(teacher, batch["net_input"], hidden=False)[0]
    assert torch.allclose(logits, plain, atol=1e-5)  # the weights come from the unfused path: rounding differs
    tokens, target = batch["net_input"]["src_tokens"], batch["target"]
    assert enc[0].shape == (tokens.size(0), tokens.size(1), tokens.size(1))
    assert dec[0].shape == (*target.shape, target.size(1)) and dec[1].shape == (*target.shape, tokens.size(1))
    assert torch.allclose(dec[1].sum(-1), torch.ones(target.shape))  # distributions over the source
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in encoder + decoder)  # hooks removed

    module = DistillTranslationModule(student, tgt, src, teacher=teacher, kinds=("attention",),
                                      attention_weight=2.0, teacher_dim=16, student_dim=8, warmup_updates=10)
    loss, _, ntokens, extra = module.training_loss(batch)
    (loss / ntokens).backward()
    assert set(extra) == {"train_attention_kl"} and float(extra["train_attention_kl"]) > 0
    assert all(p.grad is None for p in teacher.parameters()) and module.hidden_projection is None
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    same = copy.deepcopy(teacher).requires_grad_(True).eval()
    twin = DistillTranslationModule(same, tgt, src, teacher=teacher, kinds=("attention",), teacher_dim=16,
                                    student_dim=16, warmup_updates=10)
    assert float(twin.training_loss(batch)[3]["train_attention_kl"]) < 1e-6


@pytest.mark.parametrize(("node", "message"), [
    ({"kinds": ["word"], "teacher": "t", "alpha": 1.5}, r"distill.alpha must be in \[0, 1\], got 1.5"),
    ({"kinds": ["word"], "teacher": "t", "temperature": 0}, "distill.temperature must be > 0, got 0"),
    ({"kinds": ["hidden"], "teacher": "t", "hidden_weight": 0}, "distill.hidden_weight must be > 0, got 0"),
    ({"kinds": ["attention"], "teacher": "t", "attention_weight": -1}, "distill.attention_weight must be > 0"),
    ({"kinds": ["sequence"], "teacher": "t", "beam": 0}, "distill.beam must be an integer >= 1, got 0"),
    ({"kinds": ["words"], "teacher": "t"}, r"unknown kind\(s\) \['words'\]; known: \['word', 'hidden', 'attention'"),
    ({"kinds": ["word", "word"], "teacher": "t"}, "lists a kind twice"),
    ({"kinds": ["word"], "teacher": "t", "atention_weight": 1}, "distill.atention_weight is not a setting"),
    ({"kinds": [], "teacher": "t"}, "distill.kinds is empty .* choose distill=word, hidden, attention or sequence"),
    ({"kinds": ["attention"], "teacher": None}, "needs distill.teacher="),
])
def test_distill_settings_refuse_what_cannot_run_with_one_line(node: dict, message: str) -> None:
    from shapeshifter.distill.settings import DistillSettings

    with pytest.raises(ValueError, match=message):
        DistillSettings.from_config(node)
    assert DistillSettings.from_config({"kinds": ["attention"], "teacher": "t"}).online
    assert not DistillSettings.from_config({"kinds": ["sequence"], "teacher": "t"}).online
