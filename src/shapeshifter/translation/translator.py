"""Translate your own sentences with a trained model.

    translator = load_translator("models/de-en")          # an export (pipelines/export.py)
    translator.translate(["Guten Morgen.", "Wie geht es dir?"])   # one translation per sentence, in order
    translator.hypotheses(["Guten Morgen."], beam=5, nbest=3)     # the 3 best per sentence, with scores

Sentences go through the recipe's preprocessing (Moses tokenization, lowercasing, BPE with the stored codes),
are translated in batches sorted by length (fewer pad tokens per batch) and come back in input order,
Moses-detokenized. An empty (or all-whitespace) sentence translates to "" without calling the model.
fairseq caps the output length at ``max_len_a * L + max_len_b`` with L the longest source of the batch;
sorting keeps L close to each sentence's own length, and ``max_len_a=0`` makes the cap the same for all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shapeshifter.translation.export import LoadedModel, load_export
from shapeshifter.translation.generate import decode, make_generator
from shapeshifter.translation.preprocess import TextProcessor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hypothesis:
    """One beam-search output for one sentence."""

    text: str  # detokenized: what a reader sees
    tokens: str  # tokenized with BPE removed: what tokenized BLEU and fairseq's H- lines show
    score: float  # fairseq's beam score: sum of token log-probabilities (natural log) / length**lenpen
    positional_scores: tuple[float, ...]  # natural-log probability of each target subword, then of EOS


EMPTY = Hypothesis(text="", tokens="", score=0.0, positional_scores=())


def load_translator(path: str | Path, device: str = "cpu") -> Translator:
    """A `Translator` for an export folder; errors name the file that is wrong. A training run folder is loaded
    by `shapeshifter.translation.run_model.load_translator` (it needs the run's config and data cache)."""
    return Translator(load_export(path), device=device)


class Translator:
    """Raw sentences in, translations out; the beam settings default to the ones the run was evaluated with."""

    def __init__(self, loaded: LoadedModel, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()
        self.src_dict, self.tgt_dict = loaded.src_dict, loaded.tgt_dict
        self.text = TextProcessor(loaded.text, loaded.subword_model)
        self.defaults = dict(loaded.generation)
        self.source = loaded.source

    def translate(self, sentences: Sequence[str], beam: int | None = None, lenpen: float | None = None,
                  max_len_a: float | None = None, max_len_b: int | None = None, nbest: int = 1,
                  batch_size: int = 32) -> list[str] | list[list[str]]:
        """The best translation per sentence, or with ``nbest > 1`` the n best per sentence (best first)."""
        hyps = self.hypotheses(sentences, beam, lenpen, max_len_a, max_len_b, nbest, batch_size)
        return [h[0].text for h in hyps] if nbest == 1 else [[x.text for x in h] for h in hyps]

    def hypotheses(self, sentences: Sequence[str], beam: int | None = None, lenpen: float | None = None,
                   max_len_a: float | None = None, max_len_b: int | None = None, nbest: int = 1,
                   batch_size: int = 32, progress: Callable[[int], Any] | None = None) -> list[list[Hypothesis]]:
        """`nbest` hypotheses per sentence with scores; `progress(n)` is called as n sentences are done."""
        settings = self.generation_settings(beam, lenpen, max_len_a, max_len_b)
        if not 1 <= nbest <= settings["beam"] or batch_size < 1:
            raise ValueError(f"need 1 <= nbest <= beam and batch_size >= 1, got nbest={nbest}, "
                             f"beam={settings['beam']}, batch_size={batch_size}")
        out = [[EMPTY] * nbest for _ in sentences]
        todo = [i for i, s in enumerate(sentences) if s.strip()]
        if progress is not None:
            progress(len(sentences) - len(todo))
        tokens = self.source_tokens(self.text.encode([sentences[i] for i in todo]), [i + 1 for i in todo])
        generator = make_generator(self.model, self.tgt_dict, **settings)
        order = sorted(range(len(todo)), key=lambda k: len(tokens[k]))
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            for k, hyps in zip(batch, self._generate(generator, [tokens[k] for k in batch]), strict=True):
                out[todo[k]] = [self._hypothesis(h) for h in hyps[:nbest]]
            if progress is not None:
                progress(len(batch))
        return out

    def generation_settings(self, beam: int | None = None, lenpen: float | None = None,
                            max_len_a: float | None = None, max_len_b: int | None = None) -> dict[str, Any]:
        """Keyword arguments of `make_generator`: the given values, else the run's evaluation settings."""
        given = {"beam": beam, "lenpen": lenpen, "max_len_a": max_len_a, "max_len_b": max_len_b}
        return {k: self.defaults[k] if v is None else v for k, v in given.items()}

    def source_tokens(self, segmented: Sequence[str], line_numbers: Sequence[int] | None = None) -> list[torch.Tensor]:
        """Dictionary ids + EOS per line, cut to the encoder's positions. A cut line is logged as a warning naming
        it (``line_numbers``: each line's number in the user's input, 1-based; default: its position)."""
        limit = self.model.encoder.max_positions()
        eos = torch.tensor([self.src_dict.eos()])
        tokens = [self.src_dict.encode_line(line, add_if_not_exist=False, append_eos=True).long()
                  for line in segmented]
        numbers = list(line_numbers) if line_numbers is not None else list(range(1, len(tokens) + 1))
        for i in [i for i, t in enumerate(tokens) if len(t) > limit]:
            log.warning("input line %d has %d subwords, more than the model's %d positions: translating its first "
                        "%d (split the line to translate all of it)", numbers[i], len(tokens[i]) - 1, limit, limit - 1)
            tokens[i] = torch.cat([tokens[i][: limit - 1], eos])
        return tokens

    def _generate(self, generator: Any, tokens: list[torch.Tensor]) -> list[list[dict[str, Any]]]:
        from fairseq.data.data_utils import collate_tokens

        # Left-padded sources, as the training batches were (LanguagePairDataset's default).
        src = collate_tokens(tokens, self.src_dict.pad(), self.src_dict.eos(), left_pad=True)
        sample = {"id": torch.arange(len(tokens)),
                  "net_input": {"src_tokens": src.to(self.device),
                                "src_lengths": torch.tensor([len(t) for t in tokens], device=self.device)}}
        with torch.inference_mode():
            return generator.generate([self.model], sample)

    def _hypothesis(self, hypo: dict[str, Any]) -> Hypothesis:
        tokens = decode(hypo["tokens"], self.tgt_dict, self.text.settings.bpe)
        return Hypothesis(text=self.text.detokenize([tokens])[0], tokens=tokens, score=float(hypo["score"]),
                          positional_scores=tuple(hypo["positional_scores"].tolist()))
