"""Device check: on a CUDA machine, run every benchmark once on the GPU and fail loudly on any CUDA error.

    python pipelines/device_check.py          # or: make device-check

Without CUDA it prints that no GPU is present and exits 0 (nothing to check). With CUDA, one prepared run whose
steps each have a time limit (their sum, with the throughput check, is the longest it can take; see `steps`):

1. bench_layers, quick grid on one shape (the layer benchmark times on CPU: it has no device option);
2. Table 1 (bench_model) at full scale, 3 repetitions, fp32 and bf16 autocast, eager (records under --records);
3. Table 1 compiled (``--compile``: torch.compile of the training step, forward and beam-search decoder step),
   fp32 and bf16, dense vs the ~10x policy o2-r32-emb64 only (compilation takes most of the time);
4. the peer benchmark (bench_peers) on the GPU;
5. the step profile (profile_step): wall vs kernel time, kernels and operators per training step, eager at 4,096
   and 16,384 tokens, compiled at 4,096;
6. training throughput of the full-size transformer_iwslt_de_en, dense vs the ~10x policy o2-r32-emb64 of
   Table 1, --seconds each on the same fixed batch, written as a record under <records>/device_check/.

Each step is a subprocess with a time limit; the first that fails (a CUDA error, a timeout) stops the check with
its exit status.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from shapeshifter.cli import bench as bm
from shapeshifter.experiment.records import config_hash, finish_record, new_record, write_record
from shapeshifter.paths import repo_root
from shapeshifter.threads import add_threads_argument, apply_threads

ROOT = repo_root()


def steps(records: Path, tables: Path, bench: Path) -> list[tuple[str, list[str], int]]:
    """(name, command, time limit in seconds) of each benchmark step."""
    py = [sys.executable]
    table1 = [*py, str(ROOT / "pipelines/bench_model.py"), "--scale", "full", "--device", "cuda", "--reps", "3",
              "--records", str(records), "--tables", str(tables), "--force", "--no-wandb"]
    compiled = [*table1, "--compile", "--models", "dense", "o2-r32-emb64"]
    profile = [*py, str(ROOT / "pipelines/profile_step.py"), "--device", "cuda", "--records", str(records)]
    return [
        ("bench_layers", [*py, str(ROOT / "pipelines/bench_layers.py"), "--quick", "--shapes", "attn 512x512",
                          "--out", str(bench / "layers-device-check.json")], 120),
        ("table1 fp32", table1, 150),
        ("table1 bf16", [*table1, "--amp", "bf16"], 150),
        ("table1 fp32 compiled", compiled, 180),
        ("table1 bf16 compiled", [*compiled, "--amp", "bf16"], 180),
        ("bench_peers", [*py, str(ROOT / "pipelines/bench_peers.py"), "--device", "cuda", "--out", str(bench)], 120),
        ("step_profile", [*profile, "--out", str(bench)], 120),
        ("step_profile compiled", [*profile, "--compile", "--tokens", "4096", "--out", str(bench)], 150),
    ]


def throughput(seconds: float, device: torch.device) -> dict[str, Any]:
    """Training steps per second and target tokens per second, dense vs o2-r32-emb64, ``seconds`` each."""
    cfg = bm.bench_config("full", "cuda", seed=1)
    inputs = bm.bench_inputs(cfg)
    batch = inputs[2]
    out: dict[str, Any] = {}
    for name in ("dense", "o2-r32-emb64"):
        bench, _ = bm.build_bench(cfg, cfg["policies"][name], inputs, device)
        bench.train_step()  # warm-up
        torch.cuda.synchronize(device)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            bench.train_step()
            n += 1
        torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - t0
        out[name] = {"steps": n, "seconds": elapsed, "steps_per_s": n / elapsed,
                     "target_tokens_per_s": n * batch["target"].numel() / elapsed}
        del bench
        torch.cuda.empty_cache()
    out["o2-r32-emb64"]["ratio_to_dense"] = out["o2-r32-emb64"]["steps_per_s"] / out["dense"]["steps_per_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=Path, default=Path("results/records"))
    parser.add_argument("--tables", type=Path, default=Path("results/tables/device_check"))
    parser.add_argument("--bench", type=Path, default=Path("results/bench"))
    parser.add_argument("--seconds", type=float, default=30.0, help="throughput: seconds per model")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("device check: no CUDA GPU present on this machine; nothing to check (exit 0)")
        return 0
    apply_threads(args.threads)
    print(f"device check on {torch.cuda.get_device_name()}")
    start = time.perf_counter()
    for name, cmd, limit in steps(args.records, args.tables, args.bench):
        t0 = time.perf_counter()
        try:
            rc = subprocess.run(cmd, timeout=limit).returncode
        except subprocess.TimeoutExpired:
            print(f"device check FAILED: {name} ran past {limit} s", file=sys.stderr)
            return 1
        if rc != 0:
            print(f"device check FAILED: {name} exited {rc}", file=sys.stderr)
            return rc
        print(f"device check: {name} ok ({time.perf_counter() - t0:.0f} s)", flush=True)
    cfg = {"table": "device_check", "arch": "transformer_iwslt_de_en", "seconds": args.seconds,
           "device": torch.cuda.get_device_name()}
    record = new_record(cfg, kind="throughput")
    path = args.records / "device_check" / f"throughput-{config_hash(cfg)}.json"
    write_record(record, path)
    record["results"] = throughput(args.seconds, torch.device("cuda"))
    finish_record(record, path)
    print(f"device check: throughput {record['results']} -> {path}")
    print(f"device check: all steps ok in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
