"""Read a checkpoint written by OneFlow 0.9.0's ``flow.save`` without OneFlow installed.

``load_oneflow_checkpoint(path)`` returns the saved object with every OneFlow tensor replaced by a
CPU ``torch.Tensor``; for ``flow.save(optimizer.state_dict(), path)`` that is the dict
``flowoptim.<Alg>.load_state_dict`` accepts (OneFlow's layout, spec §4). From a shell::

    python -m flowoptim.oneflow_checkpoint SRC DST.pt   # writes DST.pt with torch.save

What it reads
-------------
The layout below was read from OneFlow's source at tag v0.9.0
(``python/oneflow/framework/check_point_v2.py``: ``save``, ``tensor_getstate``,
``_save_tensor_to_disk``, ``load``, ``legacy_load``, ``FileBackendVariableBlob``), not observed in
files written by a OneFlow install.

* ``flow.save(obj, path)`` (OneFlow 0.6 to 0.9) makes ``path`` a **directory**. Its file
  ``pickled_data`` is ``pickle.dumps({"protocol_version": 1, "data": obj})`` with Python's default
  protocol (3 on Python 3.7, 4 on 3.8 to 3.10). Each tensor in ``obj`` pickles as its class
  (``oneflow.Tensor``; ``oneflow.nn.Parameter``; ``oneflow._oneflow_internal.Tensor`` and
  ``oneflow._oneflow_internal.nn.Parameter`` before 0.8, from those versions' class registrations)
  rebuilt with no arguments, whose state is ``{"path": "tensor_<n>"}``: a subdirectory of ``path``
  (``global_tensor_<n>`` for a global tensor saved with ``global_dst_rank``).
* Each tensor subdirectory holds ``out``, the tensor's elements as raw bytes in C order and the
  writing machine's byte order (read here as little-endian, that of x86-64 and AArch64), and
  ``meta``, a protobuf **text-format** ``oneflow.VariableMetaInfo``
  (``oneflow/core/framework/variable_meta_info.proto``), e.g. ``shape { dim: 2 dim: 3 }
  data_type: kFloat``. The dtypes are those OneFlow 0.9.0's own loader reads
  (``convert_oneflow_dtype_to_numpy_dtype`` in ``python/oneflow/framework/dtype.py``): ``kBool,
  kFloat, kFloat16, kDouble, kInt8, kInt32, kInt64, kUInt8``.
* The older per-variable layout ``flow.load`` still reads (a directory with a ``snapshot_done``
  file and no ``pickled_data``, one ``out`` + ``meta`` subdirectory per variable) is returned as a
  dict ``{subdirectory name: tensor}``; that is a dict of variables, not an optimizer state dict.

What it does not read
---------------------
* the single file OneFlow >= 1.0's ``flow.save`` writes by default (tensors pickled with their
  data and ``oneflow.dtype``), nor a tensor pickled outside ``flow.save`` (``pickle.dump``,
  ``copy.deepcopy``: state ``{"data": ..., "dtype": ...}``). For these, in an environment with
  OneFlow: ``sd = flow.load(path)``, replace each tensor ``t`` with
  ``torch.from_numpy(t.cpu().numpy())`` and ``torch.save`` the result.
* a torch file (``flow.load`` also reads those): use ``torch.load``.
* pickles of protocol 0 or 1, dtypes outside the list above, a ``meta``-less variable (OneFlow
  cannot read one either), and any class besides the tensor classes above and
  ``collections.OrderedDict``: the unpickler refuses it by name and runs no code from the file.

It needs only torch (not numpy, not protobuf). Every error names the bad path or value and what
was expected: ``FileNotFoundError`` for a missing path, :class:`OneFlowCheckpointError` (a
``ValueError``) for anything else.
"""

from __future__ import annotations

import argparse
import collections
import io
import math
import os
import pickle
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["OneFlowCheckpointError", "load_oneflow_checkpoint", "main"]

#: the file ``flow.save`` pickles the object into, inside the checkpoint directory
PICKLE_FILENAME = "pickled_data"
#: a tensor directory's raw element bytes and its text-format ``VariableMetaInfo``
DATA_FILENAME = "out"
META_FILENAME = "meta"
#: marks a finished checkpoint of the older per-variable layout
SNAPSHOT_DONE_FILENAME = "snapshot_done"
#: the only ``protocol_version`` OneFlow 0.6 to 0.9 write
PROTOCOL_VERSION = 1

# Note [OneFlow tensor classes]: (module, qualified name) under which each OneFlow version's
# tensor classes pickle. 0.8/0.9 create them in C with ``__module__`` "oneflow" / "oneflow.nn"
# (oneflow/api/python/framework/tensor.cpp, MakeTensorType / MakeParameterType); 0.6/0.7 register
# pybind11 classes in ``oneflow._oneflow_internal`` and its ``nn`` submodule. Parameters load as
# plain tensors.
_TENSOR_CLASSES = frozenset(
    {
        ("oneflow", "Tensor"),
        ("oneflow.nn", "Parameter"),
        ("oneflow._oneflow_internal", "Tensor"),
        ("oneflow._oneflow_internal.nn", "Parameter"),
    }
)
#: classes a checkpoint may name besides the tensor classes (module state dicts are OrderedDicts)
_ALLOWED_CLASSES = {("collections", "OrderedDict"): collections.OrderedDict}

#: ``oneflow.DataType`` (oneflow/core/common/data_type.proto): enum name -> number
_DATA_TYPE_NUMBERS = {
    "kInvalidDataType": 0,
    "kChar": 1,
    "kFloat": 2,
    "kDouble": 3,
    "kInt8": 4,
    "kInt32": 5,
    "kInt64": 6,
    "kUInt8": 7,
    "kOFRecord": 8,
    "kFloat16": 9,
    "kTensorBuffer": 10,
    "kBFloat16": 11,
    "kBool": 12,
    "kUInt16": 13,
    "kUInt32": 14,
    "kUInt64": 15,
    "kUInt128": 16,
    "kInt16": 17,
    "kInt128": 18,
    "kComplex32": 19,
    "kComplex64": 20,
    "kComplex128": 21,
}
_DATA_TYPE_NAMES = {v: k for k, v in _DATA_TYPE_NUMBERS.items()}
#: the data types OneFlow 0.9.0's loader reads (``convert_oneflow_dtype_to_numpy_dtype``)
_TORCH_DTYPES = {
    "kBool": torch.bool,
    "kFloat": torch.float32,
    "kFloat16": torch.float16,
    "kDouble": torch.float64,
    "kInt8": torch.int8,
    "kInt32": torch.int32,
    "kInt64": torch.int64,
    "kUInt8": torch.uint8,
}

_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|(-?\d+)|([{}<>:]))")


class OneFlowCheckpointError(ValueError):
    """A path that exists but is not a checkpoint this module reads (see the module docstring)."""


class _TensorRef:
    """Stands in for a OneFlow tensor while unpickling: ``__setstate__`` keeps the pickled state
    (``{"path": ...}``); :func:`_resolve` replaces it with the tensor read from that directory."""

    __slots__ = ("state",)

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only OneFlow's tensor classes (to :class:`_TensorRef`) and
    ``collections.OrderedDict``; any other global is refused by name, so no code in the file
    runs."""

    def __init__(self, file: io.BytesIO, source: Path) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _TENSOR_CLASSES:
            return _TensorRef
        if (module, name) in _ALLOWED_CLASSES:
            return _ALLOWED_CLASSES[(module, name)]
        raise OneFlowCheckpointError(
            f"{self._source}: refusing to unpickle {module}.{name}; a OneFlow 0.9.0 flow.save "
            "checkpoint holds only Python containers and numbers, "
            f"{', '.join(sorted(f'{m}.{n}' for m, n in _TENSOR_CLASSES))} and "
            "collections.OrderedDict"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise OneFlowCheckpointError(
            f"{self._source}: refusing a persistent id {pid!r}; OneFlow's flow.save writes none "
            "(torch.save does: is this a torch checkpoint? use torch.load)"
        )


def _parse_meta(text: str, where: Path) -> tuple[tuple[int, ...], str]:
    """``(shape, data type name)`` from a text-format ``VariableMetaInfo``: ``shape { dim: N ...
    }`` (an empty or absent shape is 0-d) and ``data_type: kName`` (or its enum number)."""
    tokens: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise OneFlowCheckpointError(
                f"{where}: not a text-format oneflow.VariableMetaInfo (unexpected "
                f"{text[pos : pos + 20].strip()!r}); expected e.g. 'shape {{ dim: 2 }} "
                "data_type: kFloat'"
            )
        tokens.append(m.group(m.lastindex or 0))
        pos = m.end()
    shape: list[int] = []
    data_type: str | None = None
    i = 0

    def bad(expected: str) -> OneFlowCheckpointError:
        got = tokens[i] if i < len(tokens) else "end of file"
        return OneFlowCheckpointError(
            f"{where}: not a text-format oneflow.VariableMetaInfo: got {got!r} where {expected} "
            "was expected"
        )

    while i < len(tokens):
        field = tokens[i]
        i += 1
        if field == "shape":
            if i < len(tokens) and tokens[i] == ":":
                i += 1
            if i >= len(tokens) or tokens[i] not in ("{", "<"):
                raise bad("'{'")
            close = "}" if tokens[i] == "{" else ">"
            i += 1
            while i < len(tokens) and tokens[i] != close:
                if tokens[i] != "dim" or i + 2 >= len(tokens) or tokens[i + 1] != ":":
                    raise bad(f"'dim: N' or {close!r}")
                try:
                    shape.append(int(tokens[i + 2]))
                except ValueError:
                    i += 2
                    raise bad("an integer dim") from None
                i += 3
            if i >= len(tokens):
                raise bad(repr(close))
            i += 1
        elif field == "data_type":
            if i + 1 >= len(tokens) or tokens[i] != ":":
                raise bad("':' and a oneflow.DataType")
            value = tokens[i + 1]
            i += 2
            if value.lstrip("-").isdigit():
                number = int(value)
                if number not in _DATA_TYPE_NAMES:
                    raise OneFlowCheckpointError(
                        f"{where}: data_type {number} is not a oneflow.DataType (0 to "
                        f"{max(_DATA_TYPE_NAMES)})"
                    )
                value = _DATA_TYPE_NAMES[number]
            elif value not in _DATA_TYPE_NUMBERS:
                raise OneFlowCheckpointError(
                    f"{where}: data_type {value!r} is not a oneflow.DataType name (kFloat, ...)"
                )
            data_type = value
        else:
            i -= 1
            raise bad("'shape' or 'data_type'")
    if data_type is None:
        raise OneFlowCheckpointError(f"{where}: has no data_type (a VariableMetaInfo requires one)")
    if any(d < 0 for d in shape):
        raise OneFlowCheckpointError(f"{where}: negative dim in shape {tuple(shape)}")
    return tuple(shape), data_type


def _read_variable(var_dir: Path) -> Tensor:
    """The tensor in one tensor directory (``out`` + ``meta``), as a CPU torch tensor."""
    data_path, meta_path = var_dir / DATA_FILENAME, var_dir / META_FILENAME
    if not data_path.is_file():
        raise OneFlowCheckpointError(
            f"{var_dir}: a OneFlow tensor directory must hold a file {DATA_FILENAME!r} (the "
            "tensor's bytes); it has none"
        )
    if not meta_path.is_file():
        raise OneFlowCheckpointError(
            f"{var_dir}: has no {META_FILENAME!r} file (the tensor's shape and dtype); OneFlow "
            "cannot load such a variable either"
        )
    shape, data_type = _parse_meta(meta_path.read_text(encoding="utf-8"), meta_path)
    dtype = _TORCH_DTYPES.get(data_type)
    if dtype is None:
        raise OneFlowCheckpointError(
            f"{meta_path}: unsupported data_type {data_type} ({_DATA_TYPE_NUMBERS[data_type]}); "
            f"OneFlow 0.9.0's flow.load reads only {', '.join(_TORCH_DTYPES)}"
        )
    raw = bytearray(data_path.read_bytes())  # writable, as torch.frombuffer wants
    itemsize = dtype.itemsize
    numel = math.prod(shape)
    if len(raw) != numel * itemsize:
        raise OneFlowCheckpointError(
            f"{data_path}: has {len(raw)} bytes, expected {numel * itemsize} for shape "
            f"{list(shape)} of {data_type} ({itemsize} bytes each)"
        )
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    if sys.byteorder == "little" or itemsize == 1:
        return torch.frombuffer(raw, dtype=dtype).reshape(shape)
    # the bytes are little-endian (module docstring): reverse each element's bytes
    swapped = torch.frombuffer(raw, dtype=torch.uint8).view(-1, itemsize).flip(-1).contiguous()
    return swapped.view(dtype).reshape(shape)


def _tensor_dir(root: Path, ref: _TensorRef) -> Path:
    """The tensor directory a pickled tensor's state names, checked to lie directly in ``root``."""
    state = ref.state if hasattr(ref, "state") else None
    if not isinstance(state, dict) or "path" not in state:
        keys = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise OneFlowCheckpointError(
            f"{root / PICKLE_FILENAME}: a OneFlow tensor's pickled state is {keys}, expected "
            "{'path': 'tensor_<n>'} as flow.save writes (a state with 'data' is a tensor pickled "
            "outside flow.save, or OneFlow >= 1.0's single-file format, which this does not read)"
        )
    rel = state["path"]
    if (
        not isinstance(rel, str)
        or rel in ("", ".", "..")
        or Path(rel).name != rel
        or "/" in rel
        or "\\" in rel
    ):
        raise OneFlowCheckpointError(
            f"{root / PICKLE_FILENAME}: tensor path {rel!r} is not the name of a subdirectory of "
            f"{root} (flow.save writes 'tensor_<n>' or 'global_tensor_<n>')"
        )
    var_dir = root / rel
    if not var_dir.is_dir():
        raise OneFlowCheckpointError(
            f"{root}: the pickled data names the tensor directory {rel!r}, which does not exist"
        )
    return var_dir


def _resolve(obj: Any, root: Path, memo: dict[int, Any]) -> Any:
    """``obj`` with every :class:`_TensorRef` replaced by its tensor; containers are rebuilt with
    their own type, and an object met twice stays one object."""
    key = id(obj)
    if key in memo:
        return memo[key]
    if isinstance(obj, _TensorRef):
        result: Any = _read_variable(_tensor_dir(root, obj))
    elif isinstance(obj, dict):
        result = type(obj)()
        memo[key] = result
        for k, v in obj.items():
            result[_resolve(k, root, memo)] = _resolve(v, root, memo)
        return result
    elif isinstance(obj, list):
        result = []
        memo[key] = result
        result.extend(_resolve(v, root, memo) for v in obj)
        return result
    elif isinstance(obj, tuple):
        result = tuple(_resolve(v, root, memo) for v in obj)
    else:
        return obj
    memo[key] = result
    return result


def _load_pickle_dir(root: Path) -> Any:
    pickle_path = root / PICKLE_FILENAME
    try:
        payload = _RestrictedUnpickler(io.BytesIO(pickle_path.read_bytes()), pickle_path).load()
    except OneFlowCheckpointError:
        raise
    except Exception as exc:  # whatever a malformed pickle raises
        raise OneFlowCheckpointError(
            f"{pickle_path}: not a pickle OneFlow's flow.save wrote ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(payload, dict) or "data" not in payload:
        what = sorted(map(str, payload)) if isinstance(payload, dict) else type(payload).__name__
        raise OneFlowCheckpointError(
            f"{pickle_path}: holds {what}, expected flow.save's "
            f"{{'protocol_version': {PROTOCOL_VERSION}, 'data': ...}}"
        )
    version = payload.get("protocol_version")
    if version != PROTOCOL_VERSION:
        raise OneFlowCheckpointError(
            f"{pickle_path}: protocol_version {version!r}, expected {PROTOCOL_VERSION} (the only "
            "one OneFlow 0.6 to 0.9 write)"
        )
    return _resolve(payload["data"], root, {})


def _load_legacy_dir(root: Path) -> dict[str, Tensor]:
    """The per-variable layout: ``{name: tensor}`` for each subdirectory holding ``out``; other
    entries are skipped with a warning, as OneFlow's ``legacy_load`` does."""
    variables: dict[str, Tensor] = {}
    for entry in sorted(os.listdir(root)):
        if entry == SNAPSHOT_DONE_FILENAME:
            continue
        if not (root / entry / DATA_FILENAME).is_file():
            warnings.warn(
                f"{root / entry}: has no tensor data ({DATA_FILENAME!r}); skipped",
                UserWarning,
                stacklevel=3,
            )
            continue
        variables[entry] = _read_variable(root / entry)
    return variables


def load_oneflow_checkpoint(path: str | os.PathLike[str]) -> Any:
    """The object ``flow.save`` (OneFlow 0.9.0) saved at ``path``, its tensors as CPU torch tensors.

    ``path`` is the directory ``flow.save`` wrote (its ``pickled_data`` file is accepted too).
    For an optimizer's ``state_dict()`` the result is OneFlow's layout, ``{'state': {'step': int,
    idx: {'momentum_buf': tensor, ...}}, 'param_groups': [{'_options': {...}, 'params': [...],
    ...}]}``, which ``flowoptim.<Alg>.load_state_dict`` accepts as is (spec §4); tensors keep
    their saved dtype and ``load_state_dict`` casts them to each parameter's. A directory in the
    older per-variable layout gives ``{variable name: tensor}``. See the module docstring for the
    format read and what is refused.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OneFlowCheckpointError: ``path`` is not such a checkpoint (a file, a directory without
            ``pickled_data`` or ``snapshot_done``, a class other than OneFlow's tensors in the
            pickle, a tensor of an unsupported dtype or with the wrong number of bytes).
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"OneFlow checkpoint {str(root)!r} does not exist")
    if root.is_file() and root.name == PICKLE_FILENAME:
        root = root.parent
    if root.is_file():
        with open(root, "rb") as f:
            head = f.read(4)
        hint = (
            "it is a zip archive, as torch.save writes: load it with torch.load"
            if head == b"PK\x03\x04"
            else "a single file is what OneFlow >= 1.0's flow.save writes by default, or "
            "torch.save; this reads neither (see the module docstring)"
        )
        raise OneFlowCheckpointError(
            f"{root} is a file; OneFlow 0.9.0's flow.save writes a directory holding "
            f"{PICKLE_FILENAME!r} ({hint})"
        )
    if (root / PICKLE_FILENAME).is_file():
        return _load_pickle_dir(root)
    if (root / SNAPSHOT_DONE_FILENAME).exists():
        return _load_legacy_dir(root)
    raise OneFlowCheckpointError(
        f"{root} is not a OneFlow checkpoint: the directory has neither {PICKLE_FILENAME!r} "
        f"(written by flow.save in OneFlow 0.6 to 0.9) nor {SNAPSHOT_DONE_FILENAME!r} (the older "
        "per-variable layout)"
    )


def _count_tensors(obj: Any) -> int:
    if isinstance(obj, Tensor):
        return 1
    if isinstance(obj, dict):
        return sum(_count_tensors(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_count_tensors(v) for v in obj)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m flowoptim.oneflow_checkpoint SRC DST``: ``torch.save`` what SRC holds to DST.
    Returns the exit status (2 when SRC cannot be read)."""
    parser = argparse.ArgumentParser(
        prog="python -m flowoptim.oneflow_checkpoint",
        description="Convert a checkpoint written by OneFlow 0.9.0's flow.save (a directory "
        "holding pickled_data) into a torch.save file, without OneFlow.",
    )
    parser.add_argument("src", help="the directory flow.save wrote")
    parser.add_argument("dst", help="the torch.save file to write (e.g. optimizer.pt)")
    args = parser.parse_args(argv)
    try:
        obj = load_oneflow_checkpoint(args.src)
    except (FileNotFoundError, OneFlowCheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.save(obj, args.dst)
    print(f"{args.src} -> {args.dst}: {_count_tensors(obj)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
