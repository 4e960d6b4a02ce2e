"""The ``distill`` config node, validated, and the kinds of distillation: plain Python, so that the tables and
benchmarks read the same defaults and kinds as the runs without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KINDS = ("word", "hidden", "attention", "sequence")
ONLINE_KINDS = ("word", "hidden", "attention")  # the teacher runs beside the student in every training step


class TeacherError(ValueError):
    """A teacher run that cannot teach this student; the message names the folder and what differs."""


@dataclass
class DistillSettings:
    """The ``distill`` config node, validated."""

    kinds: tuple[str, ...]
    teacher: str | None
    alpha: float = 0.5
    temperature: float = 2.0
    hidden_weight: float = 1.0
    attention_weight: float = 1.0  # only conf/distill/attention.yaml sets it: other configs keep their hash
    beam: int = 5
    with_references: bool = False

    @classmethod
    def from_config(cls, node: Any) -> DistillSettings:
        node = dict(node or {})
        kinds = tuple(node.pop("kinds", None) or ())
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"distill.kinds: unknown kind(s) {unknown}; known: {list(KINDS)}")
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"distill.kinds lists a kind twice: {list(kinds)}")
        known = set(cls.__dataclass_fields__) - {"kinds"}
        extra = sorted(set(node) - known)
        if extra:
            raise ValueError(f"distill.{extra[0]} is not a setting; known: {sorted(known)}")
        settings = cls(kinds=kinds, **node)
        settings.check()
        return settings

    def check(self) -> None:
        if not self.kinds:
            if self.teacher:
                raise ValueError(f"distill.teacher={self.teacher} is set but distill.kinds is empty (distill=none): "
                                 "choose distill=word, hidden, attention or sequence")
            return
        if not self.teacher:
            raise TeacherError(f"distill={'+'.join(self.kinds)} needs distill.teacher=<finished run folder>")
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ValueError(f"distill.alpha must be in [0, 1], got {self.alpha!r}")
        if not float(self.temperature) > 0:
            raise ValueError(f"distill.temperature must be > 0, got {self.temperature!r}")
        for name in ("hidden_weight", "attention_weight"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"distill.{name} must be > 0, got {getattr(self, name)!r}")
        if not isinstance(self.beam, int) or isinstance(self.beam, bool) or self.beam < 1:
            raise ValueError(f"distill.beam must be an integer >= 1, got {self.beam!r}")

    @property
    def online(self) -> bool:
        """Whether the teacher runs beside the student in every training step (word / hidden / attention)."""
        return bool(set(ONLINE_KINDS) & set(self.kinds))
