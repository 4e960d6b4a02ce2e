"""The model of a translation run folder: read with its config and data files (`read_run`), exported as a
self-contained folder (`export_run`), or loaded to translate (`load_translator`, which takes an export too).

This is the run-folder side of `shapeshifter.translation.export` and `shapeshifter.translation.translator`:
those know the export format and how to translate with a built model; reading a run folder (its config, record,
checkpoints and data cache) needs the run layout (`experiment.run_folder`) and the task's data node
(`translation.data_node`), so it lives here and they import neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from shapeshifter.experiment.checkpoints import average_checkpoints, load_checkpoint, model_state_dict
from shapeshifter.experiment.policy import policy_from_config
from shapeshifter.experiment.records import file_sha256
from shapeshifter.experiment.run_folder import RunFolder, find_run, is_run_folder
from shapeshifter.translation.data.recipe import data_bin_dir, subword_model_file
from shapeshifter.translation.data_node import data_config
from shapeshifter.translation.export import (
    LoadedModel,
    ModelSource,
    build_model,
    check_export_target,
    load_export,
    write_export,
)
from shapeshifter.translation.preprocess import TextSettings
from shapeshifter.translation.translator import Translator


def read_run(run_dir: str | Path, checkpoint: str | Path | None = None) -> ModelSource:
    """A run's config and weights (its evaluated ones unless `checkpoint` names others) and data files.

    The dictionaries and subword model come from the run's data cache (``data.work_dir``), which must
    still be there; an export is what makes the model independent of it.
    """
    run = find_run(run_dir)
    run.require_translation("export/translate")
    paths = [run.checkpoint(checkpoint)] if checkpoint else run.evaluated_weights()
    state = average_checkpoints(paths) if len(paths) > 1 else model_state_dict(load_checkpoint(paths[0]))
    dcfg = data_config(run.config)
    data_bin = data_bin_dir(dcfg)
    files = {"src_dict": data_bin / f"dict.{dcfg.src_lang}.txt", "tgt_dict": data_bin / f"dict.{dcfg.tgt_lang}.txt",
             "subword_model": subword_model_file(dcfg)}
    for path in files.values():
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the run's data cache (data.work_dir={dcfg.work_dir}) "
                                    "is needed; prepare the data again with the run's config")
    config = {"model": _model_section(run.config), "text": TextSettings.from_data_config(dcfg).to_dict(),
              "generation": {k: run.config.eval[k] for k in ("beam", "lenpen", "max_len_a", "max_len_b")}}
    return ModelSource(config, state, files, paths[0], _provenance(run, paths))


def _model_section(cfg: Any) -> dict[str, Any]:
    overrides = OmegaConf.to_container(cfg.arch.overrides, resolve=True) or {}
    return {"arch": str(cfg.arch.name), "overrides": overrides, "policy": policy_from_config(cfg.shapeshift)}


def _provenance(run: RunFolder, paths: list[Path]) -> dict[str, Any]:
    """Where the weights came from and what they scored: enough to trace an export back to its run."""
    record = run.record or {}
    test = (record.get("metrics") or {}).get("test") or {}
    return {"run_dir": str(run.path.resolve()), "config_hash": record.get("config_hash"),
            "checkpoints": [{"name": p.name, "sha256": file_sha256(p)} for p in paths],
            "test": {k: test[k] for k in ("tokenized_bleu", "sacrebleu", "sacrebleu_signature") if k in test}}


def export_run(run_dir: str | Path, out_dir: str | Path, checkpoint: str | Path | None = None,
               overwrite: bool = False) -> Path:
    """Write the run's model as a self-contained folder (`translation.export.write_export`); returns it. A folder
    that may not be written is refused before the run's weights are read."""
    check_export_target(Path(out_dir), overwrite)
    return write_export(read_run(run_dir, checkpoint), out_dir, overwrite)


def load_model(path: str | Path, checkpoint: str | Path | None = None) -> LoadedModel:
    """An export folder, or a run folder (its evaluated weights unless `checkpoint` names a file)."""
    if is_run_folder(path):
        return build_model(read_run(path, checkpoint))
    if checkpoint is not None:
        raise ValueError(f"{path}: a checkpoint can only be chosen for a run folder; an export holds one model")
    return load_export(path)


def load_translator(path: str | Path, checkpoint: str | Path | None = None, device: str = "cpu") -> Translator:
    """A `Translator` for an export folder or a run folder; errors name the file that is wrong."""
    return Translator(load_model(path, checkpoint), device=device)
