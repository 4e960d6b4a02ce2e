"""The teacher model's checks and freezing: its architecture fits the kinds asked for (hidden states, attention:
the same number of encoder and decoder layers), its dictionaries match the student's symbol by symbol
(`check_dictionaries`), and it is a fixed function (`freeze`). Every failure is one `TeacherError` naming what
differs. The run-folder checks (exists, finished, same task and data) are `find_teacher_run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from shapeshifter.distill.settings import DistillSettings, TeacherError
from shapeshifter.experiment.records import file_sha256
from shapeshifter.experiment.run_folder import find_run


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


def find_teacher_run(path: str | Path, kind: str, data_content: str | None) -> Any:
    """The teacher's `RunFolder` after the cheap checks (folder, finished, task, data); `TeacherError` otherwise."""
    folder = Path(path)
    if not folder.is_dir():
        raise TeacherError(f"distill.teacher={folder}: no such run folder (train the teacher first; where its record "
                           "is committed, as in a fresh checkout, training skips it: add run.records=<a scratch "
                           "folder> to its command)")
    try:
        run = find_run(folder)
    except (FileNotFoundError, ValueError) as err:
        raise TeacherError(f"distill.teacher={folder}: {err}") from None
    status = (run.record or {}).get("status")
    if status != "done":
        where = run.record_file or "its record (not found under the teacher's run.records)"
        raise TeacherError(f"distill.teacher={folder} is not a finished run ({where}: status={status!r}); "
                           "let it finish (it resumes) or pass another run")
    if run.kind != kind:
        raise TeacherError(f"distill.teacher={folder} is a {run.kind} run; the student is a {kind} run")
    if data_content is not None and run.data_content != data_content:
        raise TeacherError(f"distill.teacher={folder} was trained on other data (data identity {run.data_content} "
                           f"vs the student's {data_content}; data {run.config.data.get('name')})")
    return run


def teacher_summary(run: Any, weights: list[Path], settings: DistillSettings) -> dict[str, Any]:
    """What the student's record says about its teacher and the distillation settings."""
    return {"kinds": list(settings.kinds), "alpha": settings.alpha, "temperature": settings.temperature,
            "hidden_weight": settings.hidden_weight, "beam": settings.beam,
            "with_references": settings.with_references,
            "teacher": {"run_dir": str(run.path), "config_hash": run.config_hash,
                        "name": str(run.config.run.name),
                        "record": str(run.record_file) if run.record_file else None,
                        "weights": [{"name": p.name, "sha256": file_sha256(p)} for p in weights]}}
