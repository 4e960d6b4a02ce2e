"""The teacher model's checks and freezing: its architecture fits the kinds asked for (hidden states, attention:
the same number of encoder and decoder layers), its dictionaries match the student's symbol by symbol
(`check_dictionaries`), and it is a fixed function (`freeze`). Every failure is one `TeacherError` naming what
differs. The run-folder checks (exists, finished, same task and data) are `experiment.distill.find_teacher_run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from shapeshifter.distill.settings import TeacherError


def check_layers(teacher: dict[str, Any], student: dict[str, Any], folder: str | Path) -> None:
    """Hidden-state distillation pairs layer i with layer i: the layer counts must match (widths may differ)."""
    for key in sorted(k for k in teacher if k.endswith("layers")):  # encoder_/decoder_layers, n_layers
        if teacher[key] != student.get(key):
            raise TeacherError(f"distill.teacher={folder}: {key} {teacher[key]} vs the student's {student.get(key)} "
                               "(hidden-state distillation pairs layer i with layer i)")


def check_dictionaries(teacher: Any, student: Any, side: str, folder: str | Path) -> None:
    """The same symbols in the same order (fairseq `Dictionary`); else the first difference is named."""
    t, s = list(teacher.symbols), list(student.symbols)
    if t == s:
        return
    where = next((i for i, (a, b) in enumerate(zip(t, s, strict=False)) if a != b), min(len(t), len(s)))
    got = (t[where] if where < len(t) else "<end>", s[where] if where < len(s) else "<end>")
    raise TeacherError(f"distill.teacher={folder}: {side} dictionary differs ({len(t)} vs {len(s)} symbols; "
                       f"symbol {where}: teacher {got[0]!r}, student {got[1]!r})")


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode (no dropout) and no gradients: the teacher is a fixed function of its input."""
    model.eval()
    model.requires_grad_(False)
    return model
