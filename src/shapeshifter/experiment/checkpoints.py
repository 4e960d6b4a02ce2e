"""Checkpoint helpers: Lightning `ModelCheckpoint` setup, resume, loading and fairseq-style averaging.

Loading policy (torch >= 2.6 defaults `torch.load` to `weights_only=True`): we always load with
`weights_only=True`, passed explicitly: ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (set by users to load old
checkpoints) only overrides calls that leave the argument out (torch/serialization.py), so it cannot turn on full
unpickling here. Our Lightning checkpoints contain only tensors and plain containers/values (the model and
dictionaries are excluded from the hyperparameters), so the safe unpickler suffices and no code from a
checkpoint file is ever executed. A file that needs more than that is rejected with an error naming it instead
of falling back to full unpickling. Before unpickling, every member of the archive must pass its zip CRC check
(`readable_checkpoint`): flipped bytes inside a tensor would otherwise load as silently changed weights.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from shapeshifter import atomic

if TYPE_CHECKING:  # Lightning is imported by the callbacks only: loading weights to translate does not need it
    from lightning.pytorch.callbacks import ModelCheckpoint

MODEL_PREFIX = "model."  # TranslationModule stores the fairseq model as `self.model`


def checkpoint_callbacks(
    dirpath: str | Path,
    monitor: str = "valid_bleu",
    save_top_k: int = 1,
    every_n_epochs: int = 1,
    keep_last_epochs: int = 0,
    save_last: bool = True,
) -> list[ModelCheckpoint]:
    """Best-by-`monitor` checkpoints plus `last.ckpt`; optionally the last `keep_last_epochs` epochs too.

    `valid_bleu` is maximised, any loss minimised. `every_n_epochs` must match the module's
    `bleu_every_n_epochs` when monitoring `valid_bleu` (it is not logged in the other epochs).
    The per-epoch files (`epoch0007.ckpt`, ...) are what `average_checkpoints` consumes.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint

    mode = "max" if "bleu" in monitor else "min"
    best = ModelCheckpoint(
        dirpath=dirpath,
        filename=f"best-epoch{{epoch:04d}}-{monitor}{{{monitor}:.2f}}",
        monitor=monitor,
        mode=mode,
        save_top_k=save_top_k,
        every_n_epochs=every_n_epochs,
        save_last=save_last,
        auto_insert_metric_name=False,
    )
    callbacks = [best]
    if keep_last_epochs > 0:
        # Monitoring the step with mode="max" keeps exactly the most recent `keep_last_epochs` files.
        callbacks.append(
            ModelCheckpoint(
                dirpath=dirpath,
                filename="epoch{epoch:04d}",
                monitor="step",
                mode="max",
                save_top_k=keep_last_epochs,
                every_n_epochs=1,
                auto_insert_metric_name=False,
            )
        )
    return callbacks


def last_checkpoint(dirpath: str | Path) -> Path | None:
    """`dirpath/last.ckpt` if it exists (pass it as `trainer.fit(..., ckpt_path=...)` to resume)."""
    path = Path(dirpath) / "last.ckpt"
    return path if path.is_file() else None


def epoch_checkpoints(dirpath: str | Path, n: int | None = None) -> list[Path]:
    """Per-epoch checkpoints written by `checkpoint_callbacks(keep_last_epochs=...)`, oldest first."""
    paths = sorted(Path(dirpath).glob("epoch[0-9][0-9][0-9][0-9].ckpt"))
    return paths if n is None else paths[-n:]


def readable_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` is a whole ``torch.save`` archive (a zip file whose members all pass their CRC check):
    what a truncated, overwritten or bit-flipped file fails, checked without unpickling anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError):
        return False


def load_checkpoint(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint dict (on CPU by default) after checking the archive's CRCs (`readable_checkpoint`),
    with the safe ``weights_only=True`` unpickler whatever the environment says; clear errors otherwise.
    ``mmap``: map the tensors instead of reading them (a cheap check that the file unpickles)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not readable_checkpoint(path):
        raise ValueError(f"{path} is not a readable checkpoint: it is damaged (not a whole torch.save archive: "
                         "truncated, or bytes changed so that a zip CRC check fails); nothing was loaded from it")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError or EOFError depending on damage
        raise ValueError(f"{path} is not a readable checkpoint ({load_failure(err)}; read with weights_only=True, "
                         "which refuses anything but tensors and plain containers)") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a checkpoint with a 'state_dict' entry")
    return checkpoint


def verify_checkpoint(path: str | Path) -> None:
    """ValueError naming ``path`` unless it passes `load_checkpoint`'s checks; its tensors are mapped, not read."""
    load_checkpoint(path, mmap=True)


def save_atomically(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` through `atomic.replacing`, synced before the rename: a kill or a full disk leaves the
    previous file (or none), never a torn one."""
    with atomic.replacing(path) as tmp, open(tmp, "wb") as fh:
        torch.save(checkpoint, fh)
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def load_failure(err: BaseException) -> str:
    """One line saying why ``torch.load`` failed: its own message spans many lines, mostly on how to unpickle
    anyway, with the reason (``WeightsUnpickler error: ...``) near the end."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    _, found, reason = text.partition("WeightsUnpickler error:")
    if not found:
        reason = (text.strip().splitlines() or [""])[0]
    reason = " ".join(reason.split("Check the documentation")[0].split()).split(". ")[0].rstrip(".")
    return f"{type(err).__name__}: {reason[:300] or 'the file ends early'}"


def model_state_dict(checkpoint: dict[str, Any]) -> dict[str, Tensor]:
    """The fairseq model's parameters/buffers from a TranslationModule checkpoint (prefix stripped)."""
    state = checkpoint["state_dict"]
    return {k[len(MODEL_PREFIX) :]: v for k, v in state.items() if k.startswith(MODEL_PREFIX)}


def average_checkpoints(paths: list[str | Path]) -> dict[str, Tensor]:
    """Parameter-wise mean of the model state dicts of `paths` (as fairseq's average_checkpoints.py)."""
    if not paths:
        raise ValueError("average_checkpoints needs at least one checkpoint")
    total: dict[str, Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for path in paths:
        state = model_state_dict(load_checkpoint(path))
        if total and set(state) != set(total):
            diff = sorted(set(state) ^ set(total))
            raise ValueError(f"{path} has different parameters than {paths[0]}: {', '.join(diff[:5])}")
        for key, value in state.items():
            if key not in total:
                dtypes[key] = value.dtype
                total[key] = value.double() if value.is_floating_point() else value.clone()
            elif value.shape != total[key].shape:
                shapes = f"{tuple(value.shape)}, expected {tuple(total[key].shape)}"
                raise ValueError(f"{path}: {key} has shape {shapes}")
            elif value.is_floating_point():
                total[key] += value.double()
    # Integer buffers (none in a Transformer) are taken from the first checkpoint, as fairseq does.
    return {k: (v / len(paths)).to(dtypes[k]) if v.is_floating_point() else v for k, v in total.items()}


def save_model_weights(state: dict[str, Tensor], path: str | Path) -> Path:
    """Write a model-only checkpoint (e.g. averaged weights) that `load_model_weights` reads back."""
    return save_atomically({"state_dict": {MODEL_PREFIX + k: v for k, v in state.items()}}, path)


def load_model_weights(model: nn.Module, path: str | Path) -> None:
    """Load a checkpoint's model weights into `model` (strict); mismatches are reported with the file name."""
    load_state(model, model_state_dict(load_checkpoint(path)), path)


def load_state(model: nn.Module, state: dict[str, Tensor], origin: str | Path) -> None:
    """Strict `load_state_dict` whose error names `origin` (the file the weights came from) and what differs."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in state.keys() & expected.keys() if state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        for k in sorted(wrong)[:5]:
            parts.append(f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}")
        raise ValueError(f"{origin} does not match the model: " + "; ".join(parts))
    model.load_state_dict(state)
