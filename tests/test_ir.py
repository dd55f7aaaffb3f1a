"""The program IR (kernels/ir): operation table properties, printer, interpreter semantics, generator hygiene,
and a differential test of printed programs compiled by Warp against the interpreter."""

from __future__ import annotations

import ast
import hashlib
import linecache
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kernels.ir import analysis, gen, interp, intervals, printer
from kernels.ir import nodes as n
from kernels.ir.family import healthy, program, reference
from kernels.ir.numeric import Interval
from kernels.ir.ops import OPS, Ctx
from kernels.ir.types import BOOL, FLOAT16, FLOAT32, FLOAT64, INT8, INT32, Array, Scalar, Vector, scalar_of, warp_type
from kernels.ir.types import elem_shape

A32, AI = Array(FLOAT32), Array(INT32)
I = n.Var("i", INT32)

#: rows whose interval needs the argument expressions (``refine``) are tested in tests/test_ir_vecs.py, rows with
#: array arguments in tests/test_ir_indexing.py
CASES = [(name, args, result) for name, row in OPS.items() if row.refine is None
         for args, result in row.instances() if not any(isinstance(a, Array) for a in args)]
#: split in two tests: Hypothesis nests one settings object per call of a @given function, and a single test
#: parametrized over all ~1,000 instances overflows the stack near the end (RecursionError in hypothesis/_settings)
SCALAR_CASES = [c for c in CASES if all(isinstance(t, Scalar) for t in (*c[1], c[2]))]
COMPOSITE_CASES = [c for c in CASES if c not in SCALAR_CASES]


def _case_id(case) -> str:
    name, args, result = case
    return f"{name}({','.join(map(str, args))})->{result}"


def _draw_interval(data, ty, domain: Interval | None = None) -> Interval:
    """A sub-interval of a moderate range for ``ty`` (bools: 0/1), inside ``domain`` when it is bounded."""
    s = scalar_of(ty)
    if s == BOOL:
        lo = data.draw(st.integers(0, 1))
        return Interval(lo, data.draw(st.integers(lo, 1)))
    lo_t, hi_t = s.limits
    span = min(hi_t, 300.0) if s.is_float else min(hi_t, 2.0 ** (s.bits // 2 + 1))
    lo_r = max(lo_t, -span)
    if domain is not None and s.is_float and math.isfinite(domain.lo) and math.isfinite(domain.hi):
        lo_r, span = domain.lo, domain.hi
    if s.is_int:
        a, b = sorted(data.draw(st.integers(int(lo_r), int(span))) for _ in range(2))
    else:
        a, b = sorted(data.draw(st.floats(lo_r, span, allow_nan=False)) for _ in range(2))
        a, b = _inward(a, s, 1) + 0.0, _inward(b, s, -1) + 0.0   # bounds the type holds (no -0.0): values stay in
        assume(a <= b)
    return Interval(float(a), float(b))


def _inward(x: float, s: Scalar, direction: int) -> float:
    r = s.numpy.type(x)
    if (float(r) - x) * direction < 0:
        r = np.nextafter(r, s.numpy.type(direction * np.inf))
    return float(r)


def _sample(rng, ty, iv: Interval, size: int) -> np.ndarray:
    s = scalar_of(ty)
    shape = (size,) + elem_shape(ty)
    if s == BOOL:
        return rng.integers(int(iv.lo), int(iv.hi) + 1, size=shape).astype(bool)
    if s.is_int:
        return rng.integers(int(iv.lo), int(iv.hi) + 1, size=shape).astype(s.numpy)
    x = rng.uniform(iv.lo, iv.hi, size=shape)
    x[:2] = [iv.lo, iv.hi] if x.ndim == 1 else x[:2]        # the bounds themselves
    return x.astype(s.numpy).astype(np.float64)


_PROPERTY = settings(max_examples=12, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


@pytest.mark.parametrize("case", SCALAR_CASES, ids=_case_id)
@_PROPERTY
@given(data=st.data())
def test_interval_rule_contains_numpy_result(case, data):
    _interval_rule_contains_numpy_result(case, data)


@pytest.mark.parametrize("case", COMPOSITE_CASES, ids=_case_id)
@_PROPERTY
@given(data=st.data())
def test_composite_interval_rule_contains_numpy_result(case, data):
    _interval_rule_contains_numpy_result(case, data)


def _interval_rule_contains_numpy_result(case, data):
    name, arg_types, result = case
    row = OPS[name]
    domains = row.domain(arg_types) if row.domain is not None else (None,) * len(arg_types)
    ivs = [_draw_interval(data, t, d) for t, d in zip(arg_types, domains)]
    ctx = Ctx(arg_types, result)
    try:
        reason = row.guard(ctx, *ivs)
    except (ValueError, OverflowError, ZeroDivisionError):
        reason = "unbounded"
    assume(reason is None)
    bound = row.bound(ctx, *ivs)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    args = [_sample(rng, t, iv, 64) for t, iv in zip(arg_types, ivs)]
    got = row.eval(ctx, *args).astype(np.float64)
    inside = (got >= bound.lo) & (got <= bound.hi)
    assert inside.all(), (f"{_case_id(case)} on {[str(iv) for iv in ivs]}: value {got[~inside][:3]} "
                          f"outside {bound}")


def test_table_rows_are_complete():
    for name, row in OPS.items():
        assert list(row.instances()), name
        assert row.spelling or row.form in ("construct", "cast"), name
    assert OPS["add"].result((INT32, FLOAT32)) is None
    assert OPS["mul"].result((FLOAT32, Vector(FLOAT32, 3))) == Vector(FLOAT32, 3)
    assert OPS["log"].guard(Ctx((FLOAT32,), FLOAT32), Interval(-1.0, 2.0)) is not None
    assert OPS["div"].guard(Ctx((INT32, INT32), INT32), Interval(1, 5), Interval(-1, 1)) is not None
    assert OPS["mul"].guard(Ctx((INT32, INT32), INT32), Interval(0, 2**20), Interval(0, 2**12)) is not None


# ---------------------------------------------------------------------------------------------------------
# Interpreter semantics


def _kernel(body, params) -> n.Kernel:
    return n.Kernel("k", tuple(n.Param(a, t) for a, t in params), tuple(body))


def test_int_division_truncates_and_remainder_has_dividend_sign():
    a, b = n.Load("a", AI, (I,)), n.Load("b", AI, (I,))
    k = _kernel([n.Store("q", AI, (I,), n.call("div", a, b)), n.Store("r", AI, (I,), n.call("mod", a, b)),
                 n.Store("f", AI, (I,), n.call("floordiv", a, b))], [("a", AI), ("b", AI), ("q", AI), ("r", AI),
                                                                      ("f", AI)])
    zeros = np.zeros(4, np.int32)
    out = interp.run(k, (4,), {"a": np.array([-7, 7, -7, 7], np.int32), "b": np.array([2, -2, -2, 2], np.int32),
                               "q": zeros, "r": zeros, "f": zeros})
    assert out["q"].tolist() == [-3, -3, 3, 3]
    assert out["r"].tolist() == [-1, 1, -1, 1]
    assert out["f"].tolist() == [-4, -4, 3, 3]


def test_int32_wraps_and_int8_cast_wraps():
    a = n.Load("a", AI, (I,))
    k = _kernel([n.Store("o", AI, (I,), n.call("add", n.call("mul", a, n.Const(2, INT32)), n.Const(1, INT32))),
                 n.Store("c", AI, (I,), n.Cast(n.Cast(a, INT8), INT32))], [("a", AI), ("o", AI), ("c", AI)])
    out = interp.run(k, (2,), {"a": np.array([2**30, 200], np.int32), "o": np.zeros(2, np.int32),
                               "c": np.zeros(2, np.int32)})
    assert out["o"].tolist() == [-(2**31) + 1, 401]
    assert out["c"].tolist() == [0, -56]


def test_float32_rounds_each_operation_and_sign_of_zero_is_one():
    x = n.Load("x", A32, (I,))
    k = _kernel([n.Store("o", A32, (I,), n.call("sub", n.call("add", x, n.Const(1e8, FLOAT32)),
                                                 n.Const(1e8, FLOAT32))),
                 n.Store("s", A32, (I,), n.call("sign", x))], [("x", A32), ("o", A32), ("s", A32)])
    xs = np.array([1.0, 0.0], np.float32)
    exact = interp.run(k, (2,), {"x": xs, "o": np.zeros(2, np.float32), "s": np.zeros(2, np.float32)})
    wide = interp.run(k, (2,), {"x": xs, "o": np.zeros(2, np.float32), "s": np.zeros(2, np.float32)}, exact=False)
    assert exact["o"].tolist() == [0.0, 0.0]                    # 1e8 + 1 rounds to 1e8 in float32
    assert wide["o"].tolist() == [1.0, 0.0]
    assert exact["s"].tolist() == [1.0, 1.0]


def test_inexact_reference_keeps_float32_inputs_unrounded():
    """Finite differences of the reference perturb float32 inputs by less than an ulp: exact=False keeps them."""
    x = n.Load("x", A32, (I,))
    k = _kernel([n.Store("o", A32, (I,), n.call("mul", x, n.Const(2.0, FLOAT32)))], [("x", A32), ("o", A32)])
    xs = np.array([1.0 + 1e-9])
    assert interp.run(k, (1,), {"x": xs, "o": np.zeros(1)}, exact=False)["o"][0] == 2.0 * (1.0 + 1e-9)
    assert interp.run(k, (1,), {"x": xs, "o": np.zeros(1)})["o"][0] == 2.0


def test_float16_rounds_after_each_operation():
    h = Array(FLOAT16)
    x = n.Load("x", h, (I,))
    k = _kernel([n.Store("o", h, (I,), n.call("add", x, n.Const(0.0001, FLOAT16)))], [("x", h), ("o", h)])
    out = interp.run(k, (1,), {"x": np.array([1.0], np.float16), "o": np.zeros(1, np.float16)}, exact=False)
    assert out["o"].tolist() == [1.0]


def test_loop_break_continue_and_if_masks():
    """acc sums odd k below b[i] (break at k > b, continue on even k); the else branch negates."""
    b = n.Load("b", AI, (I,))
    k, acc = n.Var("k", INT32), n.Var("acc", INT32)
    loop = n.For("k", n.Const(0, INT32), n.Const(10, INT32), (
        n.If(n.call("gt", k, b), (n.Break(),)),
        n.If(n.call("eq", n.call("mod", k, n.Const(2, INT32)), n.Const(0, INT32)), (n.Continue(),)),
        n.Assign("acc", n.call("add", acc, k))))
    body = [n.Let("acc", n.Const(0, INT32)), loop,
            n.If(n.call("gt", acc, n.Const(3, INT32)), (n.Assign("acc", n.call("neg", acc)),),
                 (n.Assign("acc", n.call("add", acc, n.Const(100, INT32))),)),
            n.Store("o", AI, (I,), acc)]
    kern = _kernel(body, [("b", AI), ("o", AI)])
    bs = np.array([-1, 0, 1, 3, 4, 9, 20], np.int32)
    out = interp.run(kern, (7,), {"b": bs, "o": np.zeros(7, np.int32)})
    want = []
    for bv in bs:
        s = sum(v for v in range(10) if v <= bv and v % 2 == 1)
        want.append(-s if s > 3 else s + 100)
    assert out["o"].tolist() == want


def test_while_and_helper_with_early_return():
    x = n.Var("x", FLOAT32)
    f = n.Func("clip_pos", (n.Param("x", FLOAT32),), FLOAT32, (
        n.If(n.call("lt", x, n.Const(0.0, FLOAT32)), (n.Return(n.Const(0.0, FLOAT32)),)),
        n.Return(n.call("mul", x, n.Const(2.0, FLOAT32)))))
    c = n.Var("c", INT32)
    body = [n.Let("c", n.Const(0, INT32)),
            n.While(n.call("lt", c, n.Load("m", AI, (I,))), (n.Assign("c", n.call("add", c, n.Const(1, INT32))),), 8),
            n.Store("o", A32, (I,), n.call("add", n.FuncCall(f, (n.Load("x", A32, (I,)),)), n.Cast(c, FLOAT32)))]
    kern = n.Kernel("k", (n.Param("x", A32), n.Param("m", AI), n.Param("o", A32)), tuple(body), funcs=(f,))
    out = interp.run(kern, (3,), {"x": np.array([-1.0, 0.5, 2.0], np.float32), "m": np.array([0, 3, 5], np.int32),
                                  "o": np.zeros(3, np.float32)})
    assert out["o"].tolist() == [0.0, 4.0, 9.0]
    src = printer.kernel_source(kern)
    assert "@wp.func\ndef clip_pos(x: wp.float32) -> wp.float32:" in src and "while c < m[i]:" in src


def test_atomics_accumulate_every_lane():
    k = _kernel([n.Atomic("add", "o", AI, (n.call("mod", I, n.Const(2, INT32)),), n.Load("a", AI, (I,))),
                 n.Atomic("max", "m", AI, (n.Const(0, INT32),), n.Load("a", AI, (I,)))],
                [("a", AI), ("o", AI), ("m", AI)])
    out = interp.run(k, (5,), {"a": np.array([1, 2, 3, 4, 5], np.int32), "o": np.zeros(2, np.int32),
                               "m": np.zeros(1, np.int32)})
    assert out["o"].tolist() == [9, 6] and out["m"].tolist() == [5]


def test_ill_typed_nodes_are_refused():
    with pytest.raises(n.IRTypeError):
        n.call("add", n.Const(1, INT32), n.Const(1.0, FLOAT32))
    with pytest.raises(n.IRTypeError):
        n.If(n.Const(1, INT32), ())
    with pytest.raises(n.IRTypeError):
        n.Store("o", A32, (I,), n.Const(1, INT32))


# ---------------------------------------------------------------------------------------------------------
# Printer


def _programs(count: int, base: int = 13) -> list[n.Kernel]:
    out = []
    for k in range(count):
        seed = int.from_bytes(hashlib.sha256(f"ir-diff/{base}/{k}".encode()).digest()[:8], "little")
        kernel, ranges = gen.random_kernel(np.random.default_rng(seed), name=f"ir_diff_{k}")
        out.append((kernel, ranges))
    return out


def test_printer_parses_wraps_and_round_trips():
    x = n.Load("x", A32, (I,))
    long = x
    for c in range(5):
        long = n.call("add", n.call("mul", long, n.Const(1.25 + c, FLOAT32)), n.call("sin", x))
    long = n.call("mul", n.call("sub", long, x), n.call("add", x, n.Const(3.5, FLOAT32)))
    k = _kernel([n.Let("t", n.call("max", long, n.call("cos", long))),
                 n.If(n.call("and", n.call("lt", x, long), n.call("gt", long, n.Const(0.5, FLOAT32))),
                      (n.Store("o", A32, (I,), n.Var("t", FLOAT32)),))], [("x", A32), ("o", A32)])
    sources = [printer.kernel_source(k)] + [printer.kernel_source(p) for p, _ in _programs(6, base=5)]
    for src in sources:
        tree = ast.parse(src)
        assert max(len(line) for line in src.splitlines()) <= printer.WIDTH, src
        again = ast.unparse(tree)
        assert ast.dump(ast.parse(again)) == ast.dump(tree)
        assert ast.unparse(ast.parse(again)) == again
    # the wrapped expression is the same expression as the flat one
    flat = ast.unparse(printer.expr(long))
    wrapped = sources[0].split("t = ", 1)[1].split("\n    if ")[0]
    assert ast.dump(ast.parse(wrapped, mode="eval")) == ast.dump(ast.parse(f"wp.max({flat}, wp.cos({flat}))",
                                                                           mode="eval"))


def test_conditional_expressions_and_negations_wrap():
    x = n.Load("x", A32, (I,))
    long = x
    for c in range(7):
        long = n.call("add", n.call("mul", long, n.Const(1.25 + c, FLOAT32)), n.call("sin", x))
    pick = n.call("ifexp", n.call("lt", x, n.Const(0.5, FLOAT32)), long, n.call("neg", long))
    k = _kernel([n.Store("o", A32, (I,), n.call("neg", n.call("mul", pick, x)))], [("x", A32), ("o", A32)])
    src = printer.kernel_source(k)
    assert max(len(line) for line in src.splitlines()) <= printer.WIDTH, src
    value = src.split("o[i] = ", 1)[1]
    assert ast.dump(ast.parse(value, mode="eval")) == ast.dump(ast.parse(ast.unparse(printer.expr(
        k.body[0].value)), mode="eval"))
    xs = np.array([0.25, 1.0], np.float32)
    out = interp.run(k, (2,), {"x": xs, "o": np.zeros(2, np.float32)}, exact=False)["o"]
    flat = np.float64(xs)
    for c in range(7):
        flat = flat * (1.25 + c) + np.sin(xs.astype(np.float64))
    np.testing.assert_allclose(out, -np.where(xs < 0.5, flat, -flat) * xs, rtol=1e-12)


def test_kernel_heads_leave_room_for_the_harness_name():
    params = [(f"array_{k}", A32) for k in range(5)]
    src = printer.kernel_source(n.Kernel("wkf_kernel", tuple(n.Param(a, t) for a, t in params), ()))
    assert max(len(line.replace("wkf_kernel", "x" * printer.KERNEL_NAME_ROOM)) for line in src.splitlines()) \
        <= printer.WIDTH


def test_literals_are_typed_for_warp():
    assert ast.unparse(printer.literal(1.5, FLOAT32)) == "1.5"
    assert ast.unparse(printer.expr(n.Const(1.5, Scalar("float64")))) == "wp.float64(1.5)"
    assert ast.unparse(printer.expr(n.Const(3, Scalar("int64")))) == "wp.int64(3)"
    assert printer.kernel_source(_kernel([n.Let("z", n.Const(0.0, FLOAT32)),
                                          n.Store("o", A32, (I,), n.Var("z", FLOAT32))],
                                         [("o", A32)])).count("z = wp.float32(0.0)") == 1


# ---------------------------------------------------------------------------------------------------------
# Analysis and generation


def test_analysis_finds_and_folds_hygiene_problems():
    x = n.Load("x", A32, (I,))
    zero, one = n.Const(0.0, FLOAT32), n.Const(1.0, FLOAT32)
    assert analysis.is_identity(n.call("sub", x, zero)) and analysis.is_identity(n.call("add", zero, x))
    assert analysis.is_identity(n.call("mul", x, one)) and not analysis.is_identity(n.call("sub", zero, x))
    assert analysis.is_self_operation(n.call("le", x, x)) and not analysis.is_self_operation(n.call("le", x, zero))
    assert analysis.simplify(n.call("mul", n.call("add", zero, x), one)) == x
    cond = n.call("lt", x, one)
    assert analysis.is_identity(n.call("ifexp", cond, x, x)) and not analysis.is_identity(n.call("ifexp", cond, x, one))
    assert analysis.is_absorbed(n.call("max", n.call("min", one, x), x))
    assert analysis.is_double_negation(n.call("sub", x, n.Const(-1.5, FLOAT32)))
    assert analysis.is_double_negation(n.call("add", one, n.call("neg", x)))
    k = _kernel([n.Let("dead", n.call("sin", x)), n.Let("u", n.call("cos", x)), n.Store("o", A32, (I,), x)],
                [("x", A32), ("o", A32)])
    assert analysis.dead_locals(k) == ["dead", "u"]
    folded = analysis.remove_dead(analysis.fold_unused(k))
    assert analysis.hygiene(folded)["dead_locals"] == []
    assert [s.name for s in folded.body if isinstance(s, n.Let)] == ["dead", "u"]


def test_generated_programs_are_clean_and_inside_their_intervals():
    for kernel, ranges in _programs(20, base=7):
        findings = analysis.hygiene(kernel)
        assert not any(findings.values()), findings
        facts = intervals.analyze(kernel, ranges, (32,))
        assert not facts.violations
        inputs = _inputs(kernel, ranges, np.random.default_rng(0))
        out = interp.run(kernel, (32,), inputs)
        for p in kernel.params:
            if p.name.startswith("out"):
                iv = facts.arrays[p.name]
                assert np.all((out[p.name] >= iv.lo) & (out[p.name] <= iv.hi)), (p.name, iv)


def _inputs(kernel: n.Kernel, ranges, rng) -> dict[str, np.ndarray]:
    values = {}
    for p in kernel.params:
        if not isinstance(p.type, Array):                   # a scalar parameter: one value
            values[p.name] = _sample(rng, p.type, ranges[p.name], 3).astype(p.type.numpy)[-1]
            continue
        s = scalar_of(p.type.dtype)
        if p.name in ranges:
            values[p.name] = _sample(rng, s, ranges[p.name], 32).astype(s.numpy)
        else:
            values[p.name] = np.zeros(32, s.numpy)
    return values


# ---------------------------------------------------------------------------------------------------------
# Differential test: printed programs compiled by Warp (one module, CPU) against the interpreter


def test_warp_agrees_with_the_interpreter(tmp_path):
    _differential(_programs(12), tmp_path, "ir_diff", rtol=1e-5)


def test_warp_agrees_on_math_builtins_and_helpers(tmp_path):
    """Smooth builtins of the math family (no rounding or step functions: a 1-ulp difference flips them),
    helpers called from the kernels."""
    from dataclasses import replace

    from kernels import math as M

    smooth = {k: w for k, w in {**M.UNARY, **M.BINARY}.items()
              if k not in ("floor", "ceil", "round", "rint", "trunc", "sign", "step", "nonzero", "floordiv")}
    vocab = gen.Vocabulary(smooth, types=(FLOAT32,), ranges={FLOAT32: Interval(-2.0, 2.0)}, limit=40.0)
    layout = replace(M.LAYOUT, p_helper=0.6)
    programs = []
    for k in range(12):
        seed = int.from_bytes(hashlib.sha256(f"ir-math/{k}".encode()).digest()[:8], "little")
        programs.append(gen.random_kernel(np.random.default_rng(seed), vocab, 32, name=f"ir_math_{k}",
                                          layout=layout))
    assert any(k.funcs for k, _ in programs)
    _differential(programs, tmp_path, "ir_math", rtol=1e-4)


def _differential(programs, tmp_path, module_name: str, rtol: float) -> None:
    wp = pytest.importorskip("warp")
    wp.init()
    src = printer.module([k for k, _ in programs], module_name=module_name)
    fname = str(tmp_path / f"{module_name}_module.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    namespace: dict = {}
    exec(compile(src, fname, "exec"), namespace)
    device = wp.get_device("cpu")
    rng = np.random.default_rng(2024)
    for kernel, ranges in programs:
        inputs = _inputs(kernel, ranges, rng)
        arrays = {p.name: wp.array(inputs[p.name], dtype=warp_type(p.type.dtype), device=device)
                  if isinstance(p.type, Array) else inputs[p.name].item() for p in kernel.params}
        wp.launch(namespace[kernel.name], dim=32, inputs=[arrays[p.name] for p in kernel.params], device=device,
                  block_dim=1)
        want = interp.run(kernel, (32,), inputs)
        written = {s.array for s in analysis.statements(kernel.body) if isinstance(s, n.Store)}
        for p in kernel.params:
            if p.name not in written:
                continue
            got = arrays[p.name].numpy()
            if scalar_of(p.type.dtype).is_int:
                np.testing.assert_array_equal(got, want[p.name], err_msg=f"{kernel.name}.{p.name}\n{src}")
            else:
                np.testing.assert_allclose(got, want[p.name], rtol=rtol, atol=rtol,
                                           err_msg=f"{kernel.name}.{p.name}\n{printer.kernel_source(kernel)}")


def _flow_programs(count: int, ty=FLOAT32, size: int = 32) -> list:
    from kernels.ir.flow import FlowBuilder, Redraw, Shape

    vocab = gen.Vocabulary({"add": 3, "sub": 3, "mul": 3, "div": 1, "min": 1, "max": 1, "abs": 0.5, "mod": 1},
                           types=(ty,), ranges={ty: Interval(-2.0, 2.0) if ty.is_float else Interval(-20.0, 20.0)},
                           limit=1e5)
    out, seed = [], 0
    while len(out) < count:
        seed += 1
        try:
            kernel, ranges = FlowBuilder(np.random.default_rng(seed), ty, vocab, Shape(max_lines=20), size,
                                         name=f"ir_flow_{ty}_{len(out)}").build()
        except Redraw:
            continue
        if gen.is_clean(kernel, ranges, size):
            out.append((kernel, ranges))
    return out


def test_control_flow_programs_are_clean_bounded_and_use_every_construct():
    from kernels.ir.flow import constructs

    seen: set[str] = set()
    for ty in (FLOAT32, INT32):
        for kernel, ranges in _flow_programs(10, ty):
            facts = intervals.analyze(kernel, ranges, (32,))
            assert not facts.violations and not any(analysis.hygiene(kernel).values())
            inputs = _inputs(kernel, ranges, np.random.default_rng(0))
            out = interp.run(kernel, (32,), inputs)
            for p in kernel.params:
                if p.name in facts.written:
                    iv = facts.arrays[p.name]
                    assert np.all((out[p.name] >= iv.lo) & (out[p.name] <= iv.hi)), (p.name, iv)
            seen |= set(constructs(kernel))
    assert {"if", "for_const", "for_dynamic", "while", "augmented"} <= seen, seen


def test_augmented_assignment_prints_and_runs_as_its_expansion():
    acc, x = n.Var("acc", FLOAT32), n.Load("x", A32, (I,))
    body = [n.Let("acc", n.Const(1.0, FLOAT32)),
            n.For("j", n.Const(0, INT32), n.Const(3, INT32), (
                n.Assign("acc", n.call("add", acc, n.call("mul", x, n.Cast(n.Var("j", INT32), FLOAT32))), True),
                n.Assign("acc", n.call("mul", acc, n.call("sub", x, n.Const(2.0, FLOAT32))), True))),
            n.Store("o", A32, (I,), acc)]
    kern = _kernel(body, [("x", A32), ("o", A32)])
    src = printer.kernel_source(kern)
    assert "acc += x[i] * wp.float32(j)" in src and "acc *= x[i] - 2.0" in src
    xs = np.array([0.5, 1.0, -1.0], np.float32)
    want = []
    for xv in xs.astype(np.float64):
        a = 1.0
        for j in range(3):
            a = (a + xv * j) * (xv - 2.0)
        want.append(a)
    np.testing.assert_allclose(interp.run(kern, (3,), {"x": xs, "o": np.zeros(3, np.float32)})["o"], want, rtol=1e-6)
    with pytest.raises(n.IRTypeError):
        n.Assign("acc", n.call("add", x, acc), True)


def test_float64_casts_of_loop_indices_keep_the_index_an_int():
    """Warp 1.19 retypes an unrolled index ``j`` in place under ``wp.float64(j)``: the printer goes through int32."""
    j, acc = n.Var("j", INT32), n.Var("acc", FLOAT64)
    loop = n.For("j", n.Const(0, INT32), n.Const(3, INT32), (n.Assign("acc", n.call("add", acc, n.Cast(j, FLOAT64))),))
    assert ast.unparse(printer.stmt(loop)) == "for j in range(3):\n    acc = acc + wp.float64(wp.int32(j))"


def test_warp_agrees_on_control_flow(tmp_path):
    """Loops with parameter and per-element bounds, while loops, break/continue, elif chains, clamps, ``+=``."""
    _differential(_flow_programs(8) + _flow_programs(4, INT32), tmp_path, "ir_flow", rtol=1e-5)


def test_family_adapter_builds_a_program_and_reference():
    kernel, ranges = _programs(1, base=3)[0]
    prog = program(kernel, ranges, (32,))
    assert "def wkf_kernel(" in prog.source
    roles = {a.name: a.role for a in prog.args}
    assert all(roles[p.name] == ("out" if p.name.startswith("out") else "in") for p in kernel.params)

    class Spec:
        meta = prog.meta
        args = prog.args

    inputs = _inputs(kernel, ranges, np.random.default_rng(1))
    result = reference(Spec, inputs)
    assert set(result) == {a.name for a in prog.args if a.is_output}
    assert all(math.isfinite(float(np.max(np.abs(v)))) for v in result.values())


def test_screening_asks_the_verifiers_questions_of_the_interpreter():
    x = n.Load("x", A32, (I,))
    copy = _kernel([n.Store("o", A32, (I,), n.call("min", x, n.Const(5.0, FLOAT32)))], [("x", A32), ("o", A32)])
    square = _kernel([n.Store("o", A32, (I,), n.call("mul", x, x))], [("x", A32), ("o", A32)])
    ranges = {"x": Interval(-2.0, 2.0)}
    assert not healthy(program(copy, ranges, (32,)), seed=1)
    assert healthy(program(square, ranges, (32,)), seed=1)


def test_layouts_bound_output_size_and_share_locals():
    vocab = gen.Vocabulary({"add": 1, "mul": 1, "sin": 1, "tanh": 1}, types=(FLOAT32,),
                           ranges={FLOAT32: Interval(-2.0, 2.0)}, p_leaf=0.1)
    layout = gen.Layout(inputs=(2, 2), statements=(2, 3), kinds={"let": 1.0}, out_depth=(4, 6), out_ops=20,
                        min_reads=2, named=True)
    depths = []
    for seed in range(12):
        k, _ = gen.random_kernel(np.random.default_rng(seed), vocab, layout=layout)
        stores = [s for s in k.body if isinstance(s, n.Store)]
        assert all(analysis.size(s.value) <= 20 for s in stores)
        depths += [analysis.depth(s.value) for s in stores]
        exprs = [e for s in k.body for e in n.stmt_exprs(s)]
        shared = [s.name for s in k.body if isinstance(s, n.Let) and isinstance(s.value, n.Call)]
        assert all(analysis.reads(exprs, name) >= 2 for name in shared), printer.kernel_source(k)
    assert sum(4 <= d <= 6 for d in depths) >= 0.8 * len(depths), depths


def test_bool_parameters_are_sampled_as_int32_and_launched_as_bools():
    from kernels.ir.family import prepare

    x, flag = n.Load("x", A32, (I,)), n.Var("flag", BOOL)
    k = n.Kernel("k", (n.Param("x", A32), n.Param("flag", BOOL), n.Param("o", A32)),
                 (n.Store("o", A32, (I,), n.call("ifexp", flag, x, n.call("neg", x))),))
    prog = program(k, {"x": Interval(-1.0, 1.0), "flag": Interval(0.0, 1.0)}, (4,))
    arg = next(a for a in prog.args if a.name == "flag")
    assert (arg.dtype, arg.role, arg.low, arg.high) == ("int32", "scalar", 0.0, 1.0)
    assert "flag: bool" in prog.source

    class Spec:
        meta = prog.meta
        args = prog.args

    assert prepare(Spec, {"flag": np.int32(1)}, "cpu", {}) == {"flag": True}
    xs = np.array([0.5, -0.25, 1.0, 0.0], np.float32)
    assert reference(Spec, {"x": xs, "flag": np.int32(0), "o": np.zeros(4, np.float32)})["o"].tolist() == \
        (-xs.astype(np.float64)).tolist()


def test_a_range_test_prints_as_a_chained_comparison():
    k = n.Load("k", AI, (I,))
    cond = n.call("and", n.call("le", n.Const(-2, INT32), k), n.call("lt", k, n.Const(3, INT32)))
    kern = _kernel([n.Store("o", AI, (I,), n.call("where", cond, k, n.Const(0, INT32)))], [("k", AI), ("o", AI)])
    assert "wp.where(-2 <= k[i] < 3, k[i], 0)" in printer.kernel_source(kern)
    out = interp.run(kern, (6,), {"k": np.arange(-3, 3, dtype=np.int32), "o": np.zeros(6, np.int32)})
    assert out["o"].tolist() == [0, -2, -1, 0, 1, 2]


def test_a_range_test_whose_upper_bound_reads_an_array_is_not_chained(tmp_path):
    """Warp chains only comparisons whose later operands share a type, and an array element is a reference
    there: ``a <= w[i] <= x[i]`` fails to compile (multi_condition seed 5846505784137117206), so it prints as
    ``a <= w[i] and w[i] <= x[i]``; the printed kernels compile and agree with the interpreter."""
    w, x = n.Load("w", A32, (I,)), n.Load("x", A32, (I,))
    a = n.call("mul", w, n.Const(0.25, FLOAT32))
    programs = []
    for k, (lo, mid, hi) in enumerate([(a, w, x), (w, x, a), (w, a, x)]):
        cond = n.call("and", n.call("le", lo, mid), n.call("le", mid, hi))
        kern = _kernel([n.Store("o", A32, (I,), n.call("where", cond, n.Const(1.0, FLOAT32), n.Const(0.0, FLOAT32)))],
                       [("w", A32), ("x", A32), ("o", A32)])
        programs.append((n.Kernel(f"ir_range_{k}", kern.params, kern.body), {"w": Interval(-1.0, 1.0),
                                                                              "x": Interval(-1.0, 1.0)}))
    printed = [printer.kernel_source(k) for k, _ in programs]
    assert "w[i] * 0.25 <= w[i] and w[i] <= x[i]" in printed[0]
    assert "w[i] <= x[i] <= w[i] * 0.25" in printed[1]
    assert "w[i] <= w[i] * 0.25 and w[i] * 0.25 <= x[i]" in printed[2]
    _differential(programs, tmp_path, "ir_range", rtol=0.0)


def test_a_program_nobody_differentiates_can_drop_its_backward():
    """``without_backward`` declares the kernel ``enable_backward=False`` (Warp then generates no adjoint);
    a differentiable program keeps its backward."""
    from kernels.ir.family import without_backward

    x = n.Load("x", A32, (I,))
    k = _kernel([n.Store("o", A32, (I,), n.call("floor", n.call("mul", x, n.Const(2.5, FLOAT32))))],
                [("x", A32), ("o", A32)])
    prog = program(k, {"x": Interval(-2.0, 2.0)}, (8,), differentiable=False)
    lean = without_backward(prog)
    assert "@wp.kernel(enable_backward=False)" in lean.source and "@wp.kernel\n" in prog.source
    assert lean.features["enable_backward"] is False and lean.meta.kernel.options == (("enable_backward", False),)
    assert ast.dump(ast.parse(lean.source).body[-1].body[1]) == ast.dump(ast.parse(prog.source).body[-1].body[1])
    with pytest.raises(ValueError):
        without_backward(program(k, {"x": Interval(-2.0, 2.0)}, (8,), differentiable=True))


def test_a_branch_no_input_reaches_is_unhealthy():
    """``healthy`` runs the verifier's checks and asks which blocks a lane entered: a branch the inputs never
    take is code the verification never ran."""
    from kernels.ir.family import healthy

    x = n.Load("x", A32, (I,))
    v = n.Var("v", FLOAT32)

    def prog(threshold: float):
        k = _kernel([n.Let("v", n.call("mul", x, n.Const(1.5, FLOAT32))),
                     n.If(n.call("gt", v, n.Const(threshold, FLOAT32)),
                          (n.Assign("v", n.call("sin", v)),), (n.Assign("v", n.call("cos", v)),)),
                     n.Store("o", A32, (I,), n.call("add", v, x))], [("x", A32), ("o", A32)])
        return program(k, {"x": Interval(-2.0, 2.0)}, (64,), differentiable=False)

    assert healthy(prog(0.25), seed=7)
    assert not healthy(prog(10.0), seed=7)          # v <= 3 on every lane: the sin branch never runs
    k = prog(10.0).meta.kernel
    it = interp.Interpreter(k)
    it.run((64,), {"x": np.linspace(-2, 2, 64).astype(np.float32), "o": np.zeros(64, np.float32)})
    assert interp.unreached(k, it.reached) == [f"{k.name}: if block 0"]
