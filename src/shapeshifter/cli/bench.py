"""Table 1 (time overhead): whole-model training step and prediction, dense vs Shapeshifter, same process.

Every model is a fairseq ``transformer_iwslt_de_en`` (8,848 / 6,632 vocabulary, tied decoder embeddings) built by
`build_transformer`; the Shapeshifter ones differ only by their policy. Per repetition, in rotating order, each
model runs on the same fixed batch:

* a training step: forward + label-smoothed loss + backward + Adam step (train mode, dropout on);
* a teacher-forced forward pass under ``no_grad`` (eval mode);
* beam search of a fixed sentence batch with the output length pinned (``min_len == max_len``), so every model
  decodes exactly the same number of steps whatever its (untrained) weights prefer.

After the timings, each model's peak memory of one training step is measured alone
(`shapeshifter.bench.memory`: parameters, Adam state and batch plus the most the step allocates on top; CUDA:
``max_memory_allocated``, CPU: the profiler's allocator events). Medians over repetitions are written as a run
record (same header as `records.new_record`) under ``<records>/<group>/`` and the table is regenerated from all
such records.

    python pipelines/bench_model.py --scale smoke                 # small arch, about a minute on CPU
    python pipelines/bench_model.py --scale full [--device cuda]  # the real arch, 4,096-token batches

Installed as ``shapeshifter-bench``; ``pipelines/bench_model.py`` runs it too (``make reproduce-table-1``).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from shapeshifter.bench import peak_bytes, tensor_bytes
from shapeshifter.bench.batch import make_batch
from shapeshifter.bench.timing import timed
from shapeshifter.criterion import label_smoothed_nll_loss
from shapeshifter.experiment.loggers import wandb_mode
from shapeshifter.experiment.policy import policy_from_config
from shapeshifter.experiment.records import config_hash, finish_record, new_record, write_record
from shapeshifter.experiment.wandb_records import attach_record
from shapeshifter.nn.compiled import CompileCounter, compile_model, prime_inference_cache
from shapeshifter.params import count_parameters
from shapeshifter.reports.registry import build_table, group_name
from shapeshifter.threads import add_threads_argument, apply_threads, resolve_threads
from shapeshifter.translation.fairseq_model import build_transformer, placeholder_dictionary

log = logging.getLogger("shapeshifter.bench_model")

SRC_VOCAB, TGT_VOCAB = 8848, 6632
SCALES: dict[str, dict[str, Any]] = {
    # small enough for a minute on 2 CPU cores; same vocabulary so the embedding/output shapes are the paper's
    "smoke": {"arch": "transformer_iwslt_de_en", "tokens": 1024, "sentence_len": 32, "reps": 7, "warmup": 1,
              "threads": 1, "decode_sentences": 8, "decode_len": 10, "beam": 2, "ranks": [1, 2, 4],
              "budgets": [[8, 120], [8, 32], [4, 12]],
              "overrides": {"share_decoder_input_output_embed": True, "encoder_layers": 1, "decoder_layers": 1,
                            "encoder_embed_dim": 64, "decoder_embed_dim": 64, "encoder_ffn_embed_dim": 128,
                            "decoder_ffn_embed_dim": 128, "encoder_attention_heads": 2,
                            "decoder_attention_heads": 2}},
    "full": {"arch": "transformer_iwslt_de_en", "tokens": 4096, "sentence_len": 32, "reps": 10, "warmup": 2,
             "threads": None, "decode_sentences": 32, "decode_len": 32, "beam": 5, "ranks": [1, 2, 4, 8],
             "budgets": [[96, 256], [32, 64], [8, 64]],
             "overrides": {"share_decoder_input_output_embed": True}},
}
EMBEDDING_RANK = 16  # rank 16 for the (tied) embeddings, rank r in attention/FFN (rN-emb16)
# "budgets": (attention/FFN/output rank, embedding rank) of order-2 policies with about 3x, 10x and 25x fewer
# total parameters than the dense model of that scale, the quality study's budgets (conf/shapeshift/study/).
# Counted with shapeshifter.params (tests/experiment/test_bench_model.py checks them to +-10%): full scale 3.09x,
# 9.53x, 26.6x; smoke scale 2.96x, 9.63x, 23.7x.


def policies(ranks: list[int], budgets: list[list[int]] = ()) -> dict[str, dict[str, Any] | None]:
    """Dense, one policy per attention/FFN rank at embedding rank 16 (r1-emb16, r2-emb16, ...), then the
    order-2 policies at the quality budgets, named by their ranks (o2-r32-emb64: rank 32, embeddings 64)."""
    out: dict[str, dict[str, Any] | None] = {"dense": None}
    for r in ranks:  # same construction as conf/shapeshift/r1_emb16.yaml with the attention/FFN rank swept
        out[f"r{r}-emb{EMBEDDING_RANK}"] = policy_from_config(
            {"layers": ["all"], "rank": r, "per_type": {"embedding": {"rank": EMBEDDING_RANK}}})
    for r, e in budgets:  # as conf/shapeshift/study/o2_r8_emb29.yaml
        out[f"o2-r{r}-emb{e}"] = policy_from_config(
            {"layers": ["all"], "rank": r, "order": 2, "per_type": {"embedding": {"rank": e}}})
    return out


class Bench:
    """One model with its optimizer, generator and the closures that are timed."""

    def __init__(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], tgt_dict: Any, cfg: dict[str, Any],
                 device: torch.device) -> None:
        from fairseq.sequence_generator import SequenceGenerator

        self.model = model.to(device)
        self.batch = {k: v.to(device) for k, v in batch.items()}
        self.pad = tgt_dict.pad()
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.98), eps=1e-8)
        n = cfg["decode_sentences"]
        self.decode_sample = {"id": torch.arange(n, device=device),
                              "net_input": {"src_tokens": self.batch["src_tokens"][:n],
                                            "src_lengths": self.batch["src_lengths"][:n]}}
        self.generator = SequenceGenerator([self.model], tgt_dict, beam_size=cfg["beam"], max_len_a=0,
                                           max_len_b=cfg["decode_len"], min_len=cfg["decode_len"])
        self.label_smoothing = cfg["label_smoothing"]
        # --amp bf16: every measurement under bf16 autocast (weights and Adam state stay fp32, as in training)
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.get("amp") == "bf16")
        self.counter = compile_for_bench(self.model) if cfg.get("compile") else None

    def train_step(self) -> None:
        with self.autocast:
            self._train_step()

    def _train_step(self) -> None:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        b = self.batch
        out = self.model(b["src_tokens"], b["src_lengths"], b["prev_output_tokens"])
        lprobs = self.model.get_normalized_probs(out, log_probs=True)
        loss, _ = label_smoothed_nll_loss(lprobs.view(-1, lprobs.size(-1)), b["target"].view(-1),
                                          self.label_smoothing, self.pad)
        (loss / b["target"].numel()).backward()
        self.opt.step()

    def peak_train_bytes(self, device: torch.device) -> int:
        """Peak bytes of one training step: parameters, Adam state and batch, plus what the step allocates."""
        self.opt.zero_grad(set_to_none=True)  # last step's gradients are not resident at the start of a step
        return peak_bytes(self.train_step, device, tensor_bytes(self.model, self.opt, self.batch))

    @torch.no_grad()
    def forward(self) -> None:
        self.model.eval()
        prime_inference_cache(self.model)  # compiled graphs read the cached W (a no-op when it is current)
        with self.autocast:
            self._forward()

    def _forward(self) -> None:
        b = self.batch
        out = self.model(b["src_tokens"], b["src_lengths"], b["prev_output_tokens"])
        self.model.get_normalized_probs(out, log_probs=True)

    @torch.no_grad()
    def beam(self) -> None:
        self.model.eval()
        prime_inference_cache(self.model)
        with self.autocast:
            self.generator.generate([self.model], self.decode_sample)

    @property
    def compiles(self) -> int | None:
        """Graphs compiled so far (None in eager mode): the first of each mode and shape, then recompilations."""
        return None if self.counter is None else self.counter.compiles


def compile_for_bench(model: torch.nn.Module) -> CompileCounter:
    """``model`` compiled for every measurement: its ``forward`` (training step, teacher-forced forward) and its
    decoder's ``forward``, which fairseq's beam search calls directly once per step (dynamic shapes: the
    incremental state grows by one position a step). Returns the counter of compiled graphs."""
    counter = CompileCounter()
    compile_model(model, counter)
    decoder = model.decoder
    decoder.forward = torch.compile(decoder.forward, backend=counter, dynamic=True)
    return counter


def bench_inputs(cfg: dict[str, Any], tokens: int | None = None) -> tuple[Any, Any, dict[str, torch.Tensor]]:
    """(source dictionary, target dictionary, fixed batch of ``tokens``, default the config's) that every model of
    a benchmark config runs on."""
    src_dict, tgt_dict = placeholder_dictionary(SRC_VOCAB), placeholder_dictionary(TGT_VOCAB)
    batch = make_batch(tokens or cfg["tokens"], cfg["sentence_len"], SRC_VOCAB, TGT_VOCAB, tgt_dict.nspecial,
                       tgt_dict.eos(), cfg["seed"])
    return src_dict, tgt_dict, batch


def build_bench(cfg: dict[str, Any], policy: dict[str, Any] | None, inputs: tuple[Any, Any, dict[str, torch.Tensor]],
                device: torch.device) -> tuple[Bench, int]:
    """The config's model under ``policy`` (None: dense) on `bench_inputs`, ready on ``device``; and its total
    parameter count."""
    src_dict, tgt_dict, batch = inputs
    model, _ = build_transformer(cfg["arch"], src_dict, tgt_dict, cfg["overrides"], policy, seed=cfg["seed"])
    return Bench(model, batch, tgt_dict, cfg, device), count_parameters(model)["total"]


def run_bench(cfg: dict[str, Any], device: torch.device) -> dict[str, dict[str, Any]]:
    """Median seconds per measurement and model, interleaved over repetitions in rotating order."""
    inputs = bench_inputs(cfg)
    benches: dict[str, Bench] = {}
    results: dict[str, dict[str, Any]] = {}
    for name, policy in cfg["policies"].items():
        benches[name], params = build_bench(cfg, policy, inputs, device)
        results[name] = {"policy": policy, "params": params,
                         "times": {"train_step_s": [], "forward_s": [], "beam_s": []}}
    names = list(benches)
    measurements = {"train_step_s": "train_step", "forward_s": "forward", "beam_s": "beam"}
    for rep in range(cfg["warmup"] + cfg["reps"]):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for key, method in measurements.items():
            # the models run back to back for each measurement, so a load spike on a shared machine hits a
            # whole repetition rather than one model; ratios are then taken within the repetition
            times = {name: timed(getattr(benches[name], method), device) for name in order}
            if rep >= cfg["warmup"]:
                for name, value in times.items():
                    results[name]["times"][key].append(value)
        log.info("repetition %d/%d done", rep + 1, cfg["warmup"] + cfg["reps"])
    for name, bench in benches.items():  # alone, after the timings (the profiler slows what it watches)
        results[name]["peak_train_bytes"] = bench.peak_train_bytes(device)
        if bench.compiles is not None:
            results[name]["compiles"] = bench.compiles
    dense = results["dense"]
    for res in results.values():
        res["median"] = {k: statistics.median(v) for k, v in res["times"].items()}
        res["min"] = {k: min(v) for k, v in res["times"].items()}
        res["reduction_vs_dense"] = dense["params"] / res["params"]
    for res in results.values():
        # median over repetitions of the paired (same repetition) ratio; min-time ratio kept as a cross-check
        res["ratio_to_dense"] = {k: statistics.median(t / d for t, d in zip(v, dense["times"][k], strict=True))
                                 for k, v in res["times"].items()}
        res["min_ratio_to_dense"] = {k: res["min"][k] / dense["min"][k] for k in res["min"]}
        res["peak_train_ratio_to_dense"] = res["peak_train_bytes"] / dense["peak_train_bytes"]
    return results


def bench_config(scale: str, device: str, seed: int, reps: int | None = None,
                 threads: int | None = None, amp: str | None = None, compiled: bool = False,
                 models: list[str] | None = None) -> dict[str, Any]:
    """The result-defining settings of one benchmark run (hashed into the record name); ``threads`` overrides
    the scale's (smoke: 1; full: the shared rule of `shapeshifter.threads`, recorded as the count it gives)."""
    s = dict(SCALES[scale])
    ranks, budgets = s.pop("ranks"), s.pop("budgets")
    cfg = {"table": "table1", "scale": scale, "device": device, "seed": seed, "lr": 5.0e-4, "label_smoothing": 0.1,
           "src_vocab": SRC_VOCAB, "tgt_vocab": TGT_VOCAB, **s,
           "policies": policies(ranks, budgets)}
    if reps is not None:
        cfg["reps"] = reps
    if threads is not None:
        cfg["threads"] = threads
    if amp is not None:  # only when asked: fp32 records keep their config hash
        cfg["amp"] = amp
    if compiled:  # likewise: eager records keep theirs
        cfg["compile"] = True
    if models is not None:
        unknown = sorted(set(models) - set(cfg["policies"]))
        if unknown or "dense" not in models:
            raise ValueError(f"models must include dense and name models of Table 1 ({', '.join(cfg['policies'])}); "
                             f"unknown: {', '.join(unknown) or 'none'}")
        cfg["policies"] = {name: cfg["policies"][name] for name in models}
    if cfg["threads"] is None:  # full scale: the shared default (torch's unless several jobs share the machine)
        cfg["threads"] = resolve_threads(None) or torch.get_num_threads()
    return cfg


def log_to_wandb(record: dict, project: str, group: str, name: str) -> None:
    """One W&B run per benchmark record, in the table's group, holding the record (so Table 1 can be rebuilt
    from a W&B project like the other tables); W&B trouble is a warning, the local record is already written."""
    try:
        import wandb

        with wandb.init(project=project, group=group, name=name, config=record["config"], mode=wandb_mode(),
                        dir=str(Path("outputs") / group), tags=["table1", "bench_model"]):
            attach_record(record)
    except Exception as err:  # noqa: BLE001 -- the measurement is done and saved; logging it is best effort
        log.warning("W&B logging of %s failed: %s: %s", name, type(err).__name__, err)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="smoke")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reps", type=int, default=None, help="override the scale's number of repetitions")
    parser.add_argument("--amp", choices=["bf16"], default=None, help="bf16 autocast (default: fp32)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile every model (training step, forward, beam-search decoder step); the "
                             "table's compiled column says yes and ratios are against the compiled dense model")
    parser.add_argument("--models", nargs="+", default=None,
                        help="only these models of the scale (dense among them), e.g. dense o2-r32-emb64")
    parser.add_argument("--records", type=Path, default=Path("results/records"))
    parser.add_argument("--tables", type=Path, default=Path("results/tables"))
    parser.add_argument("--force", action="store_true", help="rerun even when a finished record exists")
    parser.add_argument("--wandb", action=argparse.BooleanOptionalAction, default=None,
                        help="log the record to W&B (offline unless WANDB_API_KEY is set); default: on at full "
                             "scale, off at smoke scale, as for the training runs")
    parser.add_argument("--wandb-project", default="shapeshifter")
    add_threads_argument(parser, help="torch threads, part of the record's config (default: the scale's; smoke: 1, "
                                      "full: the shared rule of shapeshifter.threads)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        cfg = bench_config(args.scale, args.device, args.seed, args.reps, args.threads, args.amp, args.compile,
                           args.models)
    except ValueError as err:
        parser.error(str(err))
    table = f"table1_{args.amp}" if args.amp else "table1"  # its own table: rows never mix fp32 and bf16 records
    group = group_name(table, args.scale)
    path = args.records / group / f"bench-{args.device}-s{args.seed}-{config_hash(cfg)}.json"
    if path.is_file() and not args.force and json.loads(path.read_text()).get("status") == "done":
        log.info("skipping: %s is complete (use --force to rerun)", path)
    else:
        torch.manual_seed(args.seed)
        apply_threads(cfg["threads"])  # smoke: 1 thread, steadier on a shared machine
        record = new_record(cfg, kind="bench_model")
        write_record(record, path)
        t0 = time.perf_counter()
        record["results"] = run_bench(cfg, torch.device(args.device))
        record["timings"] = {"bench_s": time.perf_counter() - t0}
        finish_record(record, path)
        log.info("record: %s", path)
        if args.wandb if args.wandb is not None else args.scale == "full":
            log_to_wandb(record, args.wandb_project, group, path.stem.rsplit("-", 1)[0])
    print(build_table(table, args.scale, args.records, args.tables))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
