"""What distillation costs per training step: the student's step with the frozen teacher's forward and the extra
loss terms, against the same student's plain step, in one process.

Each candidate is the training module a run would build (`TranslationModule`, `DistillTranslationModule` with the
kinds on), stepping its own copy of the student with AdamW on one fixed batch: ``training_loss``, backward,
optimizer step. The candidates run back to back in rotating order (`bench.timing.interleaved_times`), so the
ratios compare steps taken under the same load. The dense teacher's own plain step is timed too, as the scale
the distilled steps are read against. Sequence-level distillation is left out: its student steps are plain ones
on other targets, and its cost is the teacher's one-off decoding (``timings.teacher_decode_s`` in its record).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from shapeshifter.bench.batch import make_batch
from shapeshifter.bench.step_profile import count_ops
from shapeshifter.bench.timing import interleaved_times, median_ratios
from shapeshifter.distill.settings import ONLINE_KINDS
from shapeshifter.params import count_parameters
from shapeshifter.translation.distill_module import DistillTranslationModule
from shapeshifter.translation.fairseq_model import build_transformer, placeholder_dictionary
from shapeshifter.translation.module import TranslationModule

STEPS = (*ONLINE_KINDS, "word+hidden")  # the online kinds alone, and word with hidden


def fixed_sample(n_sentences: int, length: int, src_vocab: int, tgt_vocab: int, dictionary: Any,
                 seed: int = 1) -> dict[str, Any]:
    """`bench.batch.make_batch` as a fairseq training sample (equal lengths: no padding to skew the timings)."""
    batch = make_batch(n_sentences * length, length, src_vocab, tgt_vocab, dictionary.nspecial, dictionary.eos(),
                       seed)
    net_input = {k: batch[k] for k in ("src_tokens", "src_lengths", "prev_output_tokens")}
    return {"net_input": net_input, "target": batch["target"], "ntokens": batch["target"].numel()}


def training_step(module: TranslationModule) -> Callable[[dict[str, Any]], None]:
    """One optimizer step of ``module`` on a sample, as its ``training_step`` takes it (loss per target token)."""
    optimizer = module.configure_optimizers()["optimizer"]
    for group in optimizer.param_groups:  # past the warmup: the schedule starts every group at lr 0
        group["lr"] = group.get("initial_lr", group["lr"])

    def step(sample: dict[str, Any]) -> None:
        module.train()
        optimizer.zero_grad(set_to_none=True)
        loss, _, ntokens, _ = module.training_loss(sample)
        (loss / ntokens).backward()
        optimizer.step()

    return step


def candidates(arch: str, overrides: Mapping[str, Any], policy: Mapping[str, Any], vocab: tuple[int, int],
               options: Mapping[str, Any], kinds: Sequence[str] = STEPS) -> dict[str, TranslationModule]:
    """``{"plain": student, <kind>: distilled student, ..., "teacher": dense}``, every student from the same
    initial weights; ``options``: the modules' keyword arguments (lr, label_smoothing, alpha, temperature, ...)."""
    src_dict, tgt_dict = placeholder_dictionary(vocab[0]), placeholder_dictionary(vocab[1])
    teacher, _ = build_transformer(arch, src_dict, tgt_dict, dict(overrides), None)
    student, _ = build_transformer(arch, src_dict, tgt_dict, dict(overrides), dict(policy))
    plain_options = {k: v for k, v in options.items()
                     if k not in ("alpha", "temperature", "hidden_weight", "attention_weight")}
    modules = {"plain": TranslationModule(copy.deepcopy(student), tgt_dict, src_dict, **plain_options)}
    frozen = teacher.eval().requires_grad_(False)
    width = int(overrides.get("encoder_embed_dim", 0)) or None
    for kind in kinds:
        modules[kind] = DistillTranslationModule(copy.deepcopy(student), tgt_dict, src_dict, teacher=frozen,
                                                 kinds=tuple(kind.split("+")), teacher_dim=width, student_dim=width,
                                                 **options)
    modules["teacher"] = TranslationModule(copy.deepcopy(teacher).requires_grad_(True), tgt_dict, src_dict,
                                           **plain_options)
    return modules


def measure(modules: Mapping[str, TranslationModule], sample: dict[str, Any], reps: int, warmup: int = 1,
            ops: bool = True) -> dict[str, dict[str, Any]]:
    """Per candidate: parameters, median step seconds, median ratio to the plain student's step in the same
    repetition, and (``ops``) the number of aten ops one step dispatches."""
    steps = {name: training_step(module) for name, module in modules.items()}
    times = interleaved_times({name: (lambda s=step: s(sample)) for name, step in steps.items()},
                              torch.device("cpu"), reps, warmup)
    ratios = median_ratios(times, "plain")
    rows = {}
    for name, module in modules.items():
        rows[name] = {"params": count_parameters(module.model)["total"],
                      "step_s": sorted(times[name])[len(times[name]) // 2], "ratio_to_plain": ratios[name]}
        if ops:
            rows[name]["ops"] = sum(count_ops(lambda s=steps[name]: s(sample)).values())
    return rows
