"""IR additions of the funcs and random families: tuple results, generic (``Any``) helpers, closures made by
a factory function, ``wp.static`` over module constants, ``length_sq`` and Warp's PCG random builtins (a state
local advanced by each draw, a helper's state parameter a copy). Each is checked in the interpreter and
against Warp (one CPU module)."""

from __future__ import annotations

import linecache

import numpy as np
import pytest

from kernels.ir import analysis, interp, intervals, printer
from kernels.ir import nodes as n
from kernels.ir.numeric import Interval, pcg, rand_init
from kernels.ir.types import FLOAT32, FLOAT64, INT32, UINT32, Array, TupleOf, Vector, scalar_of, warp_type

A32 = Array(FLOAT32)
I = n.Var("i", INT32)
X = n.Var("x", FLOAT32)
VEC3 = Vector(FLOAT32, 3)


def _pair() -> n.Func:
    p = n.Var("p", FLOAT32)
    return n.Func("ir_f_pair", (n.Param("p", FLOAT32),), TupleOf((FLOAT32, FLOAT32)),
                  (n.Return(n.MakeTuple((n.Call("add", (p, n.Const(1.0, FLOAT32))), n.Call("mul", (p, p))))),))


def _generic(ty) -> n.Func:
    a, b = n.Var("a", ty), n.Var("b", ty)
    return n.Func("ir_f_mix", (n.Param("a", ty), n.Param("b", ty)), ty,
                  (n.Return(n.Call("sub", (n.Call("add", (a, b)), n.Call("neg", (a,))))),), generic=True)


def _closure() -> n.Func:
    k = n.Static("k", n.Const(0.5, FLOAT32), bare=True)
    body = (n.Return(n.Call("add", (n.Call("mul", (n.Var("x", FLOAT32), k)),
                                    n.Static("k", n.Const(0.5, FLOAT32))))),)
    return n.Func("ir_f_ramp", (n.Param("x", FLOAT32),), FLOAT32, body,
                  factory=n.Factory("ir_f_make_ramp", "ramp", (("k", n.Const(0.5, FLOAT32)),)))


def _helpers_kernel() -> n.Kernel:
    pair, g32, g64, ramp = _pair(), _generic(FLOAT32), _generic(FLOAT64), _closure()
    load = n.Load("a", A32, (I,))
    static = n.Static("GAIN * 2.0", n.Const(3.0, FLOAT32), consts=(("GAIN", 1.5),))
    body = (n.Let("x", load),
            n.Unpack(("s", "t"), n.FuncCall(pair, (X,))),
            n.Let("m", n.FuncCall(g32, (X, n.Var("s", FLOAT32)))),
            n.Let("d", n.Cast(n.FuncCall(g64, (n.Cast(X, FLOAT64), n.Cast(n.Var("t", FLOAT32), FLOAT64))), FLOAT32)),
            n.Store("out", A32, (I,), n.Call("add", (n.Call("add", (n.Var("m", FLOAT32), n.Var("d", FLOAT32))),
                                                     n.Call("mul", (n.FuncCall(ramp, (X,)), static))))))
    return n.Kernel("ir_f_helpers", (n.Param("a", A32), n.Param("out", A32)), body, funcs=(pair, g32, g64, ramp))


def _random_kernel() -> n.Kernel:
    st = n.Var("st", UINT32)
    state = n.Var("state", UINT32)
    jitter = n.Func("ir_f_jitter", (n.Param("state", UINT32),), FLOAT32,
                    (n.Return(n.Call("mul", (n.Call("randf", (state,)), n.Const(2.0, FLOAT32)))),))
    f = lambda name: n.Var(name, FLOAT32)    # noqa: E731
    vec = n.Var("p", VEC3)
    body = (n.Let("st", n.Call("rand_init", (n.Var("seed", INT32), I))),
            n.Let("h", n.FuncCall(jitter, (st,))),              # a copy: st does not advance
            n.Let("u", n.Call("randf", (st,))),
            n.Let("g", n.Call("randn", (st,))),
            n.Let("j", n.Call("randi_range", (st, n.Const(0, INT32), n.Const(32, INT32)))),
            n.Let("k", n.Cast(n.Call("randu_range", (st, n.Const(2, UINT32), n.Const(9, UINT32))), INT32)),
            n.Let("m", n.Call("mod", (n.Call("randi", (st,)), n.Const(7, INT32)))),
            n.Let("p", n.Call("sample_unit_sphere", (st,))),
            n.Let("acc", n.Const(0.0, FLOAT32)),
            n.For("s", n.Const(0, INT32), n.Const(4, INT32), (
                n.If(n.Call("lt", (n.Load("a", A32, (I,)), n.Const(0.0, FLOAT32))),
                     (n.Assign("acc", n.Call("add", (f("acc"), n.Call("randf_range", (st, n.Const(-1.0, FLOAT32),
                                                                                         n.Const(2.0, FLOAT32))))),
                               augmented=True),)),)),
            n.Store("out", A32, (I,), n.Call("add", (n.Call("add", (n.Call("add", (f("u"), f("g"))), f("h"))),
                                                     n.Call("add", (f("acc"), n.Call("length_sq", (vec,))))))),
            n.Store("idx", Array(INT32), (I,), n.Call("add", (n.Call("mul", (n.Var("j", INT32), n.Const(100, INT32))),
                                                               n.Call("add", (n.Var("k", INT32), n.Var("m", INT32)))))),
            n.Store("v", A32, (I,), n.Load("a", A32, (n.Var("j", INT32),))))
    params = (n.Param("a", A32), n.Param("seed", INT32), n.Param("out", A32), n.Param("idx", Array(INT32)),
              n.Param("v", A32))
    return n.Kernel("ir_f_random", params, body, funcs=(jitter,))


def test_tuple_generic_closure_and_static_print_and_run():
    k = _helpers_kernel()
    src = printer.module([k])
    assert src.startswith("from typing import Any\n\nimport warp as wp\n\nGAIN = 1.5\n")
    assert src.count("def ir_f_mix(a: Any, b: Any):") == 1          # one definition serves both instances
    assert "s, t = ir_f_pair(x)" in src and "-> tuple[" in src
    assert "def ir_f_make_ramp(k: " in src and "ir_f_ramp = ir_f_make_ramp(0.5)" in src
    assert "x * k + wp.static(k)" in src and "wp.static(GAIN * 2.0)" in src
    compile(src, "<ir>", "exec")
    a = np.linspace(-1.0, 1.0, 8).astype(np.float32)
    got = interp.run(k, (8,), {"a": a, "out": np.zeros(8, np.float32)})["out"]
    x = a.astype(np.float64)
    s, t = x + 1.0, x * x
    want = (x + s + x) + (x + t + x) + (x * 0.5 + 0.5) * 3.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    facts = intervals.analyze(k, {"a": Interval(-1.0, 1.0)}, (8,))
    assert not facts.violations and facts.arrays["out"].contains(Interval(float(got.min()), float(got.max())))
    assert not any(analysis.hygiene(k).values())


def test_draws_advance_the_state_and_helpers_take_a_copy():
    k = _random_kernel()
    a = np.linspace(-1.0, 1.0, 32).astype(np.float32)
    out = interp.run(k, (32,), {"a": a, "seed": np.int32(5), "out": np.zeros(32, np.float32),
                                "idx": np.zeros(32, np.int32), "v": np.zeros(32, np.float32)})
    s0 = rand_init(np.int32(5), np.arange(32))
    u = (pcg(s0) >> np.uint32(8)).astype(np.float64) / 2.0 ** 24     # the helper's draw did not move st
    h = 2.0 * u
    j = (pcg(pcg(pcg(pcg(s0)))) % np.uint32(32)).astype(np.int64)     # after randf (1) and randn (2)
    np.testing.assert_array_equal(out["v"], a[j])
    assert np.all(out["out"] >= u + h - 5.8 - 8.0)
    # liveness keeps an unread draw (it advances the state)
    draw = n.Let("unused", n.Call("randf", (n.Var("st", UINT32),)))
    kept = analysis.remove_dead(n.Kernel("k", k.params, k.body[:3] + (draw,) + k.body[3:], funcs=k.funcs))
    assert draw in kept.body


def test_warp_agrees_on_helpers_and_random_builtins(tmp_path):
    wp = pytest.importorskip("warp")
    wp.init()
    kernels = [_helpers_kernel(), _random_kernel()]
    src = printer.module(kernels, module_name="ir_funcs")
    fname = str(tmp_path / "ir_funcs_module.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    namespace: dict = {"__name__": "ir_funcs_test"}
    exec(compile(src, fname, "exec"), namespace)
    device = wp.get_device("cpu")
    rng = np.random.default_rng(7)
    for kernel in kernels:
        inputs: dict = {}
        for p in kernel.params:
            if p.name == "seed":
                inputs[p.name] = np.int32(12345)
            elif p.name == "a":
                inputs[p.name] = rng.uniform(-1.0, 1.0, 32).astype(np.float32)
            else:
                inputs[p.name] = np.zeros(32, scalar_of(p.type.dtype).numpy)
        values = [wp.array(inputs[p.name], dtype=warp_type(p.type.dtype), device=device)
                  if isinstance(p.type, Array) else int(inputs[p.name]) for p in kernel.params]
        wp.launch(namespace[kernel.name], dim=32, inputs=values, device=device, block_dim=1)
        want = interp.run(kernel, (32,), inputs)
        for p, value in zip(kernel.params, values):
            if not isinstance(p.type, Array) or p.name == "a":
                continue
            if scalar_of(p.type.dtype).is_int:
                np.testing.assert_array_equal(value.numpy(), want[p.name], err_msg=f"{kernel.name}.{p.name}\n{src}")
            else:
                np.testing.assert_allclose(value.numpy(), want[p.name], rtol=1e-5, atol=1e-5,
                                           err_msg=f"{kernel.name}.{p.name}\n{src}")
