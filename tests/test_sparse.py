"""The ``sparse`` family: its NumPy semantics of index volumes and of block-cooperative queries agree with Warp's
CPU build, the IR's :class:`kernels.ir.nodes.TileQuery` prints, bounds and keeps what its body reads, the sampler
keeps every (query, item) pair off its membership decision. (The family's programs are verified on both backends
by its quick subset, ``kernels/sparse.py``, like every family's.)"""

from __future__ import annotations

import ast
import linecache

import numpy as np
import pytest

import warp as wp
from harness.build import configure_warp
from harness.family import KernelSpec
from harness.seeds import rng_for
from kernels.ir import analysis, interp, intervals, printer
from kernels.ir import nodes as n
from kernels.ir import queries as QRY
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, INT32, UINT64, Array, Vector
from kernels.ir.volume import SPAN, IndexVolume
from kernels.sparse import BAND, FAMILY, query_ends, sample_tile

V3 = Vector(FLOAT32, 3)
I = n.Var("i", INT32)


@wp.kernel
def _lookup(grid: wp.uint64, q: wp.array(dtype=wp.vec3i), x: wp.array(dtype=wp.vec3), out: wp.array(dtype=int),
            uvw: wp.array(dtype=wp.vec3)):
    i = wp.tid()
    c = q[i]
    out[i] = wp.volume_lookup_index(grid, c[0], c[1], c[2])
    uvw[i] = wp.volume_world_to_index(grid, x[i])


@pytest.fixture(scope="module")
def warp_cpu(tmp_path_factory):
    configure_warp(tmp_path_factory.mktemp("warp-cache"))
    wp.config.enable_cpu_blocks = True
    return "cpu"


@pytest.mark.parametrize("seed", range(3))
def test_index_lookup_is_warps(warp_cpu, seed):
    """``IndexVolume.lookup`` is ``wp.volume_lookup_index`` on the grid ``allocate_by_voxels`` builds: indices of
    active voxels in NanoVDB order, -1 for inactive voxels, negative coordinates and coordinates past the span;
    its world map is ``wp.volume_world_to_index``'s for the voxel size and translation."""
    rng = np.random.default_rng(seed)
    region = (6, 40, SPAN)[seed]
    vox = np.unique(rng.integers(0, region, (300, 3)), axis=0).astype(np.int32)
    q = np.concatenate([vox, rng.integers(-3, region + 3, (400, 3)), [[-1, 0, 0], [SPAN, 0, 0], [0, 0, 5000]]])
    q = q.astype(np.int32)
    origin, voxel = ((0.0, 0.0, 0.0), (0.25, -1.5, 0.73), (-2.0, 1.0, 0.5))[seed], (1.0, 0.5, 2.0)[seed]
    x = rng.uniform(-4.0, 4.0, (len(q), 3)).astype(np.float32)
    volume = wp.Volume.allocate_by_voxels(wp.array(vox, dtype=wp.vec3i, device=warp_cpu), voxel_size=voxel,
                                          translation=origin, device=warp_cpu)
    out = wp.zeros(len(q), dtype=int, device=warp_cpu)
    uvw = wp.zeros(len(q), dtype=wp.vec3, device=warp_cpu)
    wp.launch(_lookup, dim=len(q), inputs=[volume.id, wp.array(q, dtype=wp.vec3i, device=warp_cpu),
                                           wp.array(x, dtype=wp.vec3, device=warp_cpu), out, uvw], device=warp_cpu)
    model = IndexVolume(vox, origin, voxel)
    want = model.lookup(q[:, 0], q[:, 1], q[:, 2])
    np.testing.assert_array_equal(out.numpy(), want)
    np.testing.assert_allclose(uvw.numpy(), model.world_to_index(x.astype(np.float64)), rtol=1e-6, atol=1e-6)
    assert sorted(want[:len(vox)]) == list(range(len(vox)))
    np.testing.assert_array_equal(volume.get_voxels().numpy(), vox[np.argsort(want[:len(vox)])])


def _tile_spec(query: str) -> KernelSpec:
    """The first of the family's programs that is a tile query of ``query`` kind."""
    for seed in range(200):
        spec = FAMILY.spec(seed, rng_for(seed))
        if spec.meta.kind == "tile" and spec.meta.query == query:
            return spec
    raise AssertionError(f"no {query} program in 200 seeds")


def _hits_kernel(query: str, style: str) -> n.Kernel:
    """``seen[i, item] += 1`` for every item the query of block ``i`` reports."""
    a2 = Array(INT32, 2)
    body = (n.Atomic("add", "seen", a2, (I, n.Var("k", INT32)), n.Const(1, INT32)),)
    tq = n.TileQuery(query, n.Var("structure", UINT64), n.Load("a", Array(V3), (I,)), n.Load("b", Array(V3), (I,)),
                     "k", ("first", "second"), body, max_hits=64, style=style)
    params = (n.Param("structure", UINT64), n.Param("a", Array(V3)), n.Param("b", Array(V3)), n.Param("seen", a2))
    return n.Kernel(f"hits_{query}_{style}", params, (tq,), tids=("i", "_j"))


@pytest.mark.parametrize("query,style", [("aabb", "untile"), ("ray", "tile"), ("mesh_aabb", "untile")])
def test_printed_tile_queries_report_what_the_interpreter_says(warp_cpu, tmp_path, query, style):
    """The printer's tile query compiled by Warp reports to its block exactly the items the interpreter
    (:func:`kernels.ir.queries.members`) says, each once, on the geometry the family's sampler draws (every pair
    at least BAND away from its decision: checked too)."""
    k = _hits_kernel(query, style)
    src = printer.module([k], module_name=f"sparse_{query}_{style}")
    fname = str(tmp_path / f"{k.name}.py")
    linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
    namespace: dict = {}
    exec(compile(src, fname, "exec"), namespace)
    spec = _tile_spec(query)
    meta = spec.meta
    for set_index in range(2):
        inputs = sample_tile(spec, np.random.default_rng(set_index))
        first, second = (inputs[g] for g in meta.geometry)
        a, b = (x.astype(np.float32) for x in query_ends(meta, inputs))
        assert np.all(np.abs(QRY.margins(query, a, b, first, second)) >= BAND)
        values = {"structure": np.uint64(0), "a": a, "b": b, "first": first, "second": second,
                  "seen": np.zeros((len(a), len(QRY.boxes(query, first, second)[0])), np.int32)}
        want = interp.run(k, (len(a),), values)["seen"]
        assert 0 < want.sum() < want.size and want.max() == 1
        if query == "mesh_aabb":
            structure = wp.Mesh(points=wp.array(first, dtype=wp.vec3, device=warp_cpu),
                                indices=wp.array(second, dtype=wp.int32, device=warp_cpu))
        else:
            structure = wp.Bvh(*(wp.array(x, dtype=wp.vec3, device=warp_cpu) for x in (first, second)))
        seen = wp.zeros(want.shape, dtype=int, device=warp_cpu)
        ends = [wp.array(x, dtype=wp.vec3, device=warp_cpu) for x in (a, b)]
        wp.launch_tiled(namespace[k.name], dim=[len(a)], inputs=[structure.id, *ends, seen], device=warp_cpu,
                        block_dim=16)
        np.testing.assert_array_equal(seen.numpy(), want)


def _counting_kernel(style: str) -> n.Kernel:
    b = n.Var("b", INT32)
    body = (n.Let("vb", n.Load("vals", Array(FLOAT32), (b,))),
            n.Atomic("add", "total", Array(FLOAT32), (I,), n.call("mul", n.Var("vb", FLOAT32), n.Var("wq", FLOAT32))),
            n.Atomic("add", "hits", Array(INT32), (b,), n.Const(1, INT32)))
    tq = n.TileQuery("aabb", n.Var("bvh", UINT64), n.Load("lo", Array(V3), (I,)), n.Load("hi", Array(V3), (I,)),
                     "b", ("lowers", "uppers"), body, max_hits=4, style=style)
    params = (n.Param("bvh", UINT64), n.Param("lo", Array(V3)), n.Param("hi", Array(V3)),
              n.Param("w", Array(FLOAT32)), n.Param("vals", Array(FLOAT32)), n.Param("total", Array(FLOAT32)),
              n.Param("hits", Array(INT32)))
    return n.Kernel("k", params, (n.Let("wq", n.Load("w", Array(FLOAT32), (I,))), n.Let("unused", I), tq),
                    tids=("i", "_j"))


@pytest.mark.parametrize("style", ["untile", "tile"])
def test_tile_query_prints_interprets_and_bounds(style):
    k = _counting_kernel(style)
    src = printer.kernel_source(k)
    ast.parse(src)
    assert "i, _j = wp.tid()" in src and "query = wp.tile_bvh_query_aabb(bvh, lo[i], hi[i])" in src
    assert "while wp.tile_query_valid(query):" in src and "if b >= 0:" in src
    step = ("hits = wp.tile_bvh_query_next(query)\n" if style == "tile" else
            "b = wp.untile(wp.tile_bvh_query_next(query))")
    assert step in src
    # liveness: the loads the body reads stay, the unused local goes
    kept = analysis.remove_dead(k)
    assert "unused" not in printer.kernel_source(kept) and "wq = w[i]" in printer.kernel_source(kept)
    # the interpreter: query 0 overlaps boxes 0 and 1 (box 1 touches it: closed), query 1 only box 2
    lowers = np.array([[0, 0, 0], [1, 0, 0], [3, 3, 3], [9, 9, 9]], np.float32)
    inputs = {"bvh": np.uint64(0), "lo": np.array([[-1, -1, -1], [2.5, 2.5, 2.5]], np.float32),
              "hi": np.array([[1, 1, 1], [3.5, 3.5, 3.5]], np.float32), "w": np.array([2, 3], np.float32),
              "vals": np.array([1, 10, 100, 1000], np.float32), "total": np.zeros(2, np.float32),
              "hits": np.zeros(4, np.int32), "lowers": lowers, "uppers": lowers + 0.5}
    out = interp.run(k, (2,), inputs)
    assert out["total"].tolist() == [22.0, 300.0] and out["hits"].tolist() == [1, 1, 1, 0]
    ranges = {"bvh": Interval(0.0, 0.0), "w": Interval(0.5, 2.0), "vals": Interval(-1.0, 1.0)}
    facts = intervals.analyze(k, ranges, (2,),
                              {"w": (2,), "vals": (4,), "total": (2,), "hits": (4,)})
    assert facts.arrays["hits"].hi >= 1 and facts.arrays["total"].hi >= 2.0 and not facts.violations
