"""IR additions for the nested_loops and combined families: ``wp.length_sq`` against Warp, and the shapes the two
families promise (nest depth, bounded unrolling, vectors and helpers)."""

from __future__ import annotations

import hashlib

import numpy as np

from kernels.ir import analysis, interp
from kernels.ir import nodes as n
from kernels.ir.types import FLOAT32, INT32, Array, Vector

V3 = Vector(FLOAT32, 3)
I = n.Var("i", INT32)


def _rng(tag: str, k: int) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{tag}/{k}".encode()).digest()[:8], "little"))


def test_length_sq_is_the_rounded_dot_of_a_vector_with_itself(tmp_path):
    import linecache

    import pytest

    from kernels.ir import printer
    wp = pytest.importorskip("warp")

    v = n.Load("a", Array(V3), (I,))
    w = n.Load("b", Array(V3), (I,))
    body = (n.Store("out", Array(FLOAT32), (I,), n.call("add", n.call("length_sq", v),
                                                         n.call("length_sq", n.call("cross", v, w)))),)
    kernel = n.Kernel("ir_length_sq", (n.Param("a", Array(V3)), n.Param("b", Array(V3)),
                                       n.Param("out", Array(FLOAT32))), body)
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    got = interp.run(kernel, (1,), {"a": x, "b": x, "out": np.zeros(1, np.float32)})
    assert got["out"][0] == 14.0
    rng = np.random.default_rng(7)
    inputs = {"a": rng.uniform(-3, 3, (32, 3)).astype(np.float32), "b": rng.uniform(-1, 2, (32, 3)).astype(np.float32),
              "out": np.zeros(32, np.float32)}
    src = printer.module([kernel], module_name="ir_length_sq")
    fname = str(tmp_path / "ir_length_sq_module.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    namespace: dict = {}
    exec(compile(src, fname, "exec"), namespace)     # noqa: S102 - a printed test kernel
    device = wp.get_device("cpu")
    arrays = {"a": wp.array(inputs["a"], dtype=wp.vec3, device=device),
              "b": wp.array(inputs["b"], dtype=wp.vec3, device=device),
              "out": wp.zeros(32, dtype=wp.float32, device=device)}
    wp.launch(namespace["ir_length_sq"], dim=32, inputs=[arrays["a"], arrays["b"], arrays["out"]], device=device,
              block_dim=1)
    want = interp.run(kernel, (32,), inputs)["out"]
    np.testing.assert_allclose(arrays["out"].numpy(), want, rtol=1e-6)


def _nest_depth(body) -> int:
    return max((1 + _nest_depth(s.body) if isinstance(s, n.For) else
                max(_nest_depth(s.then), _nest_depth(s.orelse)) if isinstance(s, n.If) else 0 for s in body),
               default=0)


def _copies(body, outer: int = 1) -> int:
    """The most body copies Warp's unrolling of constant-bound loops makes of any statement."""
    worst = outer
    for s in body:
        if isinstance(s, n.For):
            const = isinstance(s.start, n.Const) and isinstance(s.stop, n.Const)
            trips = len(range(s.start.value, s.stop.value, s.step)) if const else 1
            worst = max(worst, _copies(s.body, outer * trips))
        elif isinstance(s, n.If):
            worst = max(worst, _copies(s.then, outer), _copies(s.orelse, outer))
    return worst


def test_nested_loops_nest_two_or_three_deep_with_few_unrolled_copies():
    from kernels import nested_loops as NL

    depths = set()
    for k in range(12):
        kernel = NL.draw(_rng("nested", k)).meta.kernel
        depth = _nest_depth(kernel.body)
        depths.add(depth)
        assert 2 <= depth <= 3, f"nest depth {depth}"
        assert _copies(kernel.body) <= NL.UNROLL_COPIES
        assert not any(analysis.hygiene(kernel).values())
    assert depths == {2, 3}


def test_combined_programs_mix_vectors_loops_and_helpers():
    from kernels import combined as C

    loops = 0
    for k in range(10):
        prog = C.draw(_rng("combined", k))
        kernel = prog.meta.kernel
        assert kernel.funcs, "every program calls a helper"
        assert any(isinstance(p.type, Array) and p.type.dtype == V3 for p in kernel.params) or \
            "wp.vec3(" in prog.source
        loops += any(isinstance(s, n.For) for s in kernel.body)
        assert not any(analysis.hygiene(kernel).values())
    assert loops >= 5
