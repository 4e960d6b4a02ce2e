"""Evaluate a trained translation checkpoint: beam search, sacreBLEU + tokenized BLEU, hypotheses on disk.

    python pipelines/evaluate.py outputs/demo/sample_de_en-paper-s1                 # best (else last) ckpt
    python pipelines/evaluate.py RUN_DIR --checkpoint RUN_DIR/checkpoints/last.ckpt --split valid --beam 4
    python pipelines/evaluate.py RUN_DIR --average-last 5                           # fairseq-style averaging

The run directory is the Hydra output folder of `pipelines/train.py` (it holds ``.hydra/config.yaml`` and
``checkpoints/``); the model is rebuilt from that config (arch, overrides, shapeshift policy) and must
match the checkpoint exactly. Results go to ``RUN_DIR/eval/<split>-<checkpoint>.json`` plus the hypothesis
files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from shapeshifter.threads import add_threads_argument, apply_threads


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--checkpoint", type=Path, default=None, help="default: best-*.ckpt, else last.ckpt")
    p.add_argument("--average-last", type=int, default=0, help="average the last N epoch checkpoints")
    p.add_argument("--split", default="test", choices=["test", "valid"])
    p.add_argument("--beam", type=int, default=None)
    p.add_argument("--max-tokens", type=int, default=None)
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


def main() -> None:
    args = parser().parse_args()
    apply_threads(args.threads)

    from shapeshifter.app.run_folder import find_run
    from shapeshifter.app.translation import data_config
    from shapeshifter.data import prepare_translation_data
    from shapeshifter.translation.datamodule import TranslationDataModule
    from shapeshifter.translation.evaluate import evaluate_translation

    try:
        run = find_run(args.run_dir)
        run.require_translation("pipelines/evaluate.py")
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err)) from None
    cfg = run.config
    weights, label = chosen_weights(run, args.checkpoint, args.average_last)
    dcfg = data_config(cfg)
    prepared = prepare_translation_data(dcfg)
    dm = TranslationDataModule(str(prepared.data_bin), prepared.src_lang, prepared.tgt_lang,
                               max_tokens=args.max_tokens or cfg.batching.max_tokens, seed=cfg.seed,
                               max_source_positions=cfg.arch.max_positions,
                               max_target_positions=cfg.arch.max_positions)
    src_dict, tgt_dict = dm.load_dictionaries()
    model = build_model(cfg, (src_dict, tgt_dict), weights)
    dm.setup("test" if args.split == "test" else "validate")
    loader = dm.test_dataloader() if args.split == "test" else dm.val_dataloader()
    result = evaluate_translation(
        model, loader, src_dict, tgt_dict, args.run_dir / "eval", prepared.tgt_lang,
        raw_references=prepared.reference(args.split, "raw") if prepared.splits else None,
        tok_references=prepared.reference(args.split, "tok") if prepared.splits else None,
        lowercase=bool(dcfg.lowercase), name=f"{args.split}-{label}", beam=args.beam or cfg.eval.beam,
        max_len_a=cfg.eval.max_len_a, max_len_b=cfg.eval.max_len_b, lenpen=cfg.eval.lenpen, bpe=prepared.bpe,
    )
    out = args.run_dir / "eval" / f"{args.split}-{label}.json"
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "files"}, indent=1))
    print(f"wrote {out}")
