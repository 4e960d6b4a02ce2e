"""Fixtures shared by every test folder."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def pipeline_script() -> Callable[[str], ModuleType]:
    """Load ``pipelines/<name>.py`` as a module (scripts are not a package), registered in ``sys.modules`` so that
    its dataclasses and pickles find it."""
    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, ROOT / "pipelines" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Tiny models run faster on one thread, and a shared CI machine is not oversubscribed (modules that train
    models use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``raw/``, a 240-line slice of the committed German-English sample (6 talks per split), one
    per test module: the tiny translation runs read it and write their work, records and run folders beside it."""
    from shapeshifter.translation.data.smoke import slice_iwslt_raw

    root = tmp_path_factory.mktemp("sample")
    slice_iwslt_raw(root / "raw", n_train_lines=240, n_segs=6)
    return root
