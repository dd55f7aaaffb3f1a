"""atomic: atomics and atomic reductions into computed indices, in float32 and int32.

1D and 2D launches accumulate random per-thread values (expression trees from kernels/_expr.py over the loaded
inputs) into outputs indexed by computed bins: ``i % K``, ``i // G``, ``(a * i + c) % K``, ``i & (K - 1)``, a single
cell, rows/columns/diagonals/blocks of a 2D launch, data-dependent keys (``keys[i]``, ``keys[i] % K``) and float
binning (``wp.clamp(int((x - lo) * s), 0, K - 1)``). Operations: ``wp.atomic_add``/``atomic_sub`` and ``+=``/``-=``,
``atomic_min``/``atomic_max``, ``atomic_and``/``atomic_or``/``atomic_xor`` and ``&=``/``|=``/``^=`` (int32),
counting (``+= 1``), ``atomic_cas`` flags with a count of first writers, ``atomic_cas`` conditional set,
``atomic_exch`` through a permutation (returned old values used) or of a per-cell value, and slot counters
(``slot = wp.atomic_add(cnt, b, 1)`` then ``atomic_max``/``atomic_add`` of the slots), optionally behind a guard.

Only patterns whose final state does not depend on the order in which GPU threads perform their atomics are
generated: one kind of atomic per output; returned old values are used only where their multiset is fixed
(permutation exchange: one writer per cell; counters adding the constant 1; the one thread whose CAS sees the
compare value); exchanges write per-cell values; CAS writes a per-cell value different from the compare value.
Integer results are exact. Float sums are compared with a tolerance that scales with the number and magnitude
of the summed terms (see ``tolerance``): the summation order differs between devices and runs.
"""

from __future__ import annotations

import math

import numpy as np

from harness.family import Arg, Family, KernelSpec, Program, Tolerance
from kernels import _expr as E
from kernels import _indexing_lib as L
from kernels._common import ARRAY_NAMES, pick

Ix = L.Ix
F32_EPS = float(np.finfo(np.float32).eps)
FLOAT_RANGES = ((-2.0, 2.0), (-1.0, 3.0), (0.5, 4.0), (0.0, 4.0))
INT_RANGES = ((-20, 20), (0, 50), (-9, 9))
BIT_SYM = {"and": "&", "or": "|", "xor": "^"}


# --------------------------------------------------------------------------------------------------------
# Targets: where each thread's contribution goes


class _Target:
    """An output shape and a per-thread index tuple into it, with how many threads can share a cell."""

    def __init__(self, shape, index, kind, data_dependent, n_max):
        self.shape = tuple(shape)
        self.index = tuple(index)          # tuple of Ix (one per output dimension)
        self.kind = kind
        self.data_dependent = data_dependent
        self.n_max = n_max                 # most contributions any one cell can receive


def _n_max(index: tuple, env: dict, dims: tuple[int, ...]) -> int:
    flat = np.zeros(int(np.prod(dims)), dtype=np.int64)
    for p in index:
        flat = flat * 4096 + np.broadcast_to(_ix_eval(p, env), dims).ravel()
    return int(np.unique(flat, return_counts=True)[1].max())


def _target(rng, ctx: dict, want: str = "any") -> _Target:
    """A random target. ``want="data"`` asks for a data-dependent one (keys or float bins)."""
    dims, tv = ctx["dims"], ctx["tvars"]
    n = int(np.prod(dims))
    env = ctx["ienv"]
    kinds = ["mod", "div", "affine", "single", "bits"] if len(dims) == 1 else \
        ["row", "col", "single", "diag", "block", "blockmod"]
    data_kinds = []
    if ctx["keys"] is not None:
        data_kinds += ["key", "key"]
    if ctx["bin_leaf"] is not None:
        data_kinds += ["fbin"]
    if want == "data":
        kinds = data_kinds
    else:
        kinds = kinds + data_kinds
    kind = pick(rng, kinds)
    if kind in ("key", "fbin"):
        if kind == "key":
            name, K, node = ctx["keys"]
        else:
            K, node = ctx["bin_leaf"]
        return _Target((K,), (node,), kind, True, n)
    if kind == "single":
        idx = (L.ix_const(0),)
        return _Target((1,), idx, kind, False, n)
    if len(dims) == 1:
        t = tv[0]
        if kind == "mod":
            K = int(rng.integers(2, 17))
            idx = (L.ix_bin("mod", t, L.ix_const(K)),)
        elif kind == "div":
            g = int(rng.integers(2, 17))
            K = -(-dims[0] // g)
            idx = (L.ix_bin("floordiv", t, L.ix_const(g)),)
        elif kind == "affine":
            K = int(rng.integers(3, 20))
            a, c = int(rng.integers(2, 8)), int(rng.integers(0, 10))
            inner = L.ix_bin("mul", t, L.ix_const(a))
            idx = (L.ix_bin("mod", L.ix_bin("add", inner, L.ix_const(c)) if c else inner, L.ix_const(K)),)
        else:
            K = int(pick(rng, (4, 8, 16)))
            if rng.random() < 0.5:
                idx = (Ix("band", (t, L.ix_const(K - 1)), None, 0, K - 1),)
            else:
                s = int(rng.integers(1, 4))
                K = ((dims[0] - 1) >> s) + 1
                idx = (Ix("rshift", (t, L.ix_const(s)), None, 0, K - 1),)
        return _Target((K,), idx, kind, False, _n_max(idx, env, dims))
    i, j = tv
    R, C = dims
    if kind == "row":
        idx = (i,)
        shape = (R,)
    elif kind == "col":
        idx = (j,)
        shape = (C,)
    elif kind == "diag":
        K = int(rng.integers(3, R + C))
        idx = (L.ix_bin("mod", L.ix_bin("add", i, j), L.ix_const(K)),)
        shape = (K,)
    elif kind == "block":
        a, b = int(rng.integers(2, 5)), int(rng.integers(2, 5))
        idx = (L.ix_bin("floordiv", i, L.ix_const(a)), L.ix_bin("floordiv", j, L.ix_const(b)))
        shape = (-(-R // a), -(-C // b))
    else:
        a, b = int(rng.integers(2, 5)), int(rng.integers(2, 5))
        idx = (L.ix_bin("mod", i, L.ix_const(a)), L.ix_bin("mod", j, L.ix_const(b)))
        shape = (min(a, R), min(b, C))
    return _Target(shape, idx, kind, False, _n_max(idx, env, dims))


def _ix_eval(x: Ix, env) -> np.ndarray:
    """``L.ix_eval`` plus the bit operators used by ``bits`` targets."""
    if x.op == "band":
        return L.ix_eval(x.args[0], env) & x.args[1].value
    if x.op == "rshift":
        return L.ix_eval(x.args[0], env) >> x.args[1].value
    return L.ix_eval(x, env)


def _ix_text(x: Ix) -> str:
    if x.op == "band":
        return f"{L.ix_emit(x.args[0])} & {x.args[1].value}"
    if x.op == "rshift":
        return f"{L.ix_emit(x.args[0])} >> {x.args[1].value}"
    return L.ix_emit(x)


def _paren(text: str) -> str:
    """``text`` safe as an operand of ``*``/``+``: names and subscripts as they are, the rest parenthesised."""
    simple = text.replace("_", "").replace("[", "").replace("]", "").replace(", ", "").isalnum()
    return text if simple else f"({text})"


def _affine_text(x: str, c1: int, c2: int) -> str:
    return f"{_paren(x)} * {c1} {'+' if c2 >= 0 else '-'} {abs(c2)}"


def _permutation(rng, ctx) -> tuple[tuple, str]:
    """A bijection of the launch grid onto itself (index tuple into an array of the launch's shape)."""
    dims, tv = ctx["dims"], ctx["tvars"]
    if len(dims) == 1:
        n = dims[0]
        t = tv[0]
        roll = rng.random()
        if roll < 0.4:
            a = int(pick(rng, [a for a in range(2, min(n, 12)) if math.gcd(a, n) == 1] or [1]))
            c = int(rng.integers(0, n))
            inner = L.ix_bin("mul", t, L.ix_const(a)) if a > 1 else t
            return (L.ix_bin("mod", L.ix_bin("add", inner, L.ix_const(c)) if c else inner, L.ix_const(n)),), "affine"
        if roll < 0.7:
            return (L.ix_bin("sub", L.ix_const(n - 1), t),), "reverse"
        c = int(rng.integers(1, n))
        return (L.ix_bin("mod", L.ix_bin("add", t, L.ix_const(c)), L.ix_const(n)),), "rotate"
    i, j = tv
    R, C = dims
    roll = rng.random()
    if roll < 0.4:
        return (L.ix_bin("sub", L.ix_const(R - 1), i), j), "flip_rows"
    if roll < 0.7:
        return (i, L.ix_bin("sub", L.ix_const(C - 1), j)), "flip_cols"
    c = int(rng.integers(1, R)) if R > 1 else 0
    return (L.ix_bin("mod", L.ix_bin("add", i, L.ix_const(c)), L.ix_const(R)), j), "roll_rows"


# --------------------------------------------------------------------------------------------------------
# Generation


def _value(gen: E.ExprGen, rng, ty: E.Scalar, n_max: int, depth: int | None = None) -> E.Node:
    """A per-thread value that uses at least one input; int32 values small enough that ``n_max`` of them
    (plus an initial value) cannot overflow."""
    for _ in range(4):
        node = gen.expr(depth if depth is not None else int(rng.integers(1, 4)))
        if not E.uses(node):
            node = gen.apply_binary(pick(rng, ("add", "mul", "sub")), node, gen.var_leaf())
        if not ty.is_int or (n_max + 1) * node.iv.mag < 2**30:
            return node
    return gen.var_leaf()


def generate(rng: np.random.Generator) -> Program:
    ty = E.SCALARS[pick(rng, ("float32", "float32", "int32", "int32", "int32"))]
    two_d = rng.random() < 0.4
    if two_d:
        while True:
            dims = (int(rng.integers(3, 17)), int(rng.integers(3, 17)))
            if dims[0] * dims[1] <= 256:
                break
        tids = ("i", "j")
    else:
        dims = (int(pick(rng, (32, 48, 64, 96, 128, 192, 256))),)
        tids = ("i",)
    tvars = [L.ix_var(t, e) for t, e in zip(tids, dims)]
    ienv = L.launch_indices(dims, tids)
    tidx = ", ".join(tids)
    lo, hi = pick(rng, INT_RANGES) if ty.is_int else pick(rng, FLOAT_RANGES)
    n_in = int(rng.integers(1, 3))
    used_names = set(tids)
    names = pick(rng, [n for n in ARRAY_NAMES if n not in used_names], n_in)
    used_names |= set(names)
    args: list[Arg] = []
    body: list[str] = []
    leaves: dict[str, E.Interval] = {}
    loads = []
    for k, n in enumerate(names):
        args.append(Arg(n, ty.name, "in", dims, lo, hi))
        text = f"{n}[{tidx}]"
        if rng.random() < 0.6:
            leaf = f"{n}_v" if rng.random() < 0.5 else f"{pick(rng, ('x', 'v', 'w', 'val'))}{k}"
            body.append(f"{leaf} = {text}")
        else:
            leaf = text
        leaves[leaf] = E.Interval(lo, hi)
        loads.append((leaf, n))
    # data-dependent bins: an int32 key array, and/or float binning of a loaded value
    n_all = int(np.prod(dims))
    keys = None
    if rng.random() < 0.45:
        kname = pick(rng, ("keys", "idx", "bin_of", "label", "cell", "seg"))
        K = int(pick(rng, (4, 8, 10, 16, 24, 32, 64, 128, 256)))
        style = pick(rng, ("direct", "mod", "mask") if K & (K - 1) == 0 else ("direct", "mod"))
        khigh = K - 1 if style == "direct" else int(pick(rng, (255, 1000, 4095)))
        args.append(Arg(kname, "int32", "in", dims, 0, khigh))
        raw = L.Ix("var", (), f"{kname}[{tidx}]", 0, khigh)
        node = raw if style == "direct" else (L.ix_bin("mod", raw, L.ix_const(K)) if style == "mod" else
                                               Ix("band", (raw, L.ix_const(K - 1)), None, 0, K - 1))
        bind = None
        if rng.random() < 0.5:
            local = _fresh(("b", "key", "slot_id", "bucket", "kk"), used_names, rng)
            body.append(f"{local} = {_ix_text(node)}")
            node = L.Ix("var", (), local, 0, K - 1)
            bind = (local, style)
        keys = (kname, K, node, bind)
        used_names.add(kname)
    fbin = None
    if not ty.is_int and rng.random() < 0.35:
        src_leaf = loads[0][0]
        s = float(pick(rng, (1.0, 2.0, 4.0)))
        K = int(math.ceil((hi - lo) * s))
        bname = _fresh(("bin", "cell_id", "bucket", "slot"), used_names, rng)
        shift = f"{src_leaf} + {E.FLOAT32.literal(-lo)}" if lo < 0 else f"{src_leaf} - {E.FLOAT32.literal(lo)}"
        body.append(f"{bname} = wp.clamp(int(({shift}) * {E.FLOAT32.literal(s)}), 0, {K - 1})")
        fbin = (bname, src_leaf, lo, s, K)
    ctx = {"dims": dims, "tvars": tvars, "ienv": ienv, "keys": keys[:3] if keys else None,
           "bin_leaf": (fbin[4], L.Ix("var", (), fbin[0], 0, fbin[4] - 1)) if fbin else None,
           "tids": tids}
    gen = E.ExprGen(rng, ty, dict(leaves), binary=("add", "sub", "mul", "min", "max") +
                    (() if ty.is_int else ("div",)), p_leaf=0.35)
    # a sample of inputs, to choose guards that actually select
    srng = np.random.default_rng(int(rng.integers(2**31)))
    sample = {leaf: (srng.integers(int(lo), int(hi) + 1, size=dims) if ty.is_int else
                     srng.uniform(lo, hi, size=dims)).astype(ty.np_ref) for leaf, _ in loads}
    ctx["sample"] = sample
    # optional shared per-thread value
    shared = None
    if rng.random() < 0.5:
        vname = _fresh(("v", "contrib", "w", "term", "val", "q"), used_names, rng)
        for _ in range(4):
            node = _value(gen, rng, ty, n_all)
            if _varies(node, ctx, ty):
                break
        shared_at = len(body)
        body.append(f"{vname} = {E.emit(node, ty)}")
        shared = (vname, node)
        gen.leaves[vname] = node.iv
        sample[vname] = np.broadcast_to(E.evaluate(node, sample, ty), dims)
    kinds_f = {"add": 3.0, "sub": 1.0, "minmax": 1.5, "exch_perm": 0.8, "exch_const": 1.0, "count": 0.6,
               "flag_count": 0.9}
    kinds_i = {"add": 1.8, "sub": 0.7, "minmax": 1.3, "bits": 1.6, "count": 0.7, "flag_count": 0.9,
               "exch_perm": 0.6, "exch_const": 0.8, "cas_set": 0.7, "counter": 0.9}
    kinds = kinds_i if ty.is_int else kinds_f
    kp = np.array(list(kinds.values()))
    kp = kp / kp.sum()
    accs = []
    for _ in range(int(rng.integers(1, 4))):
        acc = _accumulation(list(kinds)[int(rng.choice(len(kinds), p=kp))], rng, ctx, gen, ty, shared,
                            used_names, (lo, hi))
        if acc is not None:
            accs.append(acc)
    # every input must reach an output: the key array through a key target, the binned value through a bin
    # target, loaded values through some accumulated value (extra accumulations where missing)
    if keys and not any(acc["target"].kind == "key" for acc in accs):
        accs.append(_accumulation(pick(rng, ("add", "count", "sub")), rng, ctx, gen, ty, shared, used_names,
                                  (lo, hi), force="key"))
    if fbin and not any(acc["target"].kind == "fbin" for acc in accs):
        accs.append(_accumulation(pick(rng, ("add", "count", "sub")), rng, ctx, gen, ty, shared, used_names,
                                  (lo, hi), force="fbin"))
    missing = [leaf for leaf, _ in loads
               if not (fbin and leaf == fbin[1]) and not _influences(leaf, accs, shared, ctx, ty, srng)]
    if missing:
        acc = _accumulation(pick(rng, ("add", "minmax", "sub")), rng, ctx, gen, ty, None, used_names, (lo, hi),
                            must_use=missing)
        accs.append(acc or _accumulation("add", rng, ctx, gen, ty, None, used_names, (lo, hi), must_use=missing))
    if shared and not any(shared[0] in E.uses(n) for acc in accs for n in acc["nodes"] + [acc["guard"]]
                          if n is not None):
        del body[shared_at]               # nothing ended up reading it
        shared = None
    # emit
    for acc in accs:
        body.extend(acc["lines"])
        args.extend(acc["args"])
    ops = set()
    for acc in accs:
        for node in acc.get("nodes", []):
            ops |= E.ops_of(node)
    meta = {"ty": ty.name, "dims": dims, "tids": tids, "loads": loads, "shared": shared,
            "keys": keys, "fbin": fbin, "vmag": float(max(abs(lo), abs(hi))),
            "accs": [{k: v for k, v in acc.items() if k not in ("lines", "args")} for acc in accs]}
    differentiable = (not ty.is_int) and all(acc["kind"] in ("add", "sub") for acc in accs)
    features = {"dtype": ty.name, "launch_ndim": len(dims), "launch": list(dims),
                "atomics": sorted({acc["kind"] for acc in accs}),
                "targets": sorted({acc["target"].kind for acc in accs}),
                "builtins": sorted({b for acc in accs for b in acc["builtins"]}),
                "guarded": any(acc["guard"] is not None for acc in accs), "ops": sorted(ops)}
    source = L.kernel_text(rng, args, body, L.tid_line(tids))
    return Program(source, tuple(args), dims, meta, features, differentiable=differentiable)


def _fresh(names: list[str], used: set[str], rng) -> str:
    options = [n for n in names if n not in used]
    name = pick(rng, options) if options else f"out{len(used)}"
    used.add(name)
    return name


def _varies(node: E.Node, ctx: dict, ty: E.Scalar) -> bool:
    """The value is not (nearly) the same for every thread of the sampled inputs (``x + (-x)``...)."""
    try:
        v = np.broadcast_to(E.evaluate(node, ctx["sample"], ty), ctx["dims"]).astype(np.float64)
    except KeyError:
        return True
    return bool(np.ptp(v) > 1e-6 * max(1.0, float(np.max(np.abs(v)))))


def _influences(leaf: str, accs: list[dict], shared, ctx: dict, ty: E.Scalar, srng) -> bool:
    """Whether redrawing ``leaf`` on the sampled inputs changes some accumulated value or guard (a semantic
    check: ``c - (c - d)`` does not depend on ``c``)."""
    sample = ctx["sample"]
    other = dict(sample)
    other[leaf] = srng.permutation(sample[leaf].ravel()).reshape(sample[leaf].shape) + (1 if ty.is_int else 0.37)
    if shared is not None:
        other[shared[0]] = np.broadcast_to(E.evaluate(shared[1], other, ty), ctx["dims"])
    for acc in accs:
        checks = [(n, E.evaluate) for n in acc["nodes"] if n is not None]
        if acc["guard"] is not None:
            checks.append((acc["guard"], E.evaluate_cond))
        for node, fn in checks:
            try:
                a = np.broadcast_to(fn(node, sample, ty), ctx["dims"])
                b = np.broadcast_to(fn(node, other, ty), ctx["dims"])
            except KeyError:            # reads a value the sample does not hold
                continue
            if not np.array_equal(a, b):
                return True
    return False


def _both_signs(node: E.Node, ctx: dict, ty: E.Scalar) -> bool:
    try:
        v = np.broadcast_to(E.evaluate(node, ctx["sample"], ty), ctx["dims"])
    except KeyError:
        return False
    return bool(np.mean(v > 0) >= 0.15 and np.mean(v < 0) >= 0.15)


def _retarget(rng, ctx: dict, target: _Target, ok) -> _Target | None:
    """``target`` if ``ok(target)``, else the first of a few fresh targets that is, else None."""
    for _ in range(6):
        if ok(target):
            return target
        target = _target(rng, ctx)
    return target if ok(target) else None


def _guard(gen: E.ExprGen, ctx: dict, ty: E.Scalar, lo: float = 0.1, hi: float = 0.9) -> E.Node | None:
    """A data condition true for a share in [lo, hi] of the sampled inputs (not a tautology)."""
    for _ in range(5):
        cond = gen.condition(2)
        try:
            share = float(np.mean(np.broadcast_to(E.evaluate_cond(cond, ctx["sample"], ty), ctx["dims"])))
        except KeyError:
            continue
        if lo <= share <= hi:
            return cond
    return None


def _accumulation(kind, rng, ctx, gen, ty, shared, used, vrange, force: str | None = None,
                  must_use: list[str] = ()) -> dict | None:
    """One atomic accumulation: its source lines, output arguments and what the reference needs.

    ``force`` ("key" or "fbin") fixes the target; ``must_use`` lists leaves the accumulated value must read.
    """
    n_all = int(np.prod(ctx["dims"]))
    if force == "key":
        target = _Target((ctx["keys"][1],), (ctx["keys"][2],), "key", True, n_all)
    elif force == "fbin":
        target = _Target((ctx["bin_leaf"][0],), (ctx["bin_leaf"][1],), "fbin", True, n_all)
    elif kind == "exch_const":
        # a per-cell value written by every writer of the cell: only data-dependent keys leave some cells
        # unwritten often enough for the result to depend on the inputs
        if ctx["keys"] is None or ctx["keys"][1] * 2 < n_all:
            return None
        target = _Target((ctx["keys"][1],), (ctx["keys"][2],), "key", True, n_all)
    elif kind == "exch_perm":
        target = None
    else:
        target = _target(rng, ctx)
        if kind in ("count", "flag_count", "counter") and not target.data_dependent and rng.random() < 0.4 \
                and (ctx["keys"] is not None or ctx["bin_leaf"] is not None):
            target = _target(rng, ctx, "data")
    if kind == "flag_count":
        # few writers per flag (or many flags per writer), else every flag is set whatever the inputs
        def sparse(t):
            return t.shape != (1,) and (t.shape[0] * 2 >= n_all if t.data_dependent else t.n_max <= 3)
        target = _retarget(rng, ctx, target, sparse)
        if target is None:
            return None
    bits_op = pick(rng, ("or", "or", "xor", "and")) if kind == "bits" else None
    if bits_op in ("or", "and"):
        target = _retarget(rng, ctx, target, lambda t: t.n_max <= 6)     # or/and of many terms saturate
        if target is None:
            return None
    # counts and flags of an index-only target are the same for every input: guard them with a data condition
    needs_data = kind in ("count", "flag_count") and not target.data_dependent
    guard = _guard(gen, ctx, ty, 0.1, 0.6 if kind == "flag_count" else 0.9) \
        if needs_data or rng.random() < 0.25 else None
    if needs_data and guard is None:
        return None
    lines: list[str] = []
    args: list[Arg] = []
    builtins: list[str] = []
    tidx = ", ".join(ctx["tids"])
    acc = {"kind": kind, "target": target, "guard": guard, "nodes": [], "value": None}
    ind = "    " if guard is not None else ""
    if guard is not None:
        lines.append(f"if {E.emit_cond(guard, ty)}:")
    idx_text = ", ".join(_ix_text(p) for p in target.index) if target is not None else ""

    def update(out: str, op: str, sym: str, text: str) -> None:
        """``out[idx] op= text`` or ``wp.atomic_op(out, idx, text)``, even odds."""
        if rng.random() < 0.5:
            lines.append(f"{ind}{out}[{idx_text}] {sym}= {text}")
            builtins.append("augmented_" + op)
        else:
            lines.append(f"{ind}wp.atomic_{op}({out}, {idx_text}, {text})")
            builtins.append("atomic_" + op)

    def value(n_max: int) -> tuple[str, E.Node]:
        for _ in range(4):
            node = candidate(n_max)
            if _varies(node, ctx, ty):
                break
        return E.emit(node, ty), node

    def candidate(n_max: int) -> E.Node:
        if must_use:
            node = E.var(must_use[0], gen.leaves[must_use[0]])
            for leaf in must_use[1:]:
                node = gen.apply_binary(pick(rng, ("add", "sub", "mul", "max")), node, E.var(leaf, gen.leaves[leaf]))
            if rng.random() < 0.5:
                node = gen.apply_binary(pick(rng, ("add", "mul", "sub")), node, gen.expr(1))
            if ty.is_int and (n_max + 1) * node.iv.mag >= 2**30:
                node = E.var(must_use[0], gen.leaves[must_use[0]])
            return node
        if shared is not None and rng.random() < 0.6:
            node = E.var(shared[0], shared[1].iv)
            if rng.random() < 0.4:
                # combine with a term that does not read the shared value (v - (v - x) would drop it)
                saved = gen.leaves
                gen.leaves = {k: iv for k, iv in saved.items() if k != shared[0]}
                try:
                    other = _value(gen, rng, ty, n_max, 1)
                finally:
                    gen.leaves = saved
                node = gen.apply_binary(pick(rng, ("add", "mul", "sub")), node, other)
                if ty.is_int and (n_max + 1) * node.iv.mag >= 2**30:
                    node = E.var(shared[0], shared[1].iv)
            return node
        return _value(gen, rng, ty, n_max)

    if kind in ("add", "sub"):
        role = "inout" if rng.random() < 0.3 else "out"
        out = _fresh(("sums", "acc", "hist", "total", "partial", "tally", "row_sum", "col_sum", "res", "dst",
                      "out", "bins", "grid"), used, rng)
        text, node = value(target.n_max)
        acc["value"], acc["nodes"] = node, [node]
        update(out, kind, "+" if kind == "add" else "-", text)
        args.append(Arg(out, ty.name, role, target.shape, *vrange))
        acc.update(out=out, role=role)
    elif kind == "minmax":
        op = pick(rng, ("min", "max"))
        # the extreme of many terms hardly depends on the data: keep cells small
        target = _retarget(rng, ctx, target, lambda t: t.n_max <= (6 if ty.is_int else 16))
        if target is None:
            return None
        acc["target"] = target
        idx_text = ", ".join(_ix_text(p) for p in target.index)
        out = _fresh(("mins", "lo_val", "floor_v") if op == "min" else ("maxs", "hi_val", "peak"), used, rng)
        text, node = value(target.n_max)
        # a zero-initialised output is a fair start only for values of both signs
        role = "out" if _both_signs(node, ctx, ty) and rng.random() < 0.5 else "inout"
        acc["value"], acc["nodes"] = node, [node]
        lines.append(f"{ind}wp.atomic_{op}({out}, {idx_text}, {text})")
        builtins.append("atomic_" + op)
        args.append(Arg(out, ty.name, role, target.shape, *vrange))
        acc.update(out=out, role=role, op=op)
    elif kind == "bits":
        op = bits_op
        role = "inout" if op == "and" or rng.random() < 0.3 else "out"
        out = _fresh(("mask", "bits", "flags", "seen", "parity", "cells"), used, rng)
        for _ in range(4):
            base = gen.expr(int(rng.integers(1, 3)))
            if not E.uses(base):
                base = gen.apply_binary("add", base, gen.var_leaf())
            if _varies(base, ctx, ty):
                break
        style = pick(rng, ("bit", "field")) if op != "and" else "bit"
        if style == "bit":                # one bit per thread: 1 << (e & 15); shifts stay below the sign bit
            sh = int(pick(rng, (7, 15, 30))) if op != "and" else 15
            text = f"1 << ({E.emit(base, ty)} & {sh})"
            if op == "and":
                text = f"~({text})"
        else:
            sh = int(pick(rng, (0xFF, 0xF0F, 0x3FF)))
            text = f"{E.emit(base, ty)} & {hex(sh)}"
        acc["value"], acc["nodes"] = base, [base]
        update(out, op, BIT_SYM[op], text)
        args.append(Arg(out, "int32", role, target.shape, 0, 65535))
        acc.update(out=out, role=role, op=op, style=style, sh=sh)
    elif kind == "count":
        out = _fresh(("counts", "hist", "tally", "nhit", "freq"), used, rng)
        role = "inout" if rng.random() < 0.2 else "out"
        update(out, "add", "+", "1")
        args.append(Arg(out, "int32", role, target.shape, 0, 20))
        acc.update(out=out, role=role)
    elif kind == "flag_count":
        flags = _fresh(("flags", "seen", "visited", "marked"), used, rng)
        cnt = _fresh(("nhit", "ndistinct", "winners", "first"), used, rng)
        old = _fresh(("old", "prev_flag", "was", "before"), used, rng)
        lines += [f"{ind}{old} = wp.atomic_cas({flags}, {idx_text}, 0, 1)", f"{ind}if {old} == 0:",
                  f"{ind}    wp.atomic_add({cnt}, 0, 1)"]
        builtins += ["atomic_cas", "atomic_add"]
        args += [Arg(flags, "int32", "out", target.shape), Arg(cnt, "int32", "out", (1,))]
        acc.update(flags=flags, cnt=cnt)
    elif kind == "exch_perm":
        perm, pkind = _permutation(rng, ctx)
        target = _Target(ctx["dims"], perm, "perm_" + pkind, False, 1)
        acc["target"] = target
        idx_text = ", ".join(_ix_text(p) for p in perm)
        buf = _fresh(("buf", "cells", "grid", "slots", "state"), used, rng)
        prev = _fresh(("prev", "old_vals", "swapped", "before"), used, rng)
        text, node = value(1)
        old = _fresh(("old", "prev_v", "was", "o"), used, rng)
        gen2 = E.ExprGen(rng, ty, {old: E.Interval(*vrange), **gen.leaves}, binary=gen.binary, p_leaf=0.4)
        post = E.var(old, E.Interval(*vrange))
        ctx["sample"][old] = np.random.default_rng(len(used)).uniform(*vrange, size=ctx["dims"]).astype(ty.np_ref)
        if ty.is_int:
            ctx["sample"][old] = np.round(ctx["sample"][old])
        if rng.random() < 0.6:
            post = gen2.apply_binary(pick(rng, ("add", "sub", "mul", "max")), post, gen2.expr(1))
        lines += [f"{ind}{old} = wp.atomic_exch({buf}, {idx_text}, {text})",
                  f"{ind}{prev}[{tidx}] = {E.emit(post, ty)}"]
        builtins.append("atomic_exch")
        args += [Arg(buf, ty.name, "inout", ctx["dims"], *vrange), Arg(prev, ty.name, "out", ctx["dims"])]
        acc["value"], acc["nodes"] = node, [node, post]
        acc.update(buf=buf, prev=prev, old=old, post=post)
    elif kind == "exch_const":
        out = _fresh(("last", "cells", "tag", "mark", "owner"), used, rng)
        role = "inout" if rng.random() < 0.5 else "out"
        bvar = target.index[0]
        btext = _ix_text(bvar)
        if ty.is_int:
            c1, c2 = int(rng.integers(2, 9)), int(rng.integers(-5, 6))
            text, cell = (_affine_text(btext, c1, c2), (c1, c2)) if rng.random() < 0.6 else (str(c1), (0, c1))
        else:
            c1, c2 = float(pick(rng, (0.5, 1.5, 2.0, -1.0, 0.25))), float(pick(rng, (0.0, 1.0, -2.5, 3.25)))
            text = f"float({btext}) * {E.FLOAT32.literal(c1)} + {E.FLOAT32.literal(c2)}" if rng.random() < 0.6 \
                else E.FLOAT32.literal(c2 if c2 != 0.0 else 1.0)
            cell = (c1, c2) if "float(" in text else (0.0, c2 if c2 != 0.0 else 1.0)
        lines.append(f"{ind}wp.atomic_exch({out}, {idx_text}, {text})")
        builtins.append("atomic_exch")
        args.append(Arg(out, ty.name, role, target.shape, *vrange))
        acc.update(out=out, role=role, cell=cell)
    elif kind == "cas_set":
        if target.shape == (1,):
            return None
        out = _fresh(("state", "cells", "owner", "tag"), used, rng)
        c0 = int(rng.integers(0, 4))
        c1, c2 = int(rng.integers(1, 5)), int(rng.integers(10, 20))
        btext = ", ".join(_ix_text(p) for p in target.index)
        if len(target.index) == 1 and rng.random() < 0.6:
            newv = _affine_text(_ix_text(target.index[0]), c1, c2)
            cell = (c1, c2)
        else:
            newv = str(c2)
            cell = (0, c2)
        count = None
        if rng.random() < 0.5:
            count = _fresh(("won", "converted", "nswap", "claimed"), used, rng)
            lines += [f"{ind}if wp.atomic_cas({out}, {btext}, {c0}, {newv}) == {c0}:",
                      f"{ind}    wp.atomic_add({count}, 0, 1)"]
            args_c = [Arg(count, "int32", "out", (1,))]
        else:
            lines.append(f"{ind}wp.atomic_cas({out}, {btext}, {c0}, {newv})")
            args_c = []
        builtins.append("atomic_cas")
        args += [Arg(out, "int32", "inout", target.shape, 0, 3)] + args_c
        acc.update(out=out, c0=c0, cell=cell, count=count)
    elif kind == "counter":
        cnt = _fresh(("cnt", "fill", "counts", "cursor"), used, rng)
        role = "inout" if rng.random() < 0.5 or not (target.data_dependent or guard is not None) else "out"
        slot = _fresh(("slot", "pos", "ticket", "n_before"), used, rng)
        lines.append(f"{ind}{slot} = wp.atomic_add({cnt}, {idx_text}, 1)")
        if rng.random() < 0.5:
            agg = _fresh(("last", "last_slot", "max_slot", "top"), used, rng)
            lines.append(f"{ind}wp.atomic_max({agg}, {idx_text}, {slot})")
            args_a = [Arg(agg, "int32", "out", target.shape)]
            mode = "max"
        else:
            agg = _fresh(("slot_sum", "total_slots", "tickets"), used, rng)
            lines.append(f"{ind}wp.atomic_add({agg}, 0, {slot})")
            args_a = [Arg(agg, "int32", "out", (1,))]
            mode = "sum"
        builtins += ["atomic_add", "atomic_max" if mode == "max" else "atomic_add"]
        args += [Arg(cnt, "int32", role, target.shape, 0, 10)] + args_a
        acc.update(cnt=cnt, role=role, agg=agg, mode=mode)
    else:
        raise ValueError(kind)
    acc["lines"], acc["args"], acc["builtins"] = lines, args, builtins
    return acc


# --------------------------------------------------------------------------------------------------------
# Reference


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    meta = spec.meta
    ty = E.SCALARS[meta["ty"]]
    dims = tuple(meta["dims"])
    ienv = L.launch_indices(dims, meta["tids"])
    tidx = ", ".join(meta["tids"])
    env: dict[str, np.ndarray] = {}
    for leaf, name in meta["loads"]:
        env[leaf] = inputs[name].astype(ty.np_ref)
        env[f"{name}[{tidx}]"] = env[leaf]
    if meta["keys"]:
        kname, K, node, bind = meta["keys"]
        raw = inputs[kname].astype(np.int64)
        ienv[f"{kname}[{tidx}]"] = raw
        if bind is not None:
            local, style = bind
            ienv[local] = {"direct": raw, "mod": np.fmod(raw, K), "mask": raw & (K - 1)}[style]
    if meta["fbin"]:
        bname, src_leaf, lo, s, K = meta["fbin"]
        # the kernel computes (x - lo) * s in float32 and truncates: do exactly that
        x32 = env[src_leaf].astype(np.float32)
        t = (x32 - np.float32(lo)) * np.float32(s)
        ienv[bname] = np.clip(np.trunc(t).astype(np.int64), 0, K - 1)
    if meta["shared"]:
        name, node = meta["shared"]
        env[name] = np.broadcast_to(E.evaluate(node, env, ty), dims)
    out: dict[str, np.ndarray] = {}
    for acc in meta["accs"]:
        _apply(acc, ty, dims, env, ienv, inputs, out)
    return out


def _cells(target, ienv, dims, active):
    return tuple(np.broadcast_to(_ix_eval(p, ienv), dims)[active] for p in target.index)


def _apply(acc, ty, dims, env, ienv, inputs, out) -> None:
    kind = acc["kind"]
    target = acc["target"]
    active = np.ones(dims, dtype=bool)
    if acc["guard"] is not None:
        active &= np.broadcast_to(E.evaluate_cond(acc["guard"], env, ty), dims)
    idx = _cells(target, ienv, dims, active)

    def val(node):
        return np.broadcast_to(E.evaluate(node, env, ty), dims)[active]

    if kind in ("add", "sub", "minmax"):
        arr = inputs[acc["out"]].astype(ty.np_ref).copy()
        v = val(acc["value"])
        ufunc = {"add": np.add, "sub": np.subtract}.get(kind) or (np.minimum if acc["op"] == "min" else np.maximum)
        ufunc.at(arr, idx, v)
        out[acc["out"]] = arr
    elif kind == "bits":
        arr = inputs[acc["out"]].astype(np.int64).copy()
        base = val(acc["value"]).astype(np.int64)
        if acc["style"] == "bit":
            v = np.left_shift(1, base & acc["sh"])
            if acc["op"] == "and":
                v = ~v
        else:
            v = base & acc["sh"]
        {"or": np.bitwise_or, "xor": np.bitwise_xor, "and": np.bitwise_and}[acc["op"]].at(arr, idx, v)
        out[acc["out"]] = arr
    elif kind == "count":
        arr = inputs[acc["out"]].astype(np.int64).copy()
        np.add.at(arr, idx, 1)
        out[acc["out"]] = arr
    elif kind == "flag_count":
        flags = inputs[acc["flags"]].astype(np.int64).copy()
        flags[idx] = 1
        out[acc["flags"]] = flags
        shape = target.shape
        distinct = np.unique(np.ravel_multi_index(idx, shape)).size if idx[0].size else 0
        out[acc["cnt"]] = np.array([distinct], dtype=np.int64)
    elif kind == "exch_perm":
        buf0 = inputs[acc["buf"]].astype(ty.np_ref)
        perm = tuple(np.broadcast_to(_ix_eval(p, ienv), dims) for p in target.index)
        v = np.broadcast_to(E.evaluate(acc["value"], env, ty), dims)
        buf = buf0.copy()
        if acc["guard"] is None:
            buf[perm] = v
            old = buf0[perm]
        else:
            buf[tuple(p[active] for p in perm)] = v[active]
            old = buf0[perm]
        prev = inputs[acc["prev"]].astype(ty.np_ref).copy()
        local = dict(env)
        local[acc["old"]] = old
        post = np.broadcast_to(E.evaluate(acc["post"], local, ty), dims)
        prev[active] = post[active]
        out[acc["buf"]] = buf
        out[acc["prev"]] = prev
    elif kind == "exch_const":
        arr = inputs[acc["out"]].astype(ty.np_ref).copy()
        c1, c2 = acc["cell"]
        cells = idx[0]
        if ty.is_int:
            arr[idx] = cells * c1 + c2
        else:
            arr[idx] = (cells.astype(np.float32) * np.float32(c1) + np.float32(c2)).astype(np.float64)
        out[acc["out"]] = arr
    elif kind == "cas_set":
        arr0 = inputs[acc["out"]].astype(np.int64)
        arr = arr0.copy()
        c1, c2 = acc["cell"]
        flat = np.unique(np.ravel_multi_index(idx, target.shape)) if idx[0].size else np.zeros(0, np.int64)
        hit = np.unravel_index(flat, target.shape)
        newv = (flat * c1 + c2) if len(target.shape) == 1 else np.full(flat.shape, c2)
        arr[hit] = np.where(arr0[hit] == acc["c0"], newv, arr0[hit])
        out[acc["out"]] = arr
        if acc["count"]:
            out[acc["count"]] = np.array([int(np.count_nonzero(arr0[hit] == acc["c0"]))], dtype=np.int64)
    elif kind == "counter":
        cnt0 = inputs[acc["cnt"]].astype(np.int64)
        k = np.zeros(target.shape, dtype=np.int64)
        np.add.at(k, idx, 1)
        out[acc["cnt"]] = cnt0 + k
        if acc["mode"] == "max":        # slots handed out in a cell: cnt0, ..., cnt0 + k - 1; last starts at 0
            out[acc["agg"]] = np.where(k > 0, np.maximum(cnt0 + k - 1, 0), 0)
        else:
            out[acc["agg"]] = np.array([int(np.sum(k * cnt0 + k * (k - 1) // 2))], dtype=np.int64)
    else:
        raise ValueError(kind)


# --------------------------------------------------------------------------------------------------------
# Tolerance


def tolerance(spec: KernelSpec) -> Tolerance:
    """int32: exact. float32: every output element is at most a sum of ``n`` float32 terms (plus an initial
    value), each computed by a few float32 operations, accumulated in an order that differs between devices
    and runs. With ``S`` a bound on the sum of the terms' magnitudes in one cell (``n * M`` with ``M`` the
    term's interval bound, plus the initial value's), recursive summation in any order errs by at most
    ``(n - 1) * eps * S`` and the terms themselves by a few ``eps * M`` each; we allow ``2 * eps * n * (S + 8 M)``
    absolute on top of the usual float32 ``rtol``. Min/max and exchanges are exact up to the terms' own
    rounding, which ``rtol`` covers."""
    meta = spec.meta
    if meta["ty"] == "int32":
        return Tolerance(0.0, 0.0)
    atol = 1e-5
    for acc in meta["accs"]:
        if acc["kind"] in ("add", "sub"):
            n = acc["target"].n_max
            m = max(acc["value"].iv.mag, 1e-3)
            init = meta["vmag"] if acc["role"] == "inout" else 0.0
            s = n * m + init
            atol = max(atol, 2 * F32_EPS * n * (s + 8 * m))
    return Tolerance(1e-4, atol)


FAMILY = Family(
    name="atomic",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=reference,
    tolerance=tolerance,
    weight=1.0,
    covers=("atomic_add", "atomic_sub", "atomic_min", "atomic_max", "atomic_cas", "atomic_exch", "atomic_and",
            "atomic_or", "atomic_xor", "augmented assignment on arrays", "histograms", "scatter", "reductions",
            "2D launches", "data-dependent indices", "float binning"),
)
