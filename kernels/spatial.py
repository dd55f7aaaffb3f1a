"""spatial: wp.HashGrid, wp.Bvh and wp.Mesh queries checked against brute-force NumPy references.

One thread per query point or ray. Kinds (``meta["kind"]``):

* ``grid``: neighbour loops over a float32 or float64 (``vec3d`` points) ``wp.HashGrid``
  (``for j in wp.hash_grid_query(...)`` or the ``hash_grid_query_next`` while-loop, optional
  ``hash_grid_point_id`` ordering, self exclusion), membership by ``length``/``length_sq`` against a radius
  parameter or literal; accumulates counts, sums/min/max of random
  expressions of the distance, SPH-like weights and neighbour values, vector sums, index sums.
* ``bvh``: ``bvh_query_aabb`` (query boxes from arrays or centre +- half extent), ``bvh_query_sphere`` and
  ``bvh_query_ray`` (optional ``max_dist``) over random boxes; accumulates counts, value sums, overlap volumes,
  centre distances, index maxima, with optional value filters.
* ``mesh_point``: ``mesh_query_point_no_sign`` / ``mesh_query_point`` / ``_sign_normal`` / ``_sign_winding_number``
  (closed meshes) / ``mesh_query_furthest_point_no_sign``, struct or output-argument forms; distance, closest point
  (``mesh_eval_position``), face, barycentrics, face normal, signed distance.
* ``mesh_ray``: ``mesh_query_ray`` (t, hit point, face, barycentrics, front/back from the sign, normal),
  ``mesh_query_ray_anyhit``, ``mesh_query_ray_count_intersections``.
* ``mesh_region``: ``mesh_query_sphere`` / ``mesh_query_aabb`` loops over the triangles near a point.
* ``volume``: a ``wp.Volume`` from ``wp.Volume.load_from_numpy`` (voxels sampled per input set, power-of-two
  voxel size): ``volume_world_to_index``, ``volume_sample_f`` (``LINEAR`` / ``CLOSEST``), ``volume_index_to_world``,
  ``volume_lookup_f``, then drawn post-processing. This kind is a whole IR program (``kernels.ir``): the queries
  are op rows whose NumPy semantics (Warp's exact trilinear sum) live in ``kernels.ir.volume``, the printer
  writes it and the interpreter, with the sampled voxels bound to the volume id, is its reference.

Two fifths of the ``mesh_point`` kernels query ``mesh_query_point_sign_winding_number`` on a closed mesh.

Meshes are triangle soups, height-field grids or closed star-shaped polyhedra (octahedron/icosahedron with
random radii, outward oriented) of 8-32 triangles. The geometry is sampled per input set (``sample_inputs``)
and the acceleration structure is built by ``prepare`` on the launch device. Random post-processing
expressions (``kernels._expr``) combine the accumulated quantities into the float outputs.

Brute force references in float64: all-pairs distances, AABB/sphere/slab tests, Ericson's closest point on a
triangle, Moller-Trumbore ray/triangle, solid-angle winding numbers for inside/outside. Queries whose result
could flip under float32 rounding (a pair at distance ~r, a box touching the query, a ray through a triangle
edge, two faces at nearly the same distance, a point on the surface) are masked by the reference (returned
as masked arrays); the harness masks what its own input perturbations flip.

Warp semantics copied (read in warp/native and measured on Warp 1.19): hash-grid queries return a superset of the
neighbours (all points of the cells overlapping the query box), so kernels filter by distance themselves;
``bvh_query_aabb`` overlap is closed on both sides; ``bvh_query_ray`` reports boxes with ``lmax >= 0 and
lmax >= lmin`` and ``bvh_query_next(q, j, max_dist)`` drops boxes whose entry ``lmin >= max_dist``;
``mesh_query_point*`` returns ``u``/``v`` as the weights of the face's first and second vertex;
``mesh_query_ray`` returns ``u``/``v`` weights of the first two vertices, ``t`` in units of ``|dir|``,
``normal = normalize(cross(b - a, c - a))`` and ``sign`` whose sign is ``-sign(dot(dir, normal))`` (its
magnitude is an unnormalised determinant, so kernels use only its sign); inside (sign -1) is decided by
the first hits of three axis rays on outward-oriented closed meshes; ``mesh_query_ray_count_intersections``
counts all hits with ``t >= 0``; the furthest point of a mesh is its furthest vertex; ``mesh_query_sphere``
keeps triangles whose closest point is within the radius; ``mesh_query_aabb`` keeps triangles whose bounding
box overlaps the query box. BVH iteration needs the while-loop form (``for j in wp.bvh_query_aabb`` does not
compile in 1.19); hash-grid queries support both forms.

Tolerance: float32 rtol 1e-4, atol 1e-5; float64 grids rtol 1e-9, atol 1e-10. Neighbour/BVH sums run in
traversal order (the reference sums in index order) over up to ~20 terms, a few ulps of their absolute sum;
where cancellation makes that large relative to the result, the harness's 32-ulp input perturbation moves the
reference more and masks the element. Measured on CPU over 150 kernels: the worst error is 1-2% of the
tolerance. Integer outputs (counts, faces, index sums, hit flags) are exact.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np

import warp as wp
from harness.dtypes import DTYPES
from harness.dtypes import dtype as lookup_dtype
from harness.errors import KernelRejected
from harness.family import PLACEHOLDER, Arg, Family, KernelSpec, Program, Tolerance
from harness.verify import screen
from kernels import _expr as E
from kernels._common import pick
from kernels.ir import analysis, interp, printer
from kernels.ir import nodes as n
from kernels.ir import volume as VOL
from kernels.ir.family import IRMeta
from kernels.ir.family import features as ir_features
from kernels.ir.family import program as ir_program
from kernels.ir.family import tolerance as ir_tolerance
from kernels.ir.gen import ExprBuilder, Vocabulary, first_clean
from kernels.ir.numeric import Interval as IV
from kernels.ir.types import FLOAT32, FLOAT64, INT32, UINT64, Array, Scalar, Vector

ID_DTYPE = "uint64" if "uint64" in DTYPES else "int64"   # ids are spelled wp.uint64 in the source either way
Interval = E.Interval
Q = 64                        # queries per kernel (launch dim)
BAND = 1e-4                   # relative width of the band around a decision boundary that is masked

# --------------------------------------------------------------------------------------------------------
# Small source helpers

SPELL = {"vec3f": "wp.array(dtype=wp.vec3)", "float32": "wp.array(dtype=float)", "int32": "wp.array(dtype=int)",
         "vec3d": "wp.array(dtype=wp.vec3d)", "float64": "wp.array(dtype=wp.float64)"}
SCALAR_SPELL = {"float32": "float", "float64": "wp.float64"}
TYPES = {"float32": E.FLOAT32, "float64": E.FLOAT64}


def _lit(x: float) -> str:
    text = repr(float(x))
    return f"({text})" if text.startswith("-") else text


def _short(rng, lo, hi, digits=2) -> float:
    return round(float(rng.uniform(lo, hi)), digits)


class Builder:
    """Kernel parameters (Arg + spelling), body lines with indentation, output lines."""

    def __init__(self, dim: int = Q, ty: str = "float32"):
        self.dim = dim
        self.set_type(ty)
        self.first = "i = wp.tid()"
        self.params: list[tuple[Arg, str]] = []
        self.aux: list[Arg] = []
        self.body: list[str] = []
        self.depth = 1

    def set_type(self, ty: str) -> None:
        """The float type of the kernel's arithmetic: float32, or float64 (hash grids of vec3d points)."""
        self.ty = ty
        self.T = TYPES[ty]
        self.vdt = "vec3f" if ty == "float32" else "vec3d"

    def zero(self) -> str:
        return "float(0.0)" if self.ty == "float32" else "wp.float64(0.0)"

    def init(self, value: float) -> str:
        return f"float({float(value)})" if self.ty == "float32" else f"wp.float64({float(value)})"

    def conv(self) -> str:
        """How an int becomes a float of the kernel's type."""
        return "float" if self.ty == "float32" else "wp.float64"

    def lit(self, value: float) -> str:
        text = self.T.literal(value)
        return f"({text})" if text.startswith("-") else text

    def param(self, arg: Arg, spelling: str | None = None) -> str:
        if spelling is None:
            spelling = SCALAR_SPELL[arg.dtype] if arg.role == "scalar" else SPELL[arg.dtype]
        self.params.append((arg, spelling))
        return arg.name

    def id_param(self, name: str) -> str:
        """The ``wp.uint64`` id of a hash grid, BVH or mesh."""
        return self.param(Arg(name, ID_DTYPE, "scalar", (), 0, 0), "wp.uint64")

    def line(self, text: str) -> None:
        self.body.append("    " * self.depth + text)

    def source(self) -> str:
        sig = ", ".join(f"{a.name}: {s}" for a, s in self.params)
        lines = ["import warp as wp", "", "", "@wp.kernel", f"def wkf_kernel({sig}):", f"    {self.first}"]
        return printer.reformat("\n".join(lines + self.body) + "\n")     # long lines wrapped as elsewhere

    def args(self) -> tuple[Arg, ...]:
        return tuple(a for a, _ in self.params) + tuple(self.aux)


# --------------------------------------------------------------------------------------------------------
# Accumulators over the items a query loop visits (grid / bvh / mesh_region)
#
# A pair expression is an _expr tree over "pair leaves" (source strings valid inside the loop, e.g. ``d``,
# ``vals[j]``); its NumPy value is evaluated on (Q, M) arrays. Accumulator kinds:
#   count: n += 1             sum: s += e            min/max: m = wp.min(m, e) from a sentinel
#   vsum: v += vecleaf * e    isum: k += j           imax: k = wp.max(k, j) from -1


def lively(node: E.Node, leaves: dict[str, Interval], rng, T=E.FLOAT32, typical: dict | None = None) -> bool:
    """Whether ``node`` varies when its leaves move inside their typical ranges, and depends on each of them
    (no leaf hidden behind a min/max or select that the other side always wins)."""
    typical = typical or {}
    env = {}
    for name, iv in leaves.items():
        t = typical.get(name, iv)
        env[name] = rng.uniform(t.lo, t.hi, 24)
    with np.errstate(all="ignore"):
        v = np.broadcast_to(E.evaluate(node, env, T), (24,))
        if not (bool(np.all(np.isfinite(v))) and float(np.ptp(v)) > 1e-5 * (1.0 + float(np.abs(v).max()))):
            return False
        for name in sorted(E.uses(node)):   # sorted: set order depends on PYTHONHASHSEED
            moved = dict(env)
            moved[name] = rng.permutation(env[name])
            if np.array_equal(np.broadcast_to(E.evaluate(node, moved, T), (24,)), v):
                return False
    return True


def _silly(node: E.Node) -> bool:
    """Trees a human would not write: ``x < x``, ``-(-x)``, ``min(x, x)``, selects with equal branches."""
    a = node.args
    if node.op in E.COMPARE_SYMBOL or node.op in ("min", "max", "sub", "div", "add"):
        if len(a) == 2 and E.emit(a[0], E.FLOAT32) == E.emit(a[1], E.FLOAT32):
            return True
    if node.op == "neg" and a[0].op == "neg":
        return True
    if node.op in ("add", "sub", "mul", "div") and any(x.op == "const" and x.value in (0, 0.0) for x in a):
        return True
    if node.op in ("mul", "div") and a[1].op == "const" and a[1].value in (1, 1.0, -1, -1.0):
        return True
    if node.op in ("where", "ifexp") and E.emit(a[1], E.FLOAT32) == E.emit(a[2], E.FLOAT32):
        return True
    return any(_silly(x) for x in a)


def random_expr(rng, leaves: dict[str, Interval], depth: int, selects: float = 0.3, T=E.FLOAT32,
                typical: dict | None = None) -> E.Node:
    """A lively _expr tree over ``leaves`` (a few tries; falls back to a plain leaf)."""
    for _ in range(6):
        gen = E.ExprGen(rng, T, dict(leaves), binary=("add", "sub", "mul", "div", "min", "max"),
                        selects=rng.random() < selects, p_leaf=0.35)
        node = gen.expr(depth)
        if not E.uses(node) or node.op == "const":
            node = gen.apply_binary(pick(rng, ("add", "mul", "sub")), node, gen.var_leaf())
        if lively(node, leaves, rng, T, typical) and not _silly(node):
            return node
    name = pick(rng, tuple(leaves))
    return E.var(name, leaves[name])


def _pair_expr(rng, leaves: dict[str, Interval], depth: int, T=E.FLOAT32) -> E.Node:
    return random_expr(rng, leaves, depth, T=T)


def acc_uses(accs: list[dict]) -> set[str]:
    """The pair leaves the accumulators' expressions read."""
    used: set[str] = set()
    for a in accs:
        if "expr" in a:
            used |= E.uses(a["expr"])
    return used


def acc_quantities(accs: list[dict]) -> dict:
    """The accumulators as quantities for the outputs: name -> (kind, interval, typical range)."""
    return {a["name"]: ({"count": "i", "isum": "i", "imax": "i", "vsum": "v"}.get(a["kind"], "f"), a["iv"],
                        a.get("typ", a["iv"])) for a in accs}


def ensure_used(rng, b: Builder, accs: list[dict], leaves: dict, wanted: list[str], names, n_items: int) -> None:
    """If no accumulator reads any of ``wanted`` (pair leaves), add a sum accumulator over one of them."""
    wanted = [w for w in wanted if w in leaves]
    if not wanted or set(wanted) & acc_uses(accs):
        return
    w = pick(rng, wanted)
    name = next(n for n in names if n not in {a["name"] for a in accs})
    b.line(f"{name} = {b.zero()}")
    iv = leaves[w]
    accs.append({"kind": "sum", "name": name, "expr": E.var(w, iv),
                 "iv": Interval(min(0.0, n_items * iv.lo), max(0.0, n_items * iv.hi))})


def make_accumulators(rng, b: Builder, pair_leaves: dict, vec_leaf: str | None, index: str, n_items: int,
                      names: list[str]) -> list[dict]:
    """Choose 1-3 accumulators, emit their initialisation; return their descriptions (update lines later)."""
    kinds = ["count", "sum", "sum", "min", "max", "isum", "imax"] + (["vsum"] if vec_leaf else [])
    chosen = pick(rng, kinds, int(rng.integers(1, 4)))
    accs = []
    for k, kind in enumerate(chosen):
        name = names[k]
        acc = {"kind": kind, "name": name}
        if kind == "count":
            b.line(f"{name} = int(0)")
            acc["iv"] = Interval(0, n_items)
            acc["typ"] = Interval(0, 12)
        elif kind in ("isum", "imax"):
            b.line(f"{name} = int({0 if kind == 'isum' else -1})")
            acc["iv"] = Interval(-1, n_items * n_items)
            acc["typ"] = Interval(-1, n_items - 1) if kind == "imax" else Interval(0, 8 * n_items)
        else:
            node = _pair_expr(rng, pair_leaves, int(rng.integers(1, 3)), b.T)
            acc["expr"] = node
            if kind == "sum":
                b.line(f"{name} = {b.zero()}")
                acc["iv"] = Interval(min(0.0, n_items * node.iv.lo), max(0.0, n_items * node.iv.hi))
                acc["typ"] = Interval(min(0.0, 8 * node.iv.lo), max(0.0, 8 * node.iv.hi))
            elif kind in ("min", "max"):
                sentinel = math.ceil(node.iv.mag + 1.0)
                sentinel = sentinel if kind == "min" else -sentinel
                acc["init"] = float(sentinel)
                b.line(f"{name} = {b.init(sentinel)}")
                acc["iv"] = Interval(min(node.iv.lo, sentinel), max(node.iv.hi, sentinel))
                acc["typ"] = node.iv
            else:
                b.line(f"{name} = wp.vec3(0.0)" if b.ty == "float32" else f"{name} = wp.vec3d({b.zero()})")
                acc["iv"] = Interval(-n_items * node.iv.mag * 4, n_items * node.iv.mag * 4)
                acc["typ"] = Interval(-8 * node.iv.mag, 8 * node.iv.mag)
                acc["vec"] = vec_leaf
        accs.append(acc)
    return accs


def emit_updates(rng, b: Builder, accs: list[dict], index: str) -> None:
    for acc in accs:
        kind, name = acc["kind"], acc["name"]
        if kind == "count":
            b.line(f"{name} += 1" if rng.random() < 0.6 else f"{name} = {name} + 1")
        elif kind == "isum":
            b.line(f"{name} += {index}")
        elif kind == "imax":
            b.line(f"{name} = wp.max({name}, {index})")
        elif kind == "sum":
            b.line(f"{name} += {E.emit(acc['expr'], b.T)}")
        elif kind == "min":
            b.line(f"{name} = wp.min({name}, {E.emit(acc['expr'], b.T)})")
        elif kind == "max":
            b.line(f"{name} = wp.max({name}, {E.emit(acc['expr'], b.T)})")
        else:
            b.line(f"{name} += {acc['vec']} * {E.emit(acc['expr'], b.T)}")


def reduce_accumulators(accs: list[dict], member: np.ndarray, env: dict, index_vals: np.ndarray,
                        vec_vals: np.ndarray | None, T=E.FLOAT32) -> dict[str, np.ndarray]:
    """Accumulator values per query from the (Q, M) membership and pair-leaf arrays in ``env``."""
    out = {}
    with np.errstate(all="ignore"):
        for acc in accs:
            kind, name = acc["kind"], acc["name"]
            if kind == "count":
                out[name] = member.sum(axis=1).astype(np.float64)
            elif kind == "isum":
                out[name] = np.where(member, index_vals, 0).sum(axis=1).astype(np.float64)
            elif kind == "imax":
                out[name] = np.where(member, index_vals, -1).max(axis=1).astype(np.float64)
            else:
                e = np.broadcast_to(E.evaluate(acc["expr"], env, T), member.shape)
                if kind == "sum":
                    out[name] = np.where(member, e, 0.0).sum(axis=1)
                elif kind == "min":
                    out[name] = np.minimum(np.where(member, e, np.inf).min(axis=1), acc["init"])
                elif kind == "max":
                    out[name] = np.maximum(np.where(member, e, -np.inf).max(axis=1), acc["init"])
                else:
                    out[name] = np.where(member[..., None], vec_vals * e[..., None], 0.0).sum(axis=1)
    return out


# --------------------------------------------------------------------------------------------------------
# Outputs: ints and vec3s written directly, floats through post-processing built on the IR (kernels.ir): the
# quantities a query left in locals are IR leaves (``Var``, ``wp.float32(n)`` casts of counts, ``wp.length(v)`` of
# vector sums), ExprBuilder draws the expressions inside the op table's guards, the printer writes the stores and
# the interpreter evaluates them on the reference's per-query quantities.

OUT_NAMES = ("out", "res", "result", "dst", "val_out", "score", "field_out", "y")
POST_OPS = {"add": 3, "sub": 3, "mul": 3, "div": 1.5, "min": 1, "max": 1, "where": 0.6, "abs": 0.3, "sqrt": 0.3,
            "tanh": 0.3}
#: operations whose two equal arguments a person would not write (``x + x``, ``min(x, x)``, ``x < x``)
_TWIN_OPS = frozenset({"add", "sub", "div", "min", "max", "lt", "le", "gt", "ge", "eq", "ne"})


def silly(e: n.Expr) -> bool:
    """An operation on two equal arguments or a select with equal branches anywhere in ``e``."""
    for x in analysis.subexprs(e):
        if isinstance(x, n.Call) and ((x.op in _TWIN_OPS and x.args[0] == x.args[1]) or
                                      (x.op == "where" and x.args[1] == x.args[2])):
            return True
    return False


def post_leaves(quantities: dict, T: Scalar) -> tuple[list, dict[str, tuple[str, Interval, Interval]]]:
    """IR leaves (expression, interval) of type ``T`` over the quantities, and the quantities by local name."""
    leaves = []
    for name, entry in quantities.items():
        kind, iv = entry[0], entry[1]
        if kind == "f":
            leaves.append((n.Var(name, T), IV(float(iv.lo), float(iv.hi))))
        elif kind == "i":
            leaves.append((n.Cast(n.Var(name, INT32), T), IV(float(iv.lo), float(iv.hi))))
        else:
            leaves.append((n.call("length", n.Var(name, Vector(T, 3))), IV(0.0, iv.mag * 1.8)))
    return leaves, {k: (e[0], e[1], e[2] if len(e) > 2 else e[1]) for k, e in quantities.items()}


def _typical_env(quantities: dict, rng, lanes: int = 24) -> dict[str, np.ndarray]:
    env = {}
    for name, (kind, _, typ) in quantities.items():
        shape = (lanes, 3) if kind == "v" else (lanes,)
        v = rng.uniform(typ.lo, typ.hi, shape) / (1.8 * math.sqrt(3.0) if kind == "v" else 1.0)
        env[name] = np.round(v).astype(np.int32) if kind == "i" else v
    return env


def lively_ir(e: n.Expr, quantities: dict, rng) -> bool:
    """Whether ``e`` varies over the quantities' typical ranges and depends on each quantity it reads (none
    hidden behind a min/max or select the other side always wins)."""
    env = _typical_env(quantities, rng)
    v = interp.evaluate(e, env, {}, 24)
    if not (np.all(np.isfinite(v)) and float(np.ptp(v)) > 1e-5 * (1.0 + float(np.abs(v).max()))):
        return False
    for name in sorted(analysis.uses(e)):
        moved = dict(env)
        moved[name] = rng.permutation(env[name])
        if np.array_equal(interp.evaluate(e, moved, {}, 24), v):
            return False
    return True


def random_post(rng, gen: ExprBuilder, quantities: dict, T: Scalar, depth: int) -> n.Expr:
    """A lively, not silly expression over ``gen``'s leaves (never a bare leaf; a few tries, then a leaf pair)."""
    leaves = gen.leaves
    for _ in range(8):
        e = gen.sized(T, (1, depth), 2 * depth + 1)[0]
        if not isinstance(e, (n.Var, n.Cast, n.Const)) and analysis.uses(e) and not silly(e) and \
                lively_ir(e, quantities, rng):
            return e
    if len(leaves) == 1:
        return n.call("mul", leaves[0][0], n.Const(1.5, T))
    a, b = pick(rng, leaves, 2)
    return n.call(pick(rng, ("add", "sub", "mul")), a[0], b[0])


def make_outputs(rng, b: Builder, quantities: dict) -> list[dict]:
    """Choose 1-3 outputs over ``quantities`` (name -> (kind 'f'|'i'|'v', Interval[, typical])) and write them:
    ints and vectors copied, floats drawn on the IR; every quantity reaches some output."""
    T = FLOAT32 if b.ty == "float32" else FLOAT64
    leaves, qs = post_leaves(quantities, T)
    n_out = int(rng.integers(1, 4))
    taken = set(re.findall(r"[A-Za-z_]\w*", "\n".join(b.body))) | {a.name for a, _ in b.params}
    free = [x for x in OUT_NAMES if x not in taken]
    names = pick(rng, free, min(n_out, len(free) - 1))
    outs = []
    ints = [q for q, e in quantities.items() if e[0] == "i"]
    vecs = [q for q, e in quantities.items() if e[0] == "v"]
    pool = [lf for lf in leaves if analysis.uses(lf[0]) != {"wq"}] or leaves      # wq is folded in below
    gen = ExprBuilder(rng, Vocabulary(POST_OPS, types=(T,), ranges={T: IV(-2.0, 2.0)}, limit=1e6, p_leaf=0.35,
                                      p_const=0.15), pool)
    for oname in names:
        roll = rng.random()
        if ints and roll < 0.25:
            outs.append({"name": oname, "kind": "i", "src": pick(rng, ints)})
            b.param(Arg(oname, "int32", "out", (b.dim,)))
        elif vecs and roll < 0.4:
            outs.append({"name": oname, "kind": "v", "src": pick(rng, vecs)})
            b.param(Arg(oname, b.vdt, "out", (b.dim,)))
        else:
            node = random_post(rng, gen, qs, T, int(rng.integers(1, 4)))
            outs.append({"name": oname, "kind": "f", "node": node})
            b.param(Arg(oname, b.ty, "out", (b.dim,)))
    used = set()
    for o in outs:
        used |= analysis.uses(o["node"]) if o["kind"] == "f" else {o["src"]}
    missing = [lf for lf in leaves if not analysis.uses(lf[0]) <= used]
    if missing:
        f_out = next((o for o in outs if o["kind"] == "f"), None)
        if f_out is None:                   # a new float output: the missing quantities (and one more if alone)
            oname = pick(rng, [x for x in free if x not in names])
            first, missing = missing[0], missing[1:]
            others = [lf for lf in leaves if lf is not first]
            if not missing and others:
                missing = [pick(rng, others)]
            f_out = {"name": oname, "kind": "f", "node": first[0] if missing else n.call("mul", first[0],
                                                                                         n.Const(1.5, T))}
            outs.append(f_out)
            b.param(Arg(oname, b.ty, "out", (b.dim,)))
        for lf in missing:
            f_out["node"] = n.call(pick(rng, ("add", "sub")), f_out["node"], lf[0])
    i = n.Var("i", INT32)
    for o in outs:
        ty = T if o["kind"] == "f" else INT32 if o["kind"] == "i" else Vector(T, 3)
        value = o["node"] if o["kind"] == "f" else n.Var(o["src"], ty)
        for line in printer.render(printer.stmt(n.Store(o["name"], Array(ty), (i,), value)), b.depth):
            b.body.append(line)
    return outs


def eval_outputs(outs: list[dict], q: dict, rowmask: np.ndarray, ty: str = "float32") -> dict[str, np.ndarray]:
    """Output arrays from quantities ``q`` (per query; float outputs by the interpreter, in float64), masked where
    ``rowmask`` is True."""
    res = {}
    fdt = np.float32 if ty == "float32" else np.float64
    with np.errstate(all="ignore"):
        for o in outs:
            if o["kind"] == "i":
                data = np.asarray(q[o["src"]]).astype(np.int32)
                mask = rowmask
            elif o["kind"] == "v":
                data = np.asarray(q[o["src"]], dtype=np.float64).astype(fdt)
                mask = np.broadcast_to(rowmask[:, None], data.shape)
            else:
                env = {k: np.asarray(q[k], dtype=np.float64) for k in analysis.uses(o["node"])}
                data = np.broadcast_to(interp.evaluate(o["node"], env, {}, rowmask.shape[0], exact=False),
                                       rowmask.shape).astype(fdt)
                mask = rowmask
            res[o["name"]] = np.ma.MaskedArray(data, mask=np.array(mask, dtype=bool))
    return res


# --------------------------------------------------------------------------------------------------------
# Kind: grid (wp.HashGrid neighbour loops)

GRID_IDS = ("grid", "grid_id", "hgrid", "hash_grid")
PTS_NAMES = ("pts", "points", "pos", "xs", "particles")
VAL_NAMES = ("vals", "mass", "rho", "temp", "phi", "weight")
QRY_NAMES = ("qs", "queries", "probe", "targets", "samples")

WEIGHTS = {   # name: (source template over {d}, {R}; interval of the weight given r)
    "lin": "({one} - {d} / {R})",
    "quad": "({one} - {d} / {R}) * ({one} - {d} / {R})",
    "gauss": "wp.exp(-{d} * {d} * {K})",
    "poly": "({R} * {R} - {d} * {d})",
    "inv": "{one} / ({d} + {K})",
    "hat": "wp.max({R} - {d}, {zero})",
}


def weight_value(kind: str, d: np.ndarray, r: np.ndarray, k: float, T=E.FLOAT32) -> np.ndarray:
    k32 = T.const_value(k)
    if kind == "lin":
        return 1.0 - d / r
    if kind == "quad":
        return (1.0 - d / r) ** 2
    if kind == "gauss":
        return np.exp(-d * d * k32)
    if kind == "poly":
        return r * r - d * d
    if kind == "inv":
        return 1.0 / (d + k32)
    return np.maximum(r - d, 0.0)


def gen_grid(rng) -> tuple[Builder, dict, dict]:
    b = Builder(ty="float64" if rng.random() < 0.3 else "float32")
    fdt = b.ty
    L = float(pick(rng, (1.0, 2.0, 4.0)))
    n_pts = int(pick(rng, (64, 96, 128)))
    density = n_pts / L ** 3
    # radius so that ~3-10 neighbours are expected
    r_lo = (3.0 / (density * 4.19)) ** (1 / 3)
    r_hi = (9.0 / (density * 4.19)) ** (1 / 3)
    gname = pick(rng, GRID_IDS)
    b.id_param(gname)
    pts = pick(rng, PTS_NAMES)
    b.param(Arg(pts, b.vdt, "in", (n_pts,), 0.0, L))
    use_vals = rng.random() < 0.6
    vname = pick(rng, VAL_NAMES)
    vlo, vhi = pick(rng, ((-1.0, 1.0), (0.5, 2.0), (0.0, 1.0), (-2.0, 3.0)))
    if use_vals:
        b.param(Arg(vname, fdt, "in", (n_pts,), vlo, vhi))
    self_query = rng.random() < 0.6
    qname = pick(rng, QRY_NAMES)
    dim = n_pts if self_query else Q
    if not self_query:
        b.param(Arg(qname, b.vdt, "in", (Q,), 0.0, L))
    radius_param = rng.random() < 0.6
    rname = pick(rng, ("radius", "r", "h", "cutoff", "support"))
    r_lit = _short(rng, r_lo, r_hi)
    if radius_param:
        b.param(Arg(rname, fdt, "scalar", (), round(r_lo, 3), round(r_hi, 3)))
        R = rname
    else:
        R = b.lit(r_lit)
    exclude_self = self_query and rng.random() < 0.6
    if not (use_vals or radius_param or not self_query):
        use_vals = True                         # two live inputs besides the grid id
        b.param(Arg(vname, fdt, "in", (n_pts,), vlo, vhi))
    point_id = self_query and rng.random() < 0.3
    first = "tid = wp.tid()" if point_id else "i = wp.tid()"
    if point_id:
        b.line(f"i = wp.hash_grid_point_id({gname}, tid)")
    p = pick(rng, ("p", "xi", "pi", "x0"))
    b.line(f"{p} = {pts if self_query else qname}[i]")
    use_vi = use_vals and self_query and rng.random() < 0.6
    if use_vi:
        b.line(f"vi = {vname}[i]")
    j = pick(rng, ("j", "k", "nb", "other"))
    d = pick(rng, ("d", "dist", "r_ij"))
    dv = pick(rng, ("dv", "delta", "rij"))
    pair_leaves = {d: Interval(0.0, r_hi)}
    wkind = pick(rng, tuple(WEIGHTS)) if rng.random() < 0.6 else None
    wk = float(pick(rng, (0.1, 0.25, 0.5))) if wkind == "inv" else float(pick(rng, (1.0, 2.0, 4.0)))
    if wkind:
        w_iv = {"lin": Interval(0, 1), "quad": Interval(0, 1), "gauss": Interval(0, 1),
                "poly": Interval(0, r_hi * r_hi), "inv": Interval(1 / (r_hi + wk), 1 / wk),
                "hat": Interval(0, r_hi)}[wkind]
        pair_leaves["w"] = w_iv
    if use_vals:
        pair_leaves[f"{vname}[{j}]"] = Interval(vlo, vhi)
        if use_vi:
            pair_leaves["vi"] = Interval(vlo, vhi)
    acc_names = pick(rng, ("n", "cnt", "s", "acc", "total", "m", "best", "agg", "sv", "ks"), 4)
    accs = make_accumulators(rng, b, pair_leaves, dv, j, n_pts, acc_names)
    vj = f"{vname}[{j}]"
    if use_vals and not {vj, "vi"} & acc_uses(accs):
        # the values array must be read: one more sum accumulator over it
        node = E.Node("mul", (E.var(vj, pair_leaves[vj]), E.var("w", pair_leaves["w"])), None,
                      Interval(-1e3, 1e3)) if "w" in pair_leaves else E.var(vj, pair_leaves[vj])
        name = acc_names[len(accs)] if len(accs) < len(acc_names) else "vsum_"
        b.line(f"{name} = {b.zero()}")
        bound = 4.0 * max(abs(vlo), abs(vhi)) * max(1.0, pair_leaves.get("w", Interval(0, 1)).mag)
        accs.append({"kind": "sum", "name": name, "expr": node, "iv": Interval(-n_pts * bound, n_pts * bound)})
    if self_query and any(a["kind"] in ("min", "max") for a in accs):
        exclude_self = True
    # loop header
    loop_style = "for" if rng.random() < 0.5 else "while"
    if loop_style == "for":
        b.line(f"for {j} in wp.hash_grid_query({gname}, {p}, {R}):")
        b.depth += 1
    else:
        qv = pick(rng, ("query", "q", "it"))
        b.line(f"{qv} = wp.hash_grid_query({gname}, {p}, {R})")
        b.line(f"{j} = int(0)")
        b.line(f"while wp.hash_grid_query_next({qv}, {j}):")
        b.depth += 1
    if exclude_self:
        b.line(f"if {j} != i:")
        b.depth += 1
    sign_flip = rng.random() < 0.5
    b.line(f"{dv} = {pts}[{j}] - {p}" if not sign_flip else f"{dv} = {p} - {pts}[{j}]")
    form = pick(rng, ("le", "lt", "sq"))
    if form == "sq":
        dsq = pick(rng, ("dsq", "d2", "r2"))
        b.line(f"{dsq} = wp.length_sq({dv})" if rng.random() < 0.5 else f"{dsq} = wp.dot({dv}, {dv})")
        b.line(f"if {dsq} < {R} * {R}:")
        b.depth += 1
        b.line(f"{d} = wp.sqrt({dsq})")
    else:
        b.line(f"{d} = wp.length({dv})")
        b.line(f"if {d} {'<=' if form == 'le' else '<'} {R}:")
        b.depth += 1
    if wkind and "w" in acc_uses(accs):
        b.line(f"w = {WEIGHTS[wkind].format(d=d, R=R, K=b.lit(wk), one=b.lit(1.0), zero=b.lit(0.0))}")
    else:
        wkind = None
    emit_updates(rng, b, accs, j)
    b.depth = 1
    meta = {"kind": "grid", "L": L, "n_pts": n_pts, "pts": pts, "vals": vname if use_vals else None,
            "qs": None if self_query else qname, "radius": rname if radius_param else None, "r_lit": r_lit,
            "r_hi": r_hi, "exclude_self": exclude_self, "form": form, "d": d, "dv": dv, "sign_flip": sign_flip,
            "wkind": wkind, "wk": wk, "j": j, "accs": accs, "vi": use_vi, "grid": gname,
            "dims": [int(rng.integers(3, 17)) for _ in range(3)], "cell": float(r_hi * pick(rng, (0.6, 1.0, 1.5, 2.5))),
            "grid_dtype": fdt}
    features = {"query": "hash_grid", "grid_dtype": fdt, "loop": loop_style, "point_id": point_id,
                "self_query": self_query,
                "exclude_self": exclude_self, "membership": form, "weight": wkind,
                "accumulators": sorted(a["kind"] for a in accs)}
    b.first = first
    b.dim = dim
    return b, meta, (acc_quantities(accs), features, dim)


def ref_grid(meta: dict, inputs) -> tuple[dict, np.ndarray]:
    P = np.asarray(inputs[meta["pts"]], dtype=np.float64)
    Qp = P if meta["qs"] is None else np.asarray(inputs[meta["qs"]], dtype=np.float64)
    T = TYPES[meta["grid_dtype"]]
    r = float(T.const_value(float(inputs[meta["radius"]]))) if meta["radius"] else T.const_value(meta["r_lit"])
    dv = (P[None, :, :] - Qp[:, None, :]) * (-1.0 if meta["sign_flip"] else 1.0)
    D = np.linalg.norm(dv, axis=-1)
    cand = np.ones(D.shape, dtype=bool)
    if meta["exclude_self"]:
        np.fill_diagonal(cand, False)
    member = cand & ((D <= r) if meta["form"] == "le" else (D < r))
    rowmask = np.any(cand & (np.abs(D - r) <= BAND * r), axis=1)
    env = {meta["d"]: D}
    if meta["wkind"]:
        env["w"] = weight_value(meta["wkind"], D, r, meta["wk"], T)
    if meta["vals"]:
        v = np.asarray(inputs[meta["vals"]], dtype=np.float64)
        env[f"{meta['vals']}[{meta['j']}]"] = np.broadcast_to(v[None, :], D.shape)
        if meta["vi"]:
            env["vi"] = v[:, None]
    idx = np.broadcast_to(np.arange(P.shape[0])[None, :], D.shape)
    return reduce_accumulators(meta["accs"], member, env, idx, dv, T), rowmask


def prep_grid(meta, inputs, device):
    f64 = meta["grid_dtype"] == "float64"
    pts = wp.array(np.asarray(inputs[meta["pts"]], dtype=np.float64 if f64 else np.float32),
                   dtype=wp.vec3d if f64 else wp.vec3, device=device)
    grid = wp.HashGrid(*meta["dims"], device=device, dtype=wp.float64 if f64 else wp.float32)
    grid.build(pts, meta["cell"])
    return {meta["grid"]: grid.id, "_keep": (grid, pts)}


def sample_grid(spec, rng) -> dict:
    return {a.name: _array_sampler(a, rng) for a in spec.args}


# --------------------------------------------------------------------------------------------------------
# Kind: bvh (wp.Bvh over random boxes)

BVH_IDS = ("bvh", "tree", "bvh_id", "boxes")
BOX_NAMES = (("lowers", "uppers"), ("lo", "hi"), ("bmin", "bmax"), ("box_lo", "box_hi"))


def _array_sampler(a: Arg, rng) -> np.ndarray:
    dt = lookup_dtype(a.dtype)
    shape = tuple(a.shape) + dt.shape
    if a.role == "out":
        return np.zeros(shape, dtype=dt.numpy)
    if a.role == "scalar" and a.dtype == ID_DTYPE:
        return np.zeros((), dtype=dt.numpy)
    if dt.is_int:
        return rng.integers(int(a.low), int(a.high) + 1, shape).astype(dt.numpy)
    return rng.uniform(a.low, a.high, shape).astype(dt.numpy)


def _unit_dirs(rng, n: int, min_comp: float = 0.2) -> np.ndarray:
    """Random directions whose components all stay away from zero (no slab-test degeneracies)."""
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    small = np.abs(d) < min_comp
    d[small] = np.copysign(min_comp + rng.uniform(0.0, 0.2, np.count_nonzero(small)), d[small] + 1e-12)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def emit_direction(rng, b: Builder, meta: dict, dv: str, min_comp: float) -> None:
    """``dv = ...``: a constant unit direction (``meta["dmode"] == "const"``, components at least ``min_comp``) or
    one read from a direction array (``"array"``), maybe normalised (``"normalized"``)."""
    if meta["dmode"] == "const":
        d = _unit_dirs(rng, 1, min_comp)[0]
        meta["dconst"] = [round(float(x), 3) for x in d]
        b.line(f"{dv} = wp.vec3({', '.join(_lit(x) for x in meta['dconst'])})")
    else:
        dn = pick(rng, ("dirs", "rays", "heading"))
        b.param(Arg(dn, "vec3f", "in", (Q,), -1.0, 1.0))
        meta["dirs"] = dn
        b.line(f"{dv} = {dn}[i]" if meta["dmode"] == "array" else f"{dv} = wp.normalize({dn}[i])")


def ray_directions(meta: dict, inputs, shape) -> np.ndarray:
    """The directions :func:`emit_direction` gives the rays, (Q,3) float64."""
    if meta["dmode"] == "const":
        return np.broadcast_to(np.asarray(meta["dconst"], dtype=np.float32).astype(np.float64), shape)
    d = np.asarray(inputs[meta["dirs"]], dtype=np.float64)
    if meta["dmode"] == "normalized":
        d = d / np.linalg.norm(d, axis=1, keepdims=True)
    return d


def gen_bvh(rng):
    b = Builder()
    s = float(pick(rng, (1.0, 2.0)))
    L = 2.0 * s
    m = int(pick(rng, (32, 48, 64)))
    bname = pick(rng, BVH_IDS)
    b.id_param(bname)
    qmode = pick(rng, ("aabb_arrays", "aabb_center", "aabb_center", "sphere", "ray", "ray"))
    lname, uname = pick(rng, BOX_NAMES)
    boxes_in = rng.random() < 0.55
    box_args = [Arg(lname, "vec3f", "in" if boxes_in else "aux", (m,), 0.0, L),
                Arg(uname, "vec3f", "in" if boxes_in else "aux", (m,), 0.0, L)]
    if boxes_in:
        b.param(box_args[0])
        b.param(box_args[1])
    else:
        b.aux.extend(box_args)
    use_vals = rng.random() < 0.6
    vname = pick(rng, VAL_NAMES)
    vlo, vhi = pick(rng, ((-1.0, 1.0), (0.5, 2.0), (0.0, 1.0)))
    if use_vals:
        b.param(Arg(vname, "float32", "in", (m,), vlo, vhi))
    meta = {"kind": "bvh", "s": s, "L": L, "m": m, "bvh": bname, "qmode": qmode, "lowers": lname,
            "uppers": uname, "vals": vname if use_vals else None, "constructor": pick(rng, (None, "sah", "median")),
            "leaf": int(pick(rng, (1, 1, 2, 4)))}
    c = pick(rng, ("c", "center", "x", "pc"))
    lo, hi = pick(rng, (("lo_q", "hi_q"), ("qmin", "qmax"), ("a", "b_")))
    if qmode == "aabb_arrays":
        qa, qb = pick(rng, (("qlo", "qhi"), ("query_lo", "query_hi"), ("lower_q", "upper_q")))
        b.param(Arg(qa, "vec3f", "in", (Q,), 0.0, L))
        b.param(Arg(qb, "vec3f", "in", (Q,), 0.0, L))
        b.line(f"{lo} = {qa}[i]")
        b.line(f"{hi} = {qb}[i]")
        b.line(f"{c} = 0.5 * ({lo} + {hi})")
        meta.update(qa=qa, qb=qb)
        qline = f"wp.bvh_query_aabb({bname}, {lo}, {hi})"
    else:
        cn = pick(rng, ("centers", "qc", "probe", "targets"))
        b.param(Arg(cn, "vec3f", "in", (Q,), 0.0, L))
        meta["centers"] = cn
        if qmode == "ray":
            dmode = pick(rng, ("array", "normalized", "const"))
            meta["dmode"] = dmode
            b.line(f"{c} = {cn}[i]")
            dv = pick(rng, ("dir", "ray_dir", "dvec"))
            emit_direction(rng, b, meta, dv, 0.2)
            qline = f"wp.bvh_query_ray({bname}, {c}, {dv})"
            if rng.random() < 0.5:
                tmax = _short(rng, 0.5 * s, 1.5 * s)
                meta["tmax"] = tmax
        else:
            size_mode = pick(rng, ("param", "literal", "array"))
            hn = pick(rng, ("half", "h", "extent", "size") if qmode != "sphere" else ("radius", "r", "reach"))
            h_lo, h_hi = (0.15 * s, 0.4 * s)
            meta["size_mode"] = size_mode
            if size_mode == "param":
                b.param(Arg(hn, "float32", "scalar", (), round(h_lo, 3), round(h_hi, 3)))
                H = hn
            elif size_mode == "array":
                b.param(Arg(hn, "float32", "in", (Q,), round(h_lo, 3), round(h_hi, 3)))
                H = f"{hn}[i]"
            else:
                meta["h_lit"] = _short(rng, h_lo, h_hi)
                H = _lit(meta["h_lit"])
            meta["hname"] = hn
            b.line(f"{c} = {cn}[i]")
            if qmode == "sphere":
                qline = f"wp.bvh_query_sphere({bname}, {c}, {H})"
            else:
                b.line(f"{lo} = {c} - wp.vec3({H})")
                b.line(f"{hi} = {c} + wp.vec3({H})")
                qline = f"wp.bvh_query_aabb({bname}, {lo}, {hi})"
    j = pick(rng, ("j", "item", "k", "idx"))
    pair_leaves = {}
    if use_vals:
        pair_leaves[f"{vname}[{j}]"] = Interval(vlo, vhi)
    bc = pick(rng, ("bc", "box_c", "mid"))
    if boxes_in:
        pair_leaves["dc"] = Interval(0.0, 2.0 * L)
        if qmode.startswith("aabb"):
            pair_leaves["ov"] = Interval(0.0, (0.8 * s) ** 3)
    if not pair_leaves:
        pair_leaves["wp.float32(" + j + ")"] = Interval(0.0, m - 1.0)
    acc_names = pick(rng, ("n", "cnt", "s", "acc", "total", "m_", "best", "agg", "hits", "ks"), 4)
    accs = make_accumulators(rng, b, pair_leaves, bc if boxes_in else None, j, m, acc_names)
    if use_vals:
        ensure_used(rng, b, accs, pair_leaves, [f"{vname}[{j}]"], acc_names + ["sv_", "acc2"], m)
    if boxes_in and not any(a["kind"] == "vsum" for a in accs):
        ensure_used(rng, b, accs, pair_leaves, ["dc", "ov"], acc_names + ["sb_", "acc3"], m)
    qv = pick(rng, ("query", "q", "it"))
    b.line(f"{qv} = {qline}")
    b.line(f"{j} = int(0)")
    b.line(f"while wp.bvh_query_next({qv}, {j}{', ' + _lit(meta['tmax']) if 'tmax' in meta else ''}):")
    b.depth += 1
    thr = None
    if use_vals and rng.random() < 0.3:
        thr = round(float(rng.uniform(vlo, vhi)) * 0.5, 2)
        b.line(f"if {vname}[{j}] > {_lit(thr)}:")
        b.depth += 1
    used = acc_uses(accs)
    if boxes_in and (used & {"dc", "ov"} or any(a["kind"] == "vsum" for a in accs)):
        b.line(f"{bc} = 0.5 * ({lname}[{j}] + {uname}[{j}])")
        if "dc" in used:
            b.line(f"dc = wp.length({bc} - {c})")
        if "ov" in used:
            b.line(f"ext = wp.min({hi}, {uname}[{j}]) - wp.max({lo}, {lname}[{j}])")
            b.line("ov = wp.max(ext[0], 0.0) * wp.max(ext[1], 0.0) * wp.max(ext[2], 0.0)")
    emit_updates(rng, b, accs, j)
    b.depth = 1
    meta.update(j=j, accs=accs, thr=thr, boxes_in=boxes_in)
    quantities = acc_quantities(accs)
    features = {"query": {"aabb_arrays": "bvh_query_aabb", "aabb_center": "bvh_query_aabb",
                          "sphere": "bvh_query_sphere", "ray": "bvh_query_ray"}[qmode],
                "query_form": qmode, "filter": thr is not None, "boxes_param": boxes_in,
                "max_dist": "tmax" in meta, "accumulators": sorted(a["kind"] for a in accs)}
    return b, meta, (quantities, features, Q)


def _slab(o, d, lo, hi):
    """Entry/exit parameters of rays (Q,1,3) against boxes (1,M,3)."""
    with np.errstate(all="ignore"):
        inv = 1.0 / d
        t1 = (lo - o) * inv
        t2 = (hi - o) * inv
    return np.minimum(t1, t2).max(axis=-1), np.maximum(t1, t2).min(axis=-1)


def ref_bvh(meta, inputs):
    lo_b = np.asarray(inputs[meta["lowers"]], dtype=np.float64)[None]
    hi_b = np.asarray(inputs[meta["uppers"]], dtype=np.float64)[None]
    band = BAND * meta["s"]
    qmode = meta["qmode"]
    if qmode == "aabb_arrays":
        qlo = np.asarray(inputs[meta["qa"]], dtype=np.float64)
        qhi = np.asarray(inputs[meta["qb"]], dtype=np.float64)
        c = 0.5 * (qlo + qhi)
    else:
        c = np.asarray(inputs[meta["centers"]], dtype=np.float64)
    if qmode in ("aabb_center", "sphere"):
        if meta["size_mode"] == "literal":
            h = np.full(c.shape[0], float(np.float32(meta["h_lit"])))
        else:
            h = np.broadcast_to(np.asarray(inputs[meta["hname"]], dtype=np.float64), (c.shape[0],))
        if qmode == "aabb_center":
            qlo, qhi = c - h[:, None], c + h[:, None]
    if qmode == "sphere":
        gap = np.maximum(np.maximum(lo_b - c[:, None], c[:, None] - hi_b), 0.0)
        dist = np.linalg.norm(gap, axis=-1)
        member = dist <= h[:, None]
        margin = np.abs(dist - h[:, None])
    elif qmode == "ray":
        d = ray_directions(meta, inputs, c.shape)
        lmin, lmax = _slab(c[:, None], d[:, None], lo_b, hi_b)
        conds = [lmax, lmax - lmin] + ([meta["tmax"] - lmin] if "tmax" in meta else [])
        member = (lmax >= 0) & (lmax >= lmin)
        if "tmax" in meta:
            member &= ~(lmin >= float(np.float32(meta["tmax"])))
        scale = np.linalg.norm(d, axis=1)[:, None]
        margin = np.min(np.abs(np.stack(conds)), axis=0) * scale
    else:
        m_ax = np.minimum(qhi[:, None] - lo_b, hi_b - qlo[:, None])
        mm = m_ax.min(axis=-1)
        member = mm >= 0
        margin = np.abs(mm)
    rowmask = np.any(~np.isfinite(margin) | (margin <= band), axis=1)
    env = {}
    M = lo_b.shape[1]
    if meta["vals"]:
        v = np.asarray(inputs[meta["vals"]], dtype=np.float64)
        env[f"{meta['vals']}[{meta['j']}]"] = np.broadcast_to(v[None], member.shape)
        if meta["thr"] is not None:
            member = member & (v[None] > float(np.float32(meta["thr"])))
    env["wp.float32(" + meta["j"] + ")"] = np.broadcast_to(np.arange(M, dtype=np.float64)[None], member.shape)
    bc = 0.5 * (lo_b + hi_b)
    if meta["boxes_in"]:
        env["dc"] = np.linalg.norm(bc - c[:, None], axis=-1)
        if qmode.startswith("aabb"):
            ext = np.minimum(qhi[:, None], hi_b) - np.maximum(qlo[:, None], lo_b)
            env["ov"] = np.prod(np.maximum(ext, 0.0), axis=-1)
    idx = np.broadcast_to(np.arange(M)[None], member.shape)
    return reduce_accumulators(meta["accs"], member, env, idx, np.broadcast_to(bc, member.shape + (3,))), rowmask


def prep_bvh(meta, inputs, device):
    lo = wp.array(np.asarray(inputs[meta["lowers"]], dtype=np.float32), dtype=wp.vec3, device=device)
    hi = wp.array(np.asarray(inputs[meta["uppers"]], dtype=np.float32), dtype=wp.vec3, device=device)
    bvh = wp.Bvh(lo, hi, constructor=meta["constructor"], leaf_size=meta["leaf"])
    return {meta["bvh"]: bvh.id, "_keep": (bvh, lo, hi)}


def sample_bvh(spec, rng):
    meta = spec.meta
    out = {a.name: _array_sampler(a, rng) for a in spec.args}
    s, L, m = meta["s"], meta["L"], meta["m"]
    centre = rng.uniform(0.0, L, (m, 3))
    half = rng.uniform(0.05, 0.3, (m, 3)) * s
    out[meta["lowers"]] = (centre - half).astype(np.float32)
    out[meta["uppers"]] = (centre + half).astype(np.float32)
    if meta["qmode"] == "aabb_arrays":
        qlo = rng.uniform(0.0, L, (Q, 3))
        out[meta["qa"]] = qlo.astype(np.float32)
        out[meta["qb"]] = (qlo + rng.uniform(0.1, 0.6, (Q, 3)) * s).astype(np.float32)
    if meta.get("dirs"):
        out[meta["dirs"]] = (_unit_dirs(rng, Q) * rng.uniform(0.5, 1.5, (Q, 1))).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------------------
# Meshes: soups, height-field grids and closed star-shaped polyhedra

_T = (1 + 5 ** 0.5) / 2
ICO_V = np.array([[-1, _T, 0], [1, _T, 0], [-1, -_T, 0], [1, -_T, 0], [0, -1, _T], [0, 1, _T], [0, -1, -_T],
                  [0, 1, -_T], [_T, 0, -1], [_T, 0, 1], [-_T, 0, -1], [-_T, 0, 1]], dtype=np.float64)
ICO_V /= np.linalg.norm(ICO_V, axis=1, keepdims=True)
ICO_F = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])
OCT_V = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=np.float64)
OCT_F = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])


def _subdivide(V, F):
    V = [tuple(v) for v in V]
    index = {v: k for k, v in enumerate(V)}
    mids = {}

    def mid(a, b):
        key = (min(a, b), max(a, b))
        if key not in mids:
            p = (np.asarray(V[a]) + np.asarray(V[b])) / 2
            p = tuple(p / np.linalg.norm(p))
            index[p] = len(V)
            V.append(p)
            mids[key] = index[p]
        return mids[key]
    out = []
    for a, b, c in F:
        ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
        out += [[a, ab, ca], [ab, b, bc], [ca, bc, c], [ab, bc, ca]]
    return np.asarray(V), np.asarray(out)


OCT2_V, OCT2_F = _subdivide(OCT_V, OCT_F)
CLOSED = {"oct": (OCT_V, OCT_F), "ico": (ICO_V, ICO_F), "oct2": (OCT2_V, OCT2_F)}


def mesh_shape(mtype: str, size: int) -> tuple[int, int]:
    """(vertices, triangles) of a mesh type."""
    if mtype == "soup":
        return 3 * size, size
    if mtype == "grid":
        return (size + 1) ** 2, 2 * size * size
    V, F = CLOSED[mtype]
    return len(V), len(F)


def sample_mesh(rng, mtype: str, size: int, scale: float):
    """Vertices (V,3) float32 and flat triangle indices (3T,) int32, inside [-scale, scale]^3."""
    if mtype == "soup":
        tris = []
        while len(tris) < size:
            c = rng.uniform(-0.7, 0.7, 3)
            t = c + rng.uniform(-0.35, 0.35, (3, 3))
            n = np.linalg.norm(np.cross(t[1] - t[0], t[2] - t[0]))
            per = sum(np.sum((t[k] - t[(k + 1) % 3]) ** 2) for k in range(3))
            if n / per > 0.08:
                tris.append(t)
        V = np.concatenate(tris) * scale
        F = np.arange(3 * size, dtype=np.int32)
    elif mtype == "grid":
        k = size
        xs = np.linspace(-1.0, 1.0, k + 1)
        X, Y = np.meshgrid(xs, xs, indexing="ij")
        Z = rng.uniform(-0.35, 0.35, X.shape)
        V = np.stack([X, Y, Z], -1).reshape(-1, 3)
        V[:, :2] += rng.uniform(-0.2, 0.2, (V.shape[0], 2)) / k
        V = V[:, rng.permutation(3)] * scale
        F = []
        for a in range(k):
            for c in range(k):
                v00, v01 = a * (k + 1) + c, a * (k + 1) + c + 1
                v10, v11 = v00 + k + 1, v01 + k + 1
                if rng.random() < 0.5:
                    F += [v00, v10, v11, v00, v11, v01]
                else:
                    F += [v00, v10, v01, v10, v11, v01]
        F = np.asarray(F, dtype=np.int32)
    else:
        V0, F0 = CLOSED[mtype]
        V = V0 * rng.uniform(0.65, 1.15, (len(V0), 1)) * scale + rng.uniform(-0.1, 0.1, 3) * scale
        F = F0.astype(np.int32).ravel()
    return V.astype(np.float32), F


def _tri_arrays(inputs, meta):
    V = np.asarray(inputs[meta["verts"]], dtype=np.float64)
    F = np.asarray(inputs[meta["tris"]], dtype=np.int64).reshape(-1, 3) % max(1, V.shape[0])
    return V, F, V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]


def closest_on_triangles(p, a, b, c):
    """Ericson's closest point: weights (wa, wb, wc) of points p (Q,1,3) on triangles (1,T,3)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.sum(ab * ap, -1), np.sum(ac * ap, -1)
    bp = p - b
    d3, d4 = np.sum(ab * bp, -1), np.sum(ac * bp, -1)
    cp = p - c
    d5, d6 = np.sum(ab * cp, -1), np.sum(ac * cp, -1)
    vc, vb, va = d1 * d4 - d3 * d2, d5 * d2 - d1 * d6, d3 * d6 - d5 * d4
    with np.errstate(all="ignore"):
        den = va + vb + vc
        v, w = vb / den, vc / den
        t_ab, t_ac, t_bc = d1 / (d1 - d3), d2 / (d2 - d6), (d4 - d3) / ((d4 - d3) + (d5 - d6))
    one, zero = np.ones_like(v), np.zeros_like(v)
    W = np.stack([1 - v - w, v, w], -1)
    regions = [((d1 <= 0) & (d2 <= 0), (one, zero, zero)), ((d3 >= 0) & (d4 <= d3), (zero, one, zero)),
               ((vc <= 0) & (d1 >= 0) & (d3 <= 0), (1 - t_ab, t_ab, zero)),
               ((d6 >= 0) & (d5 <= d6), (zero, zero, one)),
               ((vb <= 0) & (d2 >= 0) & (d6 <= 0), (1 - t_ac, zero, t_ac)),
               ((va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0), (zero, 1 - t_bc, t_bc))]
    for cond, choice in reversed(regions):
        W = np.where(cond[..., None], np.stack(choice, -1), W)
    return W


def winding(p, a, b, c):
    """Generalised winding numbers of points p (Q,3) for triangles a, b, c (T,3)."""
    x, y, z = a[None] - p[:, None], b[None] - p[:, None], c[None] - p[:, None]
    lx, ly, lz = (np.linalg.norm(t, axis=-1) for t in (x, y, z))
    num = np.sum(x * np.cross(y, z), -1)
    den = lx * ly * lz + np.sum(x * y, -1) * lz + np.sum(x * z, -1) * ly + np.sum(y * z, -1) * lx
    return (2.0 * np.arctan2(num, den)).sum(axis=1) / (4.0 * np.pi)


def mesh_args(rng, b: Builder, meta: dict, verts_in: bool) -> None:
    mtype = meta["mtype"]
    nv, nt = mesh_shape(mtype, meta["size"])
    vn, tn = pick(rng, (("verts", "tris"), ("points", "indices"), ("vtx", "faces"), ("mesh_pts", "mesh_idx")))
    va = Arg(vn, "vec3f", "in" if verts_in else "aux", (nv,), -meta["scale"], meta["scale"])
    ta = Arg(tn, "int32", "aux", (3 * nt,), 0, nv - 1)
    if verts_in:
        b.param(va)
    else:
        b.aux.append(va)
    b.aux.append(ta)
    meta.update(verts=vn, tris=tn, nv=nv, nt=nt)


def new_mesh_meta(rng, kind: str, closed_only: bool = False) -> dict:
    mtype = "closed" if closed_only else pick(rng, ("soup", "grid", "closed"))
    if mtype == "closed":
        mtype = pick(rng, ("oct", "ico", "oct2"))
    size = {"soup": int(rng.integers(8, 25)), "grid": int(rng.integers(2, 5))}.get(mtype, 0)
    return {"kind": kind, "mtype": mtype, "size": size, "scale": float(pick(rng, (1.0, 1.0, 2.0, 0.5))),
            "mesh": pick(rng, ("mesh", "mesh_id", "surf", "geo")), "winding": False,
            "constructor": pick(rng, (None, "sah", "median")), "leaf": pick(rng, (None, 1, 2, 4))}


def new_mesh_kernel(rng, kind: str, closed_only: bool = False) -> tuple[Builder, dict]:
    """A builder whose kernel takes a mesh id, and the meta of a random mesh for a query of ``kind``."""
    b = Builder()
    meta = new_mesh_meta(rng, kind, closed_only)
    b.id_param(meta["mesh"])
    return b, meta


def query_points(rng, b: Builder, meta: dict, extent: float) -> str:
    """A parameter array of query points (one per thread) in [-extent, extent]^3 times the mesh scale."""
    qn = pick(rng, QRY_NAMES)
    b.param(Arg(qn, "vec3f", "in", (Q,), -extent * meta["scale"], extent * meta["scale"]))
    meta["qs"] = qn
    return qn


def prep_mesh(meta, inputs, device):
    pts = wp.array(np.asarray(inputs[meta["verts"]], dtype=np.float32), dtype=wp.vec3, device=device)
    idx = wp.array(np.asarray(inputs[meta["tris"]], dtype=np.int32), dtype=wp.int32, device=device)
    mesh = wp.Mesh(points=pts, indices=idx, support_winding_number=meta["winding"],
                   bvh_constructor=meta["constructor"], bvh_leaf_size=meta["leaf"])
    return {meta["mesh"]: mesh.id, "_keep": (mesh, pts, idx)}


def sample_mesh_inputs(spec, rng):
    meta = spec.meta
    out = {a.name: _array_sampler(a, rng) for a in spec.args}
    V, F = sample_mesh(rng, meta["mtype"], meta["size"], meta["scale"])
    out[meta["verts"]] = V
    out[meta["tris"]] = F
    if meta.get("dirs"):
        out[meta["dirs"]] = (_unit_dirs(rng, Q, 0.05) * rng.uniform(0.5, 1.5, (Q, 1))).astype(np.float32)
    return out


def is_closed(meta) -> bool:
    return meta["mtype"] in CLOSED


# --------------------------------------------------------------------------------------------------------
# Quantities of a mesh query (mesh_point / mesh_ray): locals initialised before the query and set on a hit


def declare(b: Builder, quantities: dict, wants: set, slots) -> None:
    """Initialise the locals of the wanted quantities; ``slots`` are (want, local, initial value, kind, interval)."""
    for want, name, init, kind, iv in slots:
        if want in wants:
            b.line(f"{name} = {init}")
            quantities[name] = (kind, iv)


def face_slots(meta: dict) -> list[tuple]:
    """The face a query found and the weights of its first two vertices."""
    return [("face", "fi", "int(-1)", "i", Interval(-1, meta["nt"])),
            ("uv", "bu", "float(0.0)", "f", Interval(0.0, 1.0)),
            ("uv", "bv", "float(0.0)", "f", Interval(0.0, 1.0))]


NORMAL_SLOT = ("nrm", "nrm", "wp.vec3(0.0)", "v", Interval(-1.0, 1.0))


def set_on_hit(b: Builder, wants: set, updates) -> None:
    """The lines of ``updates`` ((want, line)) whose quantity is wanted."""
    for want, line in updates:
        if want in wants:
            b.line(line)


def face_updates(F: str, U: str, V: str) -> list[tuple[str, str]]:
    return [("face", f"fi = {F}"), ("uv", f"bu = {U}"), ("uv", f"bv = {V}")]


def face_values(q: dict, wants: set, hit, best, bu, bv, normals) -> None:
    """Reference values of the face quantities at the hit face ``best`` (their initial values on a miss)."""
    if "face" in wants:
        q["fi"] = np.where(hit, best, -1).astype(np.float64)
    if "uv" in wants:
        q["bu"] = np.where(hit, bu, 0.0)
        q["bv"] = np.where(hit, bv, 0.0)
    if "nrm" in wants:
        q["nrm"] = np.where(hit[:, None], normals[best], 0.0)


def face_normals(A, B, C):
    """Unit normals ``normalize(cross(b - a, c - a))`` of triangles (T,3)."""
    n = np.cross(B - A, C - A)
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def closest_points(P, A, B, C):
    """Closest-point weights (Q,T,3), closest points (Q,T,3) and distances (Q,T) of points P (Q,3) on triangles."""
    W = closest_on_triangles(P[:, None], A[None], B[None], C[None])
    X = W[..., 0:1] * A[None] + W[..., 1:2] * B[None] + W[..., 2:3] * C[None]
    return W, X, np.linalg.norm(X - P[:, None], axis=-1)


# --------------------------------------------------------------------------------------------------------
# Kind: mesh_point (closest / furthest point queries)


#: share of mesh_point kernels that query the winding number (issue 14: 5 records in a ~10k dataset at ~5%;
#: measured 2 per 100 spatial records before, 5 per 100 at 0.25)
WINDING_SHARE = 0.4


def gen_mesh_point(rng):
    winding = rng.random() < WINDING_SHARE
    b, meta = new_mesh_kernel(rng, "mesh_point", closed_only=winding)
    closed = is_closed(meta)
    soup = meta["mtype"] == "soup"
    sc = meta["scale"]
    mname = meta["mesh"]
    mesh_args(rng, b, meta, verts_in=False)
    qn = query_points(rng, b, meta, 1.5)
    fn = "no_sign"
    if closed and rng.random() < 0.85:      # the winding number has its own share (WINDING_SHARE)
        fn = pick(rng, ("sign", "sign_normal", "sign_parity"))
    if rng.random() < 0.15:
        fn = "furthest"
    if winding:
        fn = "sign_winding_number"
    meta["fn"] = fn
    meta["winding"] = fn == "sign_winding_number"
    maxd_mode = pick(rng, ("literal", "param"))
    md_lo, md_hi = 0.4 * sc, 1.2 * sc
    if fn == "furthest":
        MD = "0.0"
        meta["maxd"] = 0.0
        maxd_mode = "literal"
    elif maxd_mode == "param":
        MD = pick(rng, ("max_dist", "max_d", "reach", "cutoff"))
        b.param(Arg(MD, "float32", "scalar", (), round(md_lo, 3), round(md_hi, 3)))
        meta["maxd_param"] = MD
        meta["weak"] = [MD]
    else:
        meta["maxd"] = _short(rng, md_lo, md_hi)
        MD = _lit(meta["maxd"])
    meta["maxd_mode"] = maxd_mode
    p = pick(rng, ("p", "x", "pt", "xq"))
    b.line(f"{p} = {qn}[i]")
    api = "struct" if rng.random() < 0.6 else "args"
    name = {"no_sign": "mesh_query_point_no_sign", "sign": "mesh_query_point", "sign_normal":
            "mesh_query_point_sign_normal", "sign_winding_number": "mesh_query_point_sign_winding_number",
            "sign_parity": "mesh_query_point_sign_parity", "furthest": "mesh_query_furthest_point_no_sign"}[fn]
    signed = fn.startswith("sign")
    # which quantities (face-dependent ones only on soups, where ties are rare and masked)
    wants = {"d"}
    for qn_, prob in (("c", 0.4), ("hit", 0.3), ("face", 0.35), ("uv", 0.35), ("nrm", 0.3), ("sd", 0.8),
                      ("inside", 0.3)):
        if rng.random() < prob:
            wants.add(qn_)
    if not soup:
        wants -= {"face", "uv", "nrm"}
    if not signed:
        wants -= {"sd", "inside"}
    if fn == "furthest":
        wants -= {"hit", "face", "uv", "nrm"}
    d = pick(rng, ("d", "dist", "dmin"))
    cpt = pick(rng, ("c", "cp", "closest"))
    quantities = {d: ("f", Interval(0.0, 4.0 * sc))}
    fallback = MD if fn != "furthest" else "0.0"
    b.line(f"{d} = float({fallback})" if maxd_mode == "literal" else f"{d} = {fallback}")
    declare(b, quantities, wants, [("c", cpt, p, "v", Interval(-2.5 * sc, 2.5 * sc)),
                                   ("hit", "found", "int(0)", "i", Interval(0, 1)), *face_slots(meta), NORMAL_SLOT,
                                   ("sd", "sd", "float(0.0)", "f", Interval(-4.0 * sc, 4.0 * sc)),
                                   ("inside", "inside", "int(0)", "i", Interval(0, 1))])
    if api == "struct":
        qv = pick(rng, ("q", "res", "hitq", "mq"))
        b.line(f"{qv} = wp.{name}({mname}, {p}, {MD})")
        F, U, V, S = f"{qv}.face", f"{qv}.u", f"{qv}.v", f"{qv}.sign"
        b.line(f"if {qv}.result:")
    else:
        F, U, V, S = "face", "u", "v", "sgn"
        b.line("face = int(0)")
        b.line("u = float(0.0)")
        b.line("v = float(0.0)")
        extra = ""
        if signed:
            b.line("sgn = float(0.0)")
            extra = "sgn, "
        b.line(f"if wp.{name}({mname}, {p}, {MD}, {extra}face, u, v):")
    b.depth += 1
    pos = f"wp.mesh_eval_position({mname}, {F}, {U}, {V})"
    if "c" in wants:
        b.line(f"{cpt} = {pos}")
        b.line(f"{d} = wp.length({cpt} - {p})" if rng.random() < 0.5 else f"{d} = wp.length({p} - {cpt})")
    else:
        b.line(f"{d} = wp.length({pos} - {p})")
    set_on_hit(b, wants, [("hit", "found = 1"), *face_updates(F, U, V),
                          ("nrm", f"nrm = wp.mesh_eval_face_normal({mname}, {F})"), ("sd", f"sd = {S} * {d}"),
                          ("inside", f"if {S} < 0.0:"), ("inside", "    inside = 1")])
    b.depth = 1
    meta.update(wants=sorted(wants), d=d, c=cpt)
    features = {"query": name, "api": api, "mesh": meta["mtype"], "quantities": sorted(wants),
                "max_dist": maxd_mode}
    return b, meta, (quantities, features, Q)


def ref_mesh_point(meta, inputs):
    V, F, A, B, C = _tri_arrays(inputs, meta)
    P = np.asarray(inputs[meta["qs"]], dtype=np.float64)
    W, X, D = closest_points(P, A, B, C)
    sc = meta["scale"]
    band = BAND * sc
    rows = np.arange(P.shape[0])
    if meta["fn"] == "furthest":
        used = np.zeros(V.shape[0], dtype=bool)
        used[F.ravel()] = True
        Dv = np.where(used[None], np.linalg.norm(V[None] - P[:, None], axis=-1), -np.inf)
        far = np.argmax(Dv, axis=1)
        srt = np.sort(Dv, axis=1)
        rowmask = ~np.isfinite(srt[:, -1])
        if "c" in meta["wants"]:
            rowmask |= srt[:, -1] - srt[:, -2] <= band
        q = {meta["d"]: srt[:, -1], meta["c"]: V[far]}
        return q, rowmask
    maxd = float(np.float32(inputs[meta["maxd_param"]])) if meta["maxd_mode"] == "param" else \
        float(np.float32(meta["maxd"]))
    best = np.argmin(D, axis=1)
    dbest = D[rows, best]
    hit = dbest < maxd
    srt = np.sort(D, axis=1)
    gap = srt[:, 1] - srt[:, 0] if D.shape[1] > 1 else np.full(P.shape[0], np.inf)
    rowmask = np.abs(dbest - maxd) <= band
    rowmask |= ~np.isfinite(dbest)
    wants = set(meta["wants"])
    if wants & {"face", "uv", "nrm"}:
        rowmask |= gap <= band
    q = {meta["d"]: np.where(hit, dbest, maxd)}
    if "c" in wants:
        q[meta["c"]] = np.where(hit[:, None], X[rows, best], P)
    if "hit" in wants:
        q["found"] = hit.astype(np.float64)
    face_values(q, wants, hit, best, W[rows, best, 0], W[rows, best, 1], face_normals(A, B, C))
    if wants & {"sd", "inside"}:
        inside = winding(P, A, B, C) > 0.5
        sign = np.where(inside, -1.0, 1.0)
        rowmask |= dbest <= 10 * band
        if "sd" in wants:
            q["sd"] = np.where(hit, sign * dbest, 0.0)
        if "inside" in wants:
            q["inside"] = (hit & inside).astype(np.float64)
    return q, rowmask


# --------------------------------------------------------------------------------------------------------
# Kind: mesh_ray (closest hit, any hit, intersection counts)


def gen_mesh_ray(rng):
    b, meta = new_mesh_kernel(rng, "mesh_ray")
    sc = meta["scale"]
    mname = meta["mesh"]
    fn = pick(rng, ("ray", "ray", "ray", "anyhit", "count"))
    verts_in = fn == "ray" and rng.random() < 0.3         # the kernel reads the vertex array itself
    mesh_args(rng, b, meta, verts_in=verts_in)
    on = pick(rng, ("starts", "origins", "orig", "eye"))
    b.param(Arg(on, "vec3f", "in", (Q,), -1.5 * sc, 1.5 * sc))
    meta["origins"] = on
    dmode = pick(rng, ("array", "normalized", "target", "const"))
    meta["dmode"] = dmode
    o = pick(rng, ("o", "ro", "start"))
    dv = pick(rng, ("dvec", "rd", "direction"))
    b.line(f"{o} = {on}[i]")
    if dmode == "target":
        tn = pick(rng, ("targets", "aim", "look_at"))
        b.param(Arg(tn, "vec3f", "in", (Q,), -0.8 * sc, 0.8 * sc))
        meta["targets"] = tn
        b.line(f"{dv} = {tn}[i] - {o}")
    else:
        emit_direction(rng, b, meta, dv, 0.1)
    meta["fn"] = fn
    maxt_mode = pick(rng, ("literal", "param"))
    if fn == "count":
        maxt_mode = "none"
    elif maxt_mode == "param":
        mt = pick(rng, ("max_t", "tmax", "t_far"))
        b.param(Arg(mt, "float32", "scalar", (), round(0.8 * sc, 3), round(2.5 * sc, 3)))
        meta["maxt_param"] = mt
        meta["weak"] = [mt]
    else:
        meta["maxt"] = _short(rng, 0.8 * sc, 4.0 * sc)
        mt = _lit(meta["maxt"])
    meta["maxt_mode"] = maxt_mode
    quantities = {}
    wants = set()
    if fn == "count":
        b.line(f"nx = wp.mesh_query_ray_count_intersections({mname}, {o}, {dv})")
        quantities["nx"] = ("i", Interval(0, meta["nt"]))
        wants.add("count")
    elif fn == "anyhit":
        b.line("blocked = int(0)")
        b.line(f"if wp.mesh_query_ray_anyhit({mname}, {o}, {dv}, {mt}):")
        b.line("    blocked = 1")
        quantities["blocked"] = ("i", Interval(0, 1))
        wants.add("any")
    else:
        wants = {"t"}
        for qn_, prob in (("hp", 0.4), ("face", 0.35), ("uv", 0.3), ("front", 0.35), ("nrm", 0.3),
                          ("cos", 0.3), ("vdist", 1.0 if verts_in else 0.0)):
            if rng.random() < prob:
                wants.add(qn_)
        t = pick(rng, ("t", "t_hit", "depth"))
        miss = float(pick(rng, (-1.0, 0.0, 10.0)))
        meta["miss"] = miss
        b.line(f"{t} = float({miss})")
        quantities[t] = ("f", Interval(min(miss, 0.0), max(miss, 5.0 * sc * 1.6)))
        declare(b, quantities, wants, [("hp", "hp", o, "v", Interval(-6.0 * sc, 6.0 * sc)), *face_slots(meta),
                                       ("front", "facing", "float(0.0)", "f", Interval(-1.0, 1.0)), NORMAL_SLOT,
                                       ("cos", "cosang", "float(0.0)", "f", Interval(-1.0, 1.0)),
                                       ("vdist", "vdist", "float(0.0)", "f", Interval(0.0, 3.0 * sc))])
        api = "struct" if rng.random() < 0.6 else "args"
        meta["api"] = api
        if api == "struct":
            qv = pick(rng, ("h", "hit", "rq"))
            b.line(f"{qv} = wp.mesh_query_ray({mname}, {o}, {dv}, {mt})")
            T, F, U, V, S, N = (f"{qv}.{x}" for x in ("t", "face", "u", "v", "sign", "normal"))
            b.line(f"if {qv}.result:")
        else:
            T, F, U, V, S, N = "tt", "face", "u", "v", "sgn", "n"
            for ln in ("tt = float(0.0)", "u = float(0.0)", "v = float(0.0)", "sgn = float(0.0)",
                       "n = wp.vec3()", "face = int(0)"):
                b.line(ln)
            b.line(f"if wp.mesh_query_ray({mname}, {o}, {dv}, {mt}, tt, u, v, sgn, n, face):")
        b.depth += 1
        b.line(f"{t} = {T}")
        set_on_hit(b, wants, [("hp", f"hp = {o} + {T} * {dv}"), *face_updates(F, U, V),
                              ("front", f"facing = wp.sign({S})"), ("nrm", f"nrm = {N}"),
                              ("cos", f"cosang = wp.dot({N}, wp.normalize({dv}))")])
        if "vdist" in wants:
            k = int(rng.integers(0, 3))
            meta["vk"] = k
            b.line(f"vdist = wp.length({o} + {T} * {dv} - {meta['verts']}[wp.mesh_get_index({mname}, {F} * 3 + {k})])")
        b.depth = 1
        meta["t"] = t
    meta["wants"] = sorted(wants)
    features = {"query": {"ray": "mesh_query_ray", "anyhit": "mesh_query_ray_anyhit",
                          "count": "mesh_query_ray_count_intersections"}[fn], "mesh": meta["mtype"],
                "direction": dmode, "quantities": sorted(wants), "api": meta.get("api"), "max_t": maxt_mode}
    return b, meta, (quantities, features, Q)


def ref_mesh_ray(meta, inputs):
    V, F, A, B, C = _tri_arrays(inputs, meta)
    O = np.asarray(inputs[meta["origins"]], dtype=np.float64)
    if meta["dmode"] == "target":
        Dr = np.asarray(inputs[meta["targets"]], dtype=np.float64) - O
    else:
        Dr = ray_directions(meta, inputs, O.shape)
    sc = meta["scale"]
    band = BAND * sc
    o, d = O[:, None], Dr[:, None]
    e1, e2 = (B - A)[None], (C - A)[None]
    with np.errstate(all="ignore"):
        pv = np.cross(d, e2)
        det = np.sum(e1 * pv, -1)
        tv = o - A[None]
        wb = np.sum(tv * pv, -1) / det
        qv = np.cross(tv, e1)
        wc = np.sum(d * qv, -1) / det
        t = np.sum(e2 * qv, -1) / det
    wa = 1.0 - wb - wc
    inside = (wa >= 0) & (wb >= 0) & (wc >= 0)
    bmin = np.minimum(np.minimum(wa, wb), wc)
    nn = face_normals(A, B, C)
    dl = np.linalg.norm(Dr, axis=1)
    cos = np.sum(nn[None] * Dr[:, None], -1) / dl[:, None]
    if meta["maxt_mode"] == "none":
        maxt = np.inf
    else:
        maxt = float(np.float32(inputs[meta["maxt_param"]])) if meta["maxt_mode"] == "param" else \
            float(np.float32(meta["maxt"]))
    tl = band / np.maximum(dl, 1e-12)[:, None]         # the band in units of t
    near = (t > -tl) & (t < maxt + tl)
    rowmask = np.any(near & (np.abs(bmin) <= BAND), axis=1)      # ray through an edge
    rowmask |= np.any(near & (bmin > -BAND) & (np.abs(cos) <= 1e-3), axis=1)  # grazing
    valid = inside & (t >= 0) & (t < maxt)
    rowmask |= np.any(inside & ((np.abs(t) <= tl) | (np.abs(t - maxt) <= tl)), axis=1)
    rowmask |= ~np.all(np.isfinite(np.where(near, t, 0.0)), axis=1)
    fn = meta["fn"]
    q = {}
    if fn == "count":
        q["nx"] = (inside & (t >= 0)).sum(axis=1).astype(np.float64)
    elif fn == "anyhit":
        q["blocked"] = valid.any(axis=1).astype(np.float64)
    else:
        tm = np.where(valid, t, np.inf)
        best = np.argmin(tm, axis=1)
        rows = np.arange(O.shape[0])
        tb = tm[rows, best]
        hit = np.isfinite(tb)
        srt = np.sort(tm, axis=1)
        if tm.shape[1] > 1:
            rowmask |= hit & (srt[:, 1] - srt[:, 0] <= tl[:, 0])
        wants = set(meta["wants"])
        q[meta["t"]] = np.where(hit, tb, meta["miss"])
        if "hp" in wants:
            q["hp"] = np.where(hit[:, None], O + np.where(hit, tb, 0.0)[:, None] * Dr, O)
        face_values(q, wants, hit, best, wa[rows, best], wb[rows, best], nn)
        if "front" in wants:
            q["facing"] = np.where(hit, -np.sign(cos[rows, best]), 0.0)
        if "cos" in wants:
            q["cosang"] = np.where(hit, cos[rows, best], 0.0)
        if "vdist" in wants:
            vk = V[F[best, meta["vk"]]]
            hp = O + np.where(hit, tb, 0.0)[:, None] * Dr
            q["vdist"] = np.where(hit, np.linalg.norm(hp - vk, axis=1), 0.0)
    return q, rowmask


# --------------------------------------------------------------------------------------------------------
# Kind: mesh_region (mesh_query_sphere / mesh_query_aabb triangle loops)


def gen_mesh_region(rng):
    b, meta = new_mesh_kernel(rng, "mesh_region")
    sc = meta["scale"]
    mname = meta["mesh"]
    mesh_args(rng, b, meta, verts_in=False)
    qn = query_points(rng, b, meta, 1.2)
    mode = pick(rng, ("sphere", "aabb"))
    meta["mode"] = mode
    size_mode = pick(rng, ("param", "literal"))
    hn = pick(rng, ("radius", "r", "reach") if mode == "sphere" else ("half", "h", "extent"))
    h_lo, h_hi = 0.2 * sc, 0.5 * sc
    if size_mode == "param":
        b.param(Arg(hn, "float32", "scalar", (), round(h_lo, 3), round(h_hi, 3)))
        H = hn
    else:
        meta["h_lit"] = _short(rng, h_lo, h_hi)
        H = _lit(meta["h_lit"])
    meta.update(size_mode=size_mode, hname=hn)
    c = pick(rng, ("c", "center", "p"))
    b.line(f"{c} = {qn}[i]")
    tv = pick(rng, ("t", "tri", "f"))
    pair_leaves = {"fdist": Interval(0.0, 2.0 * sc), "wp.float32(" + tv + ")": Interval(0.0, meta["nt"] - 1.0)}
    if rng.random() < 0.5:
        pair_leaves["hgt"] = Interval(-2.0 * sc, 2.0 * sc)
    acc_names = pick(rng, ("n", "cnt", "s", "acc", "total", "m_", "best", "near", "ks"), 4)
    accs = make_accumulators(rng, b, pair_leaves, "fn_" if rng.random() < 0.5 else None, tv, meta["nt"],
                             acc_names)
    qv = pick(rng, ("query", "q", "it"))
    if mode == "sphere":
        b.line(f"{qv} = wp.mesh_query_sphere({mname}, {c}, {H})")
        nxt = pick(rng, ("mesh_query_next", "mesh_query_aabb_next"))
    else:
        b.line(f"{qv} = wp.mesh_query_aabb({mname}, {c} - wp.vec3({H}), {c} + wp.vec3({H}))")
        nxt = pick(rng, ("mesh_query_aabb_next", "mesh_query_next"))
    b.line(f"{tv} = int(0)")
    b.line(f"while wp.{nxt}({qv}, {tv}):")
    b.depth += 1
    used = acc_uses(accs)
    need_fn = "hgt" in used or any(a["kind"] == "vsum" for a in accs)
    if used & {"fdist", "hgt"}:
        b.line(f"fc = wp.mesh_eval_position({mname}, {tv}, 1.0 / 3.0, 1.0 / 3.0)")
    if "fdist" in used:
        b.line(f"fdist = wp.length(fc - {c})")
    if need_fn:
        b.line(f"fn_ = wp.mesh_eval_face_normal({mname}, {tv})")
    if "hgt" in used:
        b.line(f"hgt = wp.dot(fn_, {c} - fc)")
    emit_updates(rng, b, accs, tv)
    b.depth = 1
    meta.update(accs=accs, t=tv)
    quantities = acc_quantities(accs)
    features = {"query": "mesh_query_" + mode, "next": nxt, "mesh": meta["mtype"],
                "accumulators": sorted(a["kind"] for a in accs)}
    return b, meta, (quantities, features, Q)


def ref_mesh_region(meta, inputs):
    V, F, A, B, C = _tri_arrays(inputs, meta)
    P = np.asarray(inputs[meta["qs"]], dtype=np.float64)
    sc = meta["scale"]
    band = BAND * sc
    h = float(np.float32(inputs[meta["hname"]])) if meta["size_mode"] == "param" else float(np.float32(meta["h_lit"]))
    if meta["mode"] == "sphere":
        _, _, D = closest_points(P, A, B, C)
        member = D <= h
        rowmask = np.any(np.abs(D - h) <= band, axis=1)
    else:
        tlo, thi = np.minimum(np.minimum(A, B), C), np.maximum(np.maximum(A, B), C)
        qlo, qhi = P - h, P + h
        mm = np.minimum(qhi[:, None] - tlo[None], thi[None] - qlo[:, None]).min(axis=-1)
        member = mm >= 0
        rowmask = np.any(np.abs(mm) <= band, axis=1)
    third = float(np.float32(1.0 / 3.0))
    fc = A * third + B * third + C * (1.0 - 2.0 * third)
    nn = face_normals(A, B, C)
    env = {"fdist": np.linalg.norm(fc[None] - P[:, None], axis=-1),
           "hgt": np.sum(nn[None] * (P[:, None] - fc[None]), -1),
           "wp.float32(" + meta["t"] + ")": np.broadcast_to(np.arange(F.shape[0], dtype=np.float64)[None],
                                                            member.shape)}
    idx = np.broadcast_to(np.arange(F.shape[0])[None], member.shape)
    q = reduce_accumulators(meta["accs"], member, env, idx, np.broadcast_to(nn[None], member.shape + (3,)))
    return q, rowmask


# --------------------------------------------------------------------------------------------------------
# Kind: volume (wp.Volume sampling and lookups), a whole program on the IR (kernels.ir): the queries are op rows
# (volume_world_to_index, volume_sample_linear/_closest, volume_index_to_world, volume_lookup) whose NumPy
# semantics live in kernels.ir.volume; the post-processing is drawn by kernels.ir.gen.ExprBuilder; the printer
# writes the source and the interpreter, with the sampled voxels bound to the volume id, is the reference.

VEC3 = Vector(FLOAT32, 3)
VOL_NAMES = ("vol", "volume", "sdf", "density", "field_id")
VOXEL_NAMES = ("voxels", "grid_values", "dense", "samples3d")
POST_VOCAB = Vocabulary({"add": 3, "sub": 3, "mul": 3, "div": 1, "min": 1, "max": 1, "abs": 0.5, "sqrt": 0.4,
                         "sin": 0.4, "cos": 0.4, "tanh": 0.5, "exp": 0.2, "where": 0.6},
                        types=(FLOAT32,), ranges={FLOAT32: IV(-2.0, 2.0)}, limit=1e4, p_leaf=0.35, p_const=0.15)


@dataclass(frozen=True, slots=True)
class VolumeMeta(IRMeta):
    """The IR kernel and launch shape, and the volume ``prepare`` builds for parameter ``volume``: voxels from
    the aux input ``voxels`` (float32, ``shape``), ``origin``, ``voxel`` size, ``background``."""

    volume: str = "vol"
    voxels: str = "voxels"
    shape: tuple[int, int, int] = (8, 8, 8)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    voxel: float = 1.0
    background: float = 0.0
    cells: str | None = None


def _world_box(meta: VolumeMeta) -> tuple[np.ndarray, np.ndarray]:
    """Per-component world range of the query points: the volume and one voxel around it (background there)."""
    o = np.asarray(meta.origin, dtype=np.float64)
    return o - meta.voxel, o + np.asarray(meta.shape, dtype=np.float64) * meta.voxel


def draw_volume_kernel(rng) -> tuple[n.Kernel, dict, VolumeMeta, dict]:
    shape = tuple(int(x) for x in rng.integers(3, 11, 3))
    voxel = float(pick(rng, VOL.VOXELS[:4]))
    origin = tuple(round(float(x), 2) for x in rng.uniform(-2.0, 2.0, 3))
    background = round(float(rng.uniform(-1.0, 1.0)), 2)
    vol, pts = pick(rng, VOL_NAMES), pick(rng, ("pts", "points", "probes", "xs", "world"))
    meta = VolumeMeta(n.Kernel("k", (), ()), (Q,), vol, pick(rng, VOXEL_NAMES), shape, origin, voxel, background)
    lo, hi = _world_box(meta)
    ranges = {vol: IV(0.0, 0.0), pts: IV(float(lo.min()), float(hi.max()))}
    params = [n.Param(vol, UINT64), n.Param(pts, Array(VEC3))]
    V = n.Var(vol, UINT64)
    i = n.Var("i", INT32)
    p, uvw = pick(rng, ("p", "x", "pw")), pick(rng, ("uvw", "ijk_f", "idx_pos"))
    body: list[n.Stmt] = [n.Let(p, n.Load(pts, Array(VEC3), (i,))),
                          n.Let(uvw, n.call("volume_world_to_index", V, n.Var(p, VEC3)))]
    leaves: list = []
    uvw_iv = VOL.iv_world_to_index(ranges[pts])
    used = []
    modes = pick(rng, (("linear",), ("linear",), ("closest",), ("linear", "closest")))
    with_grad = rng.random() < 0.35
    if with_grad:                       # its value is the LINEAR sample: it takes that sample's place
        modes = tuple(m for m in modes if m != "linear")
    for mode, local in zip(modes, pick(rng, ("s", "val", "phi", "rho"), 2)):
        body.append(n.Let(local, n.call(f"volume_sample_{mode}", V, n.Var(uvw, VEC3))))
        leaves.append((n.Var(local, FLOAT32), VOL.VALUES))
        used.append(f"volume_sample_f/{mode.upper()}")
    if with_grad:
        g, gs = pick(rng, (("g", "gs"), ("grad", "s_grad"), ("dphi", "phi_g")))
        zero = n.Const(0.0, FLOAT32)
        body.append(n.Let(g, n.call("vec3", zero, zero, zero)))
        body.append(n.LetOut(gs, n.call("volume_sample_grad_linear", V, n.Var(uvw, VEC3)), g))
        leaves.append((n.Var(gs, FLOAT32), VOL.VALUES))
        grad = n.Var(g, VEC3)
        if rng.random() < 0.5:
            leaves.append((n.call("length", grad), IV(0.0, math.sqrt(3.0) * VOL.grad_bound().mag)))
        else:
            leaves.append((n.Component(grad, int(rng.integers(3))), VOL.grad_bound()))
        used.append("volume_sample_grad_f")
    if rng.random() < 0.4:
        c = pick(rng, (0, 1, 2))
        leaves.append((n.Component(n.Var(uvw, VEC3), c), uvw_iv))
    cells = None
    if rng.random() < 0.35:
        cells = pick(rng, ("cells", "ijk", "index_pts"))
        params.append(n.Param(cells, Array(VEC3)))
        ranges[cells] = IV(-1.0, float(max(shape)))
        w = pick(rng, ("w", "xw", "pos_w"))
        body.append(n.Let(w, n.call("volume_index_to_world", V, n.Load(cells, Array(VEC3), (i,)))))
        gap = n.call("length", n.call("sub", n.Var(w, VEC3), n.Var(p, VEC3)))
        body.append(n.Let("gap", gap))
        leaves.append((n.Var("gap", FLOAT32), IV(0.0, 1e3)))
        used.append("volume_index_to_world")
    if rng.random() < 0.4:
        sx, sy = shape[0], shape[1]
        ix = n.call("mod", i, n.Const(sx, INT32))
        iy = n.call("mod", n.call("floordiv", i, n.Const(sx, INT32)), n.Const(sy, INT32))
        if rng.random() < 0.5:
            layer = pick(rng, ("layer", "kz", "slab"))
            params.append(n.Param(layer, Array(INT32)))
            ranges[layer] = IV(-1.0, float(shape[2]))
            iz = n.Load(layer, Array(INT32), (i,))
        else:
            iz = n.Const(int(rng.integers(0, shape[2])), INT32)
        body.append(n.Let("lv", n.call("volume_lookup", V, ix, iy, iz)))
        leaves.append((n.Var("lv", FLOAT32), VOL.VALUES))
        used.append("volume_lookup_f")
    if rng.random() < 0.35:
        gain = pick(rng, ("gain", "weights", "scale_in"))
        params.append(n.Param(gain, Array(FLOAT32)))
        ranges[gain] = IV(0.5, 2.0)
        body.append(n.Let("wq", n.Load(gain, Array(FLOAT32), (i,))))
        leaves.append((n.Var("wq", FLOAT32), IV(0.5, 2.0)))
    gen = ExprBuilder(rng, POST_VOCAB, leaves)
    outs = pick(rng, ("out", "res", "result", "dst", "score", "y"), int(rng.integers(1, 3)))
    for k, oname in enumerate(outs):
        params.append(n.Param(oname, Array(FLOAT32)))
        target = (oname, Array(FLOAT32), (i,))
        if k == 0 and rng.random() < 0.4:
            cond = n.Call(pick(rng, ("gt", "lt")), (leaves[0][0], n.Const(round(float(rng.uniform(-1, 1)), 2),
                                                                         FLOAT32)))
            body.append(n.If(cond, (n.Store(*target, _sensible(gen, (1, 3), 6)),),
                             (n.Store(*target, _sensible(gen, (1, 2), 4)),)))
        else:
            body.append(n.Store(*target, _sensible(gen, (1, 3), 7)))
    kernel = n.Kernel("wkf_kernel", tuple(params), tuple(body))
    kernel = analysis.remove_dead(analysis.fold_unused(kernel))
    meta = replace(meta, kernel=kernel, cells=cells)
    return kernel, ranges, meta, {"queries": used}


def _sensible(gen: ExprBuilder, depths: tuple[int, int], max_ops: int) -> n.Expr:
    """A drawn expression that is not :func:`silly` (the last of a few draws otherwise)."""
    for _ in range(8):
        e = gen.sized(FLOAT32, depths, max_ops)[0]
        if not silly(e):
            break
    return e


def draw_volume(rng) -> Program:
    kernel, ranges, meta, info = first_clean(lambda: draw_volume_kernel(rng), Q)
    feats = {**ir_features(kernel), "kind": "volume", **info}
    # Warp's adjoint of volume_sample_grad_f is not checked here: kernels that use it are not differentiated
    prog = ir_program(kernel, ranges, (Q,), feats,
                      differentiable=None if "volume_sample_grad_f" not in info["queries"] else False)
    shape = meta.shape
    aux = Arg(meta.voxels, "float32", "aux", shape, -2.0, 2.0)
    meta = replace(meta, kernel=prog.meta.kernel)
    return replace(prog, args=prog.args + (aux,), meta=meta)


def volume_of(meta: VolumeMeta, inputs) -> VOL.DenseVolume:
    return VOL.DenseVolume(np.asarray(inputs[meta.voxels], dtype=np.float32), meta.origin, meta.voxel,
                           meta.background)


def run_volume(spec: KernelSpec, inputs, exact: bool) -> dict[str, np.ndarray]:
    """The interpreter with the sampled voxels bound to the volume parameter."""
    meta: VolumeMeta = spec.meta
    with VOL.bound(volume_of(meta, inputs)) as key:
        values = {k: v for k, v in inputs.items() if k != meta.voxels}
        values[meta.volume] = np.uint64(key)
        result = interp.run(meta.kernel, meta.dim, values, exact=exact)
    return {a.name: result[a.name] for a in spec.args if a.is_output}


def prep_volume(meta: VolumeMeta, inputs, device) -> dict:
    values = np.asarray(inputs[meta.voxels], dtype=np.float32)
    volume = wp.Volume.load_from_numpy(values, min_world=meta.origin, voxel_size=meta.voxel,
                                       bg_value=float(meta.background), device=device)
    return {meta.volume: volume.id, "_keep": volume}


def sample_volume(spec: KernelSpec, rng) -> dict:
    meta: VolumeMeta = spec.meta
    out = {a.name: _array_sampler(a, rng) for a in spec.args}
    lo, hi = _world_box(meta)
    pts = next(p.name for p in meta.kernel.params if isinstance(p.type, Array) and p.type.dtype == VEC3
               and p.name != meta.cells)
    out[pts] = rng.uniform(lo, hi, (Q, 3)).astype(np.float32)
    if meta.cells:
        out[meta.cells] = rng.uniform(-1.0, np.asarray(meta.shape, dtype=np.float64), (Q, 3)).astype(np.float32)
    return out


def screened_volume(rng, tries: int = 6) -> Program:
    """``draw_volume`` until the verifier's own checks pass with the interpreter standing in for Warp."""
    prog = draw_volume(rng)
    for _ in range(tries - 1):
        family = Family("screen", "", generate=lambda r: prog, reference=reference, tolerance=tolerance,
                        sample_inputs=sample_inputs)
        spec = KernelSpec("screen", 0, int(rng.integers(2**62)), PLACEHOLDER, prog)
        try:
            screen(family, spec, lambda inputs: run_volume(spec, inputs, exact=True))
            break
        except KernelRejected:
            prog = draw_volume(rng)
    return prog


# --------------------------------------------------------------------------------------------------------
# Family plumbing

KINDS = {"grid": (gen_grid, ref_grid, prep_grid, sample_grid),
         "bvh": (gen_bvh, ref_bvh, prep_bvh, sample_bvh),
         "mesh_point": (gen_mesh_point, ref_mesh_point, prep_mesh, sample_mesh_inputs),
         "mesh_ray": (gen_mesh_ray, ref_mesh_ray, prep_mesh, sample_mesh_inputs),
         "mesh_region": (gen_mesh_region, ref_mesh_region, prep_mesh, sample_mesh_inputs)}
KIND_WEIGHTS = {"grid": 1.0, "bvh": 1.0, "mesh_point": 1.0, "mesh_ray": 1.0, "mesh_region": 0.6, "volume": 1.0}


def generate(rng: np.random.Generator) -> Program:
    kinds = tuple(KIND_WEIGHTS)
    w = np.array([KIND_WEIGHTS[k] for k in kinds])
    kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
    if kind == "volume":
        return screened_volume(rng)
    b, meta, (quantities, features, dim) = KINDS[kind][0](rng)
    live = [a for a, _ in b.params if a.role == "in" or (a.role == "scalar" and a.dtype != ID_DTYPE
                                                         and a.name not in meta.get("weak", ()))]
    if len(live) < 2 + len(meta.get("weak", ())) or rng.random() < 0.2:
        # a per-query value array read into the post-processing (two live inputs besides the structure id)
        taken = set(re.findall(r"[A-Za-z_]\w*", "\n".join(b.body))) | {a.name for a, _ in b.params}
        wn = pick(rng, [n for n in ("w", "gain", "weights", "wq_in") if n not in taken])
        b.param(Arg(wn, b.ty, "in", (dim,), 0.5, 2.0))
        b.line(f"wq = {wn}[i]")
        quantities["wq"] = ("f", Interval(0.5, 2.0))
        meta["wq"] = wn
    outs = make_outputs(rng, b, quantities)
    meta["outputs"] = outs
    meta["dim"] = dim
    meta["ty"] = b.ty
    features = {"dtype": b.ty, "kind": kind, **features,
                "outputs": sorted(o["kind"] for o in outs)}
    return Program(b.source(), b.args(), (dim,), meta, features)


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    meta = spec.meta
    if isinstance(meta, VolumeMeta):
        return run_volume(spec, inputs, exact=False)
    with np.errstate(all="ignore"):
        q, rowmask = KINDS[meta["kind"]][1](meta, inputs)
    if meta.get("wq"):
        q["wq"] = np.asarray(inputs[meta["wq"]], dtype=np.float64)
    return eval_outputs(meta["outputs"], q, rowmask, meta.get("ty", "float32"))


def prepare(spec: KernelSpec, inputs, device, namespace) -> dict:
    if isinstance(spec.meta, VolumeMeta):
        return prep_volume(spec.meta, inputs, device)
    return KINDS[spec.meta["kind"]][2](spec.meta, inputs, device)


def sample_inputs(spec: KernelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if isinstance(spec.meta, VolumeMeta):
        return sample_volume(spec, rng)
    return KINDS[spec.meta["kind"]][3](spec, rng)


def tolerance(spec: KernelSpec) -> Tolerance:
    if isinstance(spec.meta, VolumeMeta):
        return ir_tolerance(spec)
    if spec.meta.get("ty") == "float64":
        return Tolerance(1e-9, 1e-10)
    return Tolerance(1e-4, 1e-5)


FAMILY = Family(
    name="spatial",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=reference,
    tolerance=tolerance,
    sample_inputs=sample_inputs,
    prepare=prepare,
    weight=1.0,
    version=2,
    covers=("wp.HashGrid", "hash_grid_query", "wp.Bvh", "bvh_query_aabb", "bvh_query_ray", "bvh_query_sphere",
            "wp.Mesh", "mesh_query_point", "mesh_query_ray", "mesh_query_sphere", "mesh_query_aabb",
            "mesh_query_point_sign_winding_number", "wp.Volume.load_from_numpy", "volume_sample_f LINEAR/CLOSEST",
            "volume_lookup_f", "volume_world_to_index", "volume_index_to_world", "brute-force references"),
)
