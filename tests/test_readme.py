"""The README's commands do not go stale: each one is run here, or checked here against what it names, or is one CI
itself runs (``make test`` and ``make smoke``: `.ci/run`).

* **Run**, at smoke scale (`test_the_quickstart_runs_end_to_end`): ``make demo``'s training as its smoke
  equivalent (``experiment=demo`` with ``+scale=smoke``, W&B offline), then the README's own export and translate
  commands on that run folder, the ``wandb sync`` path pattern, and training on your own files exactly as written.
  The README's run folder name must be the one ``experiment=demo`` writes (a renamed demo run broke the copied
  export command once).
* **Checked** (`test_every_readme_command_names_what_exists`), for every command in a ``bash`` block and every
  inline `` `make …` `` / `` `python pipelines/…` ``: a ``train.py`` command composes with its overrides (the first
  value of each sweep) and passes the checks a run makes before any work; another script exists and knows every
  ``--flag`` the command gives it (its ``--help``); a ``make`` target exists (``reproduce-table-N`` with N a table
  of the registry).

A command no rule recognises fails the test: a new kind of command needs a rule here.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import shapeshifter.experiment  # noqa: F401  (registers the config schemas that composing conf/ needs)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
INLINE = re.compile(r"^(make |python pipelines/|\.venv/bin/python pipelines/|eval \"\$\(python pipelines/)")
DEMO_EXPORT = re.compile(r"pipelines/export\.py (outputs/demo/\S+) models/de-en$")
# Overrides that only steer Hydra's launcher (not part of the composed job config) and placeholders of the prose.
LAUNCHER_ONLY = ("hydra.",)


def shell_commands(text: str) -> list[str]:
    """The commands of the ``bash`` blocks, one per line (continuations joined, trailing comments dropped)."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.split(r"\s+#\s", line)[0].strip()
            if command and not command.startswith("#"):
                out.append(command)
    return out


def inline_commands(text: str) -> list[str]:
    """Inline code spans of the prose that are commands (``make …``, ``python pipelines/…``)."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    spans = [span.replace("\\|", "/") for span in re.findall(r"`([^`\n]+)`", prose)]  # `smoke\|full` in tables
    return [span for span in spans if INLINE.match(span)]


def all_commands() -> list[tuple[str, str]]:
    return [(path.name, c) for path in DOCS for text in [path.read_text()]
            for c in shell_commands(text) + inline_commands(text)]


@functools.cache
def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.%-]+):", text, re.M))


@functools.cache
def table_ids() -> set[str]:
    from shapeshifter.reports.registry import REGISTRY

    return {name for spec in REGISTRY.values() for name in (spec.id, *spec.aliases)}


@functools.cache
def script_help(script: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "pipelines" / script), "--help"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, f"{script} --help: {done.stderr[-1500:]}"
    return done.stdout


def check_make(words: list[str]) -> None:
    target = words[1]
    if target.startswith("reproduce-table-"):
        assert "reproduce-table-%" in make_targets()
        assert target.removeprefix("reproduce-table-") in table_ids() | {"N"}, target
    else:
        assert target in make_targets(), f"make {target}: no such target in the Makefile"


def train_overrides(args: list[str]) -> list[str]:
    """The job config's overrides of a train.py command line: flags and launcher-only settings left out, each sweep
    (``a=1,2``) at its first value."""
    out = []
    for arg in args:
        if arg.startswith("-") or arg.startswith(LAUNCHER_ONLY) or arg.startswith("launcher="):
            continue
        key, _, value = arg.partition("=")
        if "," in value and not value.startswith("["):
            value = value.split(",")[0]
        out.append(f"{key}={value}")
    return out


def compose_train(args: list[str]):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=train_overrides(args))


def check_train(args: list[str]) -> None:
    """The config composes and resolves, and passes the checks a run makes before any work (the trainer's device
    aside: a GPU command is valid on a GPU machine)."""
    from shapeshifter.experiment.records import UNSET, without_unset
    from shapeshifter.experiment.task import validate_keys, validate_rank_axis, validate_schedule

    if "-sc" in args:  # tab completion: Hydra prints the shell function to eval
        done = subprocess.run([sys.executable, str(ROOT / "pipelines" / "train.py"), *args], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0 and "hydra_bash_completion" in done.stdout, done.stderr[-1500:]
        return
    cfg = compose_train(args)
    settings = without_unset(OmegaConf.to_container(cfg, resolve=True))  # unset schema fields: defaults apply
    assert UNSET not in str(settings), [key for key, node in settings.items() if UNSET in str(node)]
    validate_keys(cfg)
    validate_rank_axis(cfg)
    validate_schedule(cfg)


def check_script(script: str, args: list[str]) -> None:
    assert (ROOT / "pipelines" / script).is_file(), f"pipelines/{script} does not exist"
    flags = [a.split("=")[0] for a in args if a.startswith("--")]
    if script == "train.py":
        check_train(args)
    elif flags:
        text = script_help(script)
        for flag in flags:
            assert flag in text, f"pipelines/{script} has no {flag} (its --help)"


def check_command(command: str) -> None:
    if command.startswith("eval "):
        command = re.search(r"\$\((.*)\)", command).group(1)
    for part in command.split("|"):
        words = shlex.split(part.split(">")[0])
        if not words or words[0] == "echo":
            continue
        if words[0] == "make":
            check_make(words)
        elif words[0] == "wandb":
            assert words[1] == "sync"
        elif words[0].endswith("python") and words[1].startswith("pipelines/"):
            check_script(words[1].removeprefix("pipelines/"), words[2:])
        else:
            raise AssertionError(f"no rule checks this README command: {command!r} (add one to tests/test_readme.py)")


@pytest.mark.slow
def test_every_readme_command_names_what_exists() -> None:
    commands = all_commands()
    assert len(commands) > 30  # the extraction still finds them
    for where, command in commands:
        try:
            check_command(command)
        except Exception as err:
            raise AssertionError(f"{where}: {command}\n{type(err).__name__}: {err}") from err


def test_the_quickstart_is_at_the_top_and_names_the_demo_run_that_exists() -> None:
    text = README.read_text()
    top = "\n".join(text.splitlines()[:60])
    for needle in ("make demo", "make test", "pipelines/translate.py", "data=parallel_files"):
        assert needle in top, needle
    (export,) = {m.group(1) for c in shell_commands(text) if (m := DEMO_EXPORT.search(c))}
    cfg = compose_train(["experiment=demo", "shapeshift=study/o2_r8_emb29"])
    assert export == f"{cfg.run.outputs}/{cfg.run.group}/{cfg.run.name}"


def test_the_transformers_version_the_hf_tests_pass_with_is_the_installed_one() -> None:
    import transformers

    major_minor = ".".join(transformers.__version__.split(".")[:2])
    said = re.search(r"they pass with\s+transformers (\d+\.\d+)", README.read_text())
    assert said and said.group(1) == major_minor, f"README: {said and said.group(0)}; installed {major_minor}"


def run(args: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{shlex.join(args)}\n{done.stderr[-3000:]}"
    return done.stdout


def as_run(command: str, substitutions: dict[str, str]) -> tuple[list[str], str | None, str | None]:
    """A README command as ``(argv with this interpreter, stdin, stdout file)``, paths substituted."""
    for old, new in substitutions.items():
        command = command.replace(old, new)
    stdin = None
    if command.startswith("echo "):
        echoed, command = command.split("|", 1)
        stdin = shlex.split(echoed)[1] + "\n"
    command, _, out = command.partition(">")
    words = shlex.split(command)
    assert words[0].endswith("python"), command
    return [sys.executable, *words[1:]], stdin, out.strip() or None


@pytest.mark.slow
def test_the_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    """In a project folder of its own (``SHAPESHIFTER_ROOT``: the checkout's configs, scripts and committed sample),
    so that nothing lands in the checkout's records, outputs or data cache."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "conf").symlink_to(ROOT / "conf")
    (root / "pipelines").symlink_to(ROOT / "pipelines")
    (root / "data" / "sample").symlink_to(ROOT / "data" / "sample")
    env = {**os.environ, "SHAPESHIFTER_ROOT": str(root), "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    commands = shell_commands(README.read_text())

    # make demo, at smoke scale: its o2-r8-emb29 run, logging to W&B offline (beam 5 as the demo's, for --nbest 3)
    run([sys.executable, str(ROOT / "pipelines" / "train.py"), "experiment=demo", "shapeshift=study/o2_r8_emb29",
         "+scale=smoke", "eval.beam=5", "logger.wandb.enabled=true", "logger.wandb.mode=offline"], root, env)
    cfg = compose_train(["experiment=demo", "shapeshift=study/o2_r8_emb29", "+scale=smoke"])
    smoke_run = f"outputs/{cfg.run.group}/{cfg.run.name}"
    assert (root / smoke_run).is_dir()
    (readme_run,) = {m.group(1) for c in commands if (m := DEMO_EXPORT.search(c))}
    (sync,) = [c for c in commands if c.startswith("wandb sync ")]
    assert len(glob.glob(str(root / sync.split()[-1]))) == 1  # the pattern finds the offline run

    # the README's export and translate commands, as written, on that run
    (root / "talk.de").write_text("Das Haus ist klein.\nWo ist der Bahnhof?\n")
    seen = set()
    for command in commands:
        if "pipelines/export.py" in command or "pipelines/translate.py" in command:
            if command in seen:
                continue
            seen.add(command)
            argv, stdin, out = as_run(command, {readme_run: smoke_run})
            stdout = run(argv, root, env, stdin)
            if out:
                (root / out).write_text(stdout)
    assert (root / "models" / "de-en" / "manifest.json").is_file()
    assert len((root / "talk.en").read_text().splitlines()) == 2

    # training on your own files, exactly as written (corpus/train.de + .en in the current folder)
    words = ["rot", "blau", "grün", "gelb", "groß", "klein"]
    english = ["red", "blue", "green", "yellow", "big", "small"]
    (root / "corpus").mkdir()
    for split, lines in (("train", range(300)), ("valid", range(300, 320)), ("test", range(320, 340))):
        (root / "corpus" / f"{split}.de").write_text("".join(f"Das Haus {i} ist {words[i % 6]}.\n" for i in lines))
        (root / "corpus" / f"{split}.en").write_text("".join(f"The house {i} is {english[i % 6]}.\n" for i in lines))
    own = [c for c in commands if c.startswith(".venv/bin/python pipelines/train.py +scale=smoke data=parallel_files")]
    assert len(own) == 2  # train only (the quickstart), train + valid + test (Your own data)
    for command in own:
        argv, _, _ = as_run(command, {})
        run(argv, root, env)
    records = [json.loads(p.read_text()) for p in (root / "results" / "records" / "default").glob("de_en-*.json")]
    assert len(records) == 2 and {r["status"] for r in records} == {"done"}
