"""Profile a training step of the Table 1 model, dense vs Shapeshifter, at several batch sizes: wall time, device
kernel time, kernels per step (`shapeshifter.bench.step_profile`).

    python pipelines/profile_step.py                                   # CUDA when available
    python pipelines/profile_step.py --scale smoke --device cpu --tokens 256   # quick; no kernel counts on CPU

Writes a record ``<records>/step_profile/profile-<device>-<hash>.json`` and ``<out>/step_profile-<device>.md``
(``-compiled.md`` with ``--compile``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from shapeshifter.bench.step_profile import profile_steps, to_markdown
from shapeshifter.cli import bench as bm
from shapeshifter.experiment.records import config_hash, finish_record, new_record, write_record
from shapeshifter.threads import add_threads_argument, apply_threads


def with_path(policy: dict[str, Any] | None, path: str) -> dict[str, Any] | None:
    """The policy with every layer type's matmul path set to ``path`` (dense stays dense)."""
    return None if policy is None else {kind: spec | {"path": path} for kind, spec in policy.items()}


def runs(cfg: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(model, path, policy) of every model of ``cfg`` under each of its paths; dense once."""
    out = []
    for name in cfg["models"]:
        for path in ["auto"] if name == "dense" else cfg["paths"]:
            out.append((name, path, with_path(cfg["policies"][name], path)))
    return out


def profile_models(cfg: dict[str, Any], device: torch.device) -> list[dict[str, Any]]:
    """One row per (tokens, model, path) of ``cfg``; each model is built, profiled and freed in turn."""
    rows = []
    for tokens in cfg["token_counts"]:
        inputs = bm.bench_inputs(cfg, tokens)
        for name, path, policy in runs(cfg):
            bench, params = bm.build_bench(cfg, policy, inputs, device)
            rows.append({"tokens": tokens, "model": name, "path": path, "params": params,
                         **profile_steps(bench.train_step, device, steps=cfg["steps"], warmup=cfg["warmup"],
                                         ops=not cfg.get("compile")),
                         "compiles": bench.compiles})
            del bench
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(bm.SCALES), default="full")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tokens", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--models", nargs="+", default=["dense", "o2-r32-emb64"])
    parser.add_argument("--paths", nargs="+", choices=["auto", "dense", "factored"], default=["auto"],
                        help="matmul paths of the factorized models (auto: the cost-model's choice per layer)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile every model (as bench_model --compile); writes step_profile-<device>-"
                             "compiled.md")
    parser.add_argument("--records", type=Path, default=Path("results/records"))
    parser.add_argument("--out", type=Path, default=Path("results/bench"))
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    cfg = bm.bench_config(args.scale, args.device, seed=1, threads=args.threads, compiled=args.compile)
    unknown = sorted(set(args.models) - set(cfg["policies"]))
    if unknown or "dense" not in args.models:
        parser.error(f"--models must include dense and name models of Table 1 ({', '.join(cfg['policies'])}); "
                     f"unknown: {', '.join(unknown) or 'none'}")
    cfg |= {"table": "step_profile", "token_counts": args.tokens, "models": args.models, "paths": args.paths,
            "steps": args.steps, "warmup": args.warmup,
            "policies": {name: cfg["policies"][name] for name in args.models}}
    apply_threads(cfg["threads"])
    device = torch.device(args.device)
    path = args.records / "step_profile" / f"profile-{args.device}-{config_hash(cfg)}.json"
    record = new_record(cfg, kind="step_profile")
    write_record(record, path)
    record["results"] = profile_models(cfg, device)
    finish_record(record, path)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    md = to_markdown(record["results"], name)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"step_profile-{args.device}{'-compiled' if args.compile else ''}.md").write_text(md)
    print(md + f"\nrecord: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
