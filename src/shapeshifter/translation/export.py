"""A trained translation model as one self-contained folder, and the checked way back into a model.

    write_export(source, "models/de-en")   # source: a ModelSource (translation.run_model.read_run of a run folder)
    bundle = load_export("models/de-en")   # no run folder, no data cache

A run folder is read by `translation.run_model` (``export_run``, ``pipelines/export.py``);
this module knows the format only.

Layout (format version 1)::

    manifest.json       {"format", "format_version", "files": {name: sha256}, "source": {run, checkpoints, test}}
    config.json         "model" (fairseq arch, overrides, shapeshift policy), "weights" (file, ties),
                        "text" (languages, tokenizer, lowercase, BPE kind), "generation" (the run's beam
                        settings), "files" (role -> file name)
    model.safetensors   every tensor once: a tied name (the output projection that shares the embedding's
                        factors) is left out and listed in config.json "weights.ties" as alias -> stored name
    dict.<src>.txt, dict.<tgt>.txt   fairseq dictionaries
    bpe.codes | spm.model            the subword model

Loading checks every file against the manifest before reading any of them, then the weights against the
model the config builds; each refusal is an `ExportError` whose one-line message names the file.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from shapeshifter.experiment.checkpoints import load_state
from shapeshifter.experiment.data_identity import file_digest as file_sha256
from shapeshifter.translation.fairseq_model import build_transformer
from shapeshifter.translation.preprocess import TextSettings

FORMAT = "shapeshifter-translation-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
ROLES = ("src_dict", "tgt_dict", "subword_model")
REQUIRED_KEYS = [("model", "arch"), ("model", "overrides"), ("model", "policy"), ("weights", "file"),
                 ("weights", "ties"), ("generation", "beam"), ("generation", "lenpen"), ("generation", "max_len_a"),
                 ("generation", "max_len_b")] + [("files", role) for role in ROLES]


class ExportError(ValueError):
    """An exported model folder that cannot be used as it is; the message names the offending file."""


@dataclass
class ModelSource:
    """What a model is made of, read from a run folder or an export, before the model is built."""

    config: dict[str, Any]  # the sections "model", "text", "generation" of config.json
    state: dict[str, Tensor]
    files: dict[str, Path]  # role (ROLES) -> file
    weights_file: Path  # named in errors about the weights
    source: dict[str, Any]


@dataclass
class LoadedModel:
    """A built model in eval mode with everything needed to translate raw text with it."""

    model: nn.Module
    src_dict: Any
    tgt_dict: Any
    text: TextSettings
    subword_model: Path
    generation: dict[str, Any]
    source: dict[str, Any]


# ----------------------------------------------------------------------------------------------- build
def tied_names(model: nn.Module) -> dict[str, str]:
    """alias -> first name, for state-dict entries that are the same tensor (tied weights)."""
    first: dict[int, str] = {}
    ties = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in first:
            ties[name] = first[id(tensor)]
        else:
            first[id(tensor)] = name
    return ties


def build_model(source: ModelSource) -> LoadedModel:
    """Build the configured (shapeshifted) Transformer and load the weights strictly, in eval mode."""
    from fairseq.data import Dictionary

    spec = source.config["model"]
    src_dict, tgt_dict = (Dictionary.load(str(source.files[role])) for role in ("src_dict", "tgt_dict"))
    model, _ = build_transformer(spec["arch"], src_dict, tgt_dict, spec["overrides"], spec["policy"])
    load_state(model, source.state, source.weights_file)
    model.eval()
    return LoadedModel(model, src_dict, tgt_dict, TextSettings.from_dict(source.config["text"]),
                       source.files["subword_model"], dict(source.config["generation"]), source.source)


# ---------------------------------------------------------------------------------------------- export
def check_export_target(out: Path, overwrite: bool = False) -> None:
    """An export may go to a new folder, or replace an earlier export when ``overwrite``; never another folder."""
    if out.exists() and not (out / MANIFEST).is_file():
        raise FileExistsError(f"{out} exists and is not an export (no {MANIFEST}): choose a new folder")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists and holds an earlier export: choose a new folder, or replace it with "
                              "--overwrite (overwrite=True)")


def write_export(source: ModelSource, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the model of ``source`` as a self-contained folder; returns it.

    The model is built and loaded first, so weights that do not fit their config are never exported.
    The folder is written beside `out_dir` and renamed into place: a failed export leaves nothing half done.
    `overwrite` replaces an existing export (a folder with a manifest), never any other folder.
    """
    out = Path(out_dir)
    check_export_target(out, overwrite)
    loaded = build_model(source)
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_folder(tmp, source, loaded)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _write_folder(folder: Path, source: ModelSource, loaded: LoadedModel) -> None:
    from safetensors.torch import save

    ties = tied_names(loaded.model)
    state = {k: v.detach().contiguous() for k, v in loaded.model.state_dict().items() if k not in ties}
    (folder / WEIGHTS).write_bytes(save(state, metadata={"format": "pt"}))  # save_file would make it owner-only
    names = {role: _file_name(role, source.files[role]) for role in ROLES}
    for role, name in names.items():
        shutil.copyfile(source.files[role], folder / name)
    config = {**source.config, "weights": {"file": WEIGHTS, "ties": ties}, "files": names}
    _write_json(folder / CONFIG, config)
    files = {p.name: file_sha256(p) for p in sorted(folder.iterdir())}
    _write_json(folder / MANIFEST, {"format": FORMAT, "format_version": FORMAT_VERSION, "files": files,
                                    "source": source.source})


def _file_name(role: str, path: Path) -> str:
    """Dictionaries keep their fairseq names (dict.de.txt); the subword model keeps the recipe's name."""
    return path.name if role != "subword_model" else ("spm.model" if path.suffix == ".model" else "bpe.codes")


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------ load
def load_export(folder: str | Path) -> LoadedModel:
    """Verify an exported folder (manifest, checksums, format version, weights vs config) and build it."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    for name, digest in manifest["files"].items():
        _verify_file(folder / name, digest)
    config = _read_json(folder / CONFIG)
    _check_config(config, manifest)
    files = {role: folder / config["files"][role] for role in ROLES}
    weights = folder / config["weights"]["file"]
    source = ModelSource(config, _read_weights(weights, config["weights"]["ties"]), files, weights,
                         manifest.get("source") or {})
    try:
        loaded = build_model(source)
    except ValueError as err:
        raise ExportError(_one_line(err)) from None
    _check_ties(loaded.model, config["weights"]["ties"], weights)
    return loaded


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ExportError(f"{path} not found: not a complete exported model (pipelines/export.py writes it)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExportError(f"{path} is not valid JSON ({_one_line(err)})") from None


def _read_manifest(folder: Path) -> dict[str, Any]:
    if not folder.is_dir():
        raise ExportError(f"{folder} is not a folder: pass an exported model or a run folder")
    path = folder / MANIFEST
    manifest = _read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ExportError(f"{path}: format version {manifest.get('format_version')!r} is not supported "
                          f"(this code reads version {FORMAT_VERSION})")
    if not isinstance(manifest.get("files"), dict) or not manifest["files"]:
        raise ExportError(f"{path}: no file list")
    return manifest


def _verify_file(path: Path, digest: str) -> None:
    if not path.is_file():
        raise ExportError(f"{path} is missing (listed in {MANIFEST})")
    if file_sha256(path) != digest:
        raise ExportError(f"{path} does not match its sha256 in {MANIFEST}: the file was changed or damaged")


def _check_config(config: Any, manifest: dict[str, Any]) -> None:
    """The sections have their keys, and every file the config names is one the manifest vouches for."""
    if not isinstance(config, dict):
        raise ExportError(f"{CONFIG}: malformed (not a JSON object)")
    missing = [f"{s}.{k}" for s, k in REQUIRED_KEYS if not isinstance(config.get(s), dict) or k not in config[s]]
    if missing or not isinstance(config.get("text"), dict):
        raise ExportError(f"{CONFIG}: malformed (missing {', '.join(missing) or 'text'})")
    try:
        TextSettings.from_dict(config["text"])
    except (TypeError, ValueError) as err:
        raise ExportError(f"{CONFIG}: malformed text section ({_one_line(err)})") from None
    ties, overrides = config["weights"]["ties"], config["model"]["overrides"]
    if not (isinstance(ties, dict) and all(isinstance(v, str) for v in ties.values()) and isinstance(overrides, dict)):
        raise ExportError(f"{CONFIG}: malformed (weights.ties must map names to names, model.overrides be an object)")
    for name in [CONFIG, config["weights"]["file"], *(config["files"][role] for role in ROLES)]:
        if name not in manifest["files"]:
            raise ExportError(f"{name} is not listed in {MANIFEST}, so it cannot be verified")


def _read_weights(path: Path, ties: dict[str, str]) -> dict[str, Tensor]:
    """The stored tensors plus every tied alias pointing at its stored tensor."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ExportError(f"{path}: unreadable safetensors ({_one_line(err)})") from None
    for alias, name in ties.items():
        if name not in state or alias in state:
            raise ExportError(f"{path}: tie {alias} -> {name} does not fit the stored tensors")
        state[alias] = state[name]
    return state


def _check_ties(model: nn.Module, ties: dict[str, str], path: Path) -> None:
    """A recorded tie the model lacks (or the reverse) means the weights were made for another model."""
    expected = tied_names(model)
    if expected != ties:
        raise ExportError(f"{path}: tied weights {ties} differ from the model's {expected}")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
