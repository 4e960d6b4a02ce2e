"""Label-smoothed cross-entropy and the inverse-sqrt schedule against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from shapeshifter.criterion import label_smoothed_nll_loss
from shapeshifter.translation.schedule import InverseSqrtSchedule, inverse_sqrt_lr


def test_label_smoothed_loss_by_hand():
    lprobs = torch.log_softmax(
        torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 9.0]]), -1
    )
    target = torch.tensor([0, 3, 1])  # the last row is padding (pad index 1) and must be ignored
    eps, vocab = 0.1, 4
    loss, nll = label_smoothed_nll_loss(lprobs, target, eps, ignore_index=1)
    expected_loss = expected_nll = 0.0
    for row, gold in ((0, 0), (1, 3)):
        # fairseq's smoothed target: eps/(V-1) on every class, the gold class gets 1 - eps on top of that.
        q = [eps / (vocab - 1)] * vocab
        q[gold] += 1 - eps - eps / (vocab - 1)
        expected_loss -= sum(q[j] * lprobs[row, j].item() for j in range(vocab))
        expected_nll -= lprobs[row, gold].item()
    assert loss.item() == pytest.approx(expected_loss, rel=1e-6)
    assert nll.item() == pytest.approx(expected_nll, rel=1e-6)


def test_label_smoothed_loss_matches_fairseq():
    from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss as fairseq_loss

    torch.manual_seed(0)
    lprobs = torch.log_softmax(torch.randn(10, 7), -1)
    target = torch.randint(0, 7, (10,))
    ours = label_smoothed_nll_loss(lprobs, target, 0.1, ignore_index=1)
    theirs = fairseq_loss(lprobs, target.unsqueeze(-1), 0.1, ignore_index=1, reduce=True)
    torch.testing.assert_close(ours[0], theirs[0])
    torch.testing.assert_close(ours[1], theirs[1])


def test_inverse_sqrt_values():
    lr, warmup = 5e-4, 4000
    assert inverse_sqrt_lr(0, lr, warmup) == 0.0  # fairseq: warmup_init_lr defaults to 0
    assert inverse_sqrt_lr(1000, lr, warmup) == pytest.approx(1.25e-4)
    assert inverse_sqrt_lr(1000, lr, warmup, warmup_init_lr=1e-7) == pytest.approx(
        1e-7 + 1000 * (lr - 1e-7) / 4000
    )
    assert inverse_sqrt_lr(4000, lr, warmup) == pytest.approx(5e-4)
    assert inverse_sqrt_lr(16000, lr, warmup) == pytest.approx(2.5e-4)
    assert inverse_sqrt_lr(100_000, lr, warmup) == pytest.approx(lr * math.sqrt(4000 / 100_000))
    with pytest.raises(ValueError):
        inverse_sqrt_lr(0, lr, 0)


def test_schedule_drives_lambdalr():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=2e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, InverseSqrtSchedule(2e-3, warmup_updates=4))
    seen = []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [inverse_sqrt_lr(k, 2e-3, 4) for k in range(8)]
    assert seen == pytest.approx(expected)
