"""sparse: sparse index volumes (wp.volume_lookup_index) and block-cooperative BVH and mesh queries (tile queries).

Two kinds of program, both whole IR programs (``kernels/ir``: printed by the printer, the interpreter is the
reference, post-processing drawn by the expression builder):

- ``index``: an index grid built with ``wp.Volume.allocate_by_voxels`` from a set of active voxels (an aux input
  sampled per input set, as finite-element code builds its cell grids), one thread per query cell (``wp.vec3i``),
  given or found from a world point (``wp.volume_world_to_index`` then ``int(wp.floor(...))``, on a grid with a
  voxel size and translation; the sampler keeps points 0.1 voxel inside their cell). The thread looks up its
  cell and 0-3 neighbour cells with ``wp.volume_lookup_index`` (-1 where no voxel is active), gathers per-voxel
  data through the indices it found (``if idx >= 0``), optionally scatters into per-voxel arrays with atomics
  (visit counts, sums), and writes drawn expressions of what it gathered, the index itself or lookup flags.
  Index order is NanoVDB's (see :class:`kernels.ir.volume.IndexVolume`).
- ``tile``: a ``wp.Bvh`` of random boxes (``wp.tile_bvh_query_aabb`` or ``wp.tile_bvh_query_ray``) or a
  ``wp.Mesh`` (``wp.tile_mesh_query_aabb``), one query per block of a ``wp.launch_tiled`` launch: the loop
  ``while wp.tile_query_valid(query)`` hands each thread one result per step through
  ``wp.untile(wp.tile_bvh_query_next(query))`` and the body accumulates per query and per item with atomics
  (counts, sums of drawn expressions of the item's value, its distance to the query, the query's weight, index
  maxima, minima from sampled starting values, touched flags). The interpreter runs the body over every
  (query, item) pair the query reports (:mod:`kernels.ir.queries`); the sampler keeps every pair at least
  :data:`BAND` away from the overlap/slab decision, so float32 rounding cannot flip a membership.

Float sums run in Warp's traversal order, the reference sums in float64: float32 tolerance rtol 1e-4, atol 1e-5
(integer outputs exact).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

import warp as wp
from harness.family import Arg, Family, KernelSpec, Program
from harness.verify import default_inputs
from kernels._common import pick
from kernels.ir import analysis, interp
from kernels.ir import nodes as n
from kernels.ir import queries as QRY
from kernels.ir import volume as VOL
from kernels.ir.family import IRMeta, features, healthy, program, tolerance
from kernels.ir.gen import ExprBuilder, Vocabulary
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, INT32, UINT64, Array, Vector
from kernels.spatial import mesh_shape, sample_mesh

Q = 64                      # query cells (index kind)
BLOCKS = 12                 # queries, one per block (tile kind)
BLOCK_DIMS = (8, 16, 32)
L = 4.0                     # world box of the tile kind's geometry: [0, L]^3
BAND = 2e-3                 # smallest distance of a (query, item) pair from its membership decision
VEC3, IVEC3 = Vector(FLOAT32, 3), Vector(INT32, 3)
VOCAB = Vocabulary({"add": 3, "sub": 2, "mul": 3, "div": 0.7, "min": 1, "max": 1, "abs": 0.4, "sqrt": 0.3,
                    "sin": 0.3, "cos": 0.3, "tanh": 0.4, "exp": 0.2, "where": 0.5},
                   types=(FLOAT32,), ranges={FLOAT32: Interval(-2.0, 2.0)}, limit=1e4, p_leaf=0.35, p_const=0.15)
#: neighbour offsets of a lookup
OFFSETS = tuple((a - 1, b - 1, c - 1) for a, b, c in np.ndindex(3, 3, 3) if (a, b, c) != (1, 1, 1))


@dataclass(frozen=True, slots=True)
class SparseMeta(IRMeta):
    """The IR kernel and launch shape; the structure parameter ``prepare`` builds, from aux inputs ``geometry``
    (index: the active voxels; tile: lowers/uppers or points/indices); ``block_dim`` of a tiled launch."""

    kind: str = "index"
    structure: str = "grid"
    geometry: tuple[str, ...] = ()
    query: str = ""                  # tile: aabb, ray, mesh_aabb
    region: int = 8                  # index: active voxels lie in [0, region)^3
    active: int = 0                  # index: how many
    items: int = 0                   # tile: boxes or triangles
    mesh: tuple = ()                 # tile mesh_aabb: (mesh type, size)
    constructor: str = "sah"
    world: str = ""                  # index: cells from world points: "nearest" (floor(u + 0.5)), "cell" (floor(u))
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)   # index: the grid's translation and voxel size
    voxel: float = 1.0


def _sensible(gen: ExprBuilder, depths=(1, 3), max_ops=6) -> n.Expr:
    return gen.sized(FLOAT32, depths, max_ops)[0]


# --------------------------------------------------------------------------------------------------------
# index: volume_lookup_index on an index grid

def _component_plus(c: n.Expr, k: int, d: int) -> n.Expr:
    comp = n.Component(c, k)
    return comp if d == 0 else n.call("add" if d > 0 else "sub", comp, n.Const(abs(d), INT32))


def draw_index(rng) -> tuple[n.Kernel, dict, SparseMeta, dict]:
    region = int(rng.integers(4, 13))
    active = int(round(region ** 3 * rng.uniform(0.25, 0.6)))
    grid = pick(rng, ("grid", "cell_grid", "vol", "index_grid", "cells_id"))
    cells = pick(rng, ("cells", "ijk", "coords", "cell_ijk", "queries"))
    data = pick(rng, ("data", "values", "cell_values", "field", "phi"))
    params = [n.Param(grid, UINT64), n.Param(cells, Array(IVEC3)), n.Param(data, Array(FLOAT32))]
    ranges = {grid: Interval(0.0, 0.0), cells: Interval(-1.0, float(region)), data: Interval(-2.0, 2.0)}
    shapes = {data: (active,)}
    i = n.Var("i", INT32)
    g = n.Var(grid, UINT64)
    c = n.Var("c", IVEC3)
    body: list[n.Stmt] = [n.Let("c", n.Load(cells, Array(IVEC3), (i,)))]
    world, origin, voxel = "", (0.0, 0.0, 0.0), 1.0
    if rng.random() < 0.35:                   # cells of world points, as finite-element code finds them
        world = pick(rng, ("nearest", "cell"))
        origin = tuple(float(np.float32(round(float(x), 2))) for x in rng.uniform(-2.0, 2.0, 3))
        voxel = float(pick(rng, VOL.VOXELS[1:4]))
        cells = pick(rng, ("pts", "points", "positions", "xs"))
        params[1] = n.Param(cells, Array(VEC3))
        ranges[cells] = Interval(-8.0, 8.0 + region * voxel)
        uvw = n.Var("uvw", VEC3)
        half = (lambda e: n.call("add", e, n.Const(0.5, FLOAT32))) if world == "nearest" else (lambda e: e)
        ijk = (n.Cast(n.call("floor", half(n.Component(uvw, k))), INT32, python=True) for k in range(3))
        body = [n.Let("uvw", n.call("volume_world_to_index", g, n.Load(cells, Array(VEC3), (i,)))),
                n.Let("c", n.call("ivec3", *ijk))]
    leaves: list = []
    if rng.random() < 0.4:
        scale = pick(rng, ("w", "scale", "weight", "gain"))
        params.append(n.Param(scale, Array(FLOAT32)))
        ranges[scale] = Interval(0.5, 2.0)
        body.append(n.Let("s", n.Load(scale, Array(FLOAT32), (i,))))
        leaves.append((n.Var("s", FLOAT32), Interval(0.5, 2.0)))
    lookups = [("idx", (0, 0, 0))]
    for k in range(int(rng.choice([0, 1, 2, 3], p=[0.2, 0.35, 0.3, 0.15]))):
        lookups.append((f"nb{k}", pick(rng, [o for o in OFFSETS if o not in [x[1] for x in lookups]])))
    for name, off in lookups:
        body.append(n.Let(name, n.call("volume_lookup_index", g, *(_component_plus(c, k, off[k]) for k in range(3)))))
    acc = pick(rng, ("acc", "total", "sum_v", "gathered"))
    body.append(n.Let(acc, n.Const(0.0, FLOAT32)))
    count = rng.random() < 0.5
    if count:
        body.append(n.Let("found", n.Const(0, INT32)))
    scatter: list[tuple[str, str]] = []            # (array, "count" | "sum")
    for kind in ("count", "sum"):
        if rng.random() < 0.3:
            name = pick(rng, {"count": ("visits", "hits", "touched"), "sum": ("splat", "deposit", "cell_acc")}[kind])
            scatter.append((name, kind))
            params.append(n.Param(name, Array(INT32 if kind == "count" else FLOAT32)))
            shapes[name] = (active,)
    bound = 0.0
    for k, (name, _) in enumerate(lookups):
        idx = n.Var(name, INT32)
        v = f"v{k}"
        then: list[n.Stmt] = [n.Let(v, n.Load(data, Array(FLOAT32), (idx,)))]
        gen = ExprBuilder(rng, VOCAB, [(n.Var(v, FLOAT32), Interval(-2.0, 2.0)), *leaves])
        term, iv = n.Var(v, FLOAT32), Interval(-2.0, 2.0)
        if rng.random() < 0.6:                    # a drawn term of the gathered value (the plain value otherwise)
            for _ in range(6):
                drawn = gen.sized(FLOAT32, (1, 2), 4)
                if v in analysis.uses(drawn[0]):
                    term, iv = drawn
                    break
        bound += iv.mag
        then.append(n.Assign(acc, n.call("add", n.Var(acc, FLOAT32), term)))
        if count:
            then.append(n.Assign("found", n.call("add", n.Var("found", INT32), n.Const(1, INT32))))
        if k == 0:
            for arr, kind in scatter:
                value = n.Const(1, INT32) if kind == "count" else _sensible(gen, (1, 2), 4)
                then.append(n.Atomic("add", arr, Array(INT32 if kind == "count" else FLOAT32), (idx,), value))
        cmp = pick(rng, (("ge", 0), ("ne", -1), ("gt", -1)))
        cond = n.call(cmp[0], idx, n.Const(cmp[1], INT32))
        orelse: tuple = ()
        if k == 0 and rng.random() < 0.35:
            orelse = (n.Assign(acc, n.call("sub", n.Var(acc, FLOAT32), n.Const(round(float(rng.uniform(0.5, 2)), 2),
                                                                                FLOAT32))),)
            bound += 2.0
        body.append(n.If(cond, tuple(then), orelse))
    post = [(n.Var(acc, FLOAT32), Interval(-bound, bound)), *leaves]
    if count:
        post.append((n.Cast(n.Var("found", INT32), FLOAT32), Interval(0.0, float(len(lookups)))))
    gen = ExprBuilder(rng, VOCAB, post)
    outs = list(pick(rng, (("out",), ("ids", "out"), ("flags", "out"), ("result",), ("mask", "res"))))
    for oname in outs:                            # the float output last: fold_unused adds what is unread to it
        if oname in ("ids",):
            params.append(n.Param(oname, Array(INT32)))
            body.append(n.Store(oname, Array(INT32), (i,), n.Var("idx", INT32)))
        elif oname in ("flags", "mask"):
            params.append(n.Param(oname, Array(INT32)))
            bits = [n.call("where", n.call("ge", n.Var(nm, INT32), n.Const(0, INT32)), n.Const(1 << k, INT32),
                           n.Const(0, INT32)) for k, (nm, _) in enumerate(lookups)]
            value = bits[0]
            for b in bits[1:]:
                value = n.call("add", value, b)
            body.append(n.Store(oname, Array(INT32), (i,), value))
        else:
            params.append(n.Param(oname, Array(FLOAT32)))
            value = post[0][0] if rng.random() < 0.2 else _sensible(gen, (1, 3), 7)
            body.append(n.Store(oname, Array(FLOAT32), (i,), value))
    kernel = _pruned(analysis.fold_unused(n.Kernel("wkf_kernel", tuple(params), tuple(body))))
    voxels = pick(rng, ("active", "voxels", "cell_coords", "active_ijk"))
    meta = SparseMeta(kernel, (Q,), "index", grid, (voxels,), region=region, active=active, world=world,
                      origin=origin, voxel=voxel)
    feats = {"lookups": len(lookups), "scatter": sorted(k for _, k in scatter), "outputs": outs,
             "world_points": bool(world)}
    return kernel, ranges, meta, {"shapes": shapes, "features": feats}


def _index_args(meta: SparseMeta) -> tuple[Arg, ...]:
    return (Arg(meta.geometry[0], "int32", "aux", (meta.active, 3), 0.0, float(meta.region)),)


def sample_index(spec: KernelSpec, rng) -> dict:
    meta: SparseMeta = spec.meta
    out = default_inputs(spec, rng)
    R = meta.region
    flat = rng.choice(R ** 3, meta.active, replace=False)
    vox = np.stack(np.unravel_index(flat, (R, R, R)), axis=-1).astype(np.int32)
    out[meta.geometry[0]] = vox
    near = vox[rng.integers(0, len(vox), Q)] + rng.integers(-1, 2, (Q, 3)) * (rng.random((Q, 1)) < 0.3)
    far = rng.integers(-1, R + 1, (Q, 3))
    cells = np.where(rng.random((Q, 1)) < 0.6, near, far)
    if not meta.world:
        out[meta.kernel.params[1].name] = cells.astype(np.int32)
        return out
    # world points whose index coordinates lie 0.1 or more inside their cell's rounding interval
    frac = rng.uniform(-0.4, 0.4, (Q, 3)) + (0.5 if meta.world == "cell" else 0.0)
    world = (cells + frac) * meta.voxel + np.asarray(meta.origin)
    out[meta.kernel.params[1].name] = world.astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------------------
# tile: block-cooperative BVH and mesh queries

def draw_tile(rng) -> tuple[n.Kernel, dict, SparseMeta, dict]:
    query = pick(rng, ("aabb", "aabb", "ray", "mesh_aabb"))
    mesh: tuple = ()
    if query == "mesh_aabb":
        mtype = pick(rng, ("soup", "grid", "ico", "oct"))
        mesh = (mtype, int(rng.integers(8, 25)) if mtype == "soup" else int(rng.integers(2, 5)))
        items = mesh_shape(*mesh)[1]
        structure = pick(rng, ("mesh", "mesh_id", "surface"))
        geometry = (pick(rng, ("points", "verts", "vertices")), pick(rng, ("indices", "tris", "faces")))
    else:
        items = int(rng.integers(16, 49))
        structure = pick(rng, ("bvh", "bvh_id", "tree", "boxes"))
        geometry = pick(rng, (("lowers", "uppers"), ("lo", "hi"), ("bmin", "bmax"), ("box_lo", "box_hi")))
    i = n.Var("i", INT32)
    params = [n.Param(structure, UINT64)]
    ranges: dict = {structure: Interval(0.0, 0.0)}
    shapes: dict = {}
    body: list[n.Stmt] = []
    leaves: list = []
    if query == "ray":
        a_name, b_name = pick(rng, (("starts", "dirs"), ("origins", "directions"), ("ray_o", "ray_d")))
    else:
        a_name, b_name = pick(rng, (("qlo", "qhi"), ("query_lo", "query_hi"), ("lower", "upper")))
    form = "arrays" if query == "ray" or rng.random() < 0.6 else "centre"
    if form == "centre":                      # a box around a centre: c -/+ wp.vec3(h)
        cname = pick(rng, ("centres", "centers", "probes", "qs"))
        params.append(n.Param(cname, Array(VEC3)))
        ranges[cname] = Interval(0.0, L)
        half = pick(rng, ("half", "h", "extent"))
        params.append(n.Param(half, FLOAT32))
        ranges[half] = Interval(0.2, 0.8)
        body.append(n.Let("qc", n.Load(cname, Array(VEC3), (i,))))
        ext = n.call("splat3", n.Var(half, FLOAT32))
        a = n.call("sub", n.Var("qc", VEC3), ext)
        b = n.call("add", n.Var("qc", VEC3), ext)
        centre = n.Var("qc", VEC3)
    else:
        params += [n.Param(a_name, Array(VEC3)), n.Param(b_name, Array(VEC3))]
        ranges[a_name], ranges[b_name] = Interval(0.0, L), Interval(-1.0, L + 1.5)
        a, b = n.Load(a_name, Array(VEC3), (i,)), n.Load(b_name, Array(VEC3), (i,))
        centre = None
        if query != "ray" and rng.random() < 0.5:
            body.append(n.Let("qc", n.call("mul", n.call("add", a, b), n.Const(0.5, FLOAT32))))
            centre = n.Var("qc", VEC3)
        elif query == "ray":
            centre = a
    kinds = ["count", "sum", "item_count", "item_sum", "max_index", "min", "touched"]
    w = np.array([1.2, 1.6, 0.7, 0.9, 0.5, 0.8, 0.3])
    chosen = [kinds[k] for k in rng.choice(len(kinds), size=int(rng.integers(1, 4)), replace=False, p=w / w.sum())]
    floats = any(k in ("sum", "item_sum", "min") for k in chosen)
    filtered = rng.random() < (0.35 if floats else 0.85)     # integer-only bodies repeat without one
    var = pick(rng, ("f", "face", "tri", "t") if query == "mesh_aabb" else ("b", "j", "hit", "item", "k"))
    v = n.Var(var, INT32)
    inner: list[n.Stmt] = []
    if (floats or filtered) and rng.random() < 0.45:
        wname = pick(rng, ("weights", "w", "strength", "gain"))
        params.append(n.Param(wname, Array(FLOAT32)))
        ranges[wname] = Interval(0.5, 2.0)
        body.append(n.Let("wq", n.Load(wname, Array(FLOAT32), (i,))))
        leaves.append((n.Var("wq", FLOAT32), Interval(0.5, 2.0)))
    if (floats or filtered) and rng.random() < 0.6:
        vals = pick(rng, ("vals", "mass", "item_values", "score_in"))
        params.append(n.Param(vals, Array(FLOAT32)))
        ranges[vals] = Interval(-2.0, 2.0)
        shapes[vals] = (items,)
        inner.append(n.Let("vb", n.Load(vals, Array(FLOAT32), (v,))))
        leaves.append((n.Var("vb", FLOAT32), Interval(-2.0, 2.0)))
    if (floats or filtered) and query != "mesh_aabb" and centre is not None and rng.random() < 0.6:
        lo, hi = geometry
        params += [n.Param(lo, Array(VEC3)), n.Param(hi, Array(VEC3))]
        ranges[lo], ranges[hi] = Interval(0.0, L), Interval(0.0, L)
        shapes[lo] = shapes[hi] = (items,)
        mid = n.call("mul", n.call("add", n.Load(lo, Array(VEC3), (v,)), n.Load(hi, Array(VEC3), (v,))),
                     n.Const(0.5, FLOAT32))
        inner.append(n.Let("bc", mid))
        inner.append(n.Let("d", n.call("length", n.call("sub", n.Var("bc", VEC3), centre))))
        leaves.append((n.Var("d", FLOAT32), Interval(0.0, 2.0 * L)))
    leaves.append((n.Cast(v, FLOAT32), Interval(0.0, items - 1.0)))
    gen = ExprBuilder(rng, VOCAB, leaves)
    outs: list[tuple[str, str]] = []
    roles: dict = {}
    writes: list[n.Stmt] = []
    for kind in chosen:
        name = {"count": "counts", "sum": "totals", "item_count": "item_hits", "item_sum": "item_acc",
                "max_index": "last", "min": "nearest", "touched": "touched"}[kind]
        per_item = kind in ("item_count", "item_sum", "touched")
        index = (v,) if per_item else (i,)
        ty = INT32 if kind in ("count", "item_count", "max_index", "touched") else FLOAT32
        params.append(n.Param(name, Array(ty)))
        if per_item:
            shapes[name] = (items,)
        if kind in ("count", "item_count"):
            writes.append(n.Atomic("add", name, Array(INT32), index, n.Const(1, INT32)))
        elif kind == "touched":
            writes.append(n.Store(name, Array(INT32), index, n.Const(1, INT32)))
        elif kind == "max_index":
            writes.append(n.Atomic("max", name, Array(INT32), index, v))
        elif kind == "min":
            roles[name] = "inout"
            ranges[name] = Interval(-1.0, 3.0)
            writes.append(n.Atomic("min", name, Array(FLOAT32), index, _sensible(gen, (1, 3), 6)))
        else:
            writes.append(n.Atomic("add", name, Array(FLOAT32), index, _sensible(gen, (1, 3), 6)))
        outs.append((name, kind))
    if filtered:                                    # a value filter: only some of the reported items count
        inner.append(n.If(gen.condition(2)[0], tuple(writes), ()))
    else:
        inner += writes
    style = "tile" if rng.random() < 0.35 else "untile"
    tq = n.TileQuery(query, n.Var(structure, UINT64), a, b, var, geometry, tuple(inner), items, style,
                     pick(rng, ("query", "q", "tq")), pick(rng, ("hits", "batch", "result_tile")))
    body.append(tq)
    kernel = _pruned(n.Kernel("wkf_kernel", tuple(params), tuple(body), tids=("i", pick(rng, ("_j", "_lane", "_t")))))
    meta = SparseMeta(kernel, (BLOCKS,), "tile", structure, geometry, query=query, items=items, mesh=mesh,
                      constructor=pick(rng, ("sah", "median")))
    feats = {"query": query, "form": form, "style": style, "filtered": filtered,
             "accumulators": sorted(k for _, k in outs)}
    return kernel, ranges, meta, {"shapes": shapes, "roles": roles, "features": feats}


def _pruned(kernel: n.Kernel) -> n.Kernel:
    """``kernel`` without locals nobody reads and without the parameters that leaves unread (a box array the
    body no longer reads stays the structure's aux input)."""
    kernel = analysis.remove_dead(kernel)
    body = kernel.body
    read = {x.array for x in analysis.expressions(body) if isinstance(x, n.Load)}
    read |= {x.name for x in analysis.expressions(body) if isinstance(x, n.Var)}
    written = {s.array for s in analysis.statements(body) if isinstance(s, (n.Store, n.Atomic))}
    return replace(kernel, params=tuple(p for p in kernel.params if p.name in read | written))


def _tile_args(meta: SparseMeta, kernel: n.Kernel) -> tuple[Arg, ...]:
    taken = {p.name for p in kernel.params}
    if meta.query == "mesh_aabb":
        nv, nt = mesh_shape(*meta.mesh)
        return (Arg(meta.geometry[0], "vec3f", "aux", (nv,)), Arg(meta.geometry[1], "int32", "aux", (3 * nt,)))
    return tuple(Arg(g, "vec3f", "aux", (meta.items,), 0.0, L) for g in meta.geometry if g not in taken)


def _boxes(rng, m: int) -> tuple[np.ndarray, np.ndarray]:
    c = rng.uniform(0.3, L - 0.3, (m, 3))
    h = rng.uniform(0.1, 0.5, (m, 3))
    return (c - h).astype(np.float32), (c + h).astype(np.float32)


def _queries(rng, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    if query == "ray":
        d = rng.normal(size=(k, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        d = np.where(np.abs(d) < 0.2, np.copysign(0.2, d), d) * rng.uniform(0.5, 1.5, (k, 1))
        return rng.uniform(0.0, L, (k, 3)).astype(np.float32), d.astype(np.float32)
    lo = rng.uniform(-0.3, L - 0.5, (k, 3))
    return lo.astype(np.float32), (lo + rng.uniform(0.3, 1.5, (k, 3))).astype(np.float32)


def sample_tile(spec: KernelSpec, rng) -> dict:
    """Geometry and queries, every (query, item) pair at least :data:`BAND` from its membership decision (a
    query too close to some item is drawn again)."""
    meta: SparseMeta = spec.meta
    out = default_inputs(spec, rng)
    if meta.query == "mesh_aabb":
        pts, idx = sample_mesh(rng, *meta.mesh, 1.0)
        pts = (np.asarray(pts, dtype=np.float64) * (L / 2.5) + L / 2).astype(np.float32)
        first, second = pts, np.asarray(idx, dtype=np.int32)
    else:
        first, second = _boxes(rng, meta.items)
    out[meta.geometry[0]], out[meta.geometry[1]] = first, second
    box, tq = _centre_box(meta), tile_query(meta.kernel)
    if box is None:
        out[tq.a.array], out[tq.b.array] = _queries(rng, meta.query, BLOCKS)
    for _ in range(200):
        a, b = query_ends(meta, out)
        bad = np.any(np.abs(QRY.margins(meta.query, a, b, first, second)) < BAND, axis=1)
        if not bad.any():
            break
        k = int(bad.sum())
        if box is not None:
            out[box[0]][bad] = rng.uniform(0.0, L, (k, 3)).astype(np.float32)
        else:
            na, nb = _queries(rng, meta.query, k)
            out[tq.a.array][bad], out[tq.b.array][bad] = na, nb
    return out


def tile_query(kernel: n.Kernel) -> n.TileQuery:
    return next(s for s in kernel.body if isinstance(s, n.TileQuery))


def _centre_box(meta: SparseMeta) -> tuple[str, str] | None:
    """The centre array and half-extent parameter of a query box written ``c -/+ wp.vec3(half)``, else None."""
    if not isinstance(tile_query(meta.kernel).a, n.Call):
        return None
    params = meta.kernel.params
    return (next(p.name for p in params if p.type == Array(VEC3) and p.name not in meta.geometry),
            next(p.name for p in params if p.type == FLOAT32))


def query_ends(meta: SparseMeta, inputs) -> tuple[np.ndarray, np.ndarray]:
    """The two ``vec3`` arguments of each block's query (low/high corner, or start/direction), float64."""
    box = _centre_box(meta)
    if box is not None:
        c, h = inputs[box[0]].astype(np.float64), float(np.float32(inputs[box[1]]))
        return c - h, c + h
    tq = tile_query(meta.kernel)
    return inputs[tq.a.array].astype(np.float64), inputs[tq.b.array].astype(np.float64)


# --------------------------------------------------------------------------------------------------------
# Family plumbing

def draw(rng) -> Program:
    kernel, ranges, meta, info = (draw_index if rng.random() < 0.5 else draw_tile)(rng)
    prog = program(kernel, ranges, meta.dim, {**features(kernel), "kind": meta.kind, **info["features"]},
                   differentiable=False, shapes=info["shapes"], roles=info.get("roles"))
    meta = replace(meta, kernel=prog.meta.kernel)
    if meta.kind == "index":
        return replace(prog, args=prog.args + _index_args(meta), meta=meta)
    bd = pick(rng, BLOCK_DIMS)
    return replace(prog, args=prog.args + _tile_args(meta, kernel), meta=meta, tiled=True, block_dim=bd)


def _run(spec: KernelSpec, inputs, it: interp.Interpreter) -> dict[str, np.ndarray]:
    meta: SparseMeta = spec.meta
    values = dict(inputs)
    if meta.kind == "index":
        with VOL.bound(VOL.IndexVolume(np.asarray(inputs[meta.geometry[0]]), meta.origin, meta.voxel)) as key:
            values[meta.structure] = np.uint64(key)
            result = it.run(meta.dim, values)
    else:
        result = it.run(meta.dim, values)
    return {a.name: result[a.name] for a in spec.args if a.is_output}


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    return _run(spec, inputs, interp.Interpreter(spec.meta.kernel, exact=False))


def sample_inputs(spec: KernelSpec, rng) -> dict:
    return sample_index(spec, rng) if spec.meta.kind == "index" else sample_tile(spec, rng)


def prepare(spec: KernelSpec, inputs, device, namespace) -> dict:
    meta: SparseMeta = spec.meta
    if meta.kind == "index":
        vox = wp.array(np.asarray(inputs[meta.geometry[0]], dtype=np.int32), dtype=wp.vec3i, device=device)
        volume = wp.Volume.allocate_by_voxels(vox, voxel_size=meta.voxel, translation=meta.origin, device=device)
        return {meta.structure: volume.id, "_keep": (volume, vox)}
    first, second = (inputs[g] for g in meta.geometry)
    if meta.query == "mesh_aabb":
        pts = wp.array(np.asarray(first, dtype=np.float32), dtype=wp.vec3, device=device)
        idx = wp.array(np.asarray(second, dtype=np.int32), dtype=wp.int32, device=device)
        mesh = wp.Mesh(points=pts, indices=idx, bvh_constructor=meta.constructor)
        return {meta.structure: mesh.id, "_keep": (mesh, pts, idx)}
    lo = wp.array(np.asarray(first, dtype=np.float32), dtype=wp.vec3, device=device)
    hi = wp.array(np.asarray(second, dtype=np.float32), dtype=wp.vec3, device=device)
    bvh = wp.Bvh(lo, hi, constructor=meta.constructor)
    return {meta.structure: bvh.id, "_keep": (bvh, lo, hi)}


def generate(rng: np.random.Generator, seed: int, tries: int = 8) -> Program:
    """Programs drawn until one is :func:`kernels.ir.family.healthy` on this seed's inputs, with the structures
    bound as the reference binds them (the last one otherwise)."""
    for _ in range(tries):
        prog = draw(rng)
        if healthy(prog, seed, tolerance, sample_inputs, ref=reference, run=_run):
            return prog
    return prog


FAMILY = Family(name="sparse", description=__doc__.strip().splitlines()[0], generate=generate,
                reference=reference, tolerance=tolerance, sample_inputs=sample_inputs, prepare=prepare,
                version=1, seeded=True,
                covers=("wp.Volume.allocate_by_voxels", "volume_lookup_index", "index grids",
                        "wp.launch_tiled", "tile_bvh_query_aabb", "tile_bvh_query_ray", "tile_mesh_query_aabb",
                        "tile_query_valid", "tile_bvh_query_next", "tile_mesh_query_aabb_next", "wp.untile"))
