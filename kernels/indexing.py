"""indexing: 1D-4D launches over 1D-4D arrays with random index arithmetic and random element expressions.

``i, j, k, l = wp.tid()`` over a launch grid equal to or smaller than the arrays. Reads use per-dimension index
maps: identity, reversal ``S - 1 - i``, clamped neighbours ``wp.min(i + 1, S - 1)``/``wp.max(i - 2, 0)``/
``wp.clamp``, wrapped neighbours ``(i + c) % S``, mixed ``(i + j) % S``, strides ``i * 2 + 1``, downsampling
``i // 2``, reflection ``wp.abs(i - c)``, fixed slices, bounds spelled as literals, ``a.shape[d]`` or a scalar
parameter; arrays may be the launch's shape, transposed, lower-rank (broadcast), flattened to 1D (row- or
column-major ``i * W + j``) or unflattened from a 1D launch (``a[i // C, i % C]``). Outputs are written
injectively (identity, transposed, reversed, strided, flattened) with ``=`` or ``+=``, optionally behind an
index guard (``if i >= n - 1: return``) or a boundary/interior ``if``/``else``. Element values are random
expression trees (kernels/_expr.py) in float32, float64 or int32 over the loaded values and thread indices.
"""

from __future__ import annotations

import numpy as np

from harness.family import Arg, Family, KernelSpec, Program
from kernels import _expr as E
from kernels import _indexing_lib as L
from kernels._common import ARRAY_NAMES, LOCAL_NAMES, OUT_NAMES, pick, type_tolerance

Ix = L.Ix
MAX_THREADS = 256
WIDTH_NAMES = ("width", "n_cols", "stride", "pitch", "ncol", "row_len")


# --------------------------------------------------------------------------------------------------------
# Launch grid and index maps


def _launch(rng: np.random.Generator, nd: int) -> tuple[int, ...]:
    while True:
        if nd == 1:
            dims = (int(rng.integers(12, 65)),)
        elif nd == 2:
            dims = tuple(int(x) for x in rng.integers(2, 13, size=2))
        elif nd == 3:
            dims = tuple(int(x) for x in rng.integers(2, 7, size=3))
        else:
            dims = tuple(int(x) for x in rng.integers(2, 5, size=4))
        if int(np.prod(dims)) <= MAX_THREADS and int(np.prod(dims)) >= 8:
            return dims


class _Ctx:
    """Per-program generation state: thread variables and the arrays whose shapes index maps may name."""

    def __init__(self, rng, dims, tids):
        self.rng = rng
        self.dims = dims
        self.tids = tids
        self.tvars = [L.ix_var(t, e) for t, e in zip(tids, dims)]
        self.scalars: list[Arg] = []

    def bound(self, array: str, d: int, size: int, allow_shape: bool = True) -> Ix:
        """The size ``size`` of dimension ``d`` of ``array``: a literal, or ``array.shape[d]``."""
        if allow_shape and self.rng.random() < 0.3:
            return Ix("var", (), f"{array}.shape[{d}]", size, size)
        return L.ix_const(size)


def _minus(a: Ix, c: int) -> Ix:
    if a.op == "const":
        return L.ix_const(a.value - c)
    return L.ix_bin("sub", a, L.ix_const(c)) if c else a


def _read_map(ctx: _Ctx, t: Ix, size: int, array: str, d: int, stride: tuple[int, int] | None,
              named: bool = True) -> tuple[Ix, str]:
    """An index into dimension ``d`` (size ``size``) of ``array`` driven by thread variable ``t``.

    ``named``: the bound may be spelled ``array.shape[d]`` (not for flattened arrays, whose dimension is logical).
    """
    rng = ctx.rng
    ext = t.hi + 1
    kinds = ["id", "id", "rev", "clamp_hi", "clamp_lo", "clamp", "wrap", "wrap_back", "down", "reflect", "mix",
             "const", "double_wrap"]
    if stride is not None:
        kinds += ["stride"] * 4
    kind = pick(rng, kinds)
    S = ctx.bound(array, d, size, named)
    c = int(rng.integers(1, 3))
    if kind == "rev":
        return L.ix_bin("sub", _minus(S, 1), t), kind
    if kind == "clamp_hi":
        return L.ix_bin("min", L.ix_bin("add", t, L.ix_const(c)), _minus(S, 1)), kind
    if kind == "clamp_lo":
        return L.ix_bin("max", L.ix_bin("sub", t, L.ix_const(c)), L.ix_const(0)), kind
    if kind == "clamp":
        off = c if rng.random() < 0.5 else -c
        node = L.ix_bin("add", t, L.ix_const(off)) if off > 0 else L.ix_bin("sub", t, L.ix_const(-off))
        hi = size - 1
        return Ix("clamp", (node, L.ix_const(0), _minus(S, 1)), None, min(max(node.lo, 0), hi),
                  max(min(node.hi, hi), 0)), kind
    if kind == "wrap":
        return L.ix_bin("mod", L.ix_bin("add", t, L.ix_const(int(rng.integers(1, max(2, size))))), S), kind
    if kind == "wrap_back":
        cc = int(rng.integers(1, max(2, size)))
        return L.ix_bin("mod", L.ix_bin("sub", L.ix_bin("add", t, S), L.ix_const(cc)), S), kind
    if kind == "down":
        q = int(rng.integers(2, 4))
        return L.ix_bin("floordiv", t, L.ix_const(q)), kind
    if kind == "reflect" and ext >= 3:
        cc = int(rng.integers(1, ext - 1))
        diff = L.ix_bin("sub", t, L.ix_const(cc))
        node = Ix("abs", (diff,), None, 0, max(cc, ext - 1 - cc))
        return node, kind
    if kind == "mix" and len(ctx.tvars) > 1:
        other = pick(rng, [v for v in ctx.tvars if v.value != t.value])
        op = "add" if rng.random() < 0.7 else "mul"
        return L.ix_bin("mod", L.ix_bin(op, t, other), S), kind
    if kind == "double_wrap":
        return L.ix_bin("mod", L.ix_bin("mul", t, L.ix_const(int(rng.integers(2, 4)))), S), kind
    if kind == "const":
        return L.ix_const(int(rng.integers(0, size))), kind
    if kind == "stride":
        s, o = stride
        return L.ix_bin("add", L.ix_bin("mul", t, L.ix_const(s)), L.ix_const(o)) if o else \
            L.ix_bin("mul", t, L.ix_const(s)), kind
    return t, "id"


def _flatten(parts: list[Ix], sizes: list[int], width: Ix | None = None) -> Ix:
    """Row-major flat index of ``parts`` in an array of logical shape ``sizes`` (Horner form)."""
    flat = parts[0]
    for d in range(1, len(parts)):
        w = width if (width is not None and d == len(parts) - 1) else L.ix_const(sizes[d])
        flat = L.ix_bin("add", L.ix_bin("mul", flat, w), parts[d])
    return flat


# --------------------------------------------------------------------------------------------------------
# Array layouts


def _input_array(ctx: _Ctx, name: str) -> tuple[tuple[int, ...], list[tuple[Ix, ...]], list[str]]:
    """Shape of an input array and 1-3 index tuples (one per access) into it, with the index-map kinds."""
    rng = ctx.rng
    nd = len(ctx.dims)
    layouts = ["same", "same", "transpose", "flat", "sub"] if nd > 1 else ["same", "same", "unflat", "flat"]
    layout = pick(rng, layouts)
    n_acc = int(rng.choice([1, 1, 2, 2, 3]))
    if layout == "unflat":
        n = ctx.dims[0]
        divisors = [c for c in range(2, n) if n % c == 0]
        if not divisors:
            layout = "same"
        else:
            cols = pick(rng, divisors)
            t = ctx.tvars[0]
            C = ctx.bound(name, 1, cols)
            acc = [(L.ix_bin("floordiv", t, C), L.ix_bin("mod", t, C))]
            kinds = ["unflat"]
            for _ in range(n_acc - 1):       # neighbours in the flat order, wrapped
                shifted = L.ix_bin("mod", L.ix_bin("add", t, L.ix_const(int(rng.integers(1, n)))), L.ix_const(n))
                acc.append((L.ix_bin("floordiv", shifted, C), L.ix_bin("mod", shifted, C)))
                kinds.append("unflat_wrap")
            return (n // cols, cols), acc, kinds
    if layout == "sub":
        keep = sorted(int(x) for x in rng.choice(nd, size=int(rng.integers(1, nd)), replace=False))
        order = keep if rng.random() < 0.7 else list(rng.permutation(keep))
    elif layout == "transpose":
        order = [int(x) for x in rng.permutation(nd)]
        if order == list(range(nd)):
            order = order[::-1]
    else:
        order = list(range(nd))
    sizes, strides = [], []
    for d in order:
        ext = ctx.dims[d]
        if rng.random() < 0.15:
            s = int(rng.integers(2, 4))
            o = int(rng.integers(0, 2))
            sizes.append(s * (ext - 1) + 1 + o + int(rng.integers(0, 2)))
            strides.append((s, o))
        else:
            sizes.append(ext + (int(rng.integers(1, 4)) if rng.random() < 0.3 else 0))
            strides.append(None)
    width = None
    if layout == "flat" and len(order) > 1 and not ctx.scalars and rng.random() < 0.25:
        # the row pitch as a scalar parameter: any value from the row length to a few more elements (padded
        # rows); the array is sized for the largest
        sname = pick(rng, WIDTH_NAMES)
        extra = int(rng.integers(1, 4))
        ctx.scalars.append(Arg(sname, "int32", "scalar", (), sizes[-1], sizes[-1] + extra))
        width = Ix("var", (), sname, sizes[-1], sizes[-1] + extra)
    accesses, kinds = [], []
    for a in range(n_acc):
        parts, ks = [], []
        for pos, d in enumerate(order):
            if a == 0 and rng.random() < 0.6:
                parts.append(ctx.tvars[d])
                ks.append("id")
                continue
            ix, kind = _read_map(ctx, ctx.tvars[d], sizes[pos], name, pos, strides[pos], layout != "flat")
            parts.append(ix)
            ks.append(kind)
        key = tuple(L.ix_emit(p) for p in parts)
        if any(tuple(L.ix_emit(p) for p in prev) == key for prev in accesses):
            continue
        accesses.append(tuple(parts))
        kinds.extend(ks)
    if layout == "flat":
        col_major = width is None and rng.random() < 0.3 and len(order) > 1
        if col_major:
            flat_acc = [(_flatten(list(p[::-1]), sizes[::-1]),) for p in accesses]
        else:
            flat_acc = [(_flatten(list(p), sizes, width),) for p in accesses]
        total = max([int(np.prod(sizes))] + [f[0].hi + 1 for f in flat_acc])
        total += int(rng.integers(1, 5)) if rng.random() < 0.2 else 0
        return (total,), flat_acc, kinds + ["flat_col" if col_major else "flat_row"]
    return tuple(sizes), accesses, kinds + [layout]


def _output_array(ctx: _Ctx, name: str) -> tuple[tuple[int, ...], tuple[Ix, ...], str]:
    """Shape of an output array and an injective index tuple into it."""
    rng = ctx.rng
    nd = len(ctx.dims)
    layouts = ["same", "same", "rev", "stride", "flat"] + (["transpose", "transpose"] if nd > 1 else [])
    if nd == 1:
        n = ctx.dims[0]
        if any(n % c == 0 for c in range(2, n)):
            layouts.append("unflat")
    layout = pick(rng, layouts)
    tv = ctx.tvars
    if layout == "unflat":
        n = ctx.dims[0]
        cols = pick(rng, [c for c in range(2, n) if n % c == 0])
        C = ctx.bound(name, 1, cols)
        return (n // cols, cols), (L.ix_bin("floordiv", tv[0], C), L.ix_bin("mod", tv[0], C)), layout
    if layout == "flat":
        order = [int(x) for x in rng.permutation(nd)] if rng.random() < 0.3 else list(range(nd))
        sizes = [ctx.dims[d] for d in order]
        flat = _flatten([tv[d] for d in order], sizes)
        total = int(np.prod(sizes))
        if rng.random() < 0.3:
            flat = L.ix_bin("sub", L.ix_const(total - 1), flat)
        return (total,), (flat,), layout
    order = list(range(nd))
    if layout == "transpose":
        order = [int(x) for x in rng.permutation(nd)]
        if order == list(range(nd)):
            order = order[::-1]
    sizes, parts = [], []
    stride_dim = int(rng.integers(nd)) if layout == "stride" else -1
    rev_dims = set(int(x) for x in rng.choice(nd, size=int(rng.integers(1, nd + 1)), replace=False)) \
        if layout == "rev" else set()
    for pos, d in enumerate(order):
        ext = ctx.dims[d]
        if d == stride_dim:
            s, o = int(rng.integers(2, 4)), int(rng.integers(0, 2))
            sizes.append(s * (ext - 1) + 1 + o)
            node = L.ix_bin("mul", tv[d], L.ix_const(s))
            parts.append(L.ix_bin("add", node, L.ix_const(o)) if o else node)
        elif d in rev_dims:
            size = ext + (int(rng.integers(1, 3)) if rng.random() < 0.25 else 0)
            sizes.append(size)
            parts.append(L.ix_bin("sub", _minus(ctx.bound(name, pos, size), 1), tv[d]))
        else:
            sizes.append(ext + (int(rng.integers(1, 3)) if rng.random() < 0.2 else 0))
            parts.append(tv[d])
    return tuple(sizes), tuple(parts), layout


# --------------------------------------------------------------------------------------------------------
# Index conditions (guards and boundary selects): exact integer comparisons on thread indices


def _index_cond(ctx: _Ctx, depth: int = 2) -> tuple:
    rng = ctx.rng
    t = pick(rng, ctx.tvars)
    ext = t.hi + 1
    roll = rng.random()
    if roll < 0.25 and len(ctx.tvars) > 1:
        u = pick(rng, [v for v in ctx.tvars if v.value != t.value])
        op = pick(rng, ("<", ">", "<=", ">=", "=="))
        node = ("cmp", op, t, u)
    elif roll < 0.5:
        node = ("cmp", pick(rng, ("==", "<=")) if rng.random() < 0.5 else "==", t, L.ix_const(0))
    elif roll < 0.75:
        node = ("cmp", pick(rng, ("==", ">=")), t, L.ix_const(ext - 1))
    else:
        node = ("cmp", pick(rng, ("<", ">", "<=", ">=")), t, L.ix_const(int(rng.integers(1, max(2, ext - 1)))))
    if depth > 1 and rng.random() < 0.35:
        other = _index_cond(ctx, depth - 1)
        node = (pick(rng, ("or", "and")), node, other)
    return node


def _selective_cond(ctx: _Ctx, lo: float = 0.1, hi: float = 0.9):
    """An index condition true for a share of the launch grid in [lo, hi] (no tautologies), or None."""
    env = L.launch_indices(ctx.dims, ctx.tids)
    for _ in range(6):
        node = _index_cond(ctx)
        share = float(np.mean(np.broadcast_to(_cond_eval(node, env), ctx.dims)))
        if lo <= share <= hi:
            return node
    return None


class _SpecView:
    """What ``reference`` reads of a KernelSpec (for checks at generation time)."""

    def __init__(self, meta, args):
        self.meta = meta
        self.args = tuple(args)


def _degenerate(meta, args, rng) -> tuple[list[str], list[str]]:
    """Input arrays that do not change any output, and outputs that are constant, on sampled inputs."""
    from harness.verify import default_inputs
    view = _SpecView(meta, args)
    srng = np.random.default_rng(int(rng.integers(2**31)))
    inputs = default_inputs(view, srng)
    base = reference(view, inputs)
    other = reference(view, default_inputs(view, srng))
    constant = [k for k in base if np.all(np.concatenate([base[k].ravel(), other[k].ravel()]) == base[k].flat[0])]
    dead = []
    for a in args:
        if a.role != "in" or sum(b.role in ("in", "scalar") for b in args) < 2:
            continue
        changed = dict(inputs)
        changed[a.name] = default_inputs(_SpecView(meta, [a]), srng)[a.name]
        moved = reference(view, changed)
        if all(np.array_equal(moved[k], base[k]) for k in base):
            dead.append(a.name)
    return dead, constant


def _add_leaf(spec: dict, leaf: str, gen: E.ExprGen) -> None:
    """Make output ``spec`` read ``leaf``: ``node + leaf``."""
    v = E.var(leaf, gen.leaves[leaf])
    node = spec["node"]
    spec["node"] = E.Node("add", (node, v), iv=E.Interval(node.iv.lo + v.iv.lo, node.iv.hi + v.iv.hi))


def _cond_emit(node) -> str:
    if node[0] == "cmp":
        return f"{L.ix_emit(node[2])} {node[1]} {L.ix_emit(node[3])}"
    return f"({_cond_emit(node[1])}) {node[0]} ({_cond_emit(node[2])})"


def _cond_eval(node, env) -> np.ndarray:
    if node[0] == "cmp":
        a, b = L.ix_eval(node[2], env), L.ix_eval(node[3], env)
        return {"<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal,
                "==": np.equal}[node[1]](a, b)
    a, b = _cond_eval(node[1], env), _cond_eval(node[2], env)
    return (a & b) if node[0] == "and" else (a | b)


# --------------------------------------------------------------------------------------------------------
# Program


def _coord_leaf(ty: E.Scalar, t: str) -> str:
    return {"float32": f"float({t})", "float64": f"wp.float64({t})", "int32": t}[ty.name]


def generate(rng: np.random.Generator) -> Program:
    ty = E.SCALARS[pick(rng, ("float32", "float32", "float64", "int32"))]
    nd = int(pick(rng, (1, 2, 2, 3, 3, 4)))
    dims = _launch(rng, nd)
    tids = L.TID_NAMES[:nd]
    ctx = _Ctx(rng, dims, tids)
    n_in = int(rng.integers(1, 4))
    n_out = int(rng.integers(1, 3))
    picked = pick(rng, [n for n in ARRAY_NAMES if n not in tids], n_in)
    outs = pick(rng, OUT_NAMES, n_out)
    lo, hi = (-20, 20) if ty.is_int else pick(rng, ((-2.0, 2.0), (-1.0, 3.0), (0.5, 4.0)))
    args: list[Arg] = []
    body: list[str] = []
    leaves: dict[str, E.Interval] = {}
    reads = []              # (leaf name, array, index tuple)
    layouts = []
    for name in picked:
        shape, accesses, kinds = _input_array(ctx, name)
        layouts.extend(kinds)
        args.append(Arg(name, ty.name, "in", shape, lo, hi))
        for acc in accesses:
            text = f"{name}[{', '.join(L.ix_emit(p) for p in acc)}]"
            if rng.random() < 0.5:
                local = f"{name}{len(reads)}" if rng.random() < 0.5 else f"{pick(rng, ('v', 'x', 'n', 'w'))}{len(reads)}"
                body.append(f"{local} = {text}")
                leaf = local
            else:
                leaf = text
            leaves[leaf] = E.Interval(lo, hi)
            reads.append((leaf, name, acc))
    coord = None
    if rng.random() < 0.3:
        t = pick(rng, tids)
        coord = (_coord_leaf(ty, t), t)
        leaves[coord[0]] = E.Interval(0, dims[tids.index(t)] - 1)
    binary = ("add", "sub", "mul", "div", "min", "max") if not ty.is_int else ("add", "sub", "mul", "min", "max")
    gen = E.ExprGen(rng, ty, dict(leaves), binary=binary, p_leaf=0.35)
    statements = []
    for s in range(int(rng.integers(0, 3))):
        lname = f"{pick(rng, LOCAL_NAMES)}{s}"
        node = gen.expr(int(rng.integers(1, 3)))
        if node.op in ("var", "const"):
            node = gen.apply_binary(pick(rng, binary), node, gen.var_leaf())
        statements.append((lname, node))
        gen.leaves[lname] = node.iv
    # guards: early exit on an index condition, or a boundary/interior split of one output's value
    guard = _selective_cond(ctx, 0.05, 0.5) if rng.random() < 0.2 else None    # threads that return early
    out_specs = []
    for o in outs:
        shape, widx, wlayout = _output_array(ctx, o)
        layouts.append("out_" + wlayout)
        role = "inout" if rng.random() < 0.25 else "out"
        op = "+=" if role == "inout" and rng.random() < 0.6 else "="
        node = gen.expr(int(rng.integers(2, 4)))
        if not E.uses(node) or node.op == "var":
            node = gen.apply_binary(pick(rng, binary), node, gen.expr(2))
        if not E.uses(node):
            node = gen.apply_binary("add", node, gen.var_leaf())
        split = None
        cond = _selective_cond(ctx) if rng.random() < 0.2 else None
        if cond is not None:
            other = gen.expr(int(rng.integers(1, 3)))
            if not E.uses(other):
                other = gen.apply_binary("add", other, gen.var_leaf())
            split = (cond, other)
        out_specs.append({"name": o, "shape": shape, "widx": widx, "role": role, "op": op, "node": node,
                          "split": split})
        args.append(Arg(o, ty.name, role, shape, lo, hi))
    # every read (and local) reaches an output: fold missing ones into the first output
    defs = dict(statements)
    live: set[str] = set()
    frontier: set[str] = set()
    for spec in out_specs:
        frontier |= E.uses(spec["node"])
        if spec["split"]:
            frontier |= E.uses(spec["split"][1])
    while frontier:
        v = frontier.pop()
        if v not in live:
            live.add(v)
            frontier |= E.uses(defs[v]) if v in defs else set()
    missing = [v for v in gen.leaves if v not in live]
    for v in missing:
        spec = out_specs[0]
        spec["node"] = gen.apply_binary(pick(rng, ("add", "sub", "max", "mul")), spec["node"],
                                        E.var(v, gen.leaves[v]))
    args.extend(ctx.scalars)
    meta = {"ty": ty.name, "dims": dims, "tids": tids, "reads": reads, "statements": statements,
            "coord": coord, "guard": guard, "outputs": out_specs,
            "scalars": [a.name for a in ctx.scalars]}
    # semantic check on sampled inputs: an array whose values cannot change any output (x / (-x), a where
    # with a tautology, a max that always picks the other side...) gets one of its reads added to an output
    dead, constant = _degenerate(meta, args, rng)
    for spec in out_specs:
        if spec["name"] in constant:
            _add_leaf(spec, reads[0][0], gen)
            if spec["split"] is not None:
                cond, other = spec["split"]
                spec["split"] = (cond, E.Node("add", (other, E.var(reads[0][0], gen.leaves[reads[0][0]])),
                                              iv=E.Interval(other.iv.lo + lo, other.iv.hi + hi)))
    for name in dead:
        _add_leaf(out_specs[0], next(r[0] for r in reads if r[1] == name), gen)
    if guard is not None:
        body.append(f"if {_cond_emit(guard)}:")
        body.append("    return")
    for lname, node in statements:
        body.append(f"{lname} = {E.emit(node, ty)}")
    for spec in out_specs:
        target = f"{spec['name']}[{', '.join(L.ix_emit(p) for p in spec['widx'])}]"
        if spec["split"]:
            cond, other = spec["split"]
            body += [f"if {_cond_emit(cond)}:", f"    {target} {spec['op']} {E.emit(other, ty)}", "else:",
                     f"    {target} {spec['op']} {E.emit(spec['node'], ty)}"]
        else:
            body.append(f"{target} {spec['op']} {E.emit(spec['node'], ty)}")
    ops = set()
    for _, node in statements:
        ops |= E.ops_of(node)
    for spec in out_specs:
        ops |= E.ops_of(spec["node"])
    features = {"dtype": ty.name, "launch_ndim": nd, "launch": list(dims), "layouts": sorted(set(layouts)),
                "ops": sorted(ops), "inputs": n_in, "outputs": n_out, "guard": guard is not None,
                "array_ndims": sorted({len(a.shape) for a in args if a.role != "scalar"}),
                "augmented": any(s["op"] == "+=" for s in out_specs)}
    source = L.kernel_text(rng, args, body, L.tid_line(tids))
    return Program(source, tuple(args), dims, meta, features, differentiable=not ty.is_int)


# --------------------------------------------------------------------------------------------------------
# Reference


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    meta = spec.meta
    ty = E.SCALARS[meta["ty"]]
    dims = tuple(meta["dims"])
    ienv = L.launch_indices(dims, meta["tids"])
    for a in spec.args:
        if a.role == "scalar":
            ienv[a.name] = np.int64(inputs[a.name])
        else:
            for d, size in enumerate(np.shape(inputs[a.name])):
                ienv[f"{a.name}.shape[{d}]"] = np.int64(size)
    env: dict[str, np.ndarray] = {}
    for leaf, name, acc in meta["reads"]:
        idx = tuple(np.broadcast_to(L.ix_eval(p, ienv), dims) for p in acc)
        env[leaf] = inputs[name].astype(ty.np_ref)[idx]
    if meta["coord"]:
        text, t = meta["coord"]
        env[text] = ienv[t].astype(ty.np_ref)
    for name, node in meta["statements"]:
        env[name] = np.broadcast_to(E.evaluate(node, env, ty), dims)
    active = np.ones(dims, dtype=bool)
    if meta["guard"] is not None:
        active &= ~np.broadcast_to(_cond_eval(meta["guard"], ienv), dims)
    result = {}
    for out in meta["outputs"]:
        arr = inputs[out["name"]].astype(ty.np_ref).copy()
        value = np.broadcast_to(E.evaluate(out["node"], env, ty), dims)
        if out["split"] is not None:
            cond, other = out["split"]
            value = np.where(np.broadcast_to(_cond_eval(cond, ienv), dims),
                             np.broadcast_to(E.evaluate(other, env, ty), dims), value)
        idx = tuple(np.broadcast_to(L.ix_eval(p, ienv), dims)[active] for p in out["widx"])
        value = value[active]
        if out["op"] == "+=":
            arr[idx] = arr[idx] + value          # index maps are injective: one writer per cell
            if ty.is_int:
                arr = E._wrap32(arr)
        else:
            arr[idx] = value
        result[out["name"]] = arr
    return result


FAMILY = Family(
    name="indexing",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=reference,
    tolerance=type_tolerance,
    weight=1.0,
    covers=("multi-dimensional launches", "wp.tid unpacking", "2D/3D/4D arrays", "index arithmetic",
            "clamped and wrapped neighbours", "transposes", "flattening", "strided access", "array.shape",
            "index guards", "float64", "int32"),
)
