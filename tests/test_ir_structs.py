"""IR additions for structs: default construction (``S()``, node ``New``), field assignment (``s.a.b = e`` and
``s.a += e``, node ``SetAttr``), struct kernel parameters, nested structs, struct helper arguments (passed by
value) and results. Checked in the interpreter, the interval engine, the analysis and against Warp (one CPU
module)."""

from __future__ import annotations

import linecache
import sys
import types

import numpy as np
import pytest

from kernels.ir import analysis, interp, intervals, printer
from kernels.ir import nodes as n
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, INT32, Array, Struct, Vector

VEC3 = Vector(FLOAT32, 3)
INNER = Struct("ir_s_Frame", (("scale", FLOAT32), ("axis", VEC3)))
PARAMS = Struct("ir_s_Params", (("gain", FLOAT32), ("kind", INT32), ("frame", INNER)))
ACC = Struct("ir_s_Acc", (("total", FLOAT32), ("dir", VEC3), ("inner", INNER)))
I = n.Var("i", INT32)
P = n.Var("p", PARAMS)


def _f(x: float) -> n.Const:
    return n.Const(x, FLOAT32)


def _attr(e: n.Expr, *path: str) -> n.Expr:
    for name in path:
        e = n.Attr(e, name)
    return e


def _make() -> n.Func:
    """``make(a, v) -> Acc``: a default-constructed struct with fields set (one nested)."""
    a, v = n.Var("a", FLOAT32), n.Var("v", VEC3)
    body = (n.Let("r", n.New(ACC)),
            n.SetAttr("r", ACC, ("total",), n.call("mul", a, _f(2.0))),
            n.SetAttr("r", ACC, ("dir",), v),
            n.SetAttr("r", ACC, ("inner", "scale"), a),
            n.Return(n.Var("r", ACC)))
    return n.Func("ir_s_make", (n.Param("a", FLOAT32), n.Param("v", VEC3)), ACC, body)


def _step() -> n.Func:
    """``step(s, d) -> Acc`` updates its by-value copy and returns it."""
    s, d = n.Var("s", ACC), n.Var("d", FLOAT32)
    body = (n.SetAttr("s", ACC, ("total",), n.call("add", _attr(s, "total"), d), augmented=True),
            n.SetAttr("s", ACC, ("inner", "scale"), n.call("mul", _attr(s, "inner", "scale"), d)),
            n.Return(s))
    return n.Func("ir_s_step", (n.Param("s", ACC), n.Param("d", FLOAT32)), ACC, body)


def _kernel() -> n.Kernel:
    make, step = _make(), _step()
    acc, nxt = n.Var("acc", ACC), n.Var("nxt", ACC)
    x = n.Var("x", FLOAT32)
    body = (
        n.Let("x", n.Load("a", Array(FLOAT32), (I,))),
        n.Let("acc", n.FuncCall(make, (n.call("mul", x, _attr(P, "gain")), _attr(P, "frame", "axis")))),
        n.Let("nxt", n.FuncCall(step, (acc, _attr(P, "frame", "scale")))),
        n.SetAttr("acc", ACC, ("inner", "axis"), _attr(nxt, "dir")),
        n.If(n.call("eq", _attr(P, "kind"), n.Const(1, INT32)),
             (n.SetAttr("acc", ACC, ("total",), n.call("add", _attr(acc, "total"), x), augmented=True),), ()),
        n.Store("out", Array(FLOAT32), (I,), n.call("add", n.call("add", _attr(acc, "total"), _attr(nxt, "total")),
                                                   n.call("add", _attr(nxt, "inner", "scale"),
                                                          _attr(acc, "inner", "scale")))),
        n.Store("out_v", Array(VEC3), (I,), _attr(acc, "inner", "axis")),
    )
    params = (n.Param("p", PARAMS), n.Param("a", Array(FLOAT32)), n.Param("out", Array(FLOAT32)),
              n.Param("out_v", Array(VEC3)))
    return n.Kernel("ir_structs_k", params, body, funcs=(make, step), structs=(INNER, PARAMS, ACC))


def _params(kind: int) -> dict:
    return {"gain": np.float32(1.5), "kind": np.int32(kind),
            "frame": {"scale": np.float32(0.75), "axis": np.array([0.5, -1.0, 2.0], np.float32)}}


def _inputs(kind: int) -> dict:
    a = np.linspace(-1.0, 1.0, 16, dtype=np.float32)
    return {"p": _params(kind), "a": a, "out": np.zeros(16, np.float32), "out_v": np.zeros((16, 3), np.float32)}


def test_printer_spells_construction_and_field_assignment():
    src = printer.module([_kernel()])
    assert "@wp.struct\nclass ir_s_Frame:" in src
    assert "r = ir_s_Acc()" in src and "r.inner.scale = a" in src
    assert "s.total += d" in src and "acc.inner.axis = nxt.dir" in src


def test_interpreter_keeps_by_value_copies_and_masks_field_assignments():
    for kind in (0, 1):
        out = interp.run(_kernel(), (16,), _inputs(kind))
        a = _inputs(kind)["a"].astype(np.float64)
        made = a * 1.5
        total = 2.0 * made + (a if kind == 1 else 0.0)     # acc.total: the helper's update stays in nxt
        want = total + (2.0 * made + 0.75) + made * 0.75 + made
        np.testing.assert_allclose(out["out"], want, rtol=1e-6)
        np.testing.assert_allclose(out["out_v"], np.broadcast_to([0.5, -1.0, 2.0], (16, 3)))


def test_intervals_follow_struct_fields():
    frame = {"scale": Interval(0.5, 1.0), "axis": Interval(-1.0, 1.0)}
    inputs = {"p": {"gain": Interval(1.0, 2.0), "kind": Interval(0.0, 2.0), "frame": frame},
              "a": Interval(-1.0, 1.0)}
    facts = intervals.analyze(_kernel(), inputs, (16,))
    out = facts.arrays["out"]
    assert not facts.violations
    assert -20.0 < out.lo and out.hi < 20.0            # bounded: every field read has its own bound
    assert out.lo <= -6.0 and out.hi >= 6.0


def test_analysis_drops_dead_field_assignments_only():
    k = _kernel()
    dead = n.Let("unused", n.New(ACC))
    body = (*k.body[:2], dead, n.SetAttr("unused", ACC, ("total",), n.Var("x", FLOAT32)), *k.body[2:])
    kept = analysis.remove_dead(n.Kernel(k.name, k.params, body, funcs=k.funcs, structs=k.structs))
    assert kept.body == k.body
    assert analysis.dead_locals(n.Kernel(k.name, k.params, body, funcs=k.funcs, structs=k.structs)) == [
        "unused", "unused"]


def test_ill_typed_field_assignments_are_refused():
    with pytest.raises(n.IRTypeError):
        n.SetAttr("r", ACC, ("total",), n.Const(1, INT32))
    with pytest.raises((n.IRTypeError, KeyError)):
        n.SetAttr("r", ACC, ("nothing",), _f(1.0))
    with pytest.raises(n.IRTypeError):
        n.SetAttr("r", ACC, ("total",), n.call("add", _f(1.0), _f(2.0)), augmented=True)


def _struct_value(cls, ty: Struct, value: dict, wp):
    out = cls()
    for name, fty in ty.fields:
        v = value[name]
        if isinstance(fty, Struct):
            setattr(out, name, _struct_value(type(getattr(out, name)), fty, v, wp))
        elif isinstance(fty, Vector):
            setattr(out, name, wp.vec3(*np.asarray(v).tolist()))
        else:
            setattr(out, name, v.item())
    return out


def test_warp_agrees_on_struct_parameters_construction_and_by_value_helpers(tmp_path):
    wp = pytest.importorskip("warp")
    wp.init()
    kernel = _kernel()
    src = printer.module([kernel], module_name="ir_structs")
    fname = str(tmp_path / "ir_structs_module.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    module = types.ModuleType("ir_structs_test")         # a struct's annotations are read from its module
    module.__file__ = fname
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    exec(compile(src, fname, "exec"), namespace)
    device = wp.get_device("cpu")
    for kind in (0, 1):
        inputs = _inputs(kind)
        values = [_struct_value(namespace[PARAMS.name], PARAMS, inputs["p"], wp),
                  wp.array(inputs["a"], dtype=float, device=device),
                  wp.zeros(16, dtype=float, device=device), wp.zeros(16, dtype=wp.vec3, device=device)]
        wp.launch(namespace[kernel.name], dim=16, inputs=values, device=device)
        want = interp.run(kernel, (16,), inputs)
        np.testing.assert_allclose(values[2].numpy(), want["out"], rtol=1e-5, atol=1e-6, err_msg=src)
        np.testing.assert_allclose(values[3].numpy(), want["out_v"], rtol=1e-5, atol=1e-6, err_msg=src)


ITEM = Struct("ir_s_Item", (("mass", FLOAT32), ("nbr", INT32), ("frame", INNER)))


def _items_kernel() -> n.Kernel:
    """An array of structs: a local copy, a field read straight from an element and a gather by an int field."""
    items = Array(ITEM)
    it = n.Var("it", ITEM)
    body = (n.Let("it", n.Load("items", items, (I,))),
            n.Let("other", n.Attr(n.Load("items", items, (_attr(it, "nbr"),)), "mass")),
            n.Store("out", Array(FLOAT32), (I,), n.call("add", n.call("mul", _attr(it, "mass"),
                                                                      _attr(it, "frame", "scale")),
                                                       n.Var("other", FLOAT32))),
            n.Store("out_v", Array(VEC3), (I,), _attr(n.Load("items", items, (I,)), "frame", "axis")))
    params = (n.Param("items", items), n.Param("out", Array(FLOAT32)), n.Param("out_v", Array(VEC3)))
    return n.Kernel("ir_structs_items", params, body, structs=(INNER, ITEM))


def _items(rng) -> dict:
    return {"mass": rng.uniform(0.5, 2.0, 16).astype(np.float32), "nbr": rng.integers(0, 16, 16).astype(np.int32),
            "frame": {"scale": rng.uniform(0.5, 2.0, 16).astype(np.float32),
                      "axis": rng.uniform(-1.0, 1.0, (16, 3)).astype(np.float32)}}


def _fill_np(arr, ty: Struct, value: dict) -> None:
    for name, fty in ty.fields:
        if isinstance(fty, Struct):
            sub = arr[name]
            _fill_np(sub, fty, value[name])
            arr[name] = sub
        else:
            arr[name] = value[name]


def test_arrays_of_structs_agree_with_warp(tmp_path):
    wp = pytest.importorskip("warp")
    wp.init()
    kernel = _items_kernel()
    src = printer.module([kernel], module_name="ir_structs_items")
    fname = str(tmp_path / "ir_structs_items_module.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    module = types.ModuleType("ir_structs_items_test")
    module.__file__ = fname
    sys.modules[module.__name__] = module
    exec(compile(src, fname, "exec"), module.__dict__)
    device = wp.get_device("cpu")
    data = _items(np.random.default_rng(3))
    cls = module.__dict__[ITEM.name]
    arr = np.zeros(16, dtype=cls.numpy_dtype())
    _fill_np(arr, ITEM, data)
    values = [wp.array(arr, dtype=cls, device=device), wp.zeros(16, dtype=float, device=device),
              wp.zeros(16, dtype=wp.vec3, device=device)]
    wp.launch(module.__dict__[kernel.name], dim=16, inputs=values, device=device)
    want = interp.run(kernel, (16,), {"items": data, "out": np.zeros(16), "out_v": np.zeros((16, 3))})
    np.testing.assert_allclose(values[1].numpy(), want["out"], rtol=1e-5, atol=1e-6, err_msg=src)
    np.testing.assert_allclose(values[2].numpy(), want["out_v"], rtol=1e-5, atol=1e-6, err_msg=src)
    expect = data["mass"].astype(np.float64) * data["frame"]["scale"] + data["mass"][data["nbr"]]
    np.testing.assert_allclose(want["out"], expect, rtol=1e-6)
    facts = intervals.analyze(kernel, {"items": {"mass": Interval(0.5, 2.0), "nbr": Interval(0.0, 15.0),
                                                 "frame": {"scale": Interval(0.5, 2.0),
                                                           "axis": Interval(-1.0, 1.0)}}}, (16,), {"items": (16,)})
    assert 0.74 < facts.arrays["out"].lo <= 0.75 and 6.0 <= facts.arrays["out"].hi < 6.01     # outward-rounded


TABLED = Struct("ir_s_Tabled", (("lut", Array(FLOAT32)), ("kind", INT32), ("axis", VEC3)))
PAIR = Struct("ir_s_Pair", (("w", FLOAT32), ("v", VEC3)))


def _table_kernel() -> n.Kernel:
    """An array field indexed by an int field and by ``i % 4``, a positional constructor, a component assignment."""
    p = n.Var("p", TABLED)
    four = n.Const(4, INT32)
    q = n.Var("q", PAIR)
    body = (n.Let("q", n.New(PAIR, (n.FieldLoad(p, "lut", n.call("mod", I, four), 4), _attr(p, "axis")))),
            n.SetAttr("q", PAIR, ("v",), n.FieldLoad(p, "lut", _attr(p, "kind"), 4), component=1),
            n.Store("out", Array(FLOAT32), (I,), n.call("add", _attr(q, "w"), n.Component(_attr(q, "v"), 1))),
            n.Store("out_v", Array(VEC3), (I,), _attr(q, "v")))
    params = (n.Param("p", TABLED), n.Param("out", Array(FLOAT32)), n.Param("out_v", Array(VEC3)))
    return n.Kernel("ir_structs_table", params, body, structs=(TABLED, PAIR))


def test_array_fields_constructors_and_components_agree_with_warp(tmp_path):
    wp = pytest.importorskip("warp")
    wp.init()
    kernel = _table_kernel()
    src = printer.module([kernel], module_name="ir_structs_table")
    assert "q = ir_s_Pair(p.lut[i % 4], p.axis)" in src and "q.v[1] = p.lut[p.kind]" in src
    fname = str(tmp_path / "ir_structs_table_module.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    module = types.ModuleType("ir_structs_table_test")
    module.__file__ = fname
    sys.modules[module.__name__] = module
    exec(compile(src, fname, "exec"), module.__dict__)
    device = wp.get_device("cpu")
    lut = np.array([0.5, -1.0, 2.0, 0.25], np.float32)
    value = module.__dict__[TABLED.name]()
    value.lut = wp.array(lut, dtype=float, device=device)
    value.kind = 2
    value.axis = wp.vec3(1.0, 2.0, 3.0)
    outs = [wp.zeros(16, dtype=float, device=device), wp.zeros(16, dtype=wp.vec3, device=device)]
    wp.launch(module.__dict__[kernel.name], dim=16, inputs=[value, *outs], device=device)
    data = {"lut": lut, "kind": np.int32(2), "axis": np.array([1.0, 2.0, 3.0], np.float32)}
    want = interp.run(kernel, (16,), {"p": data, "out": np.zeros(16), "out_v": np.zeros((16, 3))})
    np.testing.assert_allclose(outs[0].numpy(), want["out"], rtol=1e-6, err_msg=src)
    np.testing.assert_allclose(outs[1].numpy(), want["out_v"], rtol=1e-6, err_msg=src)
    np.testing.assert_allclose(want["out"], lut[np.arange(16) % 4] + 2.0)
    facts = intervals.analyze(kernel, {"p": {"lut": Interval(-1.0, 2.0), "kind": Interval(0.0, 5.0),
                                             "axis": Interval(0.0, 3.0)}}, (16,))
    assert any("lut" in v for v in facts.violations)          # kind may reach 5: outside the 4-entry table
