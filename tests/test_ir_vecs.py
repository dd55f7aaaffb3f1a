"""IR additions for vectors, matrices, quaternions and transforms: element reads and assignments, the composite
rows of the operation table (Warp's quat.h/spatial.h formulas), the inverse's refine rule, and a differential
test of the vector/matrix/quaternion families' programs compiled by Warp against the interpreter."""

from __future__ import annotations

import linecache
import math

import numpy as np
import pytest

from kernels.ir import analysis, interp, intervals, printer
from kernels.ir import nodes as n
from kernels.ir.numeric import Interval
from kernels.ir.ops import OPS, Ctx
from kernels.ir.types import (FLOAT32, INT32, Array, Matrix, Quat, SpatialVector, Transform, Vector, elem_shape,
                              scalar_of)
from kernels.ir.types import warp_type

V3, M33, Q, T = Vector(FLOAT32, 3), Matrix(FLOAT32, 3, 3), Quat(FLOAT32), Transform(FLOAT32)
I = n.Var("i", INT32)


def _eval(op: str, *args: np.ndarray, types) -> np.ndarray:
    row = OPS[op]
    result = row.result(tuple(types))
    return row.eval(Ctx(tuple(types), result, exact=False), *args)


def _unit_quats(rng, size):
    q = rng.normal(size=(size, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _rotation(q):
    """Rotation matrix of unit quaternions (x, y, z, w), from the textbook formula."""
    x, y, z, w = q.T
    return np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                     np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                     np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)


def test_quaternion_rows_follow_warp_formulas():
    rng = np.random.default_rng(0)
    q, r = _unit_quats(rng, 50), _unit_quats(rng, 50)
    x = rng.uniform(-2, 2, size=(50, 3))
    np.testing.assert_allclose(_eval("quat_rotate", q, x, types=(Q, V3)), np.einsum("nij,nj->ni", _rotation(q), x),
                               atol=1e-12)
    np.testing.assert_allclose(_eval("quat_rotate_inv", q, _eval("quat_rotate", q, x, types=(Q, V3)), types=(Q, V3)),
                               x, atol=1e-12)
    np.testing.assert_allclose(_eval("quat_to_matrix", q, types=(Q,)), _rotation(q), atol=1e-12)
    # the Hamilton product composes rotations; the inverse is the conjugate
    qr = _eval("qmul", q, r, types=(Q, Q))
    np.testing.assert_allclose(_rotation(qr), _rotation(q) @ _rotation(r), atol=1e-12)
    np.testing.assert_allclose(_eval("quat_inverse", q, types=(Q,)), q * [-1, -1, -1, 1])
    axis = x / np.linalg.norm(x, axis=1, keepdims=True)
    angle = rng.uniform(-3, 3, size=50)
    qa = _eval("quat_from_axis_angle", axis, angle, types=(V3, FLOAT32))
    np.testing.assert_allclose(qa[:, 3], np.cos(angle / 2))
    rpy = _eval("quat_rpy", angle, angle * 0.5, angle * 0.25, types=(FLOAT32,) * 3)
    np.testing.assert_allclose(np.linalg.norm(rpy, axis=1), 1.0, atol=1e-12)
    # transforms: inverse(t) * t is the identity transform; point = p + rot(q, x), vector = rot(q, x)
    t = np.concatenate([x, q], axis=1)
    tt = _eval("transform_multiply", _eval("transform_inverse", t, types=(T,)), t, types=(T, T))
    np.testing.assert_allclose(tt[:, :3], 0.0, atol=1e-12)
    np.testing.assert_allclose(np.abs(tt[:, 6]), 1.0, atol=1e-12)
    np.testing.assert_allclose(_eval("transform_point", t, x, types=(T, V3)) - x,
                               _eval("transform_vector", t, x, types=(T, V3)))


def test_matrix_rows_match_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(-2, 2, size=(2, 20, 3, 3))
    v = rng.uniform(-2, 2, size=(20, 3))
    np.testing.assert_allclose(_eval("matmul", a, b, types=(M33, M33)), a @ b)
    np.testing.assert_allclose(_eval("matmul", a, v, types=(M33, V3)), np.einsum("nij,nj->ni", a, v))
    np.testing.assert_allclose(_eval("matmul", v, a, types=(V3, M33)), np.einsum("ni,nij->nj", v, a))
    np.testing.assert_allclose(_eval("determinant", a, types=(M33,)), np.linalg.det(a))
    np.testing.assert_allclose(_eval("skew", v, types=(V3,)) @ v[..., None], np.zeros((20, 3, 1)), atol=1e-12)
    np.testing.assert_allclose(_eval("matrix_from_cols", v, v, v, types=(V3,) * 3)[:, :, 0], v)
    np.testing.assert_allclose(_eval("matrix_from_rows", v, v, v, types=(V3,) * 3)[:, 0, :], v)
    np.testing.assert_allclose(_eval("inverse", np.zeros((2, 3, 3)), types=(M33,)), 0.0)   # Warp: singular -> 0


def _inverse_kernel(shift: float) -> n.Kernel:
    a = n.Load("a", Array(M33), (I,))
    d = n.call("mscale", n.Const(shift, FLOAT32), n.Call("identity3", ()))
    inv = n.call("inverse", n.call("add", a, d))
    return n.Kernel("k", (n.Param("a", Array(M33)), n.Param("o", Array(M33))), (n.Store("o", Array(M33), (I,), inv),))


def test_inverse_needs_a_dominant_diagonal_shift():
    ranges = {"a": Interval(-1.0, 1.0)}
    ok = intervals.analyze(_inverse_kernel(3.0), ranges, (8,))      # diagonal >= 2, rows off it <= 2: margin 0
    good = intervals.analyze(_inverse_kernel(4.0), ranges, (8,))
    assert ok.violations and not good.violations
    assert good.arrays["o"].hi == pytest.approx(1.0, rel=1e-3)          # ||M^-1||_inf <= 1 / margin (margin 1)
    bare = n.Kernel("k", (n.Param("a", Array(M33)), n.Param("o", Array(M33))),
                    (n.Store("o", Array(M33), (I,), n.call("inverse", n.Load("a", Array(M33), (I,)))),))
    assert intervals.analyze(bare, ranges, (8,)).violations


def _element_kernel() -> n.Kernel:
    """Element reads in every style and element assignments (v[0] = x, v.y = x, m[1, 2] = x, q.w = x)."""
    a, m, q, t = (n.Load(name, Array(ty), (I,)) for name, ty in (("a", V3), ("m", M33), ("q", Q), ("t", T)))
    v = n.Var("v", V3)
    mm = n.Var("mm", M33)
    qq = n.Var("qq", Q)
    body = (
        n.Let("v", n.call("mul", a, n.Const(2.0, FLOAT32))),
        n.SetElement("v", V3, (0,), n.Element(m, (1, 2))),
        n.SetElement("v", V3, (1,), n.Element(m, (0, 1), "chain"), "attr"),
        n.Let("mm", n.call("transpose", m)),
        n.SetElement("mm", M33, (1, 2), n.Element(a, (2,), "attr")),
        n.Let("qq", n.call("qmul", q, n.Element(t, (1,), "attr"))),
        n.SetElement("qq", Q, (3,), n.call("add", n.Element(q, (0,)), n.Element(n.Element(t, (0,), "attr"), (2,))),
                     "attr"),
        n.Store("o", Array(V3), (I,), n.call("add", n.call("matmul", mm, v), n.Element(mm, (2,)))),
        n.Store("oq", Array(Q), (I,), n.call("mscale", qq, n.Call("pi", ()))),
        n.Store("ov", Array(FLOAT32), (I,),
                n.Cast(n.Element(n.call("ivec3", I, n.Const(3, INT32), n.call("add", I, n.Const(2, INT32))), (2,)),
                       FLOAT32)),
    )
    params = [n.Param(k, Array(ty)) for k, ty in (("a", V3), ("m", M33), ("q", Q), ("t", T), ("o", V3), ("oq", Q),
                                                  ("ov", FLOAT32))]
    return n.Kernel("ir_vecs_elements", tuple(params), body)


def _spatial_kernel() -> n.Kernel:
    """Twists built from two vec3, their spatial cross and dot products, halves and components."""
    a, b = n.Load("a", Array(V3), (I,)), n.Load("b", Array(V3), (I,))
    s6 = SpatialVector(FLOAT32, 6)
    tw, wr = n.Var("tw", s6), n.Var("wr", s6)
    body = (n.Let("tw", n.call("spatial_vector", a, b)),
            n.Let("wr", n.call("add", n.call("mul", tw, n.Element(a, (0,))), n.call("spatial_vector", b, a))),
            n.Store("o", Array(V3), (I,), n.call("add", n.call("spatial_top", n.call("spatial_cross", tw, wr)),
                                                 n.call("spatial_bottom", n.call("spatial_cross", wr, tw)))),
            n.Store("od", Array(FLOAT32), (I,), n.call("add", n.call("spatial_dot", tw, wr), n.Element(wr, (4,)))))
    params = [n.Param(k, Array(ty)) for k, ty in (("a", V3), ("b", V3), ("o", V3), ("od", FLOAT32))]
    return n.Kernel("ir_vecs_spatial", tuple(params), body)


def test_spatial_rows_follow_warp_formulas():
    rng = np.random.default_rng(3)
    s6 = SpatialVector(FLOAT32, 6)
    a, b = rng.uniform(-2, 2, size=(2, 10, 6))
    got = _eval("spatial_cross", a, b, types=(s6, s6))
    w = np.cross(a[:, :3], b[:, :3])
    v = np.cross(a[:, 3:], b[:, :3]) + np.cross(a[:, :3], b[:, 3:])
    np.testing.assert_allclose(got, np.concatenate([w, v], axis=1), atol=1e-12)
    np.testing.assert_allclose(_eval("spatial_dot", a, b, types=(s6, s6)), (a * b).sum(axis=1))
    assert "wp.spatial_vector(a[i], b[i])" in printer.kernel_source(_spatial_kernel())


def test_element_statements_print_and_stay_live():
    k = _element_kernel()
    src = printer.kernel_source(k)
    for text in ("v[0] = m[i][1, 2]", "v.y = m[i][0][1]", "mm[1, 2] = a[i].z", "qq.w = q[i][0] + t[i].p[2]", "t[i].q",
                 "wp.pi", "wp.vec3i(i, 3, i + 2)", "mm @ v + mm[2]"):
        assert text in src, (text, src)
    assert analysis.dead_locals(k) == []
    dead = n.Kernel("k", k.params, k.body[:2] + k.body[-1:])          # v is set but never read: both go
    assert analysis.dead_locals(dead) == ["v", "v"]


def _family_programs(count_each: int) -> list:
    from kernels import matrix, quaternion, vector

    out = []
    for fam in (vector, matrix, quaternion):
        for seed in range(count_each):
            prog = fam.draw(np.random.default_rng(1000 + seed))
            name = f"ir_vecs_{fam.__name__.split('.')[-1]}_{seed}"
            k = prog.meta.kernel
            funcs = {f.name: n.Func(f.name.replace(k.name, name), f.params, f.ret, f.body) for f in k.funcs}
            k = _relink(n.Kernel(name, k.params, k.body, k.tids, tuple(funcs.values())), funcs)
            out.append((k, {a.name: Interval(a.low, a.high) for a in prog.args}, prog.dim))
    return out


def _relink(k: n.Kernel, funcs) -> n.Kernel:
    def fix(e):
        if isinstance(e, n.FuncCall):
            return n.FuncCall(funcs[e.func.name], tuple(fix(a) for a in e.args))
        if isinstance(e, n.Call):
            return n.Call(e.op, tuple(fix(a) for a in e.args))
        if isinstance(e, n.Cast):
            return n.Cast(fix(e.value), e.type)
        if isinstance(e, n.Element):
            return n.Element(fix(e.value), e.index, e.style)
        if isinstance(e, n.Load):
            return n.Load(e.array, e.array_type, tuple(fix(i) for i in e.index))
        return e

    def stmt(s):
        if isinstance(s, (n.Let, n.Assign)):
            return type(s)(s.name, fix(s.value), *(() if isinstance(s, n.Let) else (s.augmented,)))
        if isinstance(s, n.SetElement):
            return n.SetElement(s.name, s.type, s.index, fix(s.value), s.style)
        if isinstance(s, n.Store):
            return n.Store(s.array, s.array_type, s.index, fix(s.value))
        return s
    return n.Kernel(k.name, k.params, tuple(map(stmt, k.body)), k.tids, k.funcs)



def _sample(rng, ty, iv: Interval, dim) -> np.ndarray:
    return rng.uniform(iv.lo, iv.hi, size=tuple(dim) + elem_shape(ty)).astype(scalar_of(ty).numpy)


def test_warp_agrees_on_composite_programs(tmp_path):
    wp = pytest.importorskip("warp")
    wp.init()
    programs = _family_programs(4)
    element = _element_kernel()
    programs.append((element, {p.name: Interval(-1.0, 1.0) for p in element.params}, (16,)))
    spatial = _spatial_kernel()
    programs.append((spatial, {p.name: Interval(-1.0, 1.0) for p in spatial.params}, (16,)))
    src = printer.module([k for k, _, _ in programs], module_name="ir_vecs_diff")
    fname = str(tmp_path / "ir_vecs_diff_module.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    namespace: dict = {}
    exec(compile(src, fname, "exec"), namespace)
    device = wp.get_device("cpu")
    rng = np.random.default_rng(7)
    for kernel, ranges, dim in programs:
        inputs = {}
        for p in kernel.params:
            ty = p.type.dtype if isinstance(p.type, Array) else p.type
            value = _sample(rng, ty, ranges.get(p.name, Interval(-1.0, 1.0)), dim if isinstance(p.type, Array) else ())
            inputs[p.name] = value
        launch = [wp.array(inputs[p.name], dtype=warp_type(p.type.dtype), device=device) if isinstance(p.type, Array)
                  else scalar_of(p.type).numpy.type(inputs[p.name]) for p in kernel.params]
        wp.launch(namespace[kernel.name], dim=dim, inputs=launch, device=device, block_dim=1)
        want = interp.run(kernel, dim, inputs)
        written = {s.array for s in analysis.statements(kernel.body) if isinstance(s, n.Store)}
        for p, arr in zip(kernel.params, launch):
            if p.name in written:
                got, exp = arr.numpy().astype(np.float64), want[p.name].astype(np.float64)
                scale = max(1.0, float(np.abs(exp).max()))
                np.testing.assert_allclose(got, exp, rtol=2e-4, atol=2e-4 * scale,
                                           err_msg=f"{kernel.name}.{p.name}\n{printer.kernel_source(kernel)}")


def test_family_programs_are_clean():
    for kernel, ranges, dim in _family_programs(6):
        assert not any(analysis.hygiene(kernel).values()), printer.kernel_source(kernel)
        shapes = {p.name: dim for p in kernel.params if isinstance(p.type, Array)}
        assert not intervals.analyze(kernel, ranges, dim, shapes).violations
        assert math.prod(dim) == 64
