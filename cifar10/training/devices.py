"""What TensorFlow computes on in this process: its GPUs as it reports them, and its CPU threads.

The one place the project asks TensorFlow about its devices: the precision rule, the provenance of
runs and `make expect` read them here. Nothing here hides or selects a device; `train.distribution:
mirrored` replicates over every GPU listed here (TensorFlow's default), the CPU when there is none.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    """One GPU as TensorFlow describes it (`tf.config.experimental.get_device_details`)."""

    name: str
    compute_capability: tuple[int, int] | None  # CUDA's (major, minor); None where TensorFlow reports none

    @classmethod
    def from_details(cls, details: dict) -> Gpu:
        capability = details.get("compute_capability")
        return cls(str(details.get("device_name") or "unknown GPU"),
                   (int(capability[0]), int(capability[1])) if capability else None)

    def __str__(self) -> str:
        if self.compute_capability is None:
            return self.name
        return f"{self.name} (compute capability {self.compute_capability[0]}.{self.compute_capability[1]})"


def local_gpus() -> tuple[Gpu, ...]:
    """Every GPU TensorFlow sees in this process, in its order (GPU:0 first)."""
    from cifar10.console import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    return tuple(Gpu.from_details(tf.config.experimental.get_device_details(device))
                 for device in tf.config.list_physical_devices("GPU"))


def describe(gpus: tuple[Gpu, ...]) -> str:
    """`no GPU`, `NVIDIA A100-SXM4-40GB (compute capability 8.0)`, or `2 x ...` (models joined by ' + ')."""
    if not gpus:
        return "no GPU"
    counts: dict[str, int] = {}
    for gpu in gpus:
        counts[str(gpu)] = counts.get(str(gpu), 0) + 1
    return " + ".join(name if n == 1 else f"{n} x {name}" for name, n in counts.items())


def cpu_threads() -> int:
    """The threads TensorFlow runs one op on: its intra-op setting, by default every core this process
    may run on (TensorFlow's own default)."""
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads() or len(os.sched_getaffinity(0))
