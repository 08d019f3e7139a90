"""``flowoptim.oneflow_checkpoint``: OneFlow 0.9.0 ``flow.save`` checkpoints read without OneFlow.

OneFlow cannot be installed here, so the checkpoints are written by :func:`flow_save` below, which
mirrors OneFlow's writer as read at tag v0.9.0 of Oneflow-Inc/oneflow (not a real OneFlow
install):

* ``python/oneflow/framework/check_point_v2.py`` ``save``: the checkpoint is a directory;
  ``pickled_data`` is ``pickle.dumps({"protocol_version": 1, "data": obj})`` with Python's default
  protocol (3 on Python 3.7, 4 on 3.8-3.10: both are tested);
* same file, ``tensor_getstate`` (installed as ``Tensor.__getstate__`` by ``RegisterMethods``):
  inside ``flow.save`` a tensor's state is ``{"path": "tensor_<n>"}`` (``id_util.UniqueStr``, a
  process-wide counter) and the tensor is written to that subdirectory;
* same file, ``_save_tensor_to_disk``: ``out`` is ``tensor.numpy().tobytes()``, ``meta`` is
  ``text_format.MessageToString`` of a ``VariableMetaInfo``
  (``oneflow/core/framework/variable_meta_info.proto``, ``shape`` then ``data_type``);
* ``oneflow/api/python/framework/tensor.cpp`` ``MakeTensorType``/``MakeParameterType``: the
  classes' ``__module__``/name are ``oneflow.Tensor`` and ``oneflow.nn.Parameter``, and neither
  defines ``__reduce__``, so pickle writes them through ``object.__reduce_ex__`` (class global,
  ``NEWOBJ`` with no arguments, ``BUILD`` with the state). The stand-in classes here are plain
  Python classes registered under those names, so Python's pickler emits the same opcodes;
* ``python/oneflow/optim/optimizer.py`` ``Optimizer.state_dict`` and ``ParamGroup.items`` (the
  groups pack ``ParamGroup.__dict__``: ``_options``, ``_enable_clip_grad``, ``params``; the state
  holds the optimizer-wide ``"step"``), ``python/oneflow/nn/optimizer/sgd.py`` and ``adam.py``
  (the ``_options`` keys and the state names ``momentum_buf``, ``exp_avg``, ...).
"""

from __future__ import annotations

import itertools
import os
import pickle
import pickletools
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from core_helpers import make_params, set_grads

import flowoptim as fo
from flowoptim.oneflow_checkpoint import (
    OneFlowCheckpointError,
    load_oneflow_checkpoint,
    main,
)

# torch dtype -> oneflow.DataType name (oneflow/core/common/data_type.proto)
_DATA_TYPE = {
    torch.float32: "kFloat",
    torch.float64: "kDouble",
    torch.float16: "kFloat16",
    torch.int8: "kInt8",
    torch.int32: "kInt32",
    torch.int64: "kInt64",
    torch.uint8: "kUInt8",
    torch.bool: "kBool",
}
# a start that is not 0: UniqueStr's counter is shared with everything else OneFlow names
_unique_ids = itertools.count(17)


def meta_text(shape, data_type: str, empty_shape_block: bool = True) -> str:
    """``text_format.MessageToString(VariableMetaInfo)``: two-space indent, one field a line. For
    a 0-d tensor ``shape`` is set but empty; written as ``shape {\\n}`` or left out (both are
    read)."""
    lines = []
    if shape or empty_shape_block:
        lines = ["shape {", *(f"  dim: {d}" for d in shape), "}"]
    lines.append(f"data_type: {data_type}")
    return "\n".join(lines) + "\n"


def write_tensor_dir(var_dir: Path, t: torch.Tensor) -> None:
    """``_save_tensor_to_disk``: ``out`` (raw C-order bytes) and ``meta``."""
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / "out").write_bytes(t.detach().contiguous().numpy().tobytes())
    (var_dir / "meta").write_text(meta_text(tuple(t.shape), _DATA_TYPE[t.dtype]))


class _FlowSave:
    """The pickling context of ``flow.save`` (``tensor_pickling_context``: the checkpoint dir)."""

    root: Path | None = None


def _fake_oneflow(monkeypatch: pytest.MonkeyPatch) -> tuple[type, type]:
    """``oneflow.Tensor`` and ``oneflow.nn.Parameter`` stand-ins, importable under OneFlow's names
    for the pickler; ``__getstate__`` is ``tensor_getstate`` inside ``flow.save``."""

    class Tensor:
        def __init__(self, data: torch.Tensor) -> None:
            self.data = data

        def __getstate__(self):
            rel = f"tensor_{next(_unique_ids)}"
            write_tensor_dir(_FlowSave.root / rel, self.data)
            return {"path": rel}

    class Parameter(Tensor):
        pass

    Tensor.__module__, Tensor.__qualname__ = "oneflow", "Tensor"
    Parameter.__module__, Parameter.__qualname__ = "oneflow.nn", "Parameter"
    flow = types.ModuleType("oneflow")
    nn = types.ModuleType("oneflow.nn")
    flow.Tensor, flow.nn, nn.Parameter = Tensor, nn, Parameter
    monkeypatch.setitem(sys.modules, "oneflow", flow)
    monkeypatch.setitem(sys.modules, "oneflow.nn", nn)
    return Tensor, Parameter


@pytest.fixture
def flow_tensor(monkeypatch):
    return _fake_oneflow(monkeypatch)[0]


def flow_save(obj, path: Path, protocol: int = 4) -> None:
    """``flow.save(obj, path)`` of OneFlow 0.9.0 (no ``global_dst_rank``)."""
    _FlowSave.root = path
    try:
        data = pickle.dumps({"protocol_version": 1, "data": obj}, protocol=protocol)
    finally:
        _FlowSave.root = None
    path.mkdir(exist_ok=True)
    (path / "pickled_data").write_bytes(data)


def run(opt, params, steps, seed0=0):
    for s in range(steps):
        set_grads(params, seed0 + s)
        opt.step()


def clones(params):
    return [p.detach().clone().requires_grad_() for p in params]


def oneflow_state_dict(opt, params, group_options, names, flow_tensor):
    """What OneFlow 0.9.0's ``optimizer.state_dict()`` holds after the steps ``opt`` took: the
    state tensors as OneFlow tensors under OneFlow's names, ``_options`` per group."""
    state = {"step": opt.global_step}
    for i, p in enumerate(params):
        state[i] = {
            names.get(k, k): flow_tensor(v.clone()) for k, v in opt.state[p].items() if k != "step"
        }
    groups, start = [], 0
    for options, group in zip(group_options, opt.param_groups):
        n = len(group["params"])
        groups.append(
            {
                "_options": options,
                "_enable_clip_grad": False,
                "params": list(range(start, start + n)),
            }
        )
        start += n
    return {"state": state, "param_groups": groups}


def assert_same_after_steps(ours, ours_params, loaded, loaded_params, steps=2, seed0=50):
    """Both optimizers take the same steps; parameters and state must agree bit for bit."""
    run(ours, ours_params, steps, seed0)
    run(loaded, loaded_params, steps, seed0)
    assert loaded.global_step == ours.global_step
    for p, q in zip(ours_params, loaded_params):
        torch.testing.assert_close(q, p, rtol=0, atol=0)
        for key, value in ours.state[p].items():
            torch.testing.assert_close(loaded.state[q][key], value, rtol=0, atol=0)


@pytest.mark.parametrize("protocol", [3, 4])
def test_sgd_momentum_checkpoint_round_trip(tmp_path, flow_tensor, protocol):
    params = make_params()
    ours = fo.SGD(
        [{"params": params[:2]}, {"params": params[2:], "lr": 0.05}], lr=0.1, momentum=0.9
    )
    run(ours, params, 3)
    sgd_options = {
        "momentum": 0.9,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "nesterov": False,
        "maximize": False,
        "fused": False,
    }  # SGD.__init__'s options, in its order
    sd = oneflow_state_dict(
        ours,
        params,
        [{"lr": 0.1, **sgd_options}, {"lr": 0.05, **sgd_options}],
        {"momentum_buffer": "momentum_buf"},
        flow_tensor,
    )
    flow_save(sd, tmp_path / "sgd", protocol)

    converted = load_oneflow_checkpoint(tmp_path / "sgd")
    assert converted["state"]["step"] == 3
    assert sorted(converted["state"][0]) == ["momentum_buf"]
    assert converted["param_groups"][1] == {
        "_options": {"lr": 0.05, **sgd_options},
        "_enable_clip_grad": False,
        "params": [2],
    }
    for i, p in enumerate(params):
        buf = converted["state"][i]["momentum_buf"]
        assert buf.dtype == torch.float32 and buf.shape == p.shape
        torch.testing.assert_close(buf, ours.state[p]["momentum_buffer"], rtol=0, atol=0)

    loaded_params = clones(params)
    loaded = fo.SGD(
        [{"params": loaded_params[:2]}, {"params": loaded_params[2:]}], lr=1.0, momentum=0.5
    )
    loaded.load_state_dict(converted)
    assert [g["lr"] for g in loaded.param_groups] == [0.1, 0.05]
    assert loaded.param_groups[0]["momentum"] == 0.9
    assert_same_after_steps(ours, params, loaded, loaded_params)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_checkpoint_round_trip(tmp_path, flow_tensor, amsgrad):
    params = make_params(dtype=torch.float64)
    ours = fo.Adam(params, lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=amsgrad)
    run(ours, params, 4)
    options = {  # Adam.__init__'s options; step() keeps the bias corrections in them
        "lr": 0.01,
        "eps": 1e-8,
        "betas": (0.8, 0.99),
        "weight_decay": 0.1,
        "amsgrad": amsgrad,
        "bias_correction1": 1 - 0.8**4,
        "bias_correction2": 1 - 0.99**4,
        "do_bias_correction": True,
        "fused": False,
    }
    sd = oneflow_state_dict(ours, params, [options], {}, flow_tensor)
    flow_save(sd, tmp_path / "adam")

    converted = load_oneflow_checkpoint(tmp_path / "adam" / "pickled_data")  # the file works too
    expected_keys = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    assert sorted(converted["state"][1]) == expected_keys
    assert converted["param_groups"][0]["_options"]["betas"] == (0.8, 0.99)
    assert converted["state"][1]["exp_avg"].dtype == torch.float64
    torch.testing.assert_close(
        converted["state"][1]["exp_avg_sq"], ours.state[params[1]]["exp_avg_sq"], rtol=0, atol=0
    )

    loaded_params = clones(params)
    loaded = fo.Adam(loaded_params, lr=0.5, amsgrad=amsgrad)
    loaded.load_state_dict(converted)
    assert loaded.global_step == 4
    assert loaded.param_groups[0]["betas"] == (0.8, 0.99)
    assert_same_after_steps(ours, params, loaded, loaded_params)


@pytest.mark.parametrize("protocol", [3, 4])
def test_the_fixture_pickles_tensors_as_oneflow_does(tmp_path, monkeypatch, protocol):
    """The opcodes OneFlow's classes produce: class global, NEWOBJ without arguments, BUILD."""
    tensor_cls, parameter_cls = _fake_oneflow(monkeypatch)
    flow_save(
        {"a": tensor_cls(torch.ones(2)), "b": parameter_cls(torch.zeros(3))}, tmp_path, protocol
    )
    ops = list(pickletools.genops((tmp_path / "pickled_data").read_bytes()))
    names = [op.name for op, _, _ in ops]
    assert names.count("NEWOBJ") == 2 and names.count("BUILD") == 2
    strings = [arg for _, arg, _ in ops if isinstance(arg, str)]
    if protocol == 3:
        assert "oneflow Tensor" in strings and "oneflow.nn Parameter" in strings
    else:
        assert names.count("STACK_GLOBAL") == 2
        assert {"oneflow", "Tensor", "oneflow.nn", "Parameter"} <= set(strings)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir())[0].startswith("tensor_")
    out = load_oneflow_checkpoint(tmp_path)
    assert out["b"].dtype == torch.float32 and out["b"].tolist() == [0.0, 0.0, 0.0]


def test_dtypes_shapes_and_containers(tmp_path, monkeypatch):
    tensor_cls, parameter_cls = _fake_oneflow(monkeypatch)
    values = {
        torch.float16: torch.tensor([0.5, -2.0], dtype=torch.float16),
        torch.int64: torch.arange(6, dtype=torch.int64).reshape(2, 3),
        torch.int32: torch.tensor([[-1], [7]], dtype=torch.int32),
        torch.int8: torch.tensor([-128, 127], dtype=torch.int8),
        torch.uint8: torch.tensor([0, 255], dtype=torch.uint8),
        torch.bool: torch.tensor([True, False, True]),
        torch.float64: torch.tensor(3.25, dtype=torch.float64),  # 0-d
        torch.float32: torch.empty(0, 4),
    }
    shared = tensor_cls(torch.ones(1))
    from collections import OrderedDict

    obj = {
        "tensors": [tensor_cls(v) for v in values.values()],
        "module": OrderedDict(weight=parameter_cls(torch.full((2, 2), 1.5))),
        "shared": (shared, shared),
        "plain": {"lr": 0.1, "name": "x", "none": None, "betas": (0.9, 0.999)},
    }
    flow_save(obj, tmp_path / "ckpt")
    out = load_oneflow_checkpoint(tmp_path / "ckpt")
    for got, want in zip(out["tensors"], values.values()):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert torch.equal(got, want)
    assert type(out["module"]) is OrderedDict
    assert torch.equal(out["module"]["weight"], torch.full((2, 2), 1.5))
    assert out["shared"][0] is out["shared"][1]
    assert out["plain"] == {"lr": 0.1, "name": "x", "none": None, "betas": (0.9, 0.999)}


def test_a_0d_tensor_whose_meta_has_no_shape(tmp_path, flow_tensor):
    flow_save({"x": flow_tensor(torch.tensor(2.5))}, tmp_path)
    (var_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    (var_dir / "meta").write_text(meta_text((), "kFloat", empty_shape_block=False))
    assert load_oneflow_checkpoint(tmp_path)["x"].tolist() == 2.5


def test_big_endian_hosts_reverse_each_elements_bytes(tmp_path, flow_tensor, monkeypatch):
    """``out`` is little-endian; on a big-endian host each element's bytes are reversed. Checked
    here by pretending the host is big-endian: the values come back byte-reversed."""
    x = torch.tensor([1.5, -2.0, 3.0e-5], dtype=torch.float64)
    flow_save(
        {"x": flow_tensor(x), "b": flow_tensor(torch.tensor([7, 250], dtype=torch.uint8))}, tmp_path
    )
    monkeypatch.setattr(sys, "byteorder", "big")
    out = load_oneflow_checkpoint(tmp_path)
    expected = torch.frombuffer(bytearray(x.numpy().byteswap().tobytes()), dtype=torch.float64)
    assert torch.equal(out["x"].view(torch.int64), expected.view(torch.int64))
    assert out["b"].tolist() == [7, 250]  # one-byte elements: nothing to reverse


def test_legacy_per_variable_layout(tmp_path):
    write_tensor_dir(tmp_path / "fc.weight", torch.arange(4.0).reshape(2, 2))
    write_tensor_dir(tmp_path / "fc.bias", torch.tensor([1.0, -1.0]))
    (tmp_path / "snapshot_done").write_text("")
    (tmp_path / "notes").mkdir()  # no tensor data: OneFlow's legacy_load warns and skips it
    with pytest.warns(UserWarning, match="notes.*has no tensor data"):
        out = load_oneflow_checkpoint(tmp_path)
    assert list(out) == ["fc.bias", "fc.weight"]
    assert out["fc.weight"].tolist() == [[0.0, 1.0], [2.0, 3.0]]


def test_cli_writes_a_torch_file(tmp_path, flow_tensor, capsys):
    flow_save(
        {"state": {"step": 1, 0: {"momentum_buf": flow_tensor(torch.ones(3))}}, "param_groups": []},
        tmp_path / "ckpt",
    )
    assert main([str(tmp_path / "ckpt"), str(tmp_path / "opt.pt")]) == 0
    assert "1 tensors" in capsys.readouterr().out
    out = torch.load(tmp_path / "opt.pt", weights_only=True)
    assert out["state"]["step"] == 1 and out["state"][0]["momentum_buf"].tolist() == [1.0] * 3

    assert main([str(tmp_path / "missing"), str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "missing" in err
    assert not (tmp_path / "x.pt").exists()


def test_cli_runs_as_a_module(tmp_path, flow_tensor):
    flow_save({"w": flow_tensor(torch.tensor([1.0, 2.0]))}, tmp_path / "ckpt")
    src = str(Path(fo.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowoptim.oneflow_checkpoint",
            str(tmp_path / "ckpt"),
            str(tmp_path / "w.pt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert torch.load(tmp_path / "w.pt", weights_only=True)["w"].tolist() == [1.0, 2.0]


# ---------------------------------------------------------------------------- bad inputs


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere' does not exist"):
        load_oneflow_checkpoint(tmp_path / "nowhere")


def test_directory_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(
        OneFlowCheckpointError, match=r"neither 'pickled_data' .* nor 'snapshot_done'"
    ):
        load_oneflow_checkpoint(tmp_path)


def test_a_torch_file_is_refused_with_a_hint(tmp_path):
    torch.save({"state": {}}, tmp_path / "opt.pt")
    with pytest.raises(OneFlowCheckpointError, match=r"is a file; .*load it with torch\.load"):
        load_oneflow_checkpoint(tmp_path / "opt.pt")
    (tmp_path / "single").write_bytes(pickle.dumps({"__oneflow__": None}))
    with pytest.raises(OneFlowCheckpointError, match=r"single file is what OneFlow >= 1\.0"):
        load_oneflow_checkpoint(tmp_path / "single")


def test_foreign_classes_are_refused_by_name_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    # protocol 0: os.system('touch <marker>') via GLOBAL + REDUCE
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    (tmp_path / "pickled_data").write_bytes(payload)
    with pytest.raises(OneFlowCheckpointError, match=r"refusing to unpickle (os|posix)\.system"):
        load_oneflow_checkpoint(tmp_path)
    assert not marker.exists()
    (tmp_path / "pickled_data").write_bytes(pickle.dumps({"protocol_version": 1, "data": {1, 2}}))
    load_oneflow_checkpoint(tmp_path)  # a set needs no global: fine
    from collections import Counter

    (tmp_path / "pickled_data").write_bytes(
        pickle.dumps({"protocol_version": 1, "data": Counter("ab")})
    )
    with pytest.raises(OneFlowCheckpointError, match=r"refusing to unpickle collections\.Counter"):
        load_oneflow_checkpoint(tmp_path)


def test_unsupported_dtype(tmp_path, flow_tensor):
    flow_save({"x": flow_tensor(torch.ones(2, dtype=torch.float16))}, tmp_path)
    (var_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    (var_dir / "meta").write_text(meta_text((2,), "kBFloat16"))
    with pytest.raises(
        OneFlowCheckpointError, match=r"unsupported data_type kBFloat16 \(11\).*kFloat"
    ):
        load_oneflow_checkpoint(tmp_path)
    (var_dir / "meta").write_text("shape {\n  dim: 2\n}\ndata_type: 11\n")  # enum by number
    with pytest.raises(OneFlowCheckpointError, match="kBFloat16"):
        load_oneflow_checkpoint(tmp_path)
    (var_dir / "meta").write_text(meta_text((2,), "kFloat128"))
    with pytest.raises(OneFlowCheckpointError, match=r"'kFloat128' is not a oneflow\.DataType"):
        load_oneflow_checkpoint(tmp_path)


def test_malformed_tensor_directories(tmp_path, flow_tensor):
    flow_save({"x": flow_tensor(torch.ones(3))}, tmp_path)
    (var_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    (var_dir / "out").write_bytes(b"\0" * 8)
    with pytest.raises(OneFlowCheckpointError, match="has 8 bytes, expected 12 for shape \\[3\\]"):
        load_oneflow_checkpoint(tmp_path)
    (var_dir / "meta").write_text("shape { dim: 3 ]\n")
    with pytest.raises(
        OneFlowCheckpointError, match=r"not a text-format oneflow\.VariableMetaInfo"
    ):
        load_oneflow_checkpoint(tmp_path)
    (var_dir / "meta").unlink()
    with pytest.raises(OneFlowCheckpointError, match="has no 'meta' file"):
        load_oneflow_checkpoint(tmp_path)
    (var_dir / "out").unlink()
    with pytest.raises(OneFlowCheckpointError, match="must hold a file 'out'"):
        load_oneflow_checkpoint(tmp_path)
    var_dir.rmdir()
    with pytest.raises(OneFlowCheckpointError, match=f"'{var_dir.name}', which does not exist"):
        load_oneflow_checkpoint(tmp_path)


def test_bad_pickled_data(tmp_path, flow_tensor):
    pickled = tmp_path / "pickled_data"
    pickled.write_bytes(b"not a pickle")
    with pytest.raises(OneFlowCheckpointError, match=r"not a pickle OneFlow's flow\.save wrote"):
        load_oneflow_checkpoint(tmp_path)
    pickled.write_bytes(pickle.dumps({"protocol_version": 2, "data": {}}))
    with pytest.raises(OneFlowCheckpointError, match="protocol_version 2, expected 1"):
        load_oneflow_checkpoint(tmp_path)
    pickled.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(OneFlowCheckpointError, match=r"holds list, expected flow\.save's"):
        load_oneflow_checkpoint(tmp_path)
    # a tensor whose state points outside the checkpoint, and one pickled outside flow.save
    for state, match in [
        ({"path": "../elsewhere"}, "not the name of a subdirectory"),
        ({"data": None, "dtype": None, "device": "cpu"}, r"\['data', 'device', 'dtype'\]"),
    ]:
        ref = flow_tensor(torch.ones(1))
        ref.__getstate__ = lambda state=state: state
        pickled.write_bytes(pickle.dumps({"protocol_version": 1, "data": [ref]}))
        with pytest.raises(OneFlowCheckpointError, match=match):
            load_oneflow_checkpoint(tmp_path)
