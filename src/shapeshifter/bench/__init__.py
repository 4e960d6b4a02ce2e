"""Benchmark building blocks shared by the pipelines: timing of interleaved candidates and peak memory."""

from .memory import peak_bytes, tensor_bytes
from .timing import interleaved_times, median_ratios, sync

__all__ = ["interleaved_times", "median_ratios", "peak_bytes", "sync", "tensor_bytes"]
