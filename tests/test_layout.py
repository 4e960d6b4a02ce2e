"""The package's import graph: no cycles between modules or between packages, the factorized-layer core imports
no framework, the experiment layer and distillation know no task, and imports of our own modules sit at module top
except a few named ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "shapeshifter"
FRAMEWORKS = ("fairseq", "lightning", "pytorch_lightning", "hydra", "omegaconf", "wandb", "transformers", "datasets")
CORE = ("shapeshifter.nn", "shapeshifter.layer_types", "shapeshifter.surgery", "shapeshifter.params")
TASKS = ("shapeshifter.translation", "shapeshifter.glue")
TASK_FREE = ("shapeshifter.experiment", "shapeshifter.distill")  # the run skeleton and distillation serve every task
MAX_FUNCTION_IMPORTS = 13  # imports of our modules inside functions (a ratchet: lower it as they move to the top)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def imports(path: Path) -> tuple[set[str], set[str], int]:
    """(modules imported at module level, all modules imported, our modules imported inside functions)."""
    tree = ast.parse(path.read_text())
    module, is_package = module_name(path), path.name == "__init__.py"
    top: set[str] = set()
    every: set[str] = set()
    inner = 0
    top_level = {id(n) for n in tree.body}
    guarded = [s for s in tree.body if isinstance(s, ast.If) and "TYPE_CHECKING" in ast.unparse(s.test)]
    type_checking = {id(n) for stmt in guarded for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node, module, is_package)
            names = [f"{target}.{alias.name}" for alias in node.names] + [target]
        else:
            continue
        every.update(names)
        if id(node) in type_checking:
            continue
        if id(node) in top_level:
            top.update(names)
        elif any(n.startswith(PACKAGE) for n in names):
            inner += 1
    return top, every, inner


def graph() -> dict[str, set[str]]:
    """Module -> our modules it imports at module level (``from pkg import mod`` counted as ``pkg.mod``)."""
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    edges = {}
    for name, path in files.items():
        top, _, _ = imports(path)
        edges[name] = {n for n in top if n in files and n != name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_module_level_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def unit(module: str) -> str:
    """The package (or top-level module) a module belongs to: ``shapeshifter.translation.data.cache`` ->
    ``shapeshifter.translation``."""
    return ".".join(module.split(".")[:2])


def test_packages_import_each_other_in_one_direction() -> None:
    """A task imports the experiment layer and distillation, never the other way round, so each package can be
    read knowing only the ones below it."""
    edges: dict[str, set[str]] = {}
    for module, targets in graph().items():
        edges.setdefault(unit(module), set()).update(unit(t) for t in targets if unit(t) != unit(module))
    cycle = find_cycle(edges)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("path", sorted(p for p in SRC.rglob("*.py") if module_name(p).startswith(TASK_FREE)),
                         ids=lambda p: module_name(p))
def test_the_experiment_layer_and_distillation_import_no_task(path: Path) -> None:
    _, every, _ = imports(path)
    tasks = sorted(n for n in every if n.startswith(TASKS))
    assert not tasks, f"{module_name(path)} imports {tasks} (a task's code belongs beside its engine)"


@pytest.mark.parametrize("path", sorted(p for p in SRC.rglob("*.py") if module_name(p).startswith(CORE)),
                         ids=lambda p: module_name(p))
def test_the_factorized_layer_core_imports_no_framework_and_no_experiment_code(path: Path) -> None:
    _, every, _ = imports(path)
    framework = sorted(n for n in every if n.split(".")[0] in FRAMEWORKS)
    upward = sorted(n for n in every if n.startswith(PACKAGE) and not n.startswith(CORE) and n != PACKAGE)
    assert not framework, f"{module_name(path)} imports {framework}"
    assert not upward, f"{module_name(path)} imports {upward}"


def test_imports_of_our_modules_inside_functions_stay_few() -> None:
    counts = {module_name(p): imports(p)[2] for p in SRC.rglob("*.py")}
    total = sum(counts.values())
    worst = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    assert total <= MAX_FUNCTION_IMPORTS, f"{total} imports inside functions; most in {worst}"


def test_each_import_of_our_modules_inside_a_function_says_why() -> None:
    """An import of our modules left inside a function follows a comment (the cycle it avoids, or the heavy
    dependency an entry point must not load at import); one comment may head a group of such imports."""
    silent = []
    for path in SRC.rglob("*.py"):
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        module, is_package = module_name(path), path.name == "__init__.py"
        outside = {id(n) for n in tree.body}
        outside |= {id(n) for s in tree.body if isinstance(s, ast.If) and "TYPE_CHECKING" in ast.unparse(s.test)
                    for n in ast.walk(s)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in outside:
                continue
            is_from = isinstance(node, ast.ImportFrom)
            names = [resolve(node, module, is_package)] if is_from else [a.name for a in node.names]
            if not any(n.startswith(PACKAGE) for n in names):
                continue
            above = node.lineno - 2
            while above >= 0 and lines[above].strip().startswith(("from shapeshifter", "import shapeshifter")):
                above -= 1
            if above < 0 or not lines[above].strip().startswith("#"):
                silent.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not silent, f"imports inside functions without a reason above them: {silent}"


def test_the_readme_lists_every_package_and_top_level_module_once() -> None:
    """The README's "How the code is laid out" block names each package (``name/``) and top-level module of
    src/shapeshifter once, and nothing that is not there."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## How the code is laid out", 1)[1].split("```", 2)[1]
    listed = [line.split()[0] for line in block.strip().splitlines()]
    package = SRC / PACKAGE
    tree = sorted([p.name + "/" for p in package.iterdir() if (p / "__init__.py").is_file()]
                  + [p.name for p in package.glob("*.py") if p.name != "__init__.py"])
    assert sorted(listed) == tree and len(listed) == len(set(listed))


@pytest.mark.parametrize("path", sorted((SRC / PACKAGE / "cli").glob("*.py")), ids=lambda p: p.stem)
def test_every_entry_point_runs_as_a_module(path: Path) -> None:
    """``python -m shapeshifter.cli.<name>`` runs the same ``main`` as its console script and pipelines/ wrapper."""
    tree = ast.parse(path.read_text())
    if not any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
        pytest.skip("no entry point")
    guards = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "__name__ == '__main__'"]
    assert guards and "main(" in ast.unparse(guards[-1]), f"{path.name} has no `if __name__ == '__main__'` guard"
