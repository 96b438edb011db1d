"""The training-step profile: op names sorted into layer groups, and a real profiled run split by them."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.profile import table
from benchmarks.trace_split import GROUP_ORDER, classify, layer_of
from tests.conftest import REPO


@pytest.mark.parametrize("name, group", [
    ("StatefulPartitionedCall/cnn_1/block1_conv1/convolution:Conv2D", "convolutions fwd"),
    ("StatefulPartitionedCall/gradient_tape/cnn_1/block2_conv1/convolution/Conv2DBackpropFilter:"
     "Conv2DBackpropFilter", "convolutions bwd"),
    ("cnn/block3_bn2/FusedBatchNormV3:FusedBatchNormV3", "batch norm fwd"),
    ("gradient_tape/cnn/dense1_bn/FusedBatchNormGradV3:FusedBatchNormGradV3", "batch norm bwd"),
    ("cnn/block1_act1/Relu:Relu", "activations (ReLU) fwd+bwd"),
    ("cnn/block1_pool/MaxPool:MaxPool", "pooling fwd+bwd"),
    ("cnn/dense1/MatMul:MatMul", "dense head fwd+bwd"),
    ("cnn/scale/mul:Mul", "rescaling uint8->float"),
    ("compile_loss/sparse_categorical_crossentropy/Log:Log", "softmax + loss fwd+bwd"),
    ("adam/Sqrt:Sqrt", "optimizer update (Adam)"),
    ("IteratorGetNext:IteratorGetNext", "input pipeline (wait in IteratorGetNext)"),
    ("cnn/block1_conv1/Cast:Cast", "dtype casts"),  # a cast counts as a cast, whichever layer it sits in
    ("ArgMax:ArgMax", "metrics / step bookkeeping"),
    ("some/unknown:Erf", "other ops"),
])
def test_op_names_fall_into_their_layer_group(name, group):
    assert classify(name, {}) == group
    assert group in GROUP_ORDER


def test_a_gradient_sum_goes_to_the_layer_the_traced_graph_names():
    # AddN's name carries no layer: the graph's inputs tell which layer's gradient it sums.
    assert classify("gradient_tape/AddN_3:AddN", {"AddN_3": "block2_conv2"}) == "convolutions bwd"
    assert classify("gradient_tape/AddN_4:AddN", {}) == "other ops"
    assert layer_of("gradient_tape/cnn_12/block3_dropout/Mul") == "block3_dropout"
    assert layer_of("adam/Sqrt") is None


@pytest.mark.slow
def test_a_profiled_epoch_of_the_cnn_splits_into_groups_that_add_up_to_its_window():
    cfg = {"policy": "float32", "deterministic": True, "fused": True, "steps": 3, "repeats": 1, "val_batches": 1}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.profile", "--child", json.dumps(cfg)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    assert result["params"] == 552_874
    wall = result["wall_ms"]
    for group in ("convolutions fwd", "convolutions bwd", "batch norm fwd", "batch norm bwd",
                  "optimizer update (Adam)"):
        assert wall.get(group, 0) > 0, f"no time in {group}: {wall}"
    # The sweep line shares every instant of the window among the ops running then: nothing lost, nothing twice.
    assert sum(wall.values()) == pytest.approx(result["window_ms"], rel=1e-6)
    assert wall["convolutions fwd"] + wall["convolutions bwd"] > wall.get("other ops", 0)
    rows = table([result])
    assert rows[0] == "| group | float32, det on |"
    assert any(r.startswith("| convolutions bwd | ") for r in rows)
