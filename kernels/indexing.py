"""indexing: 1D-4D launches over 1D-4D arrays with random index arithmetic and random element expressions.

``i, j, k, l = wp.tid()`` over a launch grid equal to or smaller than the arrays. Reads use per-dimension index
maps: identity, reversal ``S - 1 - i``, clamped neighbours ``wp.min(i + 1, S - 1)``/``wp.max(i - 2, 0)``/
``wp.clamp``, wrapped neighbours ``(i + c) % S``, mixed ``(i + j) % S``, strides ``i * 2 + 1``, downsampling
``i // 2``, reflection ``wp.abs(i - c)``, fixed slices, bounds spelled as literals, ``a.shape[d]`` or a scalar
parameter; arrays may be the launch's shape, transposed, lower-rank (broadcast), flattened to 1D (row- or
column-major ``i * W + j``) or unflattened from a 1D launch (``a[i // C, i % C]``). A binary search
``wp.lower_bound(edges, x)`` into a sorted array may pick the cell a value falls in. Outputs are written
injectively (identity, transposed, reversed, strided, flattened) with ``=`` or ``+=``, optionally behind an
index guard (``if i >= n - 1: return``) or a boundary/interior ``if``/``else``. Element values are random IR
expressions in float32, float64 or int32 over the loaded values and thread indices, sometimes sanitised with
``wp.where(wp.isfinite(v), v, 0.0)``. The reference is the IR interpreter.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.family import KernelSpec, Program
from harness.verify import default_inputs
from kernels.ir import analysis
from kernels.ir import nodes as n
from kernels.ir.arrays import c, first_clean, grid_values, injective, op, outputs_read_inputs, tid_vars
from kernels.ir.family import adjoints_right, features, ir_family
from kernels.ir.family import program as ir_program
from kernels.ir.gen import ARRAY_NAMES, LOCAL_NAMES, OUT_NAMES, ExprBuilder, Names, Vocabulary
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, FLOAT64, INT32, Array, Scalar

MAX_THREADS = 256
WIDTH_NAMES = ("width", "n_cols", "stride", "pitch", "ncol", "row_len")
TYPES = (FLOAT32, FLOAT32, FLOAT64, INT32)
FLOAT_RANGES = (Interval(-2.0, 2.0), Interval(-1.0, 3.0), Interval(0.5, 4.0))
READ_MAPS = ("id", "id", "rev", "clamp_hi", "clamp_lo", "clamp", "wrap", "wrap_back", "down", "reflect", "mix",
             "const", "double_wrap")


def _launch(rng: np.random.Generator, nd: int) -> tuple[int, ...]:
    lo_hi = {1: (12, 65), 2: (2, 13), 3: (2, 7), 4: (2, 5)}[nd]
    while True:
        dims = tuple(int(x) for x in rng.integers(*lo_hi, size=nd))
        if 8 <= int(np.prod(dims)) <= MAX_THREADS:
            return dims


class _Draw:
    """Per-program state: launch, thread variables, names, parameters and the kinds of maps drawn."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.ty: Scalar = TYPES[int(rng.integers(len(TYPES)))]
        self.dims = _launch(rng, int(self.pick([1, 2, 2, 3, 3, 4])))
        self.tv = tid_vars(self.dims)
        self.names = Names(rng, True)
        self.names.used |= {t.name for t in self.tv}
        self.params: list[n.Param] = []
        self.ranges: dict[str, Interval] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.roles: dict[str, str] = {}
        self.scalars: list[n.Param] = []
        self.kinds: list[str] = []
        self.vrange = Interval(-20, 20) if self.ty.is_int else self.pick(list(FLOAT_RANGES))

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def ext(self, t: n.Var) -> int:
        return self.dims[[v.name for v in self.tv].index(t.name)]

    def bound(self, array: str, ndim: int, d: int, size: int, named: bool = True) -> n.Expr:
        """The size of dimension ``d`` of ``array``: a literal, or ``array.shape[d]``."""
        if named and self.rng.random() < 0.3:
            return n.ShapeOf(array, Array(self.ty, ndim), d)
        return c(size)


def _minus(e: n.Expr, k: int) -> n.Expr:
    return c(e.value - k) if isinstance(e, n.Const) else op("sub", e, c(k))


def _read_map(d: _Draw, t: n.Var, size: int, array: str, ndim: int, pos: int, stride, named: bool):
    """An index into dimension ``pos`` (size ``size``) of ``array`` driven by thread variable ``t``."""
    rng, ext = d.rng, d.ext(t)
    kind = d.pick(list(READ_MAPS) + ["stride"] * (4 if stride is not None else 0))
    S = d.bound(array, ndim, pos, size, named)
    k = int(rng.integers(1, 3))
    if kind == "rev":
        return op("sub", _minus(S, 1), t), kind
    if kind == "clamp_hi":
        return op("min", op("add", t, c(k)), _minus(S, 1)), kind
    if kind == "clamp_lo":
        return op("max", op("sub", t, c(k)), c(0)), kind
    if kind == "clamp":
        return op("clamp", op("add" if rng.random() < 0.5 else "sub", t, c(k)), c(0), _minus(S, 1)), kind
    if kind == "wrap":
        return op("mod", op("add", t, c(int(rng.integers(1, max(2, size))))), S), kind
    if kind == "wrap_back":
        return op("mod", op("sub", op("add", t, S), c(int(rng.integers(1, max(2, size))))), S), kind
    if kind == "down":
        return op("floordiv", t, c(int(rng.integers(2, 4)))), kind
    if kind == "reflect" and ext >= 3:
        return op("abs", op("sub", t, c(int(rng.integers(1, ext - 1))))), kind
    if kind == "mix" and len(d.tv) > 1:
        other = d.pick([v for v in d.tv if v != t])
        return op("mod", op("add" if rng.random() < 0.7 else "mul", t, other), S), kind
    if kind == "double_wrap":
        return op("mod", op("mul", t, c(int(rng.integers(2, 4)))), S), kind
    if kind == "const":
        return c(int(rng.integers(0, size))), kind
    if kind == "stride":
        s, o = stride
        return (op("add", op("mul", t, c(s)), c(o)) if o else op("mul", t, c(s))), kind
    return t, "id"


def _flatten(parts: list[n.Expr], sizes: list[int], width: n.Expr | None = None) -> n.Expr:
    """Row-major flat index of ``parts`` in an array of logical shape ``sizes`` (Horner form)."""
    flat = parts[0]
    for k in range(1, len(parts)):
        w = width if (width is not None and k == len(parts) - 1) else c(sizes[k])
        flat = op("add", op("mul", flat, w), parts[k])
    return flat


def _input_array(d: _Draw, name: str) -> tuple[tuple[int, ...], list[tuple[n.Expr, ...]]]:
    """Shape of an input array and 1-3 index tuples (one per access) into it."""
    rng, nd = d.rng, len(d.dims)
    layout = d.pick(["same", "same", "transpose", "flat", "sub"] if nd > 1 else ["same", "same", "unflat", "flat"])
    n_acc = int(d.pick([1, 1, 2, 2, 3]))
    if layout == "unflat":
        N = d.dims[0]
        divisors = [k for k in range(2, N) if N % k == 0]
        if divisors:
            cols = d.pick(divisors)
            t = d.tv[0]
            C = d.bound(name, 2, 1, cols)
            acc = [(op("floordiv", t, C), op("mod", t, C))]
            for _ in range(n_acc - 1):       # neighbours in the flat order, wrapped
                shifted = op("mod", op("add", t, c(int(rng.integers(1, N)))), c(N))
                acc.append((op("floordiv", shifted, C), op("mod", shifted, C)))
            d.kinds.append("unflat")
            return (N // cols, cols), acc
        layout = "same"
    if layout == "sub":
        keep = sorted(int(x) for x in rng.choice(nd, size=int(rng.integers(1, nd)), replace=False))
        order = keep if rng.random() < 0.7 else [int(x) for x in rng.permutation(keep)]
    elif layout == "transpose":
        order = [int(x) for x in rng.permutation(nd)]
        order = order[::-1] if order == list(range(nd)) else order
    else:
        order = list(range(nd))
    sizes, strides = [], []
    for dim in order:
        ext = d.dims[dim]
        if rng.random() < 0.15:
            s, o = int(rng.integers(2, 4)), int(rng.integers(0, 2))
            sizes.append(s * (ext - 1) + 1 + o + int(rng.integers(0, 2)))
            strides.append((s, o))
        else:
            sizes.append(ext + (int(rng.integers(1, 4)) if rng.random() < 0.3 else 0))
            strides.append(None)
    flat = layout == "flat" and len(order) > 1
    width = None
    if flat and not d.scalars and rng.random() < 0.25:
        # the row pitch as a scalar parameter: the row length up to a few more elements (padded rows)
        wname = d.names.fresh(WIDTH_NAMES, "width", 0)
        extra = int(rng.integers(1, 4))
        d.scalars.append(n.Param(wname, INT32))
        d.ranges[wname] = Interval(sizes[-1], sizes[-1] + extra)
        width = n.Var(wname, INT32)
    ndim = 1 if layout == "flat" else len(order)
    accesses: list[tuple[n.Expr, ...]] = []
    for a in range(n_acc):
        parts = []
        for pos, dim in enumerate(order):
            if a == 0 and rng.random() < 0.6:
                parts.append(d.tv[dim])
                continue
            ix, kind = _read_map(d, d.tv[dim], sizes[pos], name, ndim, pos, strides[pos], layout != "flat")
            parts.append(ix)
            d.kinds.append(kind)
        if tuple(parts) not in accesses:
            accesses.append(tuple(parts))
    d.kinds.append(layout)
    if layout == "flat":
        col_major = width is None and rng.random() < 0.3 and len(order) > 1
        if col_major:
            acc = [(_flatten(list(p[::-1]), sizes[::-1]),) for p in accesses]
        else:
            acc = [(_flatten(list(p), sizes, width),) for p in accesses]
        total = int(np.prod(sizes[:-1])) * (sizes[-1] + (3 if width is not None else 0)) if len(sizes) > 1 else \
            sizes[0]
        total += int(rng.integers(1, 5)) if rng.random() < 0.2 else 0
        if col_major:
            d.kinds.append("flat_col")
        return (max(total, int(np.prod(sizes))),), acc
    return tuple(sizes), accesses


def _output_array(d: _Draw, name: str) -> tuple[tuple[int, ...], tuple[n.Expr, ...], str]:
    """Shape of an output array and an injective index tuple into it."""
    rng, nd, tv = d.rng, len(d.dims), d.tv
    layouts = ["same", "same", "rev", "stride", "flat"] + (["transpose", "transpose"] if nd > 1 else [])
    if nd == 1 and any(d.dims[0] % k == 0 for k in range(2, d.dims[0])):
        layouts.append("unflat")
    layout = d.pick(layouts)
    if layout == "unflat":
        N = d.dims[0]
        cols = d.pick([k for k in range(2, N) if N % k == 0])
        C = d.bound(name, 2, 1, cols)
        return (N // cols, cols), (op("floordiv", tv[0], C), op("mod", tv[0], C)), layout
    if layout == "flat":
        order = [int(x) for x in rng.permutation(nd)] if rng.random() < 0.3 else list(range(nd))
        sizes = [d.dims[k] for k in order]
        flat = _flatten([tv[k] for k in order], sizes)
        total = int(np.prod(sizes))
        if rng.random() < 0.3:
            flat = op("sub", c(total - 1), flat)
        return (total,), (flat,), layout
    order = list(range(nd))
    if layout == "transpose":
        order = [int(x) for x in rng.permutation(nd)]
        order = order[::-1] if order == list(range(nd)) else order
    sizes, parts = [], []
    stride_dim = int(rng.integers(nd)) if layout == "stride" else -1
    rev_dims = {int(x) for x in rng.choice(nd, size=int(rng.integers(1, nd + 1)), replace=False)} \
        if layout == "rev" else set()
    for pos, dim in enumerate(order):
        ext = d.dims[dim]
        if dim == stride_dim:
            s, o = int(rng.integers(2, 4)), int(rng.integers(0, 2))
            sizes.append(s * (ext - 1) + 1 + o)
            parts.append(op("add", op("mul", tv[dim], c(s)), c(o)) if o else op("mul", tv[dim], c(s)))
        elif dim in rev_dims:
            size = ext + (int(rng.integers(1, 3)) if rng.random() < 0.25 else 0)
            sizes.append(size)
            parts.append(op("sub", _minus(d.bound(name, nd, pos, size), 1), tv[dim]))
        else:
            sizes.append(ext + (int(rng.integers(1, 3)) if rng.random() < 0.2 else 0))
            parts.append(tv[dim])
    return tuple(sizes), tuple(parts), layout


def _index_cond(d: _Draw, depth: int = 2) -> n.Expr:
    """An exact integer comparison on thread indices (sometimes two joined by and/or)."""
    rng = d.rng
    t = d.pick(d.tv)
    ext = d.ext(t)
    roll = rng.random()
    if roll < 0.25 and len(d.tv) > 1:
        node = op(d.pick(["lt", "gt", "le", "ge", "eq"]), t, d.pick([v for v in d.tv if v != t]))
    elif roll < 0.5:
        node = op(d.pick(["eq", "le"]) if rng.random() < 0.5 else "eq", t, c(0))
    elif roll < 0.75:
        node = op(d.pick(["eq", "ge"]), t, c(ext - 1))
    else:
        node = op(d.pick(["lt", "gt", "le", "ge"]), t, c(int(rng.integers(1, max(2, ext - 1)))))
    if depth > 1 and rng.random() < 0.35:
        node = op(d.pick(["or", "and"]), node, _index_cond(d, depth - 1))
    return node


def _selective_cond(d: _Draw, lo: float = 0.1, hi: float = 0.9) -> n.Expr | None:
    """An index condition true for a share of the launch grid in [lo, hi] (no tautologies), or None."""
    for _ in range(6):
        cond = _index_cond(d)
        if analysis.is_self_operation(cond) or any(analysis.is_self_operation(x) for x in analysis.subexprs(cond)):
            continue
        if lo <= float(np.mean(grid_values(cond, d.dims))) <= hi:
            return cond
    return None


def _draw_kernel(rng: np.random.Generator):
    d = _Draw(rng)
    ty = d.ty
    body: list[n.Stmt] = []
    leaves: list[tuple[n.Expr, Interval]] = []
    for k in range(int(rng.integers(1, 4))):
        name = d.names.fresh(ARRAY_NAMES, f"in{k}", k)
        shape, accesses = _input_array(d, name)
        arr = Array(ty, len(shape))
        d.params.append(n.Param(name, Array(ty, len(shape), short=rng.random() < 0.6)))
        d.shapes[name], d.ranges[name] = shape, d.vrange
        for acc in accesses:
            load = n.Load(name, arr, acc)
            if rng.random() < 0.5:
                local = d.names.fresh((f"{name}{len(leaves)}", f"v{len(leaves)}", f"x{len(leaves)}"),
                                      f"v{len(leaves)}", 0)
                body.append(n.Let(local, load))
                leaves.append((n.Var(local, ty), d.vrange))
            else:
                leaves.append((load, d.vrange))
    n_loaded = len(leaves)
    searched = False
    if ty != INT32 and rng.random() < 0.2:
        searched = _binary_search(d, body, leaves)
    if rng.random() < 0.3:
        t = d.pick(d.tv)
        coord = t if ty == INT32 else op("to_float", t) if ty == FLOAT32 else n.Cast(t, ty)
        leaves.append((coord, Interval(0.0, d.ext(t) - 1.0)))
    if ty != INT32 and rng.random() < 0.12:
        x, iv = d.pick([x for x in leaves if isinstance(x[0], (n.Load, n.Var))])
        local = d.names.fresh(("safe", "clean", "finite_v"), "safe", 0)
        body.append(n.Let(local, n.Call("where", (n.Call("isfinite", (x,)), x, n.Const(0.0, ty)))))
        leaves.append((n.Var(local, ty), iv.join(Interval.point(0.0))))
        d.kinds.append("isfinite")
    ops = {"add": 3, "sub": 3, "mul": 3, "min": 1, "max": 1, "abs": 0.5, "where": 0.5, "ifexp": 0.5,
           **({} if ty.is_int else {"div": 1.5})}
    vocab = Vocabulary(ops, types=(ty,), ranges={ty: d.vrange}, limit=1e4, p_leaf=0.35)
    gen = ExprBuilder(rng, vocab, leaves)
    n_leaves = len(gen.leaves)
    for k in range(int(rng.integers(0, 3))):
        e, iv = gen.compound(ty, int(rng.integers(1, 3)))
        local = d.names.fresh(LOCAL_NAMES, f"t{k}", k, suffix=True)
        body.append(n.Let(local, e))
        gen.leaves.append((n.Var(local, ty), iv))
    guard = _selective_cond(d, 0.05, 0.5) if rng.random() < 0.2 else None
    if guard is not None:
        body.insert(0, n.If(guard, (n.Return(None),)))
        d.kinds.append("guard")
    for k in range(int(rng.integers(1, 3))):
        name = d.names.fresh(OUT_NAMES, f"out{k}", k)
        shape, widx, layout = _output_array(d, name)
        d.kinds.append("out_" + layout)
        arr = Array(ty, len(shape))
        d.params.append(n.Param(name, Array(ty, len(shape), short=rng.random() < 0.6)))
        d.shapes[name] = shape
        inplace = rng.random() < 0.25 * 0.6
        if inplace:
            d.roles[name], d.ranges[name] = "inout", d.vrange
        e, _ = gen.compound(ty, int(rng.integers(2, 4)))
        cond = _selective_cond(d) if rng.random() < 0.2 else None

        def write(value: n.Expr) -> n.Stmt:
            return n.Atomic("add", name, arr, widx, value, inplace=True) if inplace else \
                n.Store(name, arr, widx, value)

        if cond is not None:
            other, _ = gen.compound(ty, int(rng.integers(1, 3)))
            body.append(n.If(cond, (write(other),), (write(e),)))
            d.kinds.append("boundary_split")
        else:
            body.append(write(e))
    kernel = n.Kernel("wkf_kernel", tuple(d.params + d.scalars), tuple(body), tids=tuple(t.name for t in d.tv))
    kernel = analysis.remove_dead(_fold_unused(kernel, leaves[:n_loaded] + gen.leaves[n_leaves:]))
    if not outputs_read_inputs(kernel) or not all(injective(s.index, d.dims, d.shapes[s.array], d.shapes)
                                                  for s in analysis.statements(kernel.body)
                                                  if isinstance(s, (n.Store, n.Atomic))):
        return None
    return kernel, d.ranges, d.dims, d.shapes, d, searched


def _fold_unused(kernel: n.Kernel, leaves: list[tuple[n.Expr, Interval]]) -> n.Kernel:
    """Loaded values and locals that reach no output are added into the last top-level store (the IR's
    ``fold_unused`` loads unused arrays at the store's index, which arrays of other shapes do not allow)."""
    stores = [k for k, s in enumerate(kernel.body) if isinstance(s, n.Store)]
    if not stores:
        return kernel
    last = stores[-1]
    store = kernel.body[last]
    value = store.value
    for e, _ in leaves:
        probe = replace(kernel, body=kernel.body[:last] + (replace(store, value=value),) + kernel.body[last + 1:])
        if e.type == value.type and not analysis.uses(e) <= analysis.reaching(probe):
            value = n.Call("add", (value, e))
    return replace(kernel, body=kernel.body[:last] + (replace(store, value=value),) + kernel.body[last + 1:])


def _binary_search(d: _Draw, body: list[n.Stmt], leaves: list) -> bool:
    """``k = wp.lower_bound(edges, x)`` over a sorted array of bin edges, then a load of a per-bin value (or the
    bin index itself as a value)."""
    x, iv = leaves[0]
    size = int(d.rng.integers(4, 17))
    edges = d.names.fresh(("edges", "bounds", "knots", "breaks", "cdf"), "edges", 0)
    arr = Array(d.ty)
    d.params.append(n.Param(edges, arr))
    d.shapes[edges], d.ranges[edges] = (size,), d.vrange
    k = d.names.fresh(("b", "bin", "slot", "seg"), "b", 0)
    body.append(n.Let(k, n.Call("lower_bound", (n.Var(edges, arr), x))))
    if d.rng.random() < 0.6:
        table = d.names.fresh(("weights", "table", "lut", "per_bin"), "table", 0)
        d.params.append(n.Param(table, arr))
        d.shapes[table], d.ranges[table] = (size,), d.vrange
        leaves.append((n.Load(table, arr, (n.Var(k, INT32),)), d.vrange))
    else:
        leaves.append((n.Cast(n.Var(k, INT32), d.ty), Interval(0.0, size - 1.0)))
    d.kinds.append("lower_bound")
    return True


def sample_inputs(spec: KernelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The harness's inputs, with the arrays that ``wp.lower_bound`` searches sorted."""
    inputs = default_inputs(spec, rng)
    for x in analysis.expressions(spec.meta.kernel.body):
        if isinstance(x, n.Call) and x.op == "lower_bound":
            inputs[x.args[0].name] = np.sort(inputs[x.args[0].name])
    return inputs


def draw(rng: np.random.Generator) -> Program:
    kernel, ranges, dims, shapes, d, searched = first_clean(lambda: _draw_kernel(rng))
    info = {**features(kernel), "launch_ndim": len(dims), "launch": list(dims), "layouts": sorted(set(d.kinds)),
            "array_ndims": sorted({len(s) for s in shapes.values()})}
    differentiable = not d.ty.is_int and not searched and adjoints_right(kernel)
    return ir_program(kernel, ranges, dims, info, differentiable=differentiable, shapes=shapes, roles=d.roles)


FAMILY = ir_family("indexing", __doc__, draw, version=2, sample_inputs=sample_inputs,
                   covers=("multi-dimensional launches", "wp.tid unpacking", "2D/3D/4D arrays", "index arithmetic",
                           "clamped and wrapped neighbours", "transposes", "flattening", "strided access",
                           "array.shape", "index guards", "float64", "int32", "wp.lower_bound", "wp.isfinite"))
