"""What the training code needs to run as one of several data-parallel processes (DDP ranks): which examples
a rank takes, and the reductions that turn per-rank sums into whole-split values.

Every function is a no-op in a single process (no initialized ``torch.distributed`` process group), so
single-process runs compute exactly what they did before.

Sharding policy, the same for translation batches and GLUE examples:

* training: every rank takes every ``world``-th item of the epoch's order, the order first extended with its own
  head so that all ranks take the same number of optimizer steps (a rank with one step fewer would wait forever
  in the others' gradient all-reduce); a few items are then seen twice per epoch, as with torch's
  ``DistributedSampler``;
* evaluation: disjoint shards that together hold every item exactly once, each rank's non-empty; the per-rank
  sums or predictions are reduced or gathered before a metric is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

# ``self.log`` options for a value that is already the same on every rank (reduced or gathered before it is
# logged): the max over ranks leaves it exactly as it is, and Lightning no longer warns that an epoch-level value
# was logged without ``sync_dist``. One process: the value itself, as without them.
ALREADY_REDUCED = {"sync_dist": True, "reduce_fx": "max"}


def rank_and_world() -> tuple[int, int]:
    """``(global rank, world size)`` of the initialized process group; ``(0, 1)`` without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def trainer_ranks(trainer: Any) -> tuple[int, int]:
    """``(global rank, world size)`` of a Lightning trainer; ``(0, 1)`` without one (a datamodule used alone)."""
    if trainer is None:
        return 0, 1
    return int(trainer.global_rank), int(trainer.world_size)


def rank_share(order: np.ndarray, rank: int, world: int) -> np.ndarray:
    """A training rank's items of ``order``: every ``world``-th from ``rank``, after padding ``order`` cyclically
    to a multiple of ``world`` (module docstring: equal step counts)."""
    if world == 1:
        return order
    total = -(-len(order) // world) * world
    return np.resize(order, total)[rank::world]


def eval_shard(n: int, rank: int, world: int, what: str = "items") -> np.ndarray:
    """An evaluation rank's indices of ``range(n)``: a contiguous block, in rank order, block sizes differing by
    at most one, so that gathering the blocks in rank order restores the split's order.

    Every rank needs at least one item: a rank without any would skip Lightning's evaluation hooks, where the
    others wait for it in the reduction.
    """
    if world == 1:
        return np.arange(n)
    if n < world:
        raise ValueError(f"{n} {what} cannot be shared by {world} ranks (each needs at least one): evaluate on "
                         "fewer devices or more data")
    return np.array_split(np.arange(n), world)[rank]


def all_reduce_sum(values: Sequence[float], device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sums of ``values`` over all ranks, in float64 (token and loss sums of a whole split)."""
    rank, world = rank_and_world()
    if world == 1:
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor.tolist()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in a single process."""
    rank, world = rank_and_world()
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    torch.distributed.all_gather_object(out, obj)
    return out


def rank_seed(seed: int, rank: int) -> int:
    """The seed rank ``rank`` uses where a single process uses ``seed`` (dropout before each update): rank 0 keeps
    ``seed``, so that a single-process run is unchanged; the others derive their own, so that ranks do not draw
    identical dropout masks for batches of the same shape."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
