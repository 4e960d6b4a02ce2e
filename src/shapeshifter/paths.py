"""Where the project folder is (the one holding ``conf/``, ``data/`` and ``results/``).

Entry points and records need it to find configs, the committed samples and the git commit. It is, in order:
``SHAPESHIFTER_ROOT`` when set; the checkout this package is imported from (an editable install or ``src/`` on
the path); the current directory or one of its parents when it holds ``conf/train.yaml``. A regular install
outside a checkout has no project folder; `repo_root` then says how to point at one.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "SHAPESHIFTER_ROOT"


def _is_root(path: Path) -> bool:
    return (path / "conf" / "train.yaml").is_file()


def repo_root() -> Path:
    """The project folder (module docstring); FileNotFoundError when none is found."""
    env = os.environ.get(ROOT_ENV)
    if env:
        if not _is_root(Path(env)):
            raise FileNotFoundError(f"{ROOT_ENV}={env} has no conf/train.yaml")
        return Path(env)
    source = Path(__file__).resolve().parents[2]  # <root>/src/shapeshifter/paths.py in a checkout
    for candidate in (source, Path.cwd(), *Path.cwd().parents):
        if _is_root(candidate):
            return candidate
    raise FileNotFoundError(f"no project folder (conf/train.yaml) above {Path.cwd()}; run from a checkout or set "
                            f"{ROOT_ENV}")


def anchored(path: str | Path, root: str | Path | None = None) -> Path:
    """Where a relative path from a config (data files, caches, ``shapeshift.init_from``) is: as given when it is
    absolute, exists from the current directory, or the current directory is the project folder; otherwise under
    the project folder ``root`` (default: `repo_root`). Configs keep such paths relative because they enter the
    config hash; this makes a run started from another directory read the same files."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    base = Path(root) if root is not None else repo_root()
    return p if Path.cwd().resolve() == base.resolve() else base / p
