"""`precision: auto`: a fixed rule from a GPU's compute capability, else from the CPU's features (the
branches BENCHMARKS.md measured), for machines described as TensorFlow and /proc/cpuinfo describe them."""
from __future__ import annotations

import numpy as np
import pytest

from cifar10.errors import PipelineError
from cifar10.schema import parse_params
from cifar10.training.devices import Gpu, describe, local_gpus
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
    policy, why = resolve("auto", "cnn", cpu(kind), gpus=())
    assert policy == expected and why.startswith("auto: ")
    assert resolve("auto", "cnn", cpu(kind), gpus=()) == (policy, why)  # a rule, not a measurement: the same answer


@pytest.mark.parametrize("kind, frozen", [("xeon-amx", "mixed_bfloat16"), ("epyc", "float32"),
                                          ("xeon-no-amx", "float32"), ("older", "float32")])
def test_the_transfer_stage_takes_bfloat16_for_its_frozen_pass_on_amx_only_and_fine_tunes_in_float32(kind, frozen):
    assert resolve("auto", "frozen", cpu(kind), gpus=())[0] == frozen
    assert resolve("auto", "fine_tune", cpu(kind), gpus=())[0] == "float32"


@pytest.mark.parametrize("kind, native", [("xeon-amx", True), ("xeon-no-amx", True), ("epyc", True),
                                          ("older", False)])
def test_bfloat16_is_native_with_amx_or_avx512_bf16_and_emulated_without(kind, native):
    """What the suite's CPU-kind branches ask (tests/test_transfer.py's batching check)."""
    assert has_bfloat16_units(cpu(kind)) is native


# As tf.config.experimental.get_device_details reports them.
DETAILS = {
    "p100": {"device_name": "Tesla P100-PCIE-16GB", "compute_capability": (6, 0)},
    "v100": {"device_name": "Tesla V100-SXM2-16GB", "compute_capability": (7, 0)},
    "t4": {"device_name": "Tesla T4", "compute_capability": (7, 5)},
    "a100": {"device_name": "NVIDIA A100-SXM4-40GB", "compute_capability": (8, 0)},
    "h100": {"device_name": "NVIDIA H100 80GB HBM3", "compute_capability": (9, 0)},
    "no-capability": {"device_name": "a GPU of another platform"},
}


def gpus(*kinds: str) -> tuple[Gpu, ...]:
    return tuple(Gpu.from_details(DETAILS[kind]) for kind in kinds)


@pytest.mark.parametrize("kinds, expected, why", [
    (("p100",), "float32", "Tesla P100-PCIE-16GB, compute capability 6.0: no Tensor Cores"),
    (("v100",), "mixed_float16", "Tesla V100-SXM2-16GB, compute capability 7.0: float16 Tensor Cores, loss scaled"),
    (("t4",), "mixed_float16", "Tesla T4, compute capability 7.5: float16 Tensor Cores, loss scaled"),
    (("a100",), "mixed_bfloat16", "NVIDIA A100-SXM4-40GB, compute capability 8.0: bfloat16 Tensor Cores"),
    (("h100", "h100"), "mixed_bfloat16", "NVIDIA H100 80GB HBM3, compute capability 9.0: bfloat16 Tensor Cores"),
    (("a100", "t4"), "mixed_float16", "Tesla T4, compute capability 7.5: float16 Tensor Cores, loss scaled"),
    (("a100", "no-capability"), "float32", "a GPU of another platform reports no CUDA compute capability"),
])
def test_on_a_gpu_its_compute_capability_decides_for_every_workload_whatever_the_cpu(kinds, expected, why):
    for kind in CPUINFO:
        for workload in ("cnn", "frozen", "fine_tune"):
            assert resolve("auto", workload, cpu(kind), gpus(*kinds)) == (expected, f"auto: {why}")


def test_gpus_are_described_by_model_and_count():
    assert describe(()) == "no GPU"
    assert describe(gpus("a100")) == "NVIDIA A100-SXM4-40GB (compute capability 8.0)"
    assert describe(gpus("t4", "t4", "p100")) == ("2 x Tesla T4 (compute capability 7.5) + "
                                                  "Tesla P100-PCIE-16GB (compute capability 6.0)")
    assert describe(gpus("no-capability")) == "a GPU of another platform"


@pytest.mark.parametrize("explicit", ["float32", "mixed_bfloat16", "mixed_float16"])
def test_an_explicit_precision_stands_on_every_machine(explicit):
    for kind in CPUINFO:
        for machine_gpus in ((), gpus("t4"), gpus("a100")):
            for workload in ("cnn", "frozen", "fine_tune"):
                assert resolve(explicit, workload, cpu(kind), machine_gpus) == (explicit, "set in params.yaml")


def test_this_machine_resolves_by_the_devices_tensorflow_sees():
    here = local_gpus()
    assert resolve("auto") == resolve("auto", "cnn", Cpu.this(), here)
    assert resolve("auto")[0] in ("float32", "mixed_bfloat16", "mixed_float16")


@pytest.mark.parametrize("section", ["train", "transfer", "evaluate"])
def test_a_bad_precision_is_refused_with_the_key(section):
    allowed = "'auto', 'float32', 'mixed_bfloat16' or 'mixed_float16'"
    with pytest.raises(PipelineError, match=rf"{section}\.precision: .*{allowed}"):
        parse_params({section: {"precision": "bfloat16"}})
    assert getattr(parse_params({section: {"precision": "mixed_float16"}}), section).precision == "mixed_float16"


def test_mixed_float16_trains_the_cnn_through_the_stage_path_with_loss_scaling(tiny_train):
    """What `auto` picks on a 7.x GPU, here on the CPU: the stage's compiled CNN computes in float16 and
    Keras scales its loss (float16 gradients would otherwise underflow)."""
    import keras

    from cifar10.schema.train import TrainParams
    from cifar10.training.distribution import make_cluster
    from cifar10.training.fit import compiled_cnn

    cfg = TrainParams.model_validate({"precision": "mixed_float16", "model": {"filters": [4, 8], "dense_units": [8],
                                                                              "conv_dropout": [0.1, 0.2]}})
    model = compiled_cnn(cfg, 10, make_cluster("none"), (tiny_train.x[:1], tiny_train.y[:1]))
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert {layer.compute_dtype for layer in model.layers if layer.weights} >= {"float16"}
    history = model.fit(tiny_train.x[:32], tiny_train.y[:32], batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
