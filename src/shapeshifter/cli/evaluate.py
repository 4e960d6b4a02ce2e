"""Evaluate a trained run folder (or one checkpoint of it) without training: translation or GLUE.

    python pipelines/evaluate.py outputs/demo/sample_de_en-paper-s1                 # best (else last) ckpt
    python pipelines/evaluate.py RUN_DIR --checkpoint RUN_DIR/checkpoints/last.ckpt --split valid --beam 4
    python pipelines/evaluate.py RUN_DIR --average-last 5                           # fairseq-style averaging
    python pipelines/evaluate.py outputs/demo_glue/snli_sample-encoder_small-dense-s1 --split valid   # GLUE
    python pipelines/evaluate.py RUN_DIR/<config hash>/checkpoints/best.ckpt       # a checkpoint file
    python pipelines/evaluate.py DENSE_RUN --split valid --project embedding.rank=29 attention.rank=8 \
        ffn.rank=8 output.rank=8        # the dense weights projected onto a policy's factors, not trained

The run directory is the Hydra output folder of `pipelines/train.py` (it holds ``.hydra/config.yaml`` and
``checkpoints/``); the model is rebuilt from that config (arch, overrides, shapeshift policy; GLUE: the data,
which fixes the vocabulary) and must match the checkpoint exactly. A checkpoint file is found in its run folder,
a parent of it. Translation: beam search, sacreBLEU + tokenized BLEU, hypotheses on disk. GLUE: the task's
metrics on the validation or test split(s); by default the weights the run's own scores were computed with
(its record's ``evaluated_weights``, else best.ckpt, else last.ckpt). Results go to
``RUN_DIR/eval/<split>-<checkpoint>.json``. ``--project`` (translation, a dense run) fits a policy's factors to
the weights (Kronecker SVD, as ``shapeshift.init=project``) and evaluates that model before any training: what
projection alone keeps; results go to ``<split>-<checkpoint>-project-<policy hash>.json``. Checkpoints are
loaded with ``weights_only=True``: a missing, damaged or foreign file is one line on stderr and exit status 2
(``--debug``: the traceback).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from shapeshifter.cli.errors import one_line_errors
from shapeshifter.experiment.run_folder import find_run, run_folder_of
from shapeshifter.threads import add_threads_argument, apply_threads


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run folder, or a checkpoint file inside one")
    p.add_argument("--checkpoint", "--ckpt-path", type=Path, default=None,
                   help="default: best-*.ckpt (GLUE: the weights the run was scored with), else last.ckpt")
    p.add_argument("--average-last", type=int, default=0, help="translation: average the last N epoch checkpoints")
    p.add_argument("--split", default="test", choices=["test", "valid"])
    p.add_argument("--beam", type=int, default=None, help="translation only")
    p.add_argument("--max-tokens", type=int, default=None, help="translation only")
    p.add_argument("--project", nargs="+", default=None, metavar="TYPE.FIELD=VALUE",
                   help="translation, dense run: evaluate its weights projected onto this policy, untrained "
                        "(e.g. embedding.rank=29 attention.rank=8 ffn.rank=8 output.rank=8)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    add_threads_argument(p)
    return p


def locate(args: argparse.Namespace) -> Any:
    """The run folder of ``args.run_dir`` (a checkpoint file inside one becomes ``--checkpoint``)."""
    run_dir, ckpt = run_folder_of(args.run_dir)
    if ckpt is not None:
        if args.checkpoint is not None:
            raise ValueError(f"{args.run_dir} is a checkpoint file: pass it or --checkpoint, not both")
        args.checkpoint = ckpt
    return find_run(run_dir)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    apply_threads(args.threads)
    with one_line_errors("evaluate.py", args.debug, (FileNotFoundError, ValueError)):
        run = locate(args)
        result, label = run.task.evaluate_folder(run, args)  # missing / damaged / foreign checkpoint: one line
    out = run.path / "eval" / f"{args.split}-{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "files"}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
