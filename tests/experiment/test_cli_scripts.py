"""Console scripts: every ``[project.scripts]`` entry imports and is callable, the pipelines/ scripts are thin
wrappers over `shapeshifter.cli`, ``shapeshifter-params`` counts and fails in one line, and the core modules
import nothing from the layers above them (experiment, cli, translation with its data, glue)."""

from __future__ import annotations

import ast
import importlib
import json
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "shapeshifter"
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
CORE = ["params.py", "surgery.py", "layer_types.py", "optim.py", "paths.py", "threads.py", "nn"]
UPPER = ("shapeshifter.experiment", "shapeshifter.cli", "shapeshifter.translation", "shapeshifter.glue")


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_console_script_resolves_to_a_function(name: str) -> None:
    module, _, attr = SCRIPTS[name].partition(":")
    assert callable(getattr(importlib.import_module(module), attr)), SCRIPTS[name]


def test_bench_and_params_are_console_scripts_with_thin_pipeline_wrappers() -> None:
    assert SCRIPTS["shapeshifter-bench"] == "shapeshifter.cli.bench:main"
    assert SCRIPTS["shapeshifter-params"] == "shapeshifter.cli.params:main"
    for script, module in (("bench_model.py", "shapeshifter.cli.bench"), ("params.py", "shapeshifter.cli.params")):
        tree = ast.parse((ROOT / "pipelines" / script).read_text())
        defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        imports = [n.module for n in tree.body if isinstance(n, ast.ImportFrom)]
        assert not defs and imports == [module], script


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-local imports included), relative ones resolved."""
    package = "shapeshifter." + ".".join(path.relative_to(SRC).parent.parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rstrip(".").rsplit(".", node.level - 1)[0] if node.level else ""
            out.add(f"{base}.{node.module}" if node.level and node.module else node.module or base)
    return out


@pytest.mark.parametrize("entry", CORE)
def test_core_modules_import_nothing_from_the_layers_above(entry: str) -> None:
    files = sorted((SRC / entry).rglob("*.py")) if (SRC / entry).is_dir() else [SRC / entry]
    for path in files:
        upward = sorted(m for m in _imports(path) if m.startswith(UPPER))
        assert not upward, f"{path.relative_to(ROOT)} imports {upward}"


def test_params_prints_counts_and_rejects_a_bad_policy_in_one_line(capsys) -> None:
    from shapeshifter.cli.params import main

    small = ["--src-vocab", "64", "--tgt-vocab", "48", "--set", "encoder_layers=1", "decoder_layers=1",
             "encoder_embed_dim=32", "decoder_embed_dim=32", "encoder_ffn_embed_dim=64", "decoder_ffn_embed_dim=64"]
    assert main([*small, "--policy", "attention.rank=1", "ffn.rank=1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shapeshifted"]["total"] < out["dense"]["total"] and out["policy"]["attention"]["rank"] == 1
    assert main([*small, "--policy", "embedding.rank=2"]) == 0
    assert "compression" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([*small, "--set", "encoder_layers"])
    assert str(exit_info.value.code) == "shapeshifter-params: --set takes KEY=VALUE, got 'encoder_layers'"
