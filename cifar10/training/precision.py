"""Which float precision each kind of work computes in on this machine: a fixed rule from its devices.

`precision: auto` (the default of `train`, `transfer` and `evaluate`) resolves here, never by timing
anything at run time, so one machine always makes the same choice and a run's precision follows from
its devices alone.

Where TensorFlow sees a GPU, the work runs there and the GPU rule decides, from the compute capability
TensorFlow reports (the least capable GPU decides for several: every replica computes alike):
- 8.0 and newer (Ampere on): `mixed_bfloat16`, float32's range on the bfloat16 Tensor Cores;
- 7.x (Volta, Turing): `mixed_float16`, on float16 Tensor Cores; Keras scales the loss, so small
  gradients survive float16's narrow range;
- below 7.0, or no compute capability reported: float32 (no Tensor Cores).
This is NVIDIA's and TensorFlow's mixed-precision guidance, the same for every kind of work; this
project has measured it on no GPU.

Without a GPU the CPU rule decides, from /proc/cpuinfo. Each branch was measured on a CPU of that kind
(BENCHMARKS.md, STUDIES.md):

- `cnn`, the study's CNN (train stages): bfloat16 pays where TensorFlow's oneDNN kernels reach a
  bfloat16 matrix unit: Intel AMX (`amx_bf16`: 1.96x float32 on a Xeon of family 6 model 207, 2.1x on
  model 167) and AMD's AVX512_BF16 (1.35-1.45x on an EPYC of family 25 model 17). An Intel CPU with
  AVX512_BF16 but no AMX exposed ran it at 0.58x, and a CPU with neither only emulates it.
- `frozen`, EfficientNet's frozen pass and the transfer model's predictions: bfloat16 pays with AMX
  (its 1x1 convolutions are matmuls); elsewhere it is unmeasured, so float32.
- `fine_tune`, training EfficientNet's blocks: float32 everywhere; on AMX bfloat16 ran 1.3-4x slower
  (depthwise convolutions and the casts around them gain nothing from it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cifar10.training.devices import Gpu, local_gpus

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


@dataclass(frozen=True)
class Cpu:
    """What the rule reads off /proc/cpuinfo."""

    vendor: str
    flags: frozenset[str]

    @classmethod
    def parse(cls, cpuinfo: str) -> Cpu:
        first = cpuinfo.split("\n\n")[0]
        fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
        return cls(fields.get("vendor_id", ""), frozenset(fields.get("flags", "").split()))

    @classmethod
    def this(cls) -> Cpu:
        try:
            return cls.parse(Path("/proc/cpuinfo").read_text())
        except OSError:  # not Linux: no bfloat16 claim can be checked
            return cls("", frozenset())


WORKLOADS = ("cnn", "frozen", "fine_tune")


def has_bfloat16_units(cpu: Cpu) -> bool:
    """Whether the CPU computes bfloat16 in hardware (AMX or AVX512_BF16); elsewhere it is emulated."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu.flags)


def bfloat16_pays(cpu: Cpu, workload: str = "cnn") -> tuple[bool, str]:
    """(whether bfloat16 beats float32 for `workload` on `cpu`, why), by the measured rule."""
    if workload not in WORKLOADS:
        raise ValueError(f"workload: one of {WORKLOADS} (got {workload!r})")
    amx, amd_bf16 = "amx_bf16" in cpu.flags, "avx512_bf16" in cpu.flags and cpu.vendor == "AuthenticAMD"
    if workload == "fine_tune":
        return False, "fine-tuning EfficientNet's blocks gains nothing from bfloat16"
    if amx:
        return True, "AMX bfloat16 units"
    if amd_bf16 and workload == "cnn":
        return True, "AMD AVX512_BF16"
    if amd_bf16:
        return False, "bfloat16 unmeasured for EfficientNet on AMD AVX512_BF16"
    if has_bfloat16_units(cpu):
        return False, "AVX512_BF16 without AMX runs bfloat16 slower than float32 on Intel"
    return False, "no bfloat16 units"


def gpu_policy(gpus: tuple[Gpu, ...]) -> tuple[str, str]:
    """(the Keras dtype policy on these GPUs, why), by the GPU rule; the least capable GPU decides."""
    unknown = [gpu for gpu in gpus if gpu.compute_capability is None]
    if unknown:
        return "float32", f"{unknown[0].name} reports no CUDA compute capability"
    gpu = min(gpus, key=lambda g: g.compute_capability)
    major, minor = gpu.compute_capability
    which = f"{gpu.name}, compute capability {major}.{minor}"
    if (major, minor) >= (8, 0):
        return "mixed_bfloat16", f"{which}: bfloat16 Tensor Cores"
    if major == 7:
        return "mixed_float16", f"{which}: float16 Tensor Cores, loss scaled"
    return "float32", f"{which}: no Tensor Cores"


def resolve(requested: str, workload: str = "cnn", cpu: Cpu | None = None,
            gpus: tuple[Gpu, ...] | None = None) -> tuple[str, str]:
    """(the Keras dtype policy for `workload`, why) for a `precision` param: explicit values stand as given.

    `cpu` and `gpus` describe the machine (default: this one; `gpus=()` for a machine without GPU).
    """
    if requested in POLICIES:
        return requested, "set in params.yaml"
    if requested != "auto":
        raise ValueError(f"precision: auto, {', '.join(POLICIES)} (got {requested!r})")
    if workload not in WORKLOADS:
        raise ValueError(f"workload: one of {WORKLOADS} (got {workload!r})")
    gpus = local_gpus() if gpus is None else gpus
    if gpus:
        policy, why = gpu_policy(gpus)
        return policy, f"auto: {why}"
    pays, why = bfloat16_pays(cpu or Cpu.this(), workload)
    return ("mixed_bfloat16" if pays else "float32"), f"auto: {why}"
