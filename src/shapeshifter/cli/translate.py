"""Command lines over `translation.run_model` (run folders, exports): ``pipelines/export.py`` and
``pipelines/translate.py``.

Both turn a bad model path, a damaged export, a device this machine lacks or an unreadable input into one line
on stderr and exit code 2 (no traceback; ``--debug`` shows it): the message names the file, flag or input line,
which is all a user needs to fix it (`shapeshifter.cli.errors`).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from shapeshifter.cli.errors import check_device, fail
from shapeshifter.experiment.data_identity import DataError
from shapeshifter.threads import add_threads_argument, apply_threads
from shapeshifter.translation.data.text import decode_lines

TRANSLATE_USAGE = """Translate sentences (one per line) with a trained model; one translation per input line, in order.

    python pipelines/translate.py models/de-en < sentences.de > sentences.en
    python pipelines/translate.py outputs/demo/sample_de_en-d128-o2-r8-emb29-s1 --input sentences.de --beam 5
    python pipelines/translate.py models/de-en --input sentences.de --nbest 3 --format fairseq

MODEL is an exported model (pipelines/export.py) or a training run folder (which still needs its data
cache). Input gets the training recipe's preprocessing (Moses tokenization, lowercasing, BPE with the
model's codes); output is Moses-detokenized. An empty input line gives an empty output line. With
--nbest N the text format prints N lines per input (best first); --format fairseq prints fairseq's
S-/H-/D-/P- lines (scores in base 2, as fairseq prints them).
"""

EXPORT_USAGE = """Export a training run's model as a self-contained folder (weights, config, dictionaries, BPE codes).

    python pipelines/export.py outputs/demo/sample_de_en-d128-o2-r8-emb29-s1 models/de-en
    python pipelines/export.py RUN_DIR OUT_DIR --checkpoint last.ckpt
    python pipelines/export.py RUN_DIR models/de-en --overwrite     # replace an earlier export

The default weights are the ones the run was evaluated with (best by its monitor, or the average of the
last epochs when the run averaged). The folder loads without the run folder or the data cache.
"""

LOAD_ERRORS = (OSError, ValueError, RuntimeError)  # DataError is a RuntimeError; all carry the file name


def _fail(parser: argparse.ArgumentParser, err: BaseException | str, debug: bool = False) -> NoReturn:
    if debug and isinstance(err, BaseException):
        raise err
    fail(parser.prog, err, hint=False)


def _quiet_logging() -> None:
    """Warnings only: importing fairseq otherwise sets the root logger to DEBUG (a wav2vec module does)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def translate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="translate.py", description=TRANSLATE_USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="an exported model folder or a training run folder")
    p.add_argument("--input", type=Path, default=None, help="file with one sentence per line (default: stdin)")
    p.add_argument("--checkpoint", default=None, help="run folders only: a .ckpt (path or name in checkpoints/)")
    p.add_argument("--beam", type=int, default=None, help="default: the run's eval.beam")
    p.add_argument("--lenpen", type=float, default=None, help="default: the run's eval.lenpen")
    p.add_argument("--max-len-a", type=float, default=None, help="max length = a * source length + b")
    p.add_argument("--max-len-b", type=int, default=None)
    p.add_argument("--nbest", type=int, default=1, help="hypotheses per sentence (<= beam)")
    p.add_argument("--format", choices=["text", "fairseq"], default="text")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per beam-search batch")
    add_threads_argument(p, default=1, help="torch threads (default 1: small beam batches gain little from "
                         "more, and 1 never oversubscribes cores shared with other jobs; raise it on a free machine)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (checked before the model is loaded)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p


def read_sentences(path: Path | None) -> list[str]:
    """Lines of a UTF-8 file or stdin, split on \\n only (a stray \\r is dropped), like the recipe reads text;
    a byte that is not UTF-8 is a DataError naming its line."""
    data = sys.stdin.buffer.read() if path is None else path.read_bytes()
    return [line.rstrip("\r") for line in decode_lines(data, str(path or "stdin"), what="input")]


def fairseq_lines(i: int, source: str, hyps: Sequence[Any]) -> list[str]:
    """fairseq-interactive's output block for sentence i: S-, then H-, D-, P- per hypothesis."""
    lines = [f"S-{i}\t{source}"]
    for h in hyps:
        score = h.score / math.log(2)
        lines += [f"H-{i}\t{score}\t{h.tokens}", f"D-{i}\t{score}\t{h.text}",
                  f"P-{i}\t" + " ".join(f"{s / math.log(2):.4f}" for s in h.positional_scores)]
    return lines


def _output_lines(translator: Any, sentences: list[str], hyps: list[list[Any]], fmt: str) -> list[str]:
    if fmt == "text":
        return [h.text for per_sentence in hyps for h in per_sentence]
    todo = [i for i, s in enumerate(sentences) if s.strip()]
    sources = [""] * len(sentences)
    for i, tokenized in zip(todo, translator.text.tokenize([sentences[i] for i in todo]), strict=True):
        sources[i] = tokenized
    return [line for i, (src, h) in enumerate(zip(sources, hyps, strict=True)) for line in fairseq_lines(i, src, h)]


def translate_main(argv: Sequence[str] | None = None) -> int:
    parser = translate_parser()
    args = parser.parse_args(argv)
    _quiet_logging()
    from tqdm import tqdm

    # torch: --help and argument errors answer without loading it
    from shapeshifter.translation.run_model import load_translator

    apply_threads(args.threads)
    try:
        check_device(args.device)
        sentences = read_sentences(args.input)
    except OSError as err:
        _fail(parser, f"cannot read {args.input or 'stdin'}: {err}", args.debug)
    except (ValueError, DataError) as err:
        _fail(parser, err, args.debug)
    try:
        translator = load_translator(args.model, args.checkpoint, args.device)
    except LOAD_ERRORS as err:
        _fail(parser, err, args.debug)
    with tqdm(total=len(sentences), unit="sent", disable=True if args.input is None else None) as bar:
        try:
            hyps = translator.hypotheses(sentences, args.beam, args.lenpen, args.max_len_a, args.max_len_b,
                                         args.nbest, args.batch_size, progress=bar.update)
        except ValueError as err:
            _fail(parser, err, args.debug)
    lines = _output_lines(translator, sentences, hyps, args.format)
    sys.stdout.buffer.write("".join(line + "\n" for line in lines).encode("utf-8"))
    sys.stdout.flush()
    return 0


def export_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="export.py", description=EXPORT_USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a training run folder (.hydra/config.yaml, checkpoints/)")
    parser.add_argument("out_dir", type=Path, help="the folder to create")
    parser.add_argument("--checkpoint", default=None, help="a .ckpt (path or name in checkpoints/) instead")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export at OUT_DIR")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    add_threads_argument(parser)
    args = parser.parse_args(argv)
    _quiet_logging()
    apply_threads(args.threads)
    # torch: --help and argument errors answer without loading it
    from shapeshifter.translation.export import MANIFEST
    from shapeshifter.translation.run_model import export_run

    try:
        out = export_run(args.run_dir, args.out_dir, args.checkpoint, overwrite=args.overwrite)
    except LOAD_ERRORS as err:
        _fail(parser, err, args.debug)
    print(f"exported {args.run_dir} -> {out} ({out / MANIFEST} lists the files and their sha256)")
    return 0
