"""The element-wise parts of tile programs on the IR (kernels/ir/tiles.py): element functions and reducers drawn on
the IR, tree folds with table operations, printing of tile kernels, and Warp's tile_map / tile_reduce against
the interpreter."""

from __future__ import annotations

import ast
import linecache

import numpy as np
import pytest

from kernels.ir import analysis, printer
from kernels.ir import nodes as n
from kernels.ir import tiles as T
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, FLOAT64, INT32


@pytest.mark.parametrize("ty", [FLOAT32, FLOAT64, INT32])
def test_element_functions_are_clean_and_inside_their_interval(ty):
    rng = np.random.default_rng(7)
    for k in range(40):
        ivs = [Interval(-2.0, 2.0), Interval(0.5, 3.0)][: 1 + k % 2] if not ty.is_int else \
            [Interval(-50.0, 50.0)] * (1 + k % 2)
        helper = T.elem_func(rng, f"f{k}", ty, ivs, limit=500.0)
        kernel = n.Kernel("k", (), (), funcs=(helper.func,))
        assert not analysis.hygiene(kernel)["dead_locals"]
        body_uses = set().union(*(analysis.uses(e) for e in analysis.expressions(helper.func.body)))
        assert {p.name for p in helper.func.params} <= body_uses
        args = [rng.uniform(iv.lo, iv.hi, 500) if not ty.is_int else rng.integers(iv.lo, iv.hi + 1, 500)
                for iv in ivs]
        if ty.is_int:
            args = [a.astype(np.int32) for a in args]
        out = T.call(helper.func, *args)
        assert np.all(np.isfinite(out))
        assert helper.ret.lo - 1e-6 <= out.min() and out.max() <= helper.ret.hi + 1e-6
        ast.parse(T.helper_source(helper.func))


def test_reducers_and_folds_match_their_closed_forms():
    x = np.random.default_rng(1).uniform(-2, 2, (3, 37))
    assert np.allclose(T.fold_op("add", FLOAT64, x), x.sum(-1))
    assert np.array_equal(T.fold_op("max", FLOAT64, x), x.max(-1))
    assert np.allclose(T.fold_func(T.reducer("r", FLOAT64, "sumc", -0.5), x), x.sum(-1) - 0.5 * 36)
    assert np.allclose(T.fold_func(T.reducer("r", FLOAT64, "abs"), x), np.abs(x).sum(-1))
    assert np.array_equal(T.fold_func(T.reducer("r", FLOAT64, "maxabs"), x), np.abs(x).max(-1))
    assert np.array_equal(T.fold_func(T.reducer("r", FLOAT64, "max"), x), x.max(-1))
    assert np.array_equal(T.fold_func(T.reducer("r", FLOAT64, "min"), x), x.min(-1))
    xi = np.random.default_rng(2).integers(0, 1000, (2, 16)).astype(np.int32)
    assert np.array_equal(T.fold_op("bit_xor", INT32, xi), np.bitwise_xor.reduce(xi, -1))
    big = np.full((1, 4), 2**30, dtype=np.int32)
    assert T.fold_op("add", INT32, big)[0] == 0                 # int32 wraps like Warp's
    assert "a + b - 0.5" in T.helper_source(T.reducer("r", FLOAT32, "sumc", -0.5))


def test_scalar_expressions_read_every_leaf_and_evaluate_on_tiles():
    rng = np.random.default_rng(3)
    leaves = [(n.Var("xv", FLOAT32), Interval(-1.0, 1.0)), (n.Var("yv", FLOAT32), Interval(0.5, 2.0))]
    for _ in range(30):
        e, iv = T.scalar_expr(rng, FLOAT32, leaves, 2, limit=20.0)
        assert analysis.uses(e) == {"xv", "yv"}
        env = {"xv": rng.uniform(-1, 1, (4, 8)), "yv": rng.uniform(0.5, 2, (4, 1))}
        out = T.evaluate(e, env)
        assert out.shape == (4, 8) and iv.lo - 1e-6 <= out.min() and out.max() <= iv.hi + 1e-6


def test_tile_kernel_source_is_reprinted_and_wrapped():
    f = T.reducer("wkf_kernel_op0", FLOAT32, "max")
    src = T.kernel_source(["x: wp.array(dtype=wp.float32)", "y: wp.array(dtype=wp.float32)"],
                          ["t = wp.tile_load(x, shape=64)",
                           "wp.tile_store(y, wp.tile_reduce(wkf_kernel_op0, (wp.tile_map(wp.sin, (t)))), "
                           "offset=(0 * 64 + 0 * 64 + 0 * 64 + 0 * 64))"], [f], tid=None)
    assert "wp.tid()" not in src and "(t)" not in src
    assert max(len(line) for line in src.splitlines()) <= printer.WIDTH
    assert "        offset=" in src                          # keyword arguments wrap one per line
    compile(src, "<tiles>", "exec")


def test_warp_tile_map_and_reduce_agree_with_the_interpreter(tmp_path):
    import warp as wp

    from harness.build import configure_warp

    configure_warp()
    rng = np.random.default_rng(11)
    f = T.elem_func(rng, "wkf_kernel_f0", FLOAT32, [Interval(-2.0, 2.0), Interval(0.5, 2.0)], limit=100.0)
    g = T.reducer("wkf_kernel_op1", FLOAT32, "sumc", 0.25)
    src = T.kernel_source(["x: wp.array(dtype=wp.float32)", "z: wp.array(dtype=wp.float32)",
                           "y: wp.array(dtype=wp.float32)", "s: wp.array(dtype=wp.float32)"],
                          ["t = wp.tile_load(x, shape=32, offset=i * 32)",
                           "u = wp.tile_load(z, shape=32, offset=i * 32)",
                           "m = wp.tile_map(wkf_kernel_f0, t, u)", "wp.tile_store(y, m, offset=i * 32)",
                           "wp.tile_store(s, wp.tile_reduce(wkf_kernel_op1, t), offset=i)"], [f.func, g])
    src = src.replace("@wp.kernel", "@wp.kernel(module='wkf_test_ir_tiles')")
    fname = str(tmp_path / "ir_tiles_kernel.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    ns: dict = {}
    exec(compile(src, fname, "exec"), ns)
    x = rng.uniform(-2, 2, 64).astype(np.float32)
    z = rng.uniform(0.5, 2, 64).astype(np.float32)
    y, s = wp.zeros(64, dtype=float, device="cpu"), wp.zeros(2, dtype=float, device="cpu")
    wp.launch_tiled(ns["wkf_kernel"], dim=(2,), inputs=[wp.array(x, device="cpu"), wp.array(z, device="cpu"), y, s],
                    block_dim=32, device="cpu")
    assert np.allclose(y.numpy(), T.call(f.func, x, z), rtol=1e-4, atol=1e-5)
    assert np.allclose(s.numpy(), T.fold_func(g, x.reshape(2, 32)), rtol=1e-4, atol=1e-4)
