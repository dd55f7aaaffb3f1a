"""IR additions of the atomic, bitwise and indexing families: atomics of every kind with their old values, in-place
array updates, ``array.shape``, a kernel's bare ``return``, ``wp.lower_bound``, ``wp.bit_count``, ``wp.isfinite``,
``bool(x)``, uint8 and unsigned wrap-around; printed programs compiled by Warp on the CPU against the interpreter,
and the families' programs clean and inside their bounds."""

from __future__ import annotations

import hashlib
import linecache

import numpy as np
import pytest

from kernels.ir import analysis, arrays, interp, intervals, printer
from kernels.ir import nodes as n
from kernels.ir.numeric import Interval
from kernels.ir.ops import OPS, Ctx
from kernels.ir.types import BOOL, FLOAT32, INT32, INT64, UINT8, UINT32, Array, warp_type

I, J = n.Var("i", INT32), n.Var("j", INT32)
AF, AI, AU, AU8 = Array(FLOAT32), Array(INT32), Array(UINT32), Array(UINT8)
AF2 = Array(FLOAT32, 2)
c = arrays.c
op = arrays.op


def _kernel(name, params, body, tids=("i",)) -> n.Kernel:
    return n.Kernel(name, tuple(n.Param(a, t) for a, t in params), tuple(body), tids=tids)


def _atomics_kernel() -> n.Kernel:
    """Every atomic kind, old values read only where their multiset is fixed."""
    x = n.Load("x", AI, (I,))
    b = op("mod", I, c(4))
    return _kernel("ir_atomics", [("x", AI), ("keys", AI), ("sums", AI), ("subs", AI), ("lo", AI), ("hi", AI),
                                  ("ands", AI), ("ors", AI), ("xors", AI), ("flags", AI), ("nfirst", AI),
                                  ("buf", AI), ("prev", AI), ("cnt", AI), ("top", AI), ("fsum", AF)], [
        n.Atomic("add", "sums", AI, (b,), x, inplace=True),
        n.Atomic("sub", "subs", AI, (b,), x),
        n.Atomic("min", "lo", AI, (b,), x),
        n.Atomic("max", "hi", AI, (b,), x),
        n.Atomic("and", "ands", AI, (b,), op("invert", op("lshift", c(1), op("bit_and", x, c(15))))),
        n.Atomic("or", "ors", AI, (b,), op("lshift", c(1), op("bit_and", x, c(15))), inplace=True),
        n.Atomic("xor", "xors", AI, (b,), op("bit_and", x, c(255))),
        n.Atomic("cas", "flags", AI, (n.Load("keys", AI, (I,)),), c(1), result="old", compare=c(0)),
        n.If(op("eq", n.Var("old", INT32), c(0)), (n.Atomic("add", "nfirst", AI, (c(0),), c(1)),)),
        n.Atomic("exch", "buf", AI, (op("sub", c(31), I),), x, result="was"),
        n.Store("prev", AI, (I,), op("add", n.Var("was", INT32), c(3))),
        n.Atomic("add", "cnt", AI, (n.Load("keys", AI, (I,)),), c(1), result="slot"),
        n.Atomic("max", "top", AI, (n.Load("keys", AI, (I,)),), n.Var("slot", INT32)),
        n.Atomic("add", "fsum", AF, (b,), n.Cast(x, FLOAT32)),
    ])


def _indexing_kernel() -> n.Kernel:
    """2D launch, ``a.shape[d]`` in wrapped and clamped neighbours, a bare ``return``, ``wp.lower_bound`` into a
    sorted array, ``wp.isfinite``."""
    a = n.Load("a", AF2, (op("mod", op("add", I, c(1)), n.ShapeOf("a", AF2, 0)),
                          op("min", op("add", J, c(2)), op("sub", n.ShapeOf("a", AF2, 1), c(1)))))
    k = n.Call("lower_bound", (n.Var("edges", AF), n.Var("v", FLOAT32)))
    return _kernel("ir_indexing", [("a", AF2), ("edges", AF), ("table", AF), ("out", AF2), ("bins", AI)], [
        n.If(op("and", op("eq", I, c(0)), op("eq", J, c(0))), (n.Return(None),)),
        n.Let("v", a),
        n.Let("k", k),
        n.Store("bins", AI, (op("add", op("mul", I, c(4)), J),), n.Var("k", INT32)),
        n.Store("out", AF2, (J, I), op("where", n.Call("isfinite", (n.Var("v", FLOAT32),)),
                                       op("mul", n.Var("v", FLOAT32), n.Load("table", AF, (n.Var("k", INT32),))),
                                       n.Const(0.0, FLOAT32))),
    ], tids=("i", "j"))


def _bits_kernel() -> n.Kernel:
    """uint32 hashing with wrap-around, conversions that wrap into uint8/uint32, ``bit_count`` of int64 and
    uint8, ``bool(x)``, augmented bit updates in a loop."""
    x = n.Load("x", AU, (I,))
    h = n.Var("h", UINT32)
    return _kernel("ir_bits", [("x", AU), ("y", AI), ("big", Array(INT64)), ("hashed", AU), ("small", AU8),
                               ("counts", AI), ("truth", AI)], [
        n.Let("h", op("mul", x, n.Const(0x45D9F3B, UINT32))),
        n.For("r", c(0), c(3), (
            n.Assign("h", op("bit_xor", h, op("rshift", h, n.Const(13, UINT32))), True),
            n.Assign("h", op("mul", h, n.Const(0x27D4EB2D, UINT32)), True),
            n.Assign("h", op("add", h, n.Cast(n.Var("r", INT32), UINT32)), True),
        )),
        n.Store("hashed", AU, (I,), op("sub", h, n.Cast(n.Load("y", AI, (I,)), UINT32))),
        n.Store("small", AU8, (I,), op("add", n.Cast(n.Load("y", AI, (I,)), UINT8), n.Const(200, UINT8))),
        n.Store("counts", AI, (I,), op("add", n.Call("bit_count", (n.Load("big", Array(INT64), (I,)),)),
                                       n.Call("bit_count", (n.Cast(h, UINT8),)))),
        n.Store("truth", AI, (I,), op("where", n.Call("to_bool", (op("bit_and", n.Load("y", AI, (I,)), c(3)),)),
                                      c(1), c(-1))),
    ])


def _inputs(kernel: n.Kernel, shapes: dict, rng) -> dict[str, np.ndarray]:
    out = {}
    for p in kernel.params:
        dt = p.type.dtype
        shape = shapes[p.name]
        if dt == FLOAT32:
            out[p.name] = rng.uniform(-2, 2, size=shape).astype(np.float32)
        elif dt == INT64:
            out[p.name] = rng.integers(-(2**40), 2**40, size=shape).astype(np.int64)
        elif dt == UINT32:
            out[p.name] = rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32)
        else:
            out[p.name] = rng.integers(-20, 20, size=shape).astype(dt.numpy)
    return out


CASES = {
    "atomics": (_atomics_kernel, (32,), {"keys": (32,), "x": (32,), "buf": (32,), "prev": (32,), "flags": (8,),
                                          "cnt": (8,), "top": (8,), "nfirst": (1,)}, 4),
    "indexing": (_indexing_kernel, (5, 4), {"a": (6, 7), "edges": (6,), "table": (6,), "out": (4, 5),
                                             "bins": (20,)}, None),
    "bits": (_bits_kernel, (32,), {}, None),
}


def _setup(name):
    make, dims, shapes, default = CASES[name]
    kernel = make()
    shapes = {p.name: shapes.get(p.name, (default,) if default else dims) for p in kernel.params}
    rng = np.random.default_rng(7)
    inputs = _inputs(kernel, shapes, rng)
    if name == "atomics":
        inputs["keys"] = rng.integers(0, 8, size=32).astype(np.int32)
        for k in ("flags", "cnt", "top", "nfirst", "sums", "subs", "xors", "ors", "fsum"):
            inputs[k][:] = 0
        inputs["ands"][:] = -1
    if name == "indexing":
        inputs["edges"] = np.sort(inputs["edges"])
        inputs["out"][:] = 0
    return kernel, dims, shapes, inputs


@pytest.mark.parametrize("name", sorted(CASES))
def test_warp_agrees_with_the_interpreter_on_new_nodes(name, tmp_path):
    wp = pytest.importorskip("warp")
    wp.init()
    kernel, dims, shapes, inputs = _setup(name)
    src = printer.module([kernel], module_name=f"ir_idx_{name}")
    fname = str(tmp_path / f"ir_idx_{name}.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    namespace: dict = {}
    exec(compile(src, fname, "exec"), namespace)
    device = wp.get_device("cpu")
    arrays_ = {p.name: wp.array(inputs[p.name], dtype=warp_type(p.type.dtype), device=device) for p in kernel.params}
    wp.launch(namespace[kernel.name], dim=dims, inputs=[arrays_[p.name] for p in kernel.params], device=device,
              block_dim=1)
    want = interp.run(kernel, dims, inputs)
    for p in kernel.params:
        got = arrays_[p.name].numpy()
        np.testing.assert_allclose(got, want[p.name], rtol=1e-6, atol=1e-6, err_msg=f"{name}.{p.name}\n{src}")


def test_new_nodes_print_as_warp_spells_them():
    src = printer.kernel_source(_atomics_kernel()) + printer.kernel_source(_indexing_kernel())
    assert "sums[i % 4] += x[i]" in src
    assert "old = wp.atomic_cas(flags, keys[i], 0, 1)" in src
    assert "was = wp.atomic_exch(buf, 31 - i, x[i])" in src
    assert "wp.atomic_sub(subs, i % 4, x[i])" in src
    assert "ors[i % 4] |= 1 << (x[i] & 15)" in src
    assert "a.shape[1] - 1" in src and "(i + 1) % a.shape[0]" in src
    assert "        return\n" in src
    assert "k = wp.lower_bound(edges, v)" in src
    bits = printer.kernel_source(_bits_kernel())
    assert "h ^= h >> wp.uint32(13)" in bits and "wp.uint8(200)" in bits and "bool(y[i] & 3)" in bits


def test_lower_bound_copies_warps_search_past_the_end():
    ctx = Ctx((AF, FLOAT32), INT32)
    edges = np.array([0.0, 1.0, 1.0, 2.0])
    got = OPS["lower_bound"].eval(ctx, edges, np.array([-5.0, 1.0, 1.5, 2.0, 9.0]))
    assert got.tolist() == [0, 1, 3, 3, 3]        # 9.0 is above every element: Warp gives n - 1, not n


def test_unsigned_results_wrap_and_signed_overflow_is_refused():
    mul = OPS["mul"]
    wide = Interval(0, 2.0**32 - 1)
    assert mul.guard(Ctx((UINT32, UINT32), UINT32), wide, Interval(3, 3)) is None
    assert mul.bound(Ctx((UINT32, UINT32), UINT32), wide, Interval(3, 3)) == wide
    assert mul.guard(Ctx((INT32, INT32), INT32), Interval(0, 2**30), Interval(3, 3)) is not None
    assert OPS["cast"].guard(Ctx((INT32,), UINT8), Interval(-5, 300)) is None          # wraps modulo 256
    assert OPS["cast"].guard(Ctx((INT64,), INT32), Interval(-(2**40), 0)) is not None
    x = np.array([250, 3], dtype=np.uint8)
    assert OPS["add"].eval(Ctx((UINT8, UINT8), UINT8), x, np.array([10, 4], dtype=np.uint8)).tolist() == [4, 7]
    assert OPS["bit_count"].eval(Ctx((INT64,), INT32), np.array([-1, 5], dtype=np.int64)).tolist() == [64, 2]
    assert OPS["to_bool"].eval(Ctx((INT32,), BOOL), np.array([0, -3], dtype=np.int32)).tolist() == [False, True]


@pytest.mark.parametrize("name", ["bit_count", "isfinite", "to_bool"])
def test_interval_rules_of_new_rows_contain_numpy_results(name):
    rng = np.random.default_rng(3)
    row = OPS[name]
    for args, result in row.instances():
        s = args[0]
        lo, hi = (-50.0, 50.0) if s.is_signed else (0.0, 200.0)
        x = rng.uniform(lo, hi, size=64) if s.is_float else rng.integers(int(lo), int(hi) + 1, size=64)
        got = row.eval(Ctx(args, result), x.astype(s.carrier))
        iv = row.bound(Ctx(args, result), Interval(lo, hi))
        assert iv.lo <= float(got.min()) and float(got.max()) <= iv.hi, (name, args)


def test_interval_engine_bounds_atomics_and_their_old_values():
    kernel = _atomics_kernel()
    ranges = {"x": Interval(-20, 20), "keys": Interval(0, 7)}
    shapes = {p.name: CASES["atomics"][2].get(p.name, (4,)) for p in kernel.params}
    facts = intervals.analyze(kernel, ranges, (32,), shapes)
    assert not facts.violations
    assert facts.arrays["nfirst"].hi >= 8 and facts.arrays["cnt"].lo == 0
    bad = _kernel("bad", [("x", AI), ("out", AI)], [n.Atomic("add", "out", AI, (c(4),), n.Load("x", AI, (I,)))])
    assert intervals.analyze(bad, {"x": Interval(0, 2**28)}, (32,), {"x": (32,), "out": (4,)}).violations


def _seed(family: str, k: int) -> int:
    return int.from_bytes(hashlib.sha256(f"ir-idx/{family}/{k}".encode()).digest()[:8], "little")


@pytest.mark.parametrize("family", ["atomic", "bitwise", "indexing"])
def test_family_programs_are_clean_and_their_interpreter_runs(family):
    import importlib

    fam = importlib.import_module(f"kernels.{family}").FAMILY
    for k in range(6):
        prog = fam.generate(np.random.default_rng(_seed(family, k)))
        kernel = prog.meta.kernel
        assert not any(analysis.hygiene(kernel).values()), prog.source
        # atomics may store per-cell values (cas, exch) or counts: their inputs act through cells and guards
        assert family == "atomic" or arrays.outputs_read_inputs(kernel), prog.source
        ranges = {a.name: Interval(a.low, a.high) for a in prog.args}
        shapes = {a.name: a.shape for a in prog.args if a.role != "scalar"}
        assert not intervals.analyze(kernel, ranges, prog.dim, shapes).violations, prog.source
        sampler = fam.sample_inputs
        if sampler is None:
            from harness.verify import default_inputs as sampler
        from harness.family import KernelSpec
        spec = KernelSpec(family, 0, 0, "wkf_kernel", prog)
        interp.run(kernel, prog.dim, sampler(spec, np.random.default_rng(k)))
