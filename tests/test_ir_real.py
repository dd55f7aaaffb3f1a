"""IR additions for the simulation-shaped families (particles, springs, sph): ``atomic_sub``, the hash-grid
neighbour loop :class:`kernels.ir.nodes.GridQuery` (printer, interpreter, interval engine, liveness) and the
samplers and assumptions of :mod:`kernels.ir.sim`."""

from __future__ import annotations

import ast
import linecache

import numpy as np
import pytest

from kernels.ir import analysis, interp, intervals, printer, sim
from kernels.ir import nodes as n
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, INT32, UINT64, Array, Vector

V3 = Vector(FLOAT32, 3)
AV, AF, AI = Array(V3), Array(FLOAT32), Array(INT32)
I = n.Var("i", INT32)
J = n.Var("j", INT32)


def _grid_kernel(style: str, name: str = "wkf_kernel") -> n.Kernel:
    """Count and sum ``(radius - r)^2`` of the neighbours within ``radius`` of each point."""
    p = n.Var("p", V3)
    d = n.Var("d", V3)
    r = n.Var("r", FLOAT32)
    radius = n.Var("radius", FLOAT32)
    cnt, acc = n.Var("cnt", INT32), n.Var("acc", FLOAT32)
    body = (
        n.Let("d", n.call("sub", n.Load("x", AV, (J,)), p)),
        n.Let("r", n.call("length", d)),
        n.If(n.call("lt", r, radius), (
            n.Assign("cnt", n.call("add", cnt, n.Const(1, INT32)), augmented=True),
            n.Assign("acc", n.call("add", acc, n.call("mul", n.call("sub", radius, r), n.call("sub", radius, r))),
                     augmented=True))),
    )
    loop = n.GridQuery(n.Var("grid", UINT64), p, radius, "j", "x", body, max_hits=27, style=style)
    return n.Kernel(name, (n.Param("grid", UINT64), n.Param("x", AV), n.Param("radius", FLOAT32),
                           n.Param("count", AI), n.Param("total", AF)),
                    (n.Let("p", n.Load("x", AV, (I,))), n.Let("cnt", n.Const(0, INT32)), n.Let("acc", n.Const(
                        0.0, FLOAT32)), loop, n.Store("count", AI, (I,), cnt), n.Store("total", AF, (I,), acc)))


def test_atomic_sub_subtracts_and_is_bounded():
    k = n.Kernel("k", (n.Param("a", AF), n.Param("o", AF)),
                 (n.Atomic("sub", "o", AF, (n.call("mod", I, n.Const(2, INT32)),), n.Load("a", AF, (I,))),))
    out = interp.run(k, (4,), {"a": np.array([1, 2, 3, 4], np.float32), "o": np.zeros(2, np.float32)})
    assert out["o"].tolist() == [-4.0, -6.0]
    facts = intervals.analyze(k, {"a": Interval(1.0, 4.0)}, (4,), {"a": (4,), "o": (2,)})
    assert facts.arrays["o"].lo <= -16.0 and facts.arrays["o"].hi >= 0.0
    assert "wp.atomic_sub(o, i % 2, a[i])" in printer.kernel_source(k)


@pytest.mark.parametrize("style", ["for", "while"])
def test_grid_query_prints_both_forms(style):
    src = printer.kernel_source(_grid_kernel(style))
    ast.parse(src)
    if style == "for":
        assert "for j in wp.hash_grid_query(grid, p, radius):" in src
    else:
        assert "query = wp.hash_grid_query(grid, p, radius)\n    j = int(0)\n    while wp.hash_grid_query_next(query, " \
               "j):" in src


def test_grid_query_liveness_keeps_values_the_loop_reads():
    k = _grid_kernel("for")
    assert analysis.remove_dead(k) == k
    assert not any(analysis.hygiene(k).values())
    assert analysis.reaching(k) >= {"grid", "x", "radius"}


def test_grid_query_is_bounded_by_its_hits():
    k = _grid_kernel("for")
    facts = intervals.analyze(k, {"grid": Interval(0.0, 0.0), "x": Interval(0.0, 2.0), "radius": Interval(0.4, 0.6)},
                              (64,), {p.name: (64,) for p in k.params if isinstance(p.type, Array)})
    assert not facts.violations
    # 27 hits of at most (radius - r)^2 with r = |x[j] - p| in [0, 2 sqrt(3)] (conditions do not narrow)
    assert facts.arrays["count"].hi == 27 and facts.arrays["total"].hi <= 27 * (0.6 + 2 * 3 ** 0.5) ** 2 * 1.01


def _points(count=64, seed=3):
    return sim.lattice(np.random.default_rng(seed), (4, 4, 4), 0.5, 0.1)[:count]


def test_accumulating_loops_run_vectorised_as_they_would_point_by_point(monkeypatch):
    k = _grid_kernel("while")
    inputs = {"grid": np.uint64(0), "x": _points(), "radius": np.float32(0.7), "count": np.zeros(64, np.int32),
              "total": np.zeros(64, np.float32)}
    fast = interp.run(k, (64,), inputs, exact=False)
    assert interp._accumulators(k.body[3].body, {"cnt": 0, "acc": 0, "p": 0}) == {"cnt": INT32, "acc": FLOAT32}
    monkeypatch.setattr(interp, "_accumulators", lambda body, env: None)
    slow = interp.run(k, (64,), inputs, exact=False)
    assert fast["count"].tolist() == slow["count"].tolist()
    np.testing.assert_allclose(fast["total"], slow["total"], rtol=1e-12)


@pytest.mark.parametrize("style", ["for", "while"])
def test_warp_hash_grid_agrees_with_the_brute_force_interpreter(style, tmp_path):
    wp = pytest.importorskip("warp")
    wp.init()
    k = _grid_kernel(style, name=f"ir_grid_{style}")
    src = printer.module([k], module_name=f"ir_real_grid_{style}")
    fname = str(tmp_path / f"grid_{style}.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    namespace: dict = {}
    exec(compile(src, fname, "exec"), namespace)
    device = wp.get_device("cpu")
    pts = _points()
    x = wp.array(pts, dtype=wp.vec3, device=device)
    grid = wp.HashGrid(5, 5, 5, device=device)
    grid.build(x, 0.5)
    count = wp.zeros(64, dtype=int, device=device)
    total = wp.zeros(64, dtype=float, device=device)
    wp.launch(namespace[k.name], dim=64, inputs=[grid.id, x, 0.7, count, total], device=device, block_dim=1)
    want = interp.run(k, (64,), {"grid": np.uint64(0), "x": pts, "radius": np.float32(0.7),
                                 "count": np.zeros(64, np.int32), "total": np.zeros(64, np.float32)}, exact=False)
    assert count.numpy().tolist() == want["count"].tolist()
    np.testing.assert_allclose(total.numpy(), want["total"], rtol=1e-5, atol=1e-6)


def test_lattice_keeps_points_apart_and_edges_are_distinct_pairs():
    rng = np.random.default_rng(7)
    pts = sim.lattice(rng, (4, 4, 2), 0.5, 0.1).astype(np.float64)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(len(pts)) * 9
    assert d.min() >= 0.3 - 1e-6
    edges = sim.edge_pairs(rng, 32, 48)
    assert edges.shape == (48, 2) and (edges[:, 0] != edges[:, 1]).all()
    assert len({tuple(sorted(e)) for e in edges.tolist()}) == 48 and set(edges.ravel().tolist()) == set(range(32))


def test_assumptions_meet_the_engines_interval():
    d = n.Var("d", V3)
    k = n.Kernel("k", (n.Param("x", AV), n.Param("o", AV)),
                 (n.Let("d", n.Load("x", AV, (I,))), n.Let("r", n.call("length", d)),
                  n.Store("o", AV, (I,), n.call("div", d, n.Var("r", FLOAT32)))))
    shapes = {"x": (8,), "o": (8,)}
    assert any("divisor" in why for why in sim.clean(k, {"x": Interval(-1.0, 1.0)}, (8,), shapes))
    assert sim.clean(k, {"x": Interval(-1.0, 1.0)}, (8,), shapes, {"r": Interval(0.3, 2.0)}) == []
