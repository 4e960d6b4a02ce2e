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


def chosen_weights(run: Any, checkpoint: Path | None, average_last: int) -> tuple[list[Path], str]:
    """The checkpoint file(s) to evaluate (several: their average) and the label of the result files."""
    from shapeshifter.translation.checkpoints import epoch_checkpoints

    if average_last:
        paths = epoch_checkpoints(run.checkpoints, average_last)
        if len(paths) < 2:
            raise SystemExit(f"--average-last needs >= 2 epoch checkpoints in {run.checkpoints}, found {len(paths)} "
                             "(train with ckpt.average_last=N to keep them)")
        return paths, f"avg{len(paths)}"
    try:
        ckpt = run.checkpoint(checkpoint) if checkpoint else run.best_or_last()
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None
    return [Path(ckpt)], Path(ckpt).stem


def build_model(cfg: Any, dicts: tuple[Any, Any], weights: list[Path]) -> Any:
    """The run's model (arch, overrides, policy from its config) with the chosen weights, in eval mode."""
    from omegaconf import OmegaConf

    from shapeshifter.app.policy import policy_from_config
    from shapeshifter.translation.checkpoints import average_checkpoints, load_model_weights
    from shapeshifter.translation.fairseq_model import build_transformer

    src_dict, tgt_dict = dicts
    overrides = OmegaConf.to_container(cfg.arch.overrides, resolve=True) or {}
    model, _ = build_transformer(cfg.arch.name, src_dict, tgt_dict, overrides, policy_from_config(cfg.shapeshift),
                                 seed=cfg.seed)
    if len(weights) > 1:
        model.load_state_dict(average_checkpoints(weights))
    else:
        load_model_weights(model, weights[0])
    return model.eval()


def projection_policy(cfg: Any, assignments: list[str] | None) -> dict[str, Any] | None:
    """The policy ``--project`` names (None without it); only a dense run's weights can be projected."""
    from shapeshifter.app.policy import policy_from_config
    from shapeshifter.params import parse_assignments

    if assignments is None:
        return None
    if policy_from_config(cfg.shapeshift):
        raise ValueError("--project fits factors to a dense model's weights; this run is already factorized "
                         f"({cfg.shapeshift.get('name')})")
    return parse_assignments(assignments)


def project(model: Any, policy: dict[str, Any]) -> dict[str, Any]:
    """Replace ``model``'s layers by ``policy``'s factors fitted to its weights; what the result file says of it."""
    from shapeshifter.app.records import config_hash
    from shapeshifter.params import count_parameters
    from shapeshifter.surgery import shapeshift

    dense = count_parameters(model)["total"]
    report = shapeshift(model, policy, init="project")
    total = count_parameters(model)["total"]
    return {"policy": policy, "policy_hash": config_hash(policy), "params": total, "reduction_vs_dense": dense / total,
            "mean_reconstruction_error": report.mean_error_by_type()}


def evaluate_translation_run(run: Any, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Beam search over the chosen split of a translation run; returns ``(report, result label)``."""
    from shapeshifter.app.translation_data import data_config
    from shapeshifter.data import prepare_translation_data
    from shapeshifter.translation.datamodule import TranslationDataModule
    from shapeshifter.translation.evaluate import evaluate_translation

    cfg = run.config
    policy = projection_policy(cfg, args.project)  # a bad policy fails before the data and the model are built
    weights, label = chosen_weights(run, args.checkpoint, args.average_last)
    dcfg = data_config(cfg)
    prepared = prepare_translation_data(dcfg)
    dm = TranslationDataModule(str(prepared.data_bin), prepared.src_lang, prepared.tgt_lang,
                               max_tokens=args.max_tokens or cfg.batching.max_tokens, seed=cfg.seed,
                               max_source_positions=cfg.arch.max_positions,
                               max_target_positions=cfg.arch.max_positions)
    src_dict, tgt_dict = dm.load_dictionaries()
    model = build_model(cfg, (src_dict, tgt_dict), weights)
    projected = project(model, policy) if policy is not None else None
    if projected is not None:
        label += f"-project-{projected['policy_hash']}"
    dm.setup("test" if args.split == "test" else "validate")
    loader = dm.test_dataloader() if args.split == "test" else dm.val_dataloader()
    result = evaluate_translation(
        model, loader, src_dict, tgt_dict, run.path / "eval", prepared.tgt_lang,
        raw_references=prepared.reference(args.split, "raw") if prepared.splits else None,
        tok_references=prepared.reference(args.split, "tok") if prepared.splits else None,
        lowercase=bool(dcfg.lowercase), name=f"{args.split}-{label}", beam=args.beam or cfg.eval.beam,
        max_len_a=cfg.eval.max_len_a, max_len_b=cfg.eval.max_len_b, lenpen=cfg.eval.lenpen, bpe=prepared.bpe,
    )
    if projected is not None:
        result["projected"] = projected
    return result, label


def evaluate_glue_run(run: Any, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The task's metrics of one checkpoint of a GLUE run; returns ``(report, result label)``."""
    from shapeshifter.app.glue_evaluate import evaluate_glue

    unused = [flag for flag, value in (("--average-last", args.average_last), ("--beam", args.beam),
                                       ("--max-tokens", args.max_tokens), ("--project", args.project)) if value]
    if unused:
        raise ValueError(f"{', '.join(unused)}: translation options; {run.path} is a GLUE run")
    ckpt = run.checkpoint(args.checkpoint) if args.checkpoint else run.evaluated_weights()[0]
    return evaluate_glue(run.config, ckpt, args.split), Path(ckpt).stem


def locate(args: argparse.Namespace) -> Any:
    """The run folder of ``args.run_dir`` (a checkpoint file inside one becomes ``--checkpoint``)."""
    from shapeshifter.app.run_folder import find_run, run_folder_of

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
        if run.kind == "glue":
            result, label = evaluate_glue_run(run, args)
        else:
            run.require_translation("pipelines/evaluate.py")
            result, label = evaluate_translation_run(run, args)  # missing / damaged / foreign checkpoint: one line
    out = run.path / "eval" / f"{args.split}-{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "files"}, indent=1))
    print(f"wrote {out}")
    return 0
