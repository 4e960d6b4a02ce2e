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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shapeshifter.threads import add_threads_argument, apply_threads  # noqa: E402


def check_translation_run(run) -> None:
    """This script rebuilds a fairseq Transformer: a GLUE run folder gets a pointer to its scores instead of a
    traceback from the translation data recipe."""
    kind = run.config.data.get("kind")
    if kind == "translation":
        return
    if kind == "glue":
        where = run.record_file or "its record (run.records/<group>/<name>-<config hash>.json)"
        raise SystemExit(
            f"{run.path} is a GLUE run (data.kind=glue); pipelines/evaluate.py evaluates translation runs. A GLUE run "
            f"is evaluated when it finishes training: its validation and test scores are in {where}. To evaluate "
            "it again, move that record aside and rerun pipelines/train.py with the same overrides (it resumes "
            "from checkpoints/last.ckpt straight to evaluation).")
    raise SystemExit(f"{run.path}: data.kind={kind!r}; pipelines/evaluate.py evaluates translation runs only")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: best-*.ckpt, else last.ckpt")
    parser.add_argument("--average-last", type=int, default=0, help="average the last N epoch checkpoints")
    parser.add_argument("--split", default="test", choices=["test", "valid"])
    parser.add_argument("--beam", type=int, default=None)
    parser.add_argument("--max-tokens", type=int, default=None)
    add_threads_argument(parser)
    args = parser.parse_args()
    apply_threads(args.threads)

    from omegaconf import OmegaConf

    from shapeshifter.app.run_folder import find_run
    from shapeshifter.translation.checkpoints import average_checkpoints, epoch_checkpoints, load_model_weights

    try:
        run = find_run(args.run_dir)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err)) from None
    cfg, ckpt_dir = run.config, run.checkpoints
    check_translation_run(run)

    if args.average_last:
        paths = epoch_checkpoints(ckpt_dir, args.average_last)
        if len(paths) < 2:
            raise SystemExit(f"--average-last needs >= 2 epoch checkpoints in {ckpt_dir}, found {len(paths)} "
                             "(train with ckpt.average_last=N to keep them)")
        label = f"avg{len(paths)}"
    else:
        try:
            ckpt = run.checkpoint(args.checkpoint) if args.checkpoint else run.best_or_last()
        except FileNotFoundError as err:
            raise SystemExit(str(err)) from None
        label = Path(ckpt).stem

    from shapeshifter.app.policy import policy_from_config
    from shapeshifter.app.translation import data_config
    from shapeshifter.data import prepare_translation_data
    from shapeshifter.translation.datamodule import TranslationDataModule
    from shapeshifter.translation.evaluate import evaluate_translation
    from shapeshifter.translation.fairseq_model import build_transformer

    dcfg = data_config(cfg)
    prepared = prepare_translation_data(dcfg)
    dm = TranslationDataModule(str(prepared.data_bin), prepared.src_lang, prepared.tgt_lang,
                               max_tokens=args.max_tokens or cfg.batching.max_tokens, seed=cfg.seed,
                               max_source_positions=cfg.arch.max_positions,
                               max_target_positions=cfg.arch.max_positions)
    src_dict, tgt_dict = dm.load_dictionaries()
    overrides = OmegaConf.to_container(cfg.arch.overrides, resolve=True) or {}
    model, _ = build_transformer(cfg.arch.name, src_dict, tgt_dict, overrides, policy_from_config(cfg.shapeshift),
                                 seed=cfg.seed)
    if args.average_last:
        model.load_state_dict(average_checkpoints(paths))
    else:
        load_model_weights(model, ckpt)
    model.eval()
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


if __name__ == "__main__":
    main()
