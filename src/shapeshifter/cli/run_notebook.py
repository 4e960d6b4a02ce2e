"""Execute a Jupytext notebook (``.py`` percent format) with nbclient and save the executed ``.ipynb``.

    python pipelines/run_notebook.py notebooks/results.py --out results/notebooks/results.ipynb \
        --env SHAPESHIFTER_RECORDS=/tmp/smoke/records --env SHAPESHIFTER_TABLES=/tmp/smoke/tables

A cell that raises fails the run (exit status 1) and the partly executed notebook is still written, so the
traceback can be read in it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from shapeshifter.paths import repo_root

ROOT = repo_root()


def run_notebook(source: Path, out: Path, env: dict[str, str], timeout: int = 600) -> None:
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(source)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    kernel_env = {**os.environ, **env}  # given to the kernel only; this process's environment is left alone
    kernel_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute(env=kernel_env)
    finally:
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="where the executed .ipynb goes")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="set in the kernel")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    bad = [e for e in args.env if "=" not in e]
    if bad:
        parser.error(f"--env takes KEY=VALUE, got {bad}")
    if not args.notebook.is_file():
        parser.error(f"no notebook at {args.notebook}")
    from nbclient.exceptions import CellExecutionError

    try:
        run_notebook(args.notebook, args.out, dict(e.split("=", 1) for e in args.env), args.timeout)
    except CellExecutionError as err:
        print(f"{args.notebook}: a cell failed (executed notebook with the traceback: {args.out})\n{err}",
              file=sys.stderr)
        return 1
    print(f"executed {args.notebook} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
