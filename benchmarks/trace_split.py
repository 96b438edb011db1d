"""A TensorFlow profiler trace of the study's CNN, split into layer groups by wall time.

TF op events are named by their scope (Keras layer names: blockN_convM, blockN_bnM, ...,
`gradient_tape/` for the backward pass, `adam/` for the optimizer); AddN gradient accumulations carry
no layer in their name, so they are attributed through the traced graph to the layer whose gradient
they sum. The compute threads' wall time is split with a sweep line: each instant is shared equally
among the ops running then, so the groups add up to the traced window.
"""
from __future__ import annotations

import collections
import re

GROUP_ORDER = [
    "convolutions fwd", "convolutions bwd", "batch norm fwd", "batch norm bwd", "activations (ReLU) fwd+bwd",
    "pooling fwd+bwd", "dropout fwd+bwd", "dense head fwd+bwd", "rescaling uint8->float",
    "softmax + loss fwd+bwd", "dtype casts", "optimizer update (Adam)", "metrics / step bookkeeping",
    "input pipeline (wait in IteratorGetNext)", "other ops", "framework / Python (no op running)",
]
CONTAINER_OPS = {"StatefulPartitionedCall", "PartitionedCall", "While", "StatelessWhile", "If", "StatelessIf",
                 "Case", "StatelessCase"}
LAYER_RE = re.compile(r"(?:^|/)cnn(?:_\d+)?/([A-Za-z0-9]+(?:_[A-Za-z]+\d*)*?)(?:_\d+)?/")


def classify_layer(layer: str, backward: bool) -> str:
    if re.fullmatch(r"block\d+_conv\d+", layer):
        return "convolutions bwd" if backward else "convolutions fwd"
    if re.fullmatch(r"(block\d+_bn\d+|dense\d+_bn)", layer):
        return "batch norm bwd" if backward else "batch norm fwd"
    if re.fullmatch(r"(block\d+_act\d+|dense\d+_act)", layer):
        return "activations (ReLU) fwd+bwd"
    if re.fullmatch(r"block\d+_pool", layer):
        return "pooling fwd+bwd"
    if re.fullmatch(r"(block\d+_dropout|dense\d+_dropout)", layer):
        return "dropout fwd+bwd"
    if re.fullmatch(r"(dense\d+|flatten)", layer):
        return "dense head fwd+bwd"
    if layer == "probabilities":
        return "softmax + loss fwd+bwd"
    if layer == "scale":
        return "rescaling uint8->float"
    return "other ops"


def layer_of(scope: str) -> str | None:
    m = LAYER_RE.search(scope + "/")
    return m.group(1) if m else None


def classify(name: str, addn_layers: dict[str, str]) -> str:
    """Group of a TF op event named 'scope/op_name:OpType'."""
    scope, _, op_type = name.rpartition(":")
    op_type = op_type.strip()
    scope = re.sub(r"^(StatefulPartitionedCall/)+", "", scope)
    if op_type in ("IteratorGetNext", "IteratorGetNextAsOptional"):
        return "input pipeline (wait in IteratorGetNext)"
    if op_type == "Cast":
        return "dtype casts"
    if scope.startswith("adam/") or scope.startswith("loss_scale") or "/adam/" in scope:
        return "optimizer update (Adam)"
    if "compile_loss/" in scope:
        return "softmax + loss fwd+bwd"
    backward = scope.startswith("gradient_tape/")
    layer = layer_of(scope)
    if layer is None and op_type == "AddN":
        layer = addn_layers.get(scope.split("/")[-1])
        backward = True
    if layer is not None:
        return classify_layer(layer, backward)
    if op_type in ("ArgMax", "Equal", "Cast", "Sum", "AssignAddVariableOp", "AssignVariableOp", "DivNoNan",
                   "Mean", "ReadVariableOp", "Size", "Shape", "StridedSlice", "SelectV2", "Less", "LogicalAnd",
                   "BitwiseAnd", "Bitcast", "OptionalFromValue", "Identity", "Squeeze", "Const", "NoOp",
                   "Reshape", "AddV2", "Mul", "OptionalHasValue", "OptionalGetValue"):
        return "metrics / step bookkeeping"
    return "other ops"


def addn_attribution(model) -> dict[str, str]:
    """AddN node name -> layer of (most of) its inputs, from the traced train function's graph."""
    out = {}
    try:
        fn = model.train_function
        outer = [c.cell_contents for c in (fn.__closure__ or ())
                 if hasattr(c.cell_contents, "_list_all_concrete_functions")]
        graphs = [cf.graph.as_graph_def() for f in outer for cf in f._list_all_concrete_functions()]
    except Exception:  # noqa: BLE001 - attribution is best effort; unattributed AddN goes to "other ops"
        return out
    for gd in graphs:
        for f in gd.library.function:
            for n in f.node_def:
                if n.op == "AddN":
                    layers = collections.Counter(layer_of(i.split(":")[0]) for i in n.input)
                    layers.pop(None, None)
                    if layers:
                        out[n.name] = layers.most_common(1)[0][0]
    return out


def parse_trace(path: str, addn_layers: dict[str, str], t_start_ns: int | None = None):
    """Sweep-line split of the compute threads' wall time into groups, plus tf.data CPU time.

    Returns (group -> wall seconds, window seconds, tf.data CPU seconds, op type -> seconds)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as fh:
        space.ParseFromString(fh.read())
    host = next(p for p in space.planes if p.name == "/host:CPU")
    intervals = []  # (start_ps, end_ps, group)
    data_cpu_ps = 0
    by_type: dict[str, float] = collections.Counter()
    for line in host.lines:
        base = line.timestamp_ns * 1000
        is_data = line.name.startswith("tf_data")
        for ev in line.events:
            name = host.event_metadata[ev.metadata_id].name
            if ":" not in name or "::" in name:
                continue
            op_type = name.rpartition(":")[2].strip()
            if op_type in CONTAINER_OPS or op_type.startswith("__"):  # function calls enclose their ops
                continue
            start = base + ev.offset_ps
            if is_data:
                data_cpu_ps += ev.duration_ps
                continue
            if "Iterator" in op_type and op_type not in ("IteratorGetNext", "IteratorGetNextAsOptional"):
                continue
            intervals.append((start, start + ev.duration_ps, classify(name, addn_layers)))
            by_type[op_type] += ev.duration_ps / 1e12
    if not intervals:
        raise RuntimeError(f"no op events in {path}")
    lo = min(s for s, _, _ in intervals)
    hi = max(e for _, e, _ in intervals)
    points = []
    for s, e, g in intervals:
        points.append((s, 1, g))
        points.append((e, -1, g))
    points.sort(key=lambda p: (p[0], p[1]))
    active: collections.Counter = collections.Counter()
    n_active = 0
    wall: dict[str, float] = collections.Counter()
    prev = lo
    for t, kind, g in points:
        if t > prev:
            dt = (t - prev) / 1e12
            if n_active:
                for grp, k in active.items():
                    if k:
                        wall[grp] += dt * k / n_active
            else:
                wall["framework / Python (no op running)"] += dt
            prev = t
        active[g] += kind
        n_active += kind
    return wall, (hi - lo) / 1e12, data_cpu_ps / 1e12, by_type
