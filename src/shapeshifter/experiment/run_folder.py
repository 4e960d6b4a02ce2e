"""The one place that knows how a training run lays out its files on disk.

A run folder is the Hydra output folder of ``pipelines/train.py`` (``<outputs>/<group>/<name>``) with one
subfolder per config hash, so configurations that share a name (a sweep over a key the name does not show)
never share files, run one after another or in parallel::

    <run>/.hydra/config.yaml            the composed config (arch, overrides, shapeshift policy, data, eval, ckpt)
    <run>/.hydra/data.json              the identity of the data the run read ({"content": ...}), which the hash covers
    <run>/<hash>/checkpoints/           best-*.ckpt (best by ckpt.monitor), last.ckpt, epochNNNN.ckpt, CONFIG_HASH
    <run>/<hash>/csv, translations, wandb

Folders of the older layout (``<run>/checkpoints/`` directly) are still read, and adopted by `run_dir` when
their ``CONFIG_HASH`` names the config being run. The record is ``<run.records>/<run.group>/<run.name>-<config
hash>.json`` (`record_location`). Everything that opens a run folder (train, evaluate, export, translate,
``shapeshift.init_from``) goes through this module, so a change of layout is a change here only.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from shapeshifter.experiment.records import NO_DATA, config_hash
from shapeshifter.experiment.resolvers import name_problem
from shapeshifter.experiment.task import Task, build_task, task_node

log = logging.getLogger("shapeshifter")

CONFIG_FILE = Path(".hydra") / "config.yaml"
DATA_FILE = Path(".hydra") / "data.json"
CHECKPOINT_DIR = "checkpoints"
BEST_PATTERN = "best-*.ckpt"
LAST_NAME = "last.ckpt"
RUN_FILES = (CHECKPOINT_DIR, "csv", "translations", "wandb")  # what a run writes into its folder


def run_dir(job_dir: Path, config_hash: str) -> Path:
    """The folder of ``config_hash`` under Hydra's job folder, created (or adopted from the older layout)."""
    job_dir = Path(job_dir)
    work = job_dir / config_hash
    mark = job_dir / CHECKPOINT_DIR / "CONFIG_HASH"
    if not work.exists() and mark.is_file() and mark.read_text().strip() == config_hash:
        work.mkdir(parents=True)
        for name in RUN_FILES:
            if (job_dir / name).exists():
                shutil.move(str(job_dir / name), str(work / name))
        log.info("adopted the run files of %s in %s into %s", config_hash, job_dir, work)
    work.mkdir(parents=True, exist_ok=True)
    return work


def checkpoint_dir(job_dir: Path, config_hash: str) -> Path:
    """The checkpoints folder of ``config_hash`` in a job folder (the older layout's when that is where they are)."""
    job_dir = Path(job_dir)
    current = job_dir / config_hash / CHECKPOINT_DIR
    return current if current.is_dir() or not (job_dir / CHECKPOINT_DIR).is_dir() else job_dir / CHECKPOINT_DIR


def validate_names(cfg: Any) -> None:
    """``run.name`` and ``run.group`` name a file and folders (the record, the run folder, the W&B group): one
    that is empty, ``.``/``..`` or holds a path separator would put them outside the records and outputs
    folders (``run.name=../../x``, ``run.name=/abs/path``), so it is refused before anything is written."""
    for key in ("name", "group"):
        value = cfg.run.get(key)
        if problem := name_problem(value):
            raise ValueError(f"run.{key}={value!r} {problem}: it names the record file and the run folder, so it must "
                             "be a plain name (no path separators, not '.' or '..', not empty); the folders are set "
                             "by run.records and run.outputs")


def record_location(cfg: Any, digest: str) -> Path:
    """Where the record of the run with config hash ``digest`` lives: ``<records>/<group>/<name>-<digest>.json``.
    ``<records>`` is ``paths.records_dir`` (``run.records`` under the project folder), or ``run.records`` itself
    for configs saved before the ``paths`` group. A name or group that would leave that folder is a ValueError
    (`validate_names`)."""
    validate_names(cfg)
    records = cfg.paths.records_dir if cfg.get("paths") else cfg.run.records
    return Path(records) / str(cfg.run.group) / f"{cfg.run.name}-{digest}.json"


def find_checkpoint(path: Path, pattern: str = BEST_PATTERN) -> Path:
    """A checkpoint file: ``path`` itself, or the one ``checkpoints/<pattern>`` of the run folder ``path`` (its
    evaluated weights), looking one level down for the config-hash folders of a job folder."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"no checkpoint or run folder at {path}")
    found = sorted(path.glob(f"{CHECKPOINT_DIR}/{pattern}")) or sorted(path.glob(f"*/{CHECKPOINT_DIR}/{pattern}"))
    if len(found) != 1:
        names = ", ".join(str(p.relative_to(path)) for p in found) or "none"
        raise FileNotFoundError(f"expected exactly one {CHECKPOINT_DIR}/{pattern} under {path}, found {names}")
    return found[0]


def is_run_folder(path: str | Path) -> bool:
    """Whether `path` looks like a training run's folder (it has the composed config)."""
    return (Path(path) / CONFIG_FILE).is_file()


@dataclass(frozen=True)
class RunFolder:
    """A located run: its config, checkpoint folder and (when found) its record."""

    path: Path
    config: Any  # omegaconf DictConfig
    checkpoints: Path
    record: dict[str, Any] | None
    record_file: Path | None
    config_hash: str | None = None
    data_content: str | None = None  # the identity of the data it read (`DATA_FILE`)

    @property
    def kind(self) -> str | None:
        """``data.kind`` of the run: ``translation`` or ``glue``."""
        return self.config.data.get("kind")

    @cached_property
    def task(self) -> Task:
        """The run's task (`task.build_task` of its saved config), which knows what a tool may do with it."""
        return build_task(self.config, self.data_content)

    def require_translation(self, tool: str) -> None:
        """ValueError unless this is a translation run: ``tool`` (export, translate) rebuilds a fairseq
        Transformer (`Task.require_translation`)."""
        if task_node(self.config) is None:
            raise ValueError(f"{self.path}: data.kind={self.kind!r}; {tool} works on translation runs only")
        self.task.require_translation(tool, self)

    def checkpoint(self, name: str | Path) -> Path:
        """A checkpoint given as a path, or as a file name inside this run's checkpoint folder; refused when its
        folder is marked with another config's hash (weights are never paired with another run's config)."""
        for candidate in (Path(name), self.checkpoints / Path(name).name):
            if candidate.is_file():
                self._check_owner(candidate)
                return candidate
        raise FileNotFoundError(f"checkpoint not found: {name} (nor in {self.checkpoints})")

    def _check_owner(self, checkpoint: Path) -> None:
        mark = checkpoint.parent / "CONFIG_HASH"
        owner = mark.read_text().strip() if mark.is_file() else None
        if owner and self.config_hash and owner != self.config_hash:
            raise ValueError(f"{checkpoint} belongs to config {owner}, but {self.path / CONFIG_FILE} hashes to "
                             f"{self.config_hash}: pass a checkpoint of this run")

    def best_or_last(self) -> Path:
        """best-*.ckpt (translation) or best.ckpt (GLUE), else last.ckpt: what `pipelines/evaluate.py` reads by
        default."""
        best = sorted(self.checkpoints.glob(BEST_PATTERN)) or sorted(self.checkpoints.glob("best.ckpt"))
        path = best[-1] if best else self.checkpoints / LAST_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no {BEST_PATTERN}, best.ckpt or {LAST_NAME} in {self.checkpoints}")
        return path

    def evaluated_weights(self) -> list[Path]:
        """The checkpoint(s) the run's test score was computed with: several means their average.

        The record names the file (looked up by name, so a moved run folder still resolves); without a record
        the rule of `TranslationTask.load_evaluated_weights` is applied to the config: the last
        ``ckpt.average_last`` epoch checkpoints when there are several, else the best one, else last.ckpt.
        """
        # torch: train.py, evaluate.py and reproduce.py read run folders without loading it
        from shapeshifter.experiment.checkpoints import epoch_checkpoints

        named = str((self.record or {}).get("evaluated_weights") or "")
        if named.endswith(".ckpt"):  # this folder's file of that name first: a copy never reads the original's
            own = self.checkpoints / Path(named).name
            return [self.checkpoint(own if own.is_file() else named)]
        average = int(self.config.ckpt.get("average_last") or 0)
        if average > 1 and len(epoch_checkpoints(self.checkpoints)) > 1:
            return epoch_checkpoints(self.checkpoints, average)
        return [self.best_or_last()]


def find_run(run_dir: str | Path) -> RunFolder:
    """Locate a run's config, checkpoints and record; FileNotFoundError / ValueError with one-line reasons.

    Refuses a checkpoint folder marked with another config's hash (`records.claim_checkpoint_dir`), so
    weights are never paired with the config of a different run.
    """
    from omegaconf import OmegaConf

    root = Path(run_dir)
    config_file = root / CONFIG_FILE
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} not found: pass the Hydra output folder of a pipelines/train.py run")
    config = OmegaConf.load(config_file)
    content = read_data_identity(root, config)
    expected = config_hash(OmegaConf.to_container(config, resolve=True), content)
    checkpoints = checkpoint_dir(root, expected)
    mark = checkpoints / "CONFIG_HASH"
    if mark.is_file() and mark.read_text().strip() != expected:
        raise ValueError(f"{mark} says {mark.read_text().strip()}, but {config_file} hashes to {expected}: "
                         "the checkpoints belong to another config (or the folder predates a change of what the hash "
                         "covers: see shapeshifter-migrate --help)")
    path = record_location(config, expected)
    try:
        record = json.loads(path.read_text()) if path.is_file() else None
    except json.JSONDecodeError as err:
        raise ValueError(f"run record {path} is not valid JSON: {err}") from None
    return RunFolder(root, config, checkpoints, record, path if record is not None else None, expected,
                     None if content is NO_DATA else content)


def read_data_identity(root: Path, config: Any) -> str | None:
    """The data identity a run folder was hashed with: its `DATA_FILE`; a folder saved before that file existed
    holds it in its config's ``data.content``, taken out of ``config`` here. `NO_DATA` when it has neither (a
    config that names no task)."""
    from omegaconf import open_dict

    data, data_file = config.get("data"), root / DATA_FILE
    if data is not None and "content" in data:
        with open_dict(config):
            content = data.pop("content")
        if not data_file.is_file():
            return content
    if data_file.is_file():
        try:
            return json.loads(data_file.read_text())["content"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{data_file}: not a data identity file ({{\"content\": ...}})") from None
    return NO_DATA if task_node(config) is None else None


def run_folder_of(path: str | Path) -> tuple[Path, Path | None]:
    """``(run folder, checkpoint)`` for a run folder (checkpoint None) or a checkpoint file inside one (the
    nearest parent holding the composed config)."""
    path = Path(path)
    if not path.is_file():
        return path, None
    for parent in path.resolve().parents:
        if is_run_folder(parent):
            return parent, path
    raise FileNotFoundError(f"{path} is not inside a run folder (no parent holds {CONFIG_FILE}): pass the run "
                            "folder and the file as --checkpoint")
