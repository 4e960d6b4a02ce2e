"""OmegaConf resolvers of the configs in ``conf/``, registered when `shapeshifter.experiment` is imported.

``${shapeshifter.root:}`` is the project folder (`shapeshifter.paths.repo_root`), and
``${shapeshifter.under:ROOT,PATH}`` is PATH when absolute, else ROOT/PATH: ``conf/paths/default.yaml`` uses them
so that run folders and records land in the checkout whatever directory ``train.py`` is started from;
``${shapeshifter.plain_name:NAME}`` refuses a ``run.name``/``run.group`` that would leave its folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shapeshifter.paths import repo_root


def project_root() -> str:
    return str(repo_root())


def under(root: str, path: str) -> str:
    """``path`` if absolute, else ``root/path`` (how Path joins)."""
    return str(Path(str(root)) / str(path))


def name_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a file or folder name inside another folder (None: it can): empty, ``.`` or
    ``..``, or holding a path separator."""
    text = "" if value is None else str(value)
    if not text.strip():
        return "is empty"
    if text in (".", ".."):
        return f"is {text!r}"
    bad = next((sep for sep in ("/", "\\", "\0", os.sep, os.altsep) if sep and sep in text), None)
    return f"contains {bad!r}" if bad else None


def plain_name(value: Any) -> str:
    """``${shapeshifter.plain_name:${run.name}}`` in Hydra's run folder: the name itself, or an error before
    Hydra creates a folder outside ``paths.output_dir`` (``run.name=../../x``)."""
    problem = name_error("run.name / run.group", value)
    if problem:
        raise ValueError(problem)
    return str(value)


def name_error(key: str, value: Any) -> str | None:
    """The message refusing ``key=value`` as a run or group name (`name_problem`), or None when it is plain."""
    problem = name_problem(value)
    if not problem:
        return None
    return (f"{key} {value!r} {problem}: a name must be plain (no path separators, not '.' or '..', not empty); "
            "the folders are set by run.records and run.outputs")


RESOLVERS = {"shapeshifter.root": project_root, "shapeshifter.under": under, "shapeshifter.plain_name": plain_name}


def register() -> None:
    """Register the resolvers once (idempotent; a no-op without omegaconf, which only the pipeline needs)."""
    try:
        from omegaconf import OmegaConf
    except ImportError:
        return
    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


def config_root(cfg: Any) -> Path:
    """The project folder relative config paths are read from: ``paths.root_dir``, or for a config saved before
    the ``paths`` group, `repo_root`."""
    node = cfg.get("paths") if cfg is not None else None
    return Path(str(node.root_dir)) if node else repo_root()
