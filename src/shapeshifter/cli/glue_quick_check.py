"""Quick CPU sanity check of the GLUE stack: train the small from-scratch encoder on the SNLI sample.

Reports validation/test accuracy against the majority-class rate, so a broken pipeline (accuracy at
chance) is obvious. Example::

    .venv/bin/python pipelines/glue_quick_check.py --epochs 3

``--rank R`` shapeshifts embeddings, attention and FFN (order 2, random init) for a compressed run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L

from shapeshifter.glue.data import GlueDataModule
from shapeshifter.glue.models import build_scratch_classifier
from shapeshifter.glue.module import GlueClassifierModule
from shapeshifter.threads import add_threads_argument, apply_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=Path("data/snli"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d-ff", type=int, default=512)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--min-count", type=int, default=2)
    ap.add_argument("--rank", type=int, default=None, help="shapeshift rank (order 2); dense if omitted")
    add_threads_argument(ap)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the summary JSON here too")
    args = ap.parse_args()

    apply_threads(args.threads)
    L.seed_everything(args.seed, verbose=False)
    d = args.data_dir
    dm = GlueDataModule.from_files(
        ("sentence1", "sentence2"), d / "train.jsonl", d / "validation.jsonl", d / "test.jsonl",
        label_field="gold_label", name="snli", max_length=args.max_length, batch_size=args.batch_size,
        eval_batch_size=256, min_count=args.min_count, seed=args.seed,
    )
    policy = None
    if args.rank is not None:
        factored = {"rank": args.rank, "order": 2}
        policy = {"embedding": factored, "attention": factored, "ffn": factored, "output": "dense",
                  "other": "dense"}
    model, report = build_scratch_classifier(
        dm.vocab_size, dm.spec.num_labels, policy=policy, d_model=args.d_model, n_layers=args.layers,
        n_heads=args.heads, d_ff=args.d_ff, max_len=args.max_length, dropout=0.1, pad_id=dm.pad_id,
    )
    dm.setup()
    steps = args.epochs * len(dm.train_dataloader())
    module = GlueClassifierModule(model, dm.spec, lr=args.lr, weight_decay=0.01, warmup_steps=args.warmup,
                                  max_steps=steps, shapeshift_report=report)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    t0 = time.time()
    trainer.fit(module, datamodule=dm)
    train_s = time.time() - t0
    trainer.test(module, datamodule=dm, verbose=False)
    summary = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "vocab_size": dm.vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_pairs": len(dm.datasets["train"]),
        "steps": trainer.global_step,
        "train_seconds": round(train_s, 1),
        "majority_rate_validation": dm.majority_rate("validation"),
        "majority_rate_test": dm.majority_rate("test"),
        **module.final_metrics(),
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
