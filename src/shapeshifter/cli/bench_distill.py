"""What word-level, hidden-state and attention distillation cost per training step, against the same student's
plain step, timed in one process (`shapeshifter.bench.distill_cost`). The student, the teacher and the loss settings are
those of a composed training config, by default the distillation screening's (quality_distill).

    python pipelines/bench_distill.py                        # the screening's o2-r8-emb29 student, d128 teacher
    python pipelines/bench_distill.py shapeshift=study/phm8_emb16 --reps 5

Writes a record ``<records>/bench_distill/distill-cost-<hash>.json`` and ``<out>/distill_cost.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from shapeshifter.bench.distill_cost import candidates, fixed_sample, measure
from shapeshifter.distill.settings import DistillSettings
from shapeshifter.experiment.policy import policy_from_config
from shapeshifter.experiment.records import config_hash, finish_record, new_record, write_record
from shapeshifter.paths import repo_root
from shapeshifter.threads import add_threads_argument, apply_threads, resolve_threads
from shapeshifter.translation.fairseq_model import placeholder_dictionary

BASE = ["experiment=quality/distill", "+scale=cpu", "shapeshift=kron"]
SAMPLE_VOCAB = (4296, 3272)  # the sample_de_en dictionaries (German, English), specials included


def bench_config(overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The result-defining settings: model and loss settings from the composed config, batch and repetitions."""
    with initialize_config_dir(config_dir=str(repo_root() / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[*BASE, *overrides])
    optim, distill = cfg.optim, cfg.distill
    return {"table": "bench_distill", "overrides": [*BASE, *overrides], "arch": str(cfg.arch.name),
            "arch_overrides": OmegaConf.to_container(cfg.arch.overrides, resolve=True),
            "policy": policy_from_config(OmegaConf.to_container(cfg.shapeshift, resolve=True)),
            "vocab": list(args.vocab), "sentences": args.sentences, "length": args.length, "reps": args.reps,
            "threads": resolve_threads(args.threads),
            "options": {"lr": float(optim.lr), "label_smoothing": float(optim.label_smoothing),
                        "factor_lr_scale": float(optim.get("factor_lr_scale", 1.0)), "alpha": float(distill.alpha),
                        "temperature": float(distill.temperature), "hidden_weight": float(distill.hidden_weight),
                        "attention_weight": float(distill.get("attention_weight", DistillSettings.attention_weight))}}


def to_markdown(rows: dict[str, dict[str, Any]], cfg: dict[str, Any]) -> str:
    lines = ["## What distillation costs per training step (one process, CPU)", "",
             "| step | params trained | median step (ms) | × plain student step | aten ops per step |",
             "|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['params']:,} | {row['step_s'] * 1e3:.1f} | {row['ratio_to_plain']:.2f} | "
                     f"{row.get('ops', '–')} |")
    lines += ["", f"Student {cfg['policy'] and 'factorized' or 'dense'} ({' '.join(cfg['overrides'])}); teacher: "
              f"the dense model of the same arch. Batch: {cfg['sentences']} × {cfg['length']} tokens, "
              f"{cfg['reps']} interleaved repetitions, {cfg['threads']} thread(s); ratio: median over repetitions "
              "of the step time over the plain student's in the same repetition.", ""]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="Hydra overrides on top of " + " ".join(BASE))
    p.add_argument("--vocab", type=int, nargs=2, default=SAMPLE_VOCAB, metavar=("SRC", "TGT"))
    p.add_argument("--sentences", type=int, default=64)
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--records", type=Path, default=Path("results/records"))
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    add_threads_argument(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cfg = bench_config(args.overrides, args)
    apply_threads(cfg["threads"])
    path = args.records / "bench_distill" / f"distill-cost-{config_hash(cfg)}.json"
    record = new_record(cfg, kind="bench_distill")
    write_record(record, path)
    modules = candidates(cfg["arch"], cfg["arch_overrides"], cfg["policy"], tuple(cfg["vocab"]), cfg["options"])
    sample = fixed_sample(cfg["sentences"], cfg["length"], *cfg["vocab"], placeholder_dictionary(cfg["vocab"][1]))
    record["results"] = measure(modules, sample, cfg["reps"])
    finish_record(record, path)
    md = to_markdown(record["results"], cfg)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "distill_cost.md").write_text(md)
    print(md + f"\nrecord: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
