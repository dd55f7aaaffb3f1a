"""Integer vectors, generic kernels and kernel factories in the IR (the ``lattice`` family): the integer-vector
rows of the operation table, the printer's ``wp.array(dtype=Any)`` + ``wp.overload`` and closure forms, compiled
by Warp and run against the interpreter, and what the family draws."""

from __future__ import annotations

import linecache
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from harness.seeds import rng_for
from kernels.ir import analysis, interp, printer
from kernels.ir import nodes as n
from kernels.ir.ops import OPS, Ctx
from kernels.ir.types import BOOL, INT32, Array, Vector, warp_type
from kernels.lattice import FAMILY
from production.coverage import kernel_constructs

V3I = Vector(INT32, 3)
I = n.Var("i", INT32)


def _eval(op: str, *args, types):
    row = OPS[op]
    return row.eval(Ctx(tuple(types), row.result(tuple(types)), exact=False), *args)


def test_integer_vector_rows_follow_warp():
    rng = np.random.default_rng(0)
    a = rng.integers(-9, 10, size=(40, 3)).astype(np.int32)
    b = rng.integers(-9, 10, size=(40, 3)).astype(np.int32)
    s = rng.integers(-5, 6, size=40).astype(np.int32)
    np.testing.assert_array_equal(_eval("ivmul", a, s, types=(V3I, INT32)), a * s[:, None])
    np.testing.assert_array_equal(_eval("ivmul", s, a, types=(INT32, V3I)), a * s[:, None])
    np.testing.assert_array_equal(_eval("ivmin", a, b, types=(V3I, V3I)), np.minimum(a, b))
    np.testing.assert_array_equal(_eval("ivdot", a, b, types=(V3I, V3I)), (a * b).sum(axis=1))
    np.testing.assert_array_equal(_eval("ivreduce_max", a, types=(V3I,)), a.max(axis=1))
    k = s > 0
    np.testing.assert_array_equal(_eval("ivwhere", k, a, b, types=(BOOL, V3I, V3I)), np.where(k[:, None], a, b))
    assert _eval("ivdot", a, b, types=(V3I, V3I)).dtype == np.int32        # an int32 result, wrapping as C's
    assert OPS["ivmul"].result((V3I, INT32)) == V3I and OPS["ivdot"].result((V3I, V3I)) == INT32


def _kernel() -> n.Kernel:
    """``out[i] = wp.min(a[i] * 3, wp.vec3i(i, 2, 5)) + b[i]``, ``ids[i] = wp.dot(a[i], b[i]) % 7``."""
    a, b = (n.Load(x, Array(V3I), (I,)) for x in ("a", "b"))
    made = n.Call("ivec3", (I, n.Const(2, INT32), n.Const(5, INT32)))
    out = n.Call("add", (n.Call("ivmin", (n.Call("ivmul", (a, n.Const(3, INT32))), made)), b))
    ids = n.Call("mod", (n.Call("ivdot", (a, b)), n.Const(7, INT32)))
    params = (n.Param("a", Array(V3I)), n.Param("b", Array(V3I)), n.Param("out", Array(V3I)),
              n.Param("ids", Array(INT32)))
    return n.Kernel("lattice_probe", params, (n.Store("out", Array(V3I), (I,), out),
                                              n.Store("ids", Array(INT32), (I,), ids)))


def test_capture_makes_literals_factory_parameters_and_avoids_names_in_use():
    k = _kernel()
    made = analysis.capture(k, ("a", "k", "m", "w"), "lattice_probe_make", limit=2)
    assert made.factory is not None
    assert [name for name, _ in made.factory.captures] == ["k", "m"]       # "a" is a parameter already
    assert [c.value for _, c in made.factory.captures] == [3, 2]           # the first literals, in order
    source = printer.kernel_source(made)
    assert "def lattice_probe_make(k: wp.int32, m: wp.int32):" in source
    assert "wp.static(k)" in source and "lattice_probe = lattice_probe_make(3, 2)" in source
    bare = analysis.capture(k, ("k",), "lattice_probe_make", bare=True)
    assert "wp.min(a[i] * k," in printer.kernel_source(bare)
    assert analysis.capture(k, ("a", "b", "i"), "f") == k                 # no free name: unchanged
    # a closure computes what the literal did
    rng = np.random.default_rng(1)
    inputs = {x: rng.integers(-5, 6, size=(16, 3)).astype(np.int32) for x in ("a", "b")}
    inputs.update(out=np.zeros((16, 3), np.int32), ids=np.zeros(16, np.int32))
    want, got = interp.run(k, (16,), inputs), interp.run(made, (16,), inputs)
    for x in ("out", "ids"):
        np.testing.assert_array_equal(got[x], want[x])


def test_generic_closure_kernel_prints_compiles_and_agrees_with_the_interpreter(tmp_path):
    wp = pytest.importorskip("warp")
    wp.init()
    k = _kernel()
    k = analysis.capture(replace(k, generic=("a", "b", "out")), ("k", "m"), "lattice_probe_make")
    src = printer.kernel_source(k)
    assert src.startswith("from typing import Any\n")
    assert "a: wp.array(dtype=Any)" in src and "ids: wp.array(dtype=wp.int32)" in src
    assert "wp.overload(\n    lattice_probe,\n    {'a': wp.array(dtype=wp.vec3i), 'b': wp.array(dtype=wp.vec3i)," in src
    keys = kernel_constructs(src)["lattice_probe"]
    assert {"kernel:generic", "kernel:closure", "builtin:static"} <= keys
    fname = str(tmp_path / "lattice_probe_module.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    namespace: dict = {"__name__": "lattice_probe_module"}
    exec(compile(src, fname, "exec"), namespace)
    rng = np.random.default_rng(2)
    inputs = {x: rng.integers(-6, 7, size=(32, 3)).astype(np.int32) for x in ("a", "b")}
    inputs.update(out=np.zeros((32, 3), np.int32), ids=np.zeros(32, np.int32))
    launch = [wp.array(inputs[p.name], dtype=warp_type(p.type.dtype), device="cpu") for p in k.params]
    wp.launch(namespace["lattice_probe"], dim=32, inputs=launch, device="cpu")
    want = interp.run(k, (32,), inputs)
    np.testing.assert_array_equal(launch[2].numpy(), want["out"])
    np.testing.assert_array_equal(launch[3].numpy(), want["ids"])


def test_lattice_draws_every_integer_vector_generic_kernels_and_closures():
    seen: Counter = Counter()
    for seed in range(60):
        spec = FAMILY.spec(seed, rng_for(seed))
        kernel: n.Kernel = spec.meta.kernel
        assert not any(analysis.hygiene(kernel).values()), spec.source
        keys = set().union(*kernel_constructs(spec.source).values())
        seen.update(k for k in keys if k in ("kernel:generic", "kernel:closure"))
        seen.update({t.name for p in kernel.params if isinstance(p.type, Array)
                     for t in [p.type.dtype] if isinstance(t, Vector)})
        assert spec.program.features["generic"] == ("kernel:generic" in keys)
        assert spec.program.features["closure"] == ("kernel:closure" in keys)
    assert {"kernel:generic", "kernel:closure", "vec2i", "vec3i", "vec4i"} <= set(seen), seen
