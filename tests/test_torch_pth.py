"""The safe .pth reader: the shipped ImageNet Lite0 file reads in full; hostile files are refused
with one line and run nothing.

The hostile pickles are only ever *written* here (pickling a `__reduce__` object records a
reference, it calls nothing) and read back through the reader; nothing unpickles them unsafely.
"""
from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np

from cifar10.checksums import file_checksum
from cifar10.schema.transfer import PUBLISHED_CHECKSUM
from cifar10.weights.manifest import lite0_wheel_file
from cifar10.weights.torch_pth import MAGIC_NUMBER, PROTOCOL_VERSION, UnsafeWeightsError, load_state_dict


def test_the_shipped_lite0_file_reads_as_a_plain_state_dict():
    path = lite0_wheel_file()
    assert file_checksum(path) == PUBLISHED_CHECKSUM["efficientnet_lite0"]
    state = load_state_dict(path)
    assert len(state) == 296 and sum(a.size for a in state.values()) == 4_694_073
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_fc.weight"].shape == (1000, 1280)
    assert {str(a.dtype) for a in state.values()} == {"float32", "int64"}  # weights and num_batches_tracked


class _Payload:
    """Pickles as `func(*args)`: what a malicious weights file would run on `torch.load`."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _legacy_file(path: Path, main_pickle: bytes, keys: list[str] | None = None) -> Path:
    """Write the legacy layout around a given main pickle (header pickles as torch writes them)."""
    info = {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as f:
        for obj in (MAGIC_NUMBER, PROTOCOL_VERSION, info):
            pickle.dump(obj, f, protocol=2)
        f.write(main_pickle)
        pickle.dump(keys or [], f, protocol=2)
    return path


def _refused(path: Path) -> str:
    """Load `path`, expect UnsafeWeightsError, return its (one-line) message."""
    try:
        load_state_dict(path)
    except UnsafeWeightsError as exc:
        msg = str(exc)
        assert "\n" not in msg and msg.startswith(str(path)), msg
        return msg
    raise AssertionError(f"{path} was accepted")


def _cases(tmp: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """Hostile files -> (path, text the refusal must contain)."""
    cmd = f"touch {marker}"
    # 1. the classic: the state dict *is* os.system("touch marker")
    sys_pkl = pickle.dumps(_Payload(os.system, (cmd,)), protocol=2)
    # 2. eval hidden as one value inside an otherwise ordinary-looking state dict
    eval_pkl = pickle.dumps({"w": _Payload(eval, (f"open({str(marker)!r}, 'w')",))}, protocol=2)
    # 3. hand-written opcodes: STACK_GLOBAL (protocol 4 style) for subprocess.call
    hand = (b"\x80\x02" + b"\x8c\x0asubprocess" + b"\x8c\x04call" + b"\x93"
            + b"](\x8c\x05touch\x8c" + bytes([len(str(marker))]) + str(marker).encode() + b"e\x85R.")
    # 4. an accepted callable fed a persistent id that is not a storage (torch's 'module' kind)
    badpid = (b"\x80\x02" + b"ctorch._utils\n_rebuild_tensor_v2\n"
              + b"(" + b"X\x06\x00\x00\x00module" + b"cos\nsystem\n" + b"\x86Q"  # persid ('module', os.system)
              + b"K\x00)" + b")" + b"\x89" + b"t" + b"R.")
    return {
        # os.system pickles under its real module name (posix.system on Linux)
        "os.system": (_legacy_file(tmp / "system.pth", sys_pkl), f"refusing pickle global {os.name}.system"),
        "builtins.eval": (_legacy_file(tmp / "eval.pth", eval_pkl), "refusing pickle global builtins.eval"),
        "subprocess.call": (_legacy_file(tmp / "hand.pth", hand), "refusing pickle global subprocess.call"),
        "global in persid": (_legacy_file(tmp / "pid.pth", badpid), "refusing pickle global os.system"),
    }


def test_hostile_files_are_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "PWNED"
    for label, (path, expect) in _cases(tmp_path, marker).items():
        msg = _refused(path)
        assert expect in msg, (label, msg)
        assert not marker.exists(), f"{label}: payload ran"


def test_persistent_id_is_validated(tmp_path):
    """A harmless-looking but wrong persistent id (no globals at all) is refused too."""
    # ('module', 'x') as persistent id, via BINPERSID, no GLOBAL opcode anywhere
    pkl = b"\x80\x02X\x06\x00\x00\x00moduleX\x01\x00\x00\x00x\x86Q."
    assert "refusing persistent id" in _refused(_legacy_file(tmp_path / "pid2.pth", pkl))


def test_stand_ins_cannot_be_rewritten(tmp_path):
    """BUILD (setstate) on an accepted stand-in, e.g. to swap a storage's dtype, is refused."""
    # GLOBAL torch.FloatStorage, EMPTY_DICT, 'dtype' -> 'object' SETITEM, BUILD
    pkl = b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00dtypeX\x06\x00\x00\x00objectsb."
    assert "BUILD on torch.FloatStorage" in _refused(_legacy_file(tmp_path / "build.pth", pkl))


def _tensor_file(path: Path, numel: int, offset: int, size: tuple, stride: tuple,
                 count: int | None = None) -> Path:
    """A minimal well-formed legacy file {'w': view of one float storage}, written with opcodes."""
    def tup(vals):  # MARK ints TUPLE
        return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in vals) + b"t"

    main = (b"\x80\x02ccollections\nOrderedDict\n)R"          # OrderedDict()
            + b"(X\x01\x00\x00\x00w"                            # MARK 'w'
            + b"ctorch._utils\n_rebuild_tensor_v2\n("             # fn MARK
            + b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x02\x00\x00\x00k0"
            + b"X\x03\x00\x00\x00cpu" + b"J" + struct.pack("<i", numel) + b"NtQ"  # persid
            + b"J" + struct.pack("<i", offset) + tup(size) + tup(stride) + b"\x89N" + b"tR"
            + b"u.")                                             # SETITEMS STOP
    _legacy_file(path, main, ["k0"])
    with open(path, "ab") as f:
        f.write(struct.pack("<q", numel if count is None else count))
        f.write(np.arange(numel, dtype="<f4").tobytes())
    return path


def test_strided_views_and_bounds(tmp_path):
    """Offset/stride handling matches _rebuild_tensor_v2; out-of-range views and short storages fail."""
    # a transposed 3x4 view starting at element 2 of a 14-element storage
    w = load_state_dict(_tensor_file(tmp_path / "ok.pth", 14, 2, (4, 3), (1, 4)))["w"]
    expect = np.arange(2, 14, dtype=np.float32).reshape(3, 4).T
    assert w.dtype == np.float32 and w.shape == (4, 3) and np.array_equal(w, expect), w
    for path, text in [
        (_tensor_file(tmp_path / "oob.pth", 10, 2, (4, 3), (1, 4)), "outside storage"),
        (_tensor_file(tmp_path / "short.pth", 14, 0, (14,), (1,), count=15), "holds 15 elements"),
    ]:
        assert text in _refused(path)

