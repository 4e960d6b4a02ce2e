"""OmegaConf resolvers of the configs in ``conf/``, registered when `shapeshifter.app` is imported.

``${shapeshifter.root:}`` is the project folder (`shapeshifter.paths.repo_root`), and
``${shapeshifter.under:ROOT,PATH}`` is PATH when absolute, else ROOT/PATH: ``conf/paths/default.yaml`` uses them
so that run folders and records land in the checkout whatever directory ``train.py`` is started from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def project_root() -> str:
    from shapeshifter.paths import repo_root

    return str(repo_root())


def under(root: str, path: str) -> str:
    """``path`` if absolute, else ``root/path`` (how Path joins)."""
    return str(Path(str(root)) / str(path))


RESOLVERS = {"shapeshifter.root": project_root, "shapeshifter.under": under}


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
    from shapeshifter.paths import repo_root

    node = cfg.get("paths") if cfg is not None else None
    return Path(str(node.root_dir)) if node else repo_root()
