"""Sequence-level distillation as a data stage (Kim & Rush 2016): the teacher beam-decodes the training source
once, and the student trains on a data-bin whose training targets are the teacher's best hypotheses.

The stage lies beside the data-bin, in a folder named by a content hash of what its outputs depend on (the
data-bin's content, the teacher's weights, the beam settings)::

    <work>/distill/seq-<key>/chunks/NNNNN.json    best hypotheses of sentences [N*chunk, (N+1)*chunk), + seconds
    <work>/distill/seq-<key>/teacher|teacher+refs/   the data-bin the student reads (dicts, train, valid, test)
    <work>/distill/seq-<key>/manifest.json        written last: sentences, decoding seconds, settings

Each chunk is written atomically when it is complete, so a killed stage resumes at the first missing chunk;
a finished stage (its data-bin's ``manifest.json``) is reused as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shapeshifter import atomic
from shapeshifter.translation.generate import make_generator, to_device

CHUNK_SENTENCES = 1000


@dataclass(frozen=True)
class SequenceStage:
    """The student's data-bin and what it took to make it."""

    data_bin: Path
    key: str
    sentences: int
    decode_s: float  # the teacher's decoding seconds, summed over the chunks (also over resumed attempts)
    reused: bool  # found finished: nothing was decoded by this call


def stage_key(data_digest: str, teacher_sha256: str, settings: dict[str, Any]) -> str:
    blob = json.dumps({"data": data_digest, "teacher": teacher_sha256, **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _write_json(path: Path, value: Any) -> None:
    atomic.write_text(path, json.dumps(value))  # a chunk is there whole or not at all


def decode_chunk(model: nn.Module, dataset: Any, ids: list[int], tgt_dict: Any, *, beam: int, max_len_a: float,
                 max_len_b: int, lenpen: float, max_tokens: int) -> dict[str, list[int]]:
    """Best beam hypothesis (token ids, ending in eos) of each sentence ``ids`` of a `LanguagePairDataset`."""
    import numpy as np

    generator = make_generator(model, tgt_dict, beam, max_len_a, max_len_b, lenpen)
    device = next(model.parameters()).device
    order = np.array(sorted(ids, key=lambda i: int(dataset.src_sizes[i])), dtype=np.int64)
    out: dict[str, list[int]] = {}
    with torch.no_grad():
        for batch in dataset.batch_by_size(order, max_tokens=max_tokens):
            sample = to_device(dataset.collater([dataset[int(i)] for i in batch]), device)
            hypos = generator.generate([model], sample)
            for row, sentence in enumerate(sample["id"].tolist()):
                out[str(sentence)] = hypos[row][0]["tokens"].cpu().tolist()
    return out


def _build_data_bin(source: Path, folder: Path, src: str, tgt: str, dataset: Any, hypotheses: list[list[int]],
                    tgt_dict: Any, with_references: bool) -> None:
    """Copy dictionaries, valid and test; write train with the teacher's targets (after the references when
    ``with_references``; the source side repeated to match)."""
    from fairseq.data import indexed_dataset

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file() and not path.name.startswith("train."):
            shutil.copy2(path, tmp / path.name)
    pair = f"{src}-{tgt}"
    sides = {src: [dataset.src[i] for i in range(len(dataset))], tgt: [torch.tensor(h) for h in hypotheses]}
    if with_references:
        sides = {src: sides[src] * 2, tgt: [dataset.tgt[i] for i in range(len(dataset))] + sides[tgt]}
    for lang, items in sides.items():
        prefix = tmp / f"train.{pair}.{lang}"
        vocab = len(dataset.src_dict if lang == src else tgt_dict)
        builder = indexed_dataset.make_builder(f"{prefix}.bin", impl="mmap", vocab_size=vocab)
        for item in items:
            builder.add_item(item.to(torch.int64) if torch.is_tensor(item) else torch.tensor(item))
        builder.finalize(f"{prefix}.idx")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def sequence_data_bin(model: nn.Module, datamodule: Any, work: Path, key: str, *, beam: int, max_len_a: float,
                      max_len_b: int, lenpen: float, with_references: bool, max_tokens: int,
                      chunk_sentences: int = CHUNK_SENTENCES, log: Callable[[str], None] = print,
                      progress: bool = True) -> SequenceStage:
    """Run (or reuse, or resume) the stage for the training split of ``datamodule`` (a `TranslationDataModule`
    over the original data-bin); ``model`` is the frozen teacher."""
    from tqdm import tqdm

    stage = work / f"seq-{key}"
    folder = stage / ("teacher+refs" if with_references else "teacher")
    manifest = folder / "manifest.json"
    if manifest.is_file():
        info = json.loads(manifest.read_text())
        log(f"[distill] reusing the teacher's translations of the training set: {folder}")
        return SequenceStage(folder, key, info["sentences"], info["decode_s"], reused=True)
    dataset = datamodule.load_split("train")
    chunks = stage / "chunks"
    chunks.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    count = (n + chunk_sentences - 1) // chunk_sentences
    done = {int(p.stem) for p in chunks.glob("*.json")}
    if done:
        log(f"[distill] resuming the teacher's decoding at {len(done)}/{count} chunks ({chunks})")
    settings = dict(beam=beam, max_len_a=max_len_a, max_len_b=max_len_b, lenpen=lenpen, max_tokens=max_tokens)
    with tqdm(total=n, unit="sent", desc="teacher decodes train", disable=not progress) as bar:
        bar.update(sum(min(chunk_sentences, n - c * chunk_sentences) for c in done))
        for c in range(count):
            if c in done:
                continue
            ids = list(range(c * chunk_sentences, min(n, (c + 1) * chunk_sentences)))
            t0 = time.perf_counter()
            hyps = decode_chunk(model, dataset, ids, datamodule.tgt_dict, **settings)
            _write_json(chunks / f"{c:05d}.json", {"hypotheses": hyps, "seconds": time.perf_counter() - t0})
            bar.update(len(ids))
    hypotheses: list[list[int]] = [[] for _ in range(n)]
    decode_s = 0.0
    for c in range(count):
        data = json.loads((chunks / f"{c:05d}.json").read_text())
        decode_s += float(data["seconds"])
        for sentence, tokens in data["hypotheses"].items():
            hypotheses[int(sentence)] = tokens
    _build_data_bin(datamodule.data_bin, folder, datamodule.src_lang, datamodule.tgt_lang, dataset, hypotheses,
                    datamodule.tgt_dict, with_references)
    _write_json(manifest, {"key": key, "sentences": n, "decode_s": decode_s, "chunks": count,
                           "with_references": with_references, **settings})
    log(f"[distill] the teacher decoded {n} training sentences in {decode_s:.1f} s: {folder}")
    return SequenceStage(folder, key, n, decode_s, reused=False)
