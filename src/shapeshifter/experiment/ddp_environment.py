"""The Lightning cluster environment of a rank that `experiment.ddp.launch_ranks` started (its own module so that
importing the run skeleton does not import Lightning)."""

from __future__ import annotations

from lightning.fabric.plugins.environments import ClusterEnvironment


class LaunchedRank(ClusterEnvironment):
    """Rank ``rank`` of ``world`` processes on this machine that `launch_ranks` started (Lightning must not
    launch any itself)."""

    def __init__(self, rank: int, world: int, port: int) -> None:
        super().__init__()
        self.rank, self.world, self.port = rank, world, port

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return "127.0.0.1"

    @property
    def main_port(self) -> int:
        return self.port

    @staticmethod
    def detect() -> bool:
        return False

    def world_size(self) -> int:
        return self.world

    def set_world_size(self, size: int) -> None:
        if size != self.world:
            raise ValueError(f"Lightning expects {size} processes but {self.world} were launched")

    def global_rank(self) -> int:
        return self.rank

    def set_global_rank(self, rank: int) -> None:
        if rank != self.rank:
            raise ValueError(f"Lightning places this process at rank {rank}, it was launched as rank {self.rank}")

    def local_rank(self) -> int:
        return self.rank

    def node_rank(self) -> int:
        return 0
