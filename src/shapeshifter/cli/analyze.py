"""Analyses of a trained model's weights, each written as a record beside the quality study's why-records.

    python pipelines/analyze_embeddings.py outputs/quality/sample_de_en-d128-dense-s1 \\
        --data-bin data/cache/sample_de_en/data-bin      # embedding tables: Kronecker, shuffled, low-rank
    python pipelines/analyze_weights.py outputs/quality/sample_de_en-d128-dense-s1   # every matrix vs noise

Each takes a run folder (its ``checkpoints/best-*.ckpt``) or a ``.ckpt`` file, writes
``<out>/<kind>-<hash>.json`` (default out: ``results/records/quality_why``) and prints the record as a table.
A missing or unreadable checkpoint is one line on stderr and exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shapeshifter.experiment.records import write_record
from shapeshifter.experiment.run_folder import find_checkpoint
from shapeshifter.threads import add_threads_argument, apply_threads

Analysis = Callable[[Path], dict[str, Any]]


def analysis_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every analysis takes: the run, where the record goes, threads."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder (its checkpoints/best-*.ckpt) or a .ckpt file")
    parser.add_argument("--out", type=Path, default=Path("results/records/quality_why"))
    add_threads_argument(parser)
    return parser


def reduction(text: str) -> float:
    """A ``--budgets`` value: a parameter reduction, so at least 1."""
    value = float(text)
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"budgets are reductions (>= 1), got {text}")
    return value


def budgets_argument(parser: argparse.ArgumentParser, default: Sequence[float]) -> None:
    parser.add_argument("--budgets", type=reduction, nargs="+", default=list(default),
                        help="parameter reductions (each matrix fitted with numel/budget parameters)")


def record_analysis(parser: argparse.ArgumentParser, args: argparse.Namespace, analyse: Analysis,
                    markdown: Callable[[dict[str, Any]], str]) -> int:
    """Find the checkpoint, run ``analyse`` on it, write its record and print it; bad input is a parser error."""
    apply_threads(args.threads)
    try:
        record = analyse(find_checkpoint(args.run))
    except (FileNotFoundError, ValueError) as err:  # no checkpoint, an unreadable one, or nothing in it to fit
        parser.error(str(err))
    path = write_record(record, args.out / f"{record['kind']}-{record['config_hash']}.json")
    print(markdown(json.loads(path.read_text())))
    print(f"record: {path}")
    return 0


def embeddings(argv: list[str] | None = None) -> int:
    """Kronecker, shuffled-row Kronecker and low-rank fits of both embedding tables (``embedding_fit``)."""
    # torch: --help and argument errors answer without loading it
    from shapeshifter.analysis.embedding_fit import analyse_checkpoint, fit_markdown

    parser = analysis_parser(embeddings.__doc__ or "")
    parser.add_argument("--data-bin", type=Path, required=True, help="the data-bin with dict.<lang>.txt")
    parser.add_argument("--src", default="de")
    parser.add_argument("--tgt", default="en")
    budgets_argument(parser, [5.4, 10, 25, 50])
    args = parser.parse_args(argv)
    for lang in (args.src, args.tgt):
        if not (args.data_bin / f"dict.{lang}.txt").is_file():
            parser.error(f"no dictionary {args.data_bin / f'dict.{lang}.txt'}")
    return record_analysis(parser, args, lambda ckpt: analyse_checkpoint(ckpt, args.data_bin, args.src, args.tgt,
                                                                         args.budgets), fit_markdown)


def weights(argv: list[str] | None = None) -> int:
    """Kronecker and low-rank fits of every factorizable matrix, next to Gaussian twins (``weight_fit``)."""
    # torch: --help and argument errors answer without loading it
    from shapeshifter.analysis.weight_fit import analyse_weights, weight_fit_markdown

    parser = analysis_parser(weights.__doc__ or "")
    budgets_argument(parser, [10, 25])
    args = parser.parse_args(argv)
    return record_analysis(parser, args, lambda ckpt: analyse_weights(ckpt, args.budgets), weight_fit_markdown)
