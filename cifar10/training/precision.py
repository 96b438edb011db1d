"""Which float precision a stage computes in on this CPU: a fixed rule from the CPU's features.

`precision: auto` (the default of `train` and `transfer`) resolves here, never by timing anything at
run time, so one machine always makes the same choice and a run's precision follows from its CPU
alone. Each branch of the rule was measured on a CPU of that kind (BENCHMARKS.md, STUDIES.md):

- the CNN (`train-*`): bfloat16 pays where TensorFlow's oneDNN kernels reach a bfloat16 matrix unit:
  Intel AMX (`amx_bf16`: 2.0-2.1x float32 on Xeons of family 6 models 167 and 207), and AMD's
  AVX512_BF16 (1.35-1.45x on an EPYC of family 25 model 17). An Intel CPU with AVX512_BF16 but no
  AMX exposed ran it at 0.58x, and a CPU without either only emulates it: float32 there.
- the transfer stage: its frozen pass and evaluation pay on AMX; fine-tuning EfficientNet's blocks
  does not (depthwise convolutions and casts gain nothing from AMX), so `transfer.precision` picks per
  phase (cifar10.training.transfer).
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


def bfloat16_pays(cpu: Cpu) -> tuple[bool, str]:
    """(whether bfloat16 matmuls and convolutions beat float32 on `cpu`, why), by the measured rule."""
    if "amx_bf16" in cpu.flags:
        return True, "AMX bfloat16 units"
    if "avx512_bf16" in cpu.flags and cpu.vendor == "AuthenticAMD":
        return True, "AMD AVX512_BF16"
    if "avx512_bf16" in cpu.flags:
        return False, "AVX512_BF16 without AMX runs bfloat16 slower than float32 on Intel"
    return False, "no bfloat16 units"


def resolve(requested: str, cpu: Cpu | None = None) -> tuple[str, str]:
    """(the Keras dtype policy to use, why) for a `precision` param: explicit values stand as given."""
    if requested in POLICIES:
        return requested, "set in params.yaml"
    if requested != "auto":
        raise ValueError(f"precision: auto, {' or '.join(POLICIES)} (got {requested!r})")
    pays, why = bfloat16_pays(cpu or Cpu.this())
    return ("mixed_bfloat16" if pays else "float32"), f"auto: {why}"
