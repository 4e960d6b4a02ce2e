"""How well Kronecker, shuffled-row Kronecker and low-rank structures fit the embeddings of a trained model.

    python pipelines/analyze_embeddings.py outputs/quality/sample_de_en-d128-dense-s1 \
        --data-bin data/cache/sample_de_en/data-bin --out results/records/quality_why

Writes an ``embedding_fit`` record (``<out>/embedding_fit-<hash>.json``) and prints it as a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shapeshifter.analysis.embedding_fit import analyse_checkpoint, fit_markdown
from shapeshifter.app.records import write_record
from shapeshifter.app.run_folder import find_checkpoint
from shapeshifter.threads import add_threads_argument, apply_threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a run folder (its checkpoints/best-*.ckpt) or a .ckpt file")
    parser.add_argument("--data-bin", type=Path, required=True, help="the data-bin with dict.<lang>.txt")
    parser.add_argument("--src", default="de")
    parser.add_argument("--tgt", default="en")
    parser.add_argument("--budgets", type=float, nargs="+", default=[5.4, 10, 25, 50])
    parser.add_argument("--out", type=Path, default=Path("results/records/quality_why"))
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    try:
        checkpoint = find_checkpoint(args.run)
    except FileNotFoundError as err:
        parser.error(str(err))
    for lang in (args.src, args.tgt):
        if not (args.data_bin / f"dict.{lang}.txt").is_file():
            parser.error(f"no dictionary {args.data_bin / f'dict.{lang}.txt'}")
    record = analyse_checkpoint(checkpoint, args.data_bin, args.src, args.tgt, args.budgets)
    path = write_record(record, args.out / f"embedding_fit-{record['config_hash']}.json")
    print(fit_markdown(json.loads(path.read_text())))
    print(f"record: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
