"""LightningModule that trains a fairseq translation model with fairseq's IWSLT recipe.

Defaults follow fairseq's IWSLT'14 de-en example (`--lr 5e-4 --warmup-updates 4000 --weight-decay 1e-4
--label-smoothing 0.1 --clip-norm 0`; dropout and max_tokens belong to the model and the datamodule).
Optimizer: fairseq's Adam applies decoupled weight decay (`p -= lr * wd * p`) to every parameter,
which is exactly `torch.optim.AdamW`. Losses are logged in bits like fairseq (`ppl = 2 ** nll_loss`);
the loss that is back-propagated is the smoothed loss in nats per target token.

Under DDP every rank trains on its share of the batches and the per-token normalisation is fairseq's: the
summed loss of all ranks divided by their total target tokens. Validation loss, perplexity and BLEU are
sums (or hypotheses) reduced over the ranks before they are logged, so they are the values of the whole split
and the same on every rank (checkpointing and early stopping decide alike everywhere). ``train_step_s`` and
``train_wps`` are per rank (averaged over the ranks).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from shapeshifter.criterion import label_smoothed_nll_loss, to_base2
from shapeshifter.distributed import ALREADY_REDUCED, all_gather_objects, all_reduce_sum, rank_and_world, rank_seed
from shapeshifter.optim import param_groups
from shapeshifter.translation.bleu import tokenized_bleu
from shapeshifter.translation.generate import make_generator, translate_batch
from shapeshifter.translation.schedule import InverseSqrtSchedule


def select_rows(sample: dict, keep: Tensor) -> dict:
    """Sub-batch of a collated `LanguagePairDataset` batch (rows where `keep` is True)."""
    out: dict[str, Any] = {}
    for key, value in sample.items():
        if isinstance(value, dict):
            out[key] = {k: v[keep] if torch.is_tensor(v) else v for k, v in value.items()}
        elif torch.is_tensor(value) and value.dim() > 0 and value.size(0) == keep.numel():
            out[key] = value[keep]
        else:
            out[key] = value
    out["nsentences"] = int(keep.sum())
    return out


def plain(value: Any) -> Any:
    """Recursively turn mappings/sequences (e.g. Hydra's DictConfig/ListConfig) into dicts/lists.

    Checkpoint hyperparameters must be plain Python values so that `torch.load(weights_only=True)`
    can read the checkpoint back.
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(v) for v in value]
    return value


class TranslationModule(L.LightningModule):
    """Label-smoothed cross-entropy training, validation loss every epoch and beam-search `valid_bleu`.

    `valid_bleu` is tokenized BLEU4 (de-BPE'd hypotheses vs de-BPE'd binarized references), computed
    every `bleu_every_n_epochs` epochs on the validation sentences with id < `bleu_max_sentences`
    (all when None; ids follow the file order, so the subset is not biased towards short sentences).
    Pair it with `ModelCheckpoint(monitor="valid_bleu", every_n_epochs=bleu_every_n_epochs)`.

    Before every update the torch RNG is reseeded with `seed + global_step` (as fairseq's trainer does),
    so dropout masks depend only on the step and a resumed run reproduces an uninterrupted one.
    """

    def __init__(
        self,
        model: nn.Module,
        tgt_dict: Any,
        src_dict: Any = None,
        lr: float = 5e-4,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-8,
        weight_decay: float = 1e-4,
        warmup_updates: int = 4000,
        warmup_init_lr: float = 0.0,
        label_smoothing: float = 0.1,
        seed: int = 1,
        bleu_every_n_epochs: int = 1,
        bleu_max_sentences: int | None = None,
        beam: int = 5,
        max_len_a: float = 1.2,
        max_len_b: int = 10,
        lenpen: float = 1.0,
        bpe: str | None = "subword_nmt",
        model_config: dict | None = None,
        factor_lr_scale: float = 1.0,
    ) -> None:
        super().__init__()
        # save_hyperparameters reads these locals, so normalise them first (Hydra passes ListConfig etc.).
        betas = (float(betas[0]), float(betas[1]))
        model_config = plain(model_config)
        # The model and dictionaries are objects, not hyperparameters; keep the checkpoint free of them.
        # `model_config` (e.g. arch/overrides/policy) is stored verbatim so the model can be rebuilt.
        # A subclass's teacher (`distill_module`) is an object too, and must never reach a checkpoint.
        self.save_hyperparameters(ignore=["model", "tgt_dict", "src_dict", "teacher"])
        self.model = model
        self.tgt_dict = tgt_dict
        # fairseq encoders keep their dictionary; only used to print sources.
        self.src_dict = src_dict if src_dict is not None else model.encoder.dictionary
        self.padding_idx = tgt_dict.pad()
        self.betas = betas
        self._step_start: float | None = None
        self._train_sums: dict[str, float] = {}
        self._valid_sums: dict[str, float] = {}
        self._bleu_pairs: list[tuple[int, str, str]] = []  # (sentence id, hypothesis, reference)
        InverseSqrtSchedule(lr, warmup_updates, warmup_init_lr)  # fail on bad schedule args at build time
        if not factor_lr_scale > 0:
            raise ValueError(f"optim.factor_lr_scale must be > 0, got {factor_lr_scale!r}")

    # -- loss ------------------------------------------------------------------------------------------
    def compute_loss(self, sample: dict) -> tuple[Tensor, Tensor, int]:
        """(smoothed loss sum, nll sum) in nats over target tokens, and the number of target tokens."""
        net_output = self.model(**sample["net_input"])
        lprobs = self.model.get_normalized_probs(net_output, log_probs=True)
        lprobs = lprobs.view(-1, lprobs.size(-1))
        loss, nll = label_smoothed_nll_loss(
            lprobs, sample["target"].view(-1), self.hparams.label_smoothing, self.padding_idx
        )
        return loss, nll, int(sample["ntokens"])

    # -- training --------------------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self._train_sums = {"nll": 0.0, "ntokens": 0}

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        torch.manual_seed(rank_seed(self.hparams.seed + self.global_step, rank_and_world()[0]))
        self._step_start = time.perf_counter()

    def training_loss(self, batch: dict) -> tuple[Tensor, Tensor, int, dict[str, Tensor]]:
        """(loss sum, nll sum, target tokens, extra per-token terms to log) of one training batch: the
        label-smoothed CE here, distillation terms in `distill_module`."""
        loss, nll, ntokens = self.compute_loss(batch)
        return loss, nll, ntokens, {}

    def extra_parameters(self) -> list[nn.Parameter]:
        """Trained parameters outside ``self.model`` (never exported), e.g. a distillation projection."""
        return []

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss, nll, ntokens, extra = self.training_loss(batch)
        loss_per_token = loss / ntokens
        self._train_sums["nll"] = self._train_sums.get("nll", 0.0) + float(nll.detach())
        self._train_sums["ntokens"] = self._train_sums.get("ntokens", 0) + ntokens
        # epoch means weighted by tokens, over all ranks
        log = dict(on_step=True, on_epoch=True, batch_size=ntokens, sync_dist=True)
        self.log("train_loss", to_base2(loss_per_token.detach()), prog_bar=True, **log)
        self.log("train_nll_loss", to_base2(nll.detach() / ntokens), **log)
        for name, value in extra.items():
            self.log(name, value.detach(), **log)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, batch_size=ntokens)
        return self.ranks_loss(loss, ntokens, loss_per_token)

    def ranks_loss(self, loss: Tensor, ntokens: int, loss_per_token: Tensor) -> Tensor:
        """The loss whose gradient DDP's averaging over ``world`` ranks turns into fairseq's: the sum of all
        ranks' losses over all ranks' target tokens (one process: ``loss_per_token`` itself)."""
        world = rank_and_world()[1]
        if world == 1:
            return loss_per_token
        (total,) = all_reduce_sum([ntokens], device=loss.device)
        return loss * (world / total)

    def on_train_batch_end(self, outputs: Any, batch: dict, batch_idx: int) -> None:
        if self._step_start is None:
            return
        seconds = time.perf_counter() - self._step_start
        ntokens = int(batch["ntokens"])
        log = dict(on_step=True, on_epoch=True, batch_size=1, sync_dist=True)  # per rank, averaged over the ranks
        self.log("train_step_s", seconds, **log)
        self.log("train_wps", ntokens / max(seconds, 1e-9), **log)

    def on_train_epoch_end(self) -> None:
        nll, ntokens = all_reduce_sum([self._train_sums.get("nll", 0.0), self._train_sums.get("ntokens", 0)],
                                      device=self.device)
        if ntokens:
            self.log("train_ppl", 2.0 ** to_base2(nll / ntokens), **ALREADY_REDUCED)

    # -- validation ------------------------------------------------------------------------------------
    def bleu_this_epoch(self) -> bool:
        return (self.current_epoch + 1) % self.hparams.bleu_every_n_epochs == 0

    def on_validation_epoch_start(self) -> None:
        self._valid_sums = {"loss": 0.0, "nll": 0.0, "ntokens": 0}
        self._bleu_pairs = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, nll, ntokens = self.compute_loss(batch)
        self._valid_sums["loss"] += float(loss)
        self._valid_sums["nll"] += float(nll)
        self._valid_sums["ntokens"] += ntokens
        if not self.bleu_this_epoch():
            return
        limit = self.hparams.bleu_max_sentences
        if limit is not None:
            keep = batch["id"] < limit
            if not bool(keep.any()):
                return
            batch = select_rows(batch, keep)
        generator = make_generator(
            self.model, self.tgt_dict, self.hparams.beam, self.hparams.max_len_a, self.hparams.max_len_b,
            self.hparams.lenpen,
        )  # fmt: skip
        for t in translate_batch(generator, batch, self.src_dict, self.tgt_dict, self.hparams.bpe):
            self._bleu_pairs.append((t.id, t.hypothesis, t.reference))

    def on_validation_epoch_end(self) -> None:
        sums = self._valid_sums
        loss, nll, ntokens = all_reduce_sum([sums["loss"], sums["nll"], sums["ntokens"]], device=self.device)
        ntokens = max(ntokens, 1)
        nll = to_base2(nll / ntokens)
        self.log("valid_loss", to_base2(loss / ntokens), prog_bar=True, **ALREADY_REDUCED)
        self.log("valid_nll_loss", nll, **ALREADY_REDUCED)
        self.log("valid_ppl", 2.0**nll, **ALREADY_REDUCED)
        pairs = sorted(p for part in all_gather_objects(self._bleu_pairs) for p in part)  # by sentence id
        if pairs:
            _, hyps, refs = zip(*pairs, strict=True)
            self.log("valid_bleu", tokenized_bleu(list(hyps), list(refs)).score, prog_bar=True, **ALREADY_REDUCED)

    # -- optimisation ----------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict:
        hp = self.hparams
        groups = param_groups(self.model, hp.lr, hp.get("factor_lr_scale", 1.0))
        if self.extra_parameters():
            groups.append({"params": self.extra_parameters()})
        optimizer = torch.optim.AdamW(groups, lr=hp.lr, betas=self.betas, eps=hp.eps, weight_decay=hp.weight_decay)
        schedule = InverseSqrtSchedule(hp.lr, hp.warmup_updates, hp.warmup_init_lr)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
