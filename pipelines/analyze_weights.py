"""How far every matrix of a trained model is from a Kronecker sum and from a low-rank product, next to noise.

    python pipelines/analyze_weights.py outputs/quality/sample_de_en-d128-dense-s1 --out results/records/quality_why

Writes a ``weight_fit`` record (``<out>/weight_fit-<hash>.json``) and prints its summary per layer type.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shapeshifter.analysis.weight_fit import analyse_weights, weight_fit_markdown
from shapeshifter.app.records import write_record
from shapeshifter.app.run_folder import find_checkpoint
from shapeshifter.threads import add_threads_argument, apply_threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder (its checkpoints/best-*.ckpt) or a .ckpt file")
    parser.add_argument("--budgets", type=float, nargs="+", default=[10, 25],
                        help="parameter reductions per matrix (each matrix fitted with numel/budget parameters)")
    parser.add_argument("--out", type=Path, default=Path("results/records/quality_why"))
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    if any(b < 1 for b in args.budgets):
        parser.error(f"--budgets are reductions (>= 1), got {args.budgets}")
    try:
        checkpoint = find_checkpoint(args.run)
    except FileNotFoundError as err:
        parser.error(str(err))
    try:
        record = analyse_weights(checkpoint, args.budgets)
    except ValueError as err:  # an unreadable checkpoint, or one without matrices to fit
        parser.error(str(err))
    path = write_record(record, args.out / f"weight_fit-{record['config_hash']}.json")
    print(weight_fit_markdown(json.loads(path.read_text())))
    print(f"record: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
