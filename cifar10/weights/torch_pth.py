"""Safe NumPy-only reader of PyTorch's legacy (non-zip) `torch.save` format.

A legacy `.pth` file is a run of pickles followed by raw storage bytes:

1. magic number (a pickled int, 0x1950a86a20f9469cfc6c)
2. protocol version (a pickled int, 1001)
3. system info (a pickled dict: little_endian, type_sizes)
4. the object itself: here a state dict whose tensors are built by
   `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`, the
   storage being a persistent id `('storage', <StorageClass>, key, location,
   numel, view_metadata)`
5. the list of storage keys, in the order their bytes follow
6. for each key: an int64 little-endian element count, then the raw elements

`pickle.load` on such a file would import and call whatever globals the file
names, so this module unpickles with a restricted Unpickler: `find_class`
returns harmless local stand-ins for the few globals a tensor state dict needs
and refuses everything else; `persistent_load` checks the id's shape and types.
Nothing named by the file is ever imported or called. Tensors are materialised
only after every storage has been read and bounds-checked.
"""
from __future__ import annotations

import _compat_pickle  # the Python 2 -> 3 name table pickle.Unpickler itself uses
import collections
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar10.errors import PipelineError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001


class UnsafeWeightsError(PipelineError):
    """The weights file is malformed or asks for something a tensor file never needs.

    The message is one line naming the file.
    """


# --- stand-ins for the accepted globals ------------------------------------------------------


class _StorageType:
    """Stand-in for a `torch.<X>Storage` class: only carries the element dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: str):
        self.name = name
        self.dtype = np.dtype(dtype).newbyteorder("<")

    def __setstate__(self, state):  # BUILD on a stand-in would let the file rewrite it
        raise pickle.UnpicklingError(f"BUILD on {self.name} stand-in")

    def __reduce__(self):
        raise TypeError("stand-ins are not picklable")


# Legacy storage classes -> little-endian NumPy dtypes. BFloat16Storage is left out on purpose:
# NumPy has no bfloat16, and this file does not need it.
_STORAGE_TYPES = {
    f"torch.{name}": _StorageType(f"torch.{name}", dtype)
    for name, dtype in [
        ("FloatStorage", "f4"),
        ("DoubleStorage", "f8"),
        ("HalfStorage", "f2"),
        ("LongStorage", "i8"),
        ("IntStorage", "i4"),
        ("ShortStorage", "i2"),
        ("CharStorage", "i1"),
        ("ByteStorage", "u1"),
        ("BoolStorage", "?"),
    ]
}


@dataclass(frozen=True)
class _StorageRef:
    """What `persistent_load` returns: a reference to storage bytes read later."""

    key: str
    stype: _StorageType
    numel: int

    def __setstate__(self, state):
        raise pickle.UnpicklingError("BUILD on a storage reference")


@dataclass(frozen=True)
class _TensorRef:
    """What the `_rebuild_tensor_v2` stand-in returns: a view to cut out of a storage."""

    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def __setstate__(self, state):
        raise pickle.UnpicklingError("BUILD on a tensor reference")


def _is_int(v) -> bool:
    return type(v) is int  # bool is a subclass of int: not a size


def _ordered_dict(*args):
    """Stand-in for `collections.OrderedDict`: only the empty call pickles make (items come via SETITEMS)."""
    if args:
        raise pickle.UnpicklingError("OrderedDict called with arguments")
    return collections.OrderedDict()


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """Stand-in for `torch._utils._rebuild_tensor_v2`: validate and record, build nothing."""
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("_rebuild_tensor_v2 without a storage")
    if not (_is_int(storage_offset) and storage_offset >= 0):
        raise pickle.UnpicklingError(f"bad storage offset {storage_offset!r}")
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(_is_int(v) and v >= 0 for v in size + stride)):
        raise pickle.UnpicklingError(f"bad size/stride {size!r}/{stride!r}")
    if type(requires_grad) is not bool:
        raise pickle.UnpicklingError("bad requires_grad")
    if backward_hooks:  # an empty OrderedDict is all a saved state dict ever has
        raise pickle.UnpicklingError("tensor with backward hooks")
    if metadata is not None and not isinstance(metadata, dict):
        raise pickle.UnpicklingError("bad tensor metadata")
    # The view must lie inside the storage; numel is re-checked against the bytes actually read.
    if 0 not in size:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel:
            raise pickle.UnpicklingError(f"tensor view {size}/{stride}+{storage_offset} "
                                         f"outside storage of {storage.numel}")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    """Stand-in for `torch._utils._rebuild_parameter`: a Parameter is just its tensor."""
    if not isinstance(data, _TensorRef):
        raise pickle.UnpicklingError("_rebuild_parameter without a tensor")
    if type(requires_grad) is not bool or backward_hooks:
        raise pickle.UnpicklingError("bad _rebuild_parameter arguments")
    return data


# The exact list of globals a legacy state dict may name.
ACCEPTED_GLOBALS = {
    "collections.OrderedDict": _ordered_dict,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    **_STORAGE_TYPES,
}


class _Refused(Exception):
    """A global or persistent id the reader will not accept (turned into UnsafeWeightsError)."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose globals come only from ACCEPTED_GLOBALS (or none at all)."""

    def __init__(self, file, *, allow_globals: bool):
        super().__init__(file)
        self._allow = allow_globals
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module, name):
        # Protocol 2 pickles name Python 2 modules (`__builtin__.eval`); map them as the stock
        # find_class would (the C unpickler hides the protocol, and those names never exist in
        # Python 3 anyway), so the check and the message are about what would be imported.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        full = f"{module}.{name}"
        if not full.isprintable():  # STACK_GLOBAL names are arbitrary strings: keep the message one line
            full = repr(full)
        if self._allow and full in ACCEPTED_GLOBALS:
            return ACCEPTED_GLOBALS[full]
        raise _Refused(f"refusing pickle global {full} (a weights file holds only tensors)")

    def persistent_load(self, pid):
        if not self._allow:
            raise _Refused(f"unexpected persistent id in a header pickle: {pid!r:.80}")
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise _Refused(f"refusing persistent id {pid!r:.80} (expected a storage tuple)")
        _, stype, key, location, numel, view = pid
        if not isinstance(stype, _StorageType):
            raise _Refused(f"persistent id with storage type {stype!r:.60}")
        if not (isinstance(key, str) and isinstance(location, str) and _is_int(numel) and numel >= 0):
            raise _Refused(f"malformed storage id {pid!r:.80}")
        if view is not None:  # storage views were dropped from torch years ago
            raise _Refused(f"storage {key}: view metadata not supported")
        ref = _StorageRef(key, stype, numel)
        seen = self.storages.setdefault(key, ref)
        if seen != ref:
            raise _Refused(f"storage {key} declared twice with different type/size")
        return seen


def _load_one(buf: io.BytesIO, *, allow_globals: bool):
    """Unpickle the next pickle in `buf` with the restricted unpickler; return (object, unpickler)."""
    up = _RestrictedUnpickler(buf, allow_globals=allow_globals)
    return up.load(), up


def load_state_dict(path: str | Path) -> collections.OrderedDict[str, np.ndarray]:
    """Read a legacy-format PyTorch state dict without torch and without running its pickles.

    Args:
        path: the `.pth` file.

    Returns:
        Ordered dict of tensor name -> NumPy array (own memory, the file's dtype and shape).

    Raises:
        UnsafeWeightsError: one line naming the file, for a refused global, a zip-format file, or
            any structural inconsistency (truncation, sizes, bounds, trailing bytes).
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        raise UnsafeWeightsError(f"{path}: zip-format torch file; only the legacy format is supported")
    buf = io.BytesIO(data)
    try:
        magic, _ = _load_one(buf, allow_globals=False)
        if magic != MAGIC_NUMBER:
            raise _Refused("not a legacy torch file (bad magic number)")
        proto, _ = _load_one(buf, allow_globals=False)
        if proto != PROTOCOL_VERSION:
            raise _Refused(f"unsupported protocol version {proto!r:.40}")
        info, _ = _load_one(buf, allow_globals=False)
        if not (isinstance(info, dict) and info.get("little_endian") is True):
            raise _Refused("not a little-endian file")
        obj, up = _load_one(buf, allow_globals=True)
        keys, _ = _load_one(buf, allow_globals=False)
    except _Refused as exc:
        raise UnsafeWeightsError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated/garbled pickle, or a stand-in rejecting its arguments
        one_line = " ".join(str(exc).split())
        raise UnsafeWeightsError(f"{path}: malformed pickle: {type(exc).__name__}: {one_line}") from None

    if not isinstance(obj, collections.OrderedDict) or not all(
        isinstance(k, str) and isinstance(v, _TensorRef) for k, v in obj.items()
    ):
        raise UnsafeWeightsError(f"{path}: top-level object is not a flat name -> tensor state dict")
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)) \
            or sorted(keys) != sorted(up.storages):
        raise UnsafeWeightsError(f"{path}: storage key list does not match the storages used")

    # Raw storages, in key order: int64 LE element count, then the elements.
    arrays: dict[str, np.ndarray] = {}
    pos = buf.tell()
    for key in keys:
        ref = up.storages[key]
        if pos + 8 > len(data):
            raise UnsafeWeightsError(f"{path}: truncated before storage {key}")
        count = int.from_bytes(data[pos:pos + 8], "little", signed=True)
        nbytes = count * ref.stype.dtype.itemsize
        if count != ref.numel or pos + 8 + nbytes > len(data):
            raise UnsafeWeightsError(f"{path}: storage {key} holds {count} elements, "
                                     f"expected {ref.numel} (or file truncated)")
        arrays[key] = np.frombuffer(data, ref.stype.dtype, count, pos + 8)
        pos += 8 + nbytes
    if pos != len(data):
        raise UnsafeWeightsError(f"{path}: {len(data) - pos} unexpected trailing bytes")

    out: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
    for name, t in obj.items():
        base = arrays[t.storage.key]
        item = base.itemsize
        # Same view _rebuild_tensor_v2 makes (strides in elements); bounds were checked at unpickle time.
        view = np.lib.stride_tricks.as_strided(
            base[t.offset:], shape=t.size, strides=[s * item for s in t.stride], writeable=False)
        out[name] = np.array(view, dtype=base.dtype.newbyteorder("="))  # own, native-order copy
    return out
