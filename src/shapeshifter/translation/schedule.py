"""fairseq's `inverse_sqrt` learning-rate schedule, as a multiplier for torch's `LambdaLR`."""

from __future__ import annotations

import math


def inverse_sqrt_lr(num_updates: int, lr: float, warmup_updates: int, warmup_init_lr: float = 0.0) -> float:
    """Learning rate used for the update after `num_updates` completed updates (fairseq semantics).

    Linear warmup from `warmup_init_lr` to `lr` over `warmup_updates` updates, then
    `lr * sqrt(warmup_updates / num_updates)`. fairseq's default `warmup_init_lr` is 0 when warming up,
    so the very first update has learning rate 0 (it still advances Adam's moments).
    """
    if warmup_updates < 1:
        raise ValueError(f"inverse_sqrt needs warmup_updates >= 1, got {warmup_updates}")
    if num_updates < warmup_updates:
        return warmup_init_lr + num_updates * (lr - warmup_init_lr) / warmup_updates
    return lr * math.sqrt(warmup_updates) / math.sqrt(num_updates)


class InverseSqrtSchedule:
    """Picklable LambdaLR multiplier: `inverse_sqrt_lr(step) / lr` (LambdaLR's step = completed updates)."""

    def __init__(self, lr: float, warmup_updates: int, warmup_init_lr: float = 0.0) -> None:
        inverse_sqrt_lr(0, lr, warmup_updates, warmup_init_lr)  # validate arguments early
        self.lr = lr
        self.warmup_updates = warmup_updates
        self.warmup_init_lr = warmup_init_lr

    def __call__(self, step: int) -> float:
        return inverse_sqrt_lr(step, self.lr, self.warmup_updates, self.warmup_init_lr) / self.lr
