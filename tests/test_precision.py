"""`precision: auto`: a fixed rule from the CPU's features, the branches BENCHMARKS.md measured."""
from __future__ import annotations

import pytest

from cifar10.errors import PipelineError
from cifar10.schema import parse_params
from cifar10.training.precision import Cpu, has_bfloat16_units, resolve

COMMON = "fpu sse2 avx avx2 fma avx512f avx512bw"
CPUINFO = {
    # family 6 model 207 / 167 Xeons exposing AMX: bfloat16 trained the CNN at ~2x float32
    "xeon-amx": ("GenuineIntel", f"{COMMON} avx512_bf16 amx_bf16 amx_tile amx_int8"),
    # the same Xeon model without AMX exposed: bfloat16 at 0.58x
    "xeon-no-amx": ("GenuineIntel", f"{COMMON} avx512_bf16"),
    # AMD EPYC family 25 model 17: 1.35-1.45x
    "epyc": ("AuthenticAMD", f"{COMMON} avx512_bf16"),
    # no bfloat16 instructions at all: emulated
    "older": ("GenuineIntel", COMMON),
}


def cpu(kind: str) -> Cpu:
    vendor, flags = CPUINFO[kind]
    second = "processor\t: 1\nflags\t\t: fpu\n"  # only the first processor's block is read
    return Cpu.parse(f"processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: {flags}\n\n{second}")


@pytest.mark.parametrize("kind, expected", [("xeon-amx", "mixed_bfloat16"), ("epyc", "mixed_bfloat16"),
                                            ("xeon-no-amx", "float32"), ("older", "float32")])
def test_auto_follows_the_cpus_features(kind, expected):
    policy, why = resolve("auto", "cnn", cpu(kind))
    assert policy == expected and why.startswith("auto: ")
    assert resolve("auto", "cnn", cpu(kind)) == (policy, why)  # a rule, not a measurement: always the same answer


@pytest.mark.parametrize("kind, frozen", [("xeon-amx", "mixed_bfloat16"), ("epyc", "float32"),
                                          ("xeon-no-amx", "float32"), ("older", "float32")])
def test_the_transfer_stage_takes_bfloat16_for_its_frozen_pass_on_amx_only_and_fine_tunes_in_float32(kind, frozen):
    assert resolve("auto", "frozen", cpu(kind))[0] == frozen
    assert resolve("auto", "fine_tune", cpu(kind))[0] == "float32"


@pytest.mark.parametrize("kind, native", [("xeon-amx", True), ("xeon-no-amx", True), ("epyc", True),
                                          ("older", False)])
def test_bfloat16_is_native_with_amx_or_avx512_bf16_and_emulated_without(kind, native):
    """What the suite's CPU-kind branches ask (tests/test_transfer.py's batching check)."""
    assert has_bfloat16_units(cpu(kind)) is native


@pytest.mark.parametrize("explicit", ["float32", "mixed_bfloat16"])
def test_an_explicit_precision_stands_on_every_cpu(explicit):
    for kind in CPUINFO:
        for workload in ("cnn", "frozen", "fine_tune"):
            assert resolve(explicit, workload, cpu(kind)) == (explicit, "set in params.yaml")


def test_this_machine_resolves_to_a_keras_policy():
    assert resolve("auto")[0] in ("float32", "mixed_bfloat16")


@pytest.mark.parametrize("section", ["train", "transfer"])
def test_a_bad_precision_is_refused_with_the_key(section):
    with pytest.raises(PipelineError, match=rf"{section}\.precision: .*'auto', 'float32' or 'mixed_bfloat16'"):
        parse_params({section: {"precision": "bfloat16"}})
