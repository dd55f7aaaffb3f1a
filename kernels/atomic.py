"""atomic: atomics and atomic reductions into computed indices, in float32 and int32.

1D and 2D launches accumulate random per-thread values (IR expressions over the loaded inputs) into outputs
indexed by computed bins: ``i % K``, ``i // G``, ``(i * a + c) % K``, ``i & (K - 1)``, ``i >> s``, a single cell,
rows/columns/diagonals/blocks of a 2D launch, data-dependent keys (``keys[i]``, ``keys[i] % K``,
``keys[i] & (K - 1)``) and float binning (``wp.clamp(wp.int32((x + 2.0) * 4.0), 0, K - 1)``). Operations:
``wp.atomic_add``/``atomic_sub`` and ``+=``/``-=``, ``atomic_min``/``atomic_max``, ``atomic_and``/``atomic_or``/
``atomic_xor`` and ``&=``/``|=``/``^=`` (int32), counting (``+= 1``), ``atomic_cas`` flags with a count of first
writers, ``atomic_cas`` conditional set, ``atomic_exch`` through a permutation (returned old values used) or of
a per-cell value, and slot counters (``slot = wp.atomic_add(cnt, b, 1)`` then ``atomic_max``/``atomic_add`` of
the slots), optionally behind a guard.

Only patterns whose final state does not depend on the order in which threads perform their atomics are drawn:
one kind of atomic per output; returned old values are used only where their multiset is fixed (permutation
exchange: one writer per cell; counters adding the constant 1; the one thread whose CAS sees the compare value);
exchanges write per-cell values; CAS writes a per-cell value different from the compare value. The reference is
the IR interpreter (atomics whose old value is read run one thread at a time, in thread order). Integer results
are exact; float sums are compared with a tolerance that scales with the number and magnitude of the terms summed
into one cell (the summation order differs between devices and runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.family import KernelSpec, Program, Tolerance
from kernels.ir import analysis
from kernels.ir import nodes as n
from kernels.ir.arrays import c, cell_counts, first_clean, op, tid_vars
from kernels.ir.family import IRMeta, features, ir_family
from kernels.ir.family import program as ir_program
from kernels.ir.gen import ARRAY_NAMES, ExprBuilder, Names, Vocabulary
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, INT32, Array, Scalar

F32_EPS = float(np.finfo(np.float32).eps)
FLOAT_RANGES = (Interval(-2.0, 2.0), Interval(-1.0, 3.0), Interval(0.5, 4.0), Interval(0.0, 4.0))
INT_RANGES = (Interval(-20, 20), Interval(0, 50), Interval(-9, 9))
KINDS_F = {"add": 3.0, "sub": 1.0, "minmax": 1.5, "exch_perm": 0.8, "exch_const": 1.0, "count": 0.6,
           "flag_count": 0.9}
KINDS_I = {"add": 1.8, "sub": 0.7, "minmax": 1.3, "bits": 1.6, "count": 0.7, "flag_count": 0.9, "exch_perm": 0.6,
           "exch_const": 0.8, "cas_set": 0.7, "counter": 0.9}
#: kinds whose outputs depend on the inputs only through which cells are hit: they need data-dependent cells
#: or a guard (otherwise the output is the same for every input)
NEEDS_DATA = ("count", "flag_count", "exch_const", "counter")


@dataclass(frozen=True, slots=True)
class AtomicMeta(IRMeta):
    """The IR meta plus the absolute tolerance float sums in any order need, per output array."""

    atol: float = 1e-5
    atols: tuple[tuple[str, float], ...] = ()


@dataclass
class Target:
    """Cells of an output: its shape, the index tuple each thread writes through, how many threads can share a
    cell, and whether the cell depends on input data."""

    shape: tuple[int, ...]
    index: tuple[n.Expr, ...]
    kind: str
    data: bool
    n_max: int


class _Draw:
    """Per-program state: launch, names, parameters and the expression builder over the loaded values."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.ty: Scalar = (FLOAT32, FLOAT32, INT32, INT32, INT32)[int(rng.integers(5))]
        if rng.random() < 0.4:
            while True:
                self.dims = (int(rng.integers(3, 17)), int(rng.integers(3, 17)))
                if self.dims[0] * self.dims[1] <= 256:
                    break
        else:
            self.dims = (int(self.pick([32, 48, 64, 96, 128, 192, 256])),)
        self.lanes = int(np.prod(self.dims))
        self.tv = tid_vars(self.dims)
        self.names = Names(rng, True)
        self.names.used |= {t.name for t in self.tv}
        ranges = INT_RANGES if self.ty.is_int else FLOAT_RANGES
        self.vrange = ranges[int(rng.integers(len(ranges)))]
        self.params: list[n.Param] = []
        self.ranges: dict[str, Interval] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.roles: dict[str, str] = {}
        self.body: list[n.Stmt] = []
        self.keys: Target | None = None
        self.fbin: Target | None = None
        self.sums: list[tuple[str, int, float]] = []     # float outputs summed into: name, n_max, term bound
        self.kinds: list[str] = []

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def array(self, pool, dtype: Scalar, shape, role: str = "out", iv: Interval | None = None) -> str:
        name = self.names.fresh(tuple(pool), f"arr{len(self.params)}", len(self.params))
        self.params.append(n.Param(name, Array(dtype, len(shape), short=self.rng.random() < 0.6)))
        self.shapes[name] = tuple(shape)
        if role == "inout":
            self.roles[name] = "inout"
        if iv is not None:
            self.ranges[name] = iv
        return name

    # targets ------------------------------------------------------------------------------------------

    def target(self, want_data: bool = False) -> Target:
        rng, dims = self.rng, self.dims
        kinds = ["mod", "div", "affine", "single", "bits"] if len(dims) == 1 else \
            ["row", "col", "single", "diag", "block", "blockmod"]
        data = [t for t in (self.keys, self.fbin, self.keys) if t is not None]
        if want_data and data:
            return self.pick(data)
        kind = self.pick(kinds + ["data"] * len(data))
        if kind == "data":
            return self.pick(data)
        if kind == "single":
            return Target((1,), (c(0),), kind, False, self.lanes)
        if len(dims) == 1:
            t = self.tv[0]
            if kind == "mod":
                K = int(rng.integers(2, 17))
                index, shape = (op("mod", t, c(K)),), (K,)
            elif kind == "div":
                g = int(rng.integers(2, 17))
                index, shape = (op("floordiv", t, c(g)),), (-(-dims[0] // g),)
            elif kind == "affine":
                K, a, k0 = int(rng.integers(3, 20)), int(rng.integers(2, 8)), int(rng.integers(0, 10))
                inner = op("mul", t, c(a))
                index, shape = (op("mod", op("add", inner, c(k0)) if k0 else inner, c(K)),), (K,)
            elif rng.random() < 0.5:
                K = int(self.pick([4, 8, 16]))
                index, shape = (op("bit_and", t, c(K - 1)),), (K,)
            else:
                s = int(rng.integers(1, 4))
                index, shape = (op("rshift", t, c(s)),), (((dims[0] - 1) >> s) + 1,)
        else:
            i, j = self.tv
            R, C = dims
            if kind == "row":
                index, shape = (i,), (R,)
            elif kind == "col":
                index, shape = (j,), (C,)
            elif kind == "diag":
                K = int(rng.integers(3, R + C))
                index, shape = (op("mod", op("add", i, j), c(K)),), (K,)
            elif kind == "block":
                a, b = int(rng.integers(2, 5)), int(rng.integers(2, 5))
                index, shape = (op("floordiv", i, c(a)), op("floordiv", j, c(b))), (-(-R // a), -(-C // b))
            else:
                a, b = int(rng.integers(2, 5)), int(rng.integers(2, 5))
                index, shape = (op("mod", i, c(a)), op("mod", j, c(b))), (min(a, R), min(b, C))
        return Target(shape, index, kind, False, cell_counts(index, dims, shape))

    def permutation(self) -> tuple[tuple[n.Expr, ...], str]:
        """A bijection of the launch grid onto itself."""
        rng, dims = self.rng, self.dims
        if len(dims) == 1:
            N, t = dims[0], self.tv[0]
            roll = rng.random()
            if roll < 0.4:
                a = int(self.pick([a for a in range(2, min(N, 12)) if math.gcd(a, N) == 1] or [1]))
                k0 = int(rng.integers(0, N))
                inner = op("mul", t, c(a)) if a > 1 else t
                return (op("mod", op("add", inner, c(k0)) if k0 else inner, c(N)),), "affine"
            if roll < 0.7:
                return (op("sub", c(N - 1), t),), "reverse"
            return (op("mod", op("add", t, c(int(rng.integers(1, N)))), c(N)),), "rotate"
        (i, j), (R, C) = self.tv, dims
        roll = rng.random()
        if roll < 0.4:
            return (op("sub", c(R - 1), i), j), "flip_rows"
        if roll < 0.7:
            return (i, op("sub", c(C - 1), j)), "flip_cols"
        return (op("mod", op("add", i, c(int(rng.integers(1, R)))), c(R)), j), "roll_rows"


def _inputs(d: _Draw) -> list[tuple[n.Expr, Interval]]:
    """Input arrays of the launch's shape, loaded into locals or read inline; a key array; a float bin."""
    rng, leaves = d.rng, []
    for _ in range(int(rng.integers(1, 3))):
        name = d.array(ARRAY_NAMES, d.ty, d.dims, "in", d.vrange)
        load = n.Load(name, Array(d.ty, len(d.dims)), tuple(d.tv))
        if rng.random() < 0.6:
            local = d.names.loaded(name, len(leaves))
            d.body.append(n.Let(local, load))
            leaves.append((n.Var(local, d.ty), d.vrange))
        else:
            leaves.append((load, d.vrange))
    if rng.random() < 0.45:
        K = int(d.pick([4, 8, 10, 16, 24, 32, 64, 128, 256]))
        styles = ["direct", "mod", "mask"] if K & (K - 1) == 0 else ["direct", "mod"]
        style = d.pick(styles)
        high = K - 1 if style == "direct" else int(d.pick([255, 1000, 4095]))
        keys = d.array(("keys", "idx", "bin_of", "label", "cell", "seg"), INT32, d.dims, "in", Interval(0, high))
        node: n.Expr = n.Load(keys, Array(INT32, len(d.dims)), tuple(d.tv))
        if style == "mod":
            node = op("mod", node, c(K))
        elif style == "mask":
            node = op("bit_and", node, c(K - 1))
        if rng.random() < 0.5:
            local = d.names.fresh(("b", "key", "slot_id", "bucket", "kk"), "b", 0)
            d.body.append(n.Let(local, node))
            node = n.Var(local, INT32)
        d.keys = Target((K,), (node,), "key", True, d.lanes)
    if not d.ty.is_int and rng.random() < 0.35:
        x, iv = leaves[0]
        s = float(d.pick([1.0, 2.0, 4.0]))
        K = int(math.ceil((iv.hi - iv.lo) * s))
        shifted = x if iv.lo == 0 else op("add", x, n.Const(-iv.lo, FLOAT32)) if iv.lo < 0 else \
            op("sub", x, n.Const(iv.lo, FLOAT32))
        scaled = shifted if s == 1.0 else op("mul", shifted, n.Const(s, FLOAT32))
        local = d.names.fresh(("bin", "cell_id", "bucket", "slot"), "bin", 0)
        d.body.append(n.Let(local, op("clamp", op("to_int", scaled), c(0), c(K - 1))))
        d.fbin = Target((K,), (n.Var(local, INT32),), "fbin", True, d.lanes)
    return leaves


def _value(d: _Draw, gen: ExprBuilder, n_max: int) -> tuple[n.Expr, Interval]:
    """A per-thread value of the inputs; int32 values small enough that ``n_max`` of them cannot overflow."""
    for _ in range(4):
        e, iv = gen.compound(d.ty, int(d.rng.integers(1, 4))) if d.rng.random() < 0.8 else gen.leaf(d.ty)
        if isinstance(e, n.Const):
            continue
        if not d.ty.is_int or (n_max + 1) * iv.mag < 2**30:
            return e, iv
    return gen.pick([x for x in gen.leaves if x[0].type == d.ty])


def _accumulate(d: _Draw, gen: ExprBuilder, kind: str, force_data: bool = False,
                must: tuple[n.Expr, Interval] | None = None) -> list[n.Stmt] | None:
    """The statements of one accumulation of ``kind`` (None when it does not fit this program)."""
    rng, ty = d.rng, d.ty
    target = d.target(force_data)
    guard = None
    if rng.random() < 0.3 or (kind in NEEDS_DATA and not target.data):
        guard = gen.condition(1)[0]
    if kind in NEEDS_DATA and not target.data and guard is None:
        return None

    def value(n_max: int) -> tuple[n.Expr, Interval]:
        if must is not None:
            return must
        return _value(d, gen, n_max)

    stmts: list[n.Stmt]
    if kind in ("add", "sub"):
        e, iv = value(target.n_max)
        role = "inout" if rng.random() < 0.25 else "out"
        out = d.array(("out", "acc", "total", "sums", "hist", "partial"), ty, target.shape, role, d.vrange)
        stmts = [n.Atomic(kind, out, Array(ty, len(target.shape)), target.index, e, inplace=rng.random() < 0.4)]
        if not ty.is_int:
            d.sums.append((out, target.n_max, iv.mag + (d.vrange.mag if role == "inout" else 0.0)))
    elif kind == "minmax":
        for _ in range(5):
            if target.n_max <= (6 if ty.is_int else 16):
                break
            target = d.target()
        else:
            return None
        e, iv = value(target.n_max)
        which = d.pick(["min", "max"])
        # a zero-initialised output is a fair start only for values of both signs
        role = "out" if iv.lo < 0 < iv.hi and rng.random() < 0.5 else "inout"
        pool = ("mins", "lo_val", "floor_v") if which == "min" else ("maxs", "hi_val", "peak")
        out = d.array(pool, ty, target.shape, role, d.vrange)
        stmts = [n.Atomic(which, out, Array(ty, len(target.shape)), target.index, e)]
        kind = "atomic_" + which
    elif kind == "bits":
        which = d.pick(["and", "or", "xor"])
        base, _ = value(target.n_max)
        if which == "and" or rng.random() < 0.6:
            amount = op("bit_and", base, c(15 if which == "and" else d.pick([7, 15, 30])))
            e = op("lshift", c(1), amount)
            e = op("invert", e) if which == "and" else e
        else:
            e = op("bit_and", base, c(int(d.pick([0xFF, 0xF0F, 0x3FF]))))
        role = "inout" if which == "and" or rng.random() < 0.3 else "out"
        out = d.array(("mask", "bits", "flags", "seen", "parity", "cells"), INT32, target.shape, role,
                      Interval(0, 65535))
        stmts = [n.Atomic(which, out, Array(INT32, len(target.shape)), target.index, e, inplace=rng.random() < 0.4)]
        kind = "atomic_" + which
    elif kind == "count":
        role = "inout" if rng.random() < 0.2 else "out"
        out = d.array(("counts", "hist", "tally", "nhit", "freq"), INT32, target.shape, role, Interval(0, 20))
        stmts = [n.Atomic("add", out, Array(INT32, len(target.shape)), target.index, c(1),
                          inplace=rng.random() < 0.5)]
    elif kind == "flag_count":
        flags = d.array(("flags", "seen", "visited", "marked"), INT32, target.shape)
        cnt = d.array(("nhit", "ndistinct", "winners", "first"), INT32, (1,))
        old = d.names.fresh(("old", "prev_flag", "was", "before"), "old", 0)
        stmts = [n.Atomic("cas", flags, Array(INT32, len(target.shape)), target.index, c(1), result=old,
                          compare=c(0)),
                 n.If(op("eq", n.Var(old, INT32), c(0)), (n.Atomic("add", cnt, Array(INT32), (c(0),), c(1)),))]
    elif kind == "exch_perm":
        perm, pkind = d.permutation()
        target = Target(d.dims, perm, "perm_" + pkind, False, 1)
        e, iv = value(1)
        buf = d.array(("buf", "cells", "grid", "slots", "state"), ty, d.dims, "inout", d.vrange)
        prev = d.array(("prev", "old_vals", "swapped", "before"), ty, d.dims)
        old = d.names.fresh(("old", "prev_v", "was", "o"), "old", 0)
        post: n.Expr = n.Var(old, ty)
        if rng.random() < 0.6:
            other, oiv = gen.expr(ty, 1)
            made = gen.checked(op(d.pick(["add", "sub", "mul", "max"]), post, other), [d.vrange.join(iv), oiv])
            post = made[0] if made is not None else post
        stmts = [n.Atomic("exch", buf, Array(ty, len(d.dims)), perm, e, result=old),
                 n.Store(prev, Array(ty, len(d.dims)), tuple(d.tv), post)]
    elif kind == "exch_const":
        role = "inout" if rng.random() < 0.5 else "out"
        out = d.array(("last", "cells", "tag", "mark", "owner"), ty, target.shape, role, d.vrange)
        cell = target.index[0]
        if ty.is_int:
            c1, c2 = int(rng.integers(2, 9)), int(rng.integers(-5, 6))
            e = op("add", op("mul", cell, c(c1)), c(c2)) if c2 else op("mul", cell, c(c1))
            e = e if rng.random() < 0.6 else c(c1)
        else:
            c1, c2 = float(d.pick([0.5, 1.5, 2.0, -1.0, 0.25])), float(d.pick([1.0, -2.5, 3.25]))
            e = op("add", op("mul", op("to_float", cell), n.Const(c1, FLOAT32)), n.Const(c2, FLOAT32)) \
                if rng.random() < 0.6 else n.Const(c2, FLOAT32)
        stmts = [n.Atomic("exch", out, Array(ty, len(target.shape)), target.index, e)]
    elif kind == "cas_set":
        if target.shape == (1,):
            return None
        out = d.array(("state", "cells", "owner", "tag"), INT32, target.shape, "inout", Interval(0, 3))
        c0, c1, c2 = int(rng.integers(0, 4)), int(rng.integers(1, 5)), int(rng.integers(10, 20))
        newv = op("add", op("mul", target.index[0], c(c1)), c(c2)) if len(target.index) == 1 and \
            rng.random() < 0.6 else c(c2)
        arr = Array(INT32, len(target.shape))
        if rng.random() < 0.5:
            count = d.array(("won", "converted", "nswap", "claimed"), INT32, (1,))
            won = d.names.fresh(("seen", "got", "was"), "seen", 0)
            stmts = [n.Atomic("cas", out, arr, target.index, newv, result=won, compare=c(c0)),
                     n.If(op("eq", n.Var(won, INT32), c(c0)), (n.Atomic("add", count, Array(INT32), (c(0),), c(1)),))]
        else:
            stmts = [n.Atomic("cas", out, arr, target.index, newv, compare=c(c0))]
    elif kind == "counter":
        role = "inout" if rng.random() < 0.5 else "out"
        cnt = d.array(("cnt", "fill", "counts", "cursor"), INT32, target.shape, role, Interval(0, 10))
        slot = d.names.fresh(("slot", "pos", "ticket", "n_before"), "slot", 0)
        stmts = [n.Atomic("add", cnt, Array(INT32, len(target.shape)), target.index, c(1), result=slot)]
        if rng.random() < 0.5:
            agg = d.array(("last", "last_slot", "max_slot", "top"), INT32, target.shape)
            stmts.append(n.Atomic("max", agg, Array(INT32, len(target.shape)), target.index, n.Var(slot, INT32)))
        else:
            agg = d.array(("slot_sum", "total_slots", "tickets"), INT32, (1,))
            stmts.append(n.Atomic("add", agg, Array(INT32), (c(0),), n.Var(slot, INT32)))
    else:
        raise ValueError(f"Expected an accumulation kind in {sorted(KINDS_I)} but got {kind!r}")
    d.kinds.append(f"{kind}:{target.kind}")
    return [n.If(guard, tuple(stmts))] if guard is not None else stmts


def _draw_kernel(rng: np.random.Generator):
    d = _Draw(rng)
    leaves = _inputs(d)
    ops = {"add": 3, "sub": 3, "mul": 2, "min": 1, "max": 1, "abs": 0.6, "where": 0.4, "ifexp": 0.4,
           **({} if d.ty.is_int else {"div": 1})}
    vocab = Vocabulary(ops, types=(d.ty,), ranges={d.ty: d.vrange}, limit=1e3 if d.ty.is_int else 1e4,
                       p_leaf=0.35)
    gen = ExprBuilder(rng, vocab, leaves)
    if rng.random() < 0.5:
        e, iv = _value(d, gen, d.lanes)
        local = d.names.fresh(("v", "contrib", "w", "term", "val", "q"), "v", 0)
        d.body.append(n.Let(local, e))
        gen.leaves.append((n.Var(local, d.ty), iv))
    kinds = KINDS_I if d.ty.is_int else KINDS_F
    weights = np.array(list(kinds.values()))
    for _ in range(int(rng.integers(1, 4))):
        made = _accumulate(d, gen, list(kinds)[int(rng.choice(len(kinds), p=weights / weights.sum()))])
        d.body += made or []
    # every input reaches an output: the key array and the binned value through their cells, the loaded values
    # through an accumulated value
    for data in (d.keys, d.fbin):
        if data is not None and not any(data.kind in k for k in d.kinds):
            d.body += _accumulate(d, gen, d.pick(["add", "sub"]), force_data=True) or []
    kernel = n.Kernel("wkf_kernel", tuple(d.params), tuple(d.body), tids=tuple(t.name for t in d.tv))
    for e, iv in leaves:
        if not analysis.uses(e) & analysis.reaching(analysis.remove_dead(kernel)):
            d.body += _accumulate(d, gen, "add", must=(e, iv)) or []
            kernel = n.Kernel("wkf_kernel", tuple(d.params), tuple(d.body), tids=kernel.tids)
    return analysis.remove_dead(kernel), d.ranges, d.dims, d.shapes, d


def tolerance(spec: KernelSpec) -> Tolerance:
    """int32: exact. float32: an output cell is a sum of at most ``n`` float32 terms of magnitude ``M`` (plus an
    initial value) in an order that differs between devices and runs; recursive summation in any order errs by
    at most ``(n - 1) * eps * S`` with ``S = n * M + init``, and the terms themselves by a few ``eps * M``: we
    allow ``2 * eps * n * (S + 8 M)`` absolute on top of the usual float32 ``rtol``, each output array its own
    (version 2 gave every output of a kernel the largest: an int32 histogram or a value near 1 beside an
    accumulator of 10^4 was checked with atol 2.13)."""
    meta = spec.meta
    ints = all(p.type.dtype == INT32 for p in meta.kernel.params if isinstance(p.type, Array))
    if ints:
        return Tolerance(0.0, 0.0)
    sums = dict(meta.atols)
    outputs = [(a.name, Tolerance(0.0, 0.0) if a.dtype == "int32" else Tolerance(1e-4, sums.get(a.name, 1e-5)))
               for a in spec.args if a.is_output]
    return Tolerance(max(t.rtol for _, t in outputs), max(t.atol for _, t in outputs),
                     per_output=tuple((name, t.rtol, t.atol) for name, t in outputs))


def draw(rng: np.random.Generator) -> Program:
    kernel, ranges, dims, shapes, d = first_clean(lambda: _draw_kernel(rng))
    atol, atols = 1e-5, {}
    for out, n_max, m in d.sums:
        atols[out] = max(atols.get(out, 1e-5), 2 * F32_EPS * n_max * (n_max * m + 8 * m))
        atol = max(atol, atols[out])
    atomics = sorted({f"atomic_{s.kind}" + ("=" if s.inplace else "") for s in analysis.statements(kernel.body)
                      if isinstance(s, n.Atomic)})
    prog = ir_program(kernel, ranges, dims, {**features(kernel), "launch": list(dims), "atomics": atomics,
                                             "accumulations": d.kinds}, differentiable=False, shapes=shapes,
                      roles=d.roles)
    meta = AtomicMeta(kernel, tuple(dims), atol, tuple(sorted(atols.items())))
    return Program(prog.source, prog.args, prog.dim, meta, prog.features, differentiable=False)


# version 3: a tolerance per output array (version 2 checked every output with the kernel's largest); the
# programs are version 2's
FAMILY = ir_family("atomic", __doc__, draw, version=3, tol=tolerance, same_programs_as=(2,),
                   covers=("atomic_add", "atomic_sub", "atomic_min", "atomic_max", "atomic_cas", "atomic_exch",
                           "atomic_and", "atomic_or", "atomic_xor", "augmented assignment on arrays", "histograms",
                           "scatter", "reductions", "2D launches", "data-dependent indices", "float binning"))
