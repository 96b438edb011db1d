"""Which float precision each kind of work computes in on this CPU: a fixed rule from its features.

`precision: auto` (the default of `train` and `transfer`) resolves here, never by timing anything at
run time, so one machine always makes the same choice and a run's precision follows from its CPU
alone. Each branch was measured on a CPU of that kind (BENCHMARKS.md, STUDIES.md):

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

POLICIES = ("float32", "mixed_bfloat16")


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


def resolve(requested: str, workload: str = "cnn", cpu: Cpu | None = None) -> tuple[str, str]:
    """(the Keras dtype policy for `workload`, why) for a `precision` param: explicit values stand as given."""
    if requested in POLICIES:
        return requested, "set in params.yaml"
    if requested != "auto":
        raise ValueError(f"precision: auto, {' or '.join(POLICIES)} (got {requested!r})")
    pays, why = bfloat16_pays(cpu or Cpu.this(), workload)
    return ("mixed_bfloat16" if pays else "float32"), f"auto: {why}"
