"""Composable random program builders over the IR, driven by a ``np.random.Generator``.

Small builders compose into bigger ones, Hypothesis-style: :class:`ExprBuilder` draws a typed expression
inside every operation's domain guard (arguments repaired into range, e.g. ``abs(d) + 0.5`` for a divisor),
never an identity operation, a self-comparison or an operation of constants only; :func:`random_kernel`
draws statement sequences (let, assign under ``if``, accumulating ``for`` loops with ``break``/``continue``)
and stores, then folds unused values into an output, removes dead code and checks the result with the
interval engine. Families bring their own :class:`Vocabulary` (operations, weights, types, leaf ranges).
Generation only builds; checking lives in :mod:`kernels.ir.analysis` and :mod:`kernels.ir.intervals`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, TypeVar

import numpy as np

from kernels.ir import analysis, intervals
from kernels.ir import nodes as n
from kernels.ir.numeric import Interval
from kernels.ir.ops import OPS, Ctx
from kernels.ir.types import BOOL, FLOAT32, INT32, Array, Scalar, Type

Leaf = tuple[n.Expr, Interval]

#: names a kernel's values may take when a :class:`Layout` asks for readable names
ARRAY_NAMES = ("a", "b", "c", "d", "x", "y", "z", "u", "v", "w", "p", "q", "src", "inp", "lhs", "rhs", "vals",
               "data", "field", "mass", "vel", "pos", "rho", "temp")
OUT_NAMES = ("out", "res", "dst", "result", "y_out", "acc", "outp", "dest")
LOCAL_NAMES = ("t", "s", "r", "m", "k", "h", "g", "e", "f", "tmp", "val", "acc", "prod", "part", "term")
SCALAR_NAMES = ("alpha", "beta", "scale", "gain", "bias", "shift", "k0", "coef", "eps", "offset")


def _one_side_wins(op: str, ivs: list[Interval]) -> bool:
    """``min``/``max`` of disjoint intervals and ``abs`` of a non-negative one return an argument unchanged."""
    if op in ("min", "max"):
        a, b = ivs
        return a.hi <= b.lo or b.hi <= a.lo
    return op == "abs" and ivs[0].lo >= 0


@dataclass(frozen=True)
class Vocabulary:
    """What a family draws from: operation weights, value types, input ranges and magnitude cap."""

    ops: dict[str, float]
    types: tuple[Scalar, ...] = (FLOAT32, INT32)
    ranges: dict[Scalar, Interval] = field(default_factory=lambda: {FLOAT32: Interval(-2.0, 2.0),
                                                                     INT32: Interval(-20.0, 20.0)})
    limit: float = 1e4
    p_leaf: float = 0.3
    p_const: float = 0.2
    p_compound: float = 0.0          # chance that a condition joins two comparisons with and/or
    p_call: float = 0.15             # chance that an operation calls a helper, when the kernel has one


@dataclass(frozen=True)
class Helper:
    """A ``@wp.func`` with the intervals its body was drawn for (call sites keep their arguments inside) and
    the interval of its result there."""

    func: n.Func
    params: tuple[Interval, ...]
    ret: Interval


FLOAT_INT_VOCAB = Vocabulary({"add": 3, "sub": 3, "mul": 3, "div": 1.5, "mod": 0.5, "floordiv": 0.5, "neg": 1,
                              "min": 1, "max": 1, "abs": 1, "where": 1, "sqrt": 0.5, "sin": 0.5, "cos": 0.5,
                              "exp": 0.3, "log": 0.5, "tanh": 0.5, "floor": 0.3, "bit_and": 0.4, "bit_xor": 0.4})


class ExprBuilder:
    """Random typed expressions over ``leaves`` (expressions with known intervals)."""

    def __init__(self, rng: np.random.Generator, vocab: Vocabulary, leaves: list[Leaf]) -> None:
        self.rng, self.vocab, self.leaves = rng, vocab, list(leaves)
        self.helpers: list[Helper] = []
        self.candidates: dict[Type, list[tuple[str, tuple[Type, ...]]]] = {}
        for name in vocab.ops:
            for args, result in OPS[name].instances():
                if all(a in vocab.types or a == BOOL for a in args):
                    self.candidates.setdefault(result, []).append((name, args))

    def pick(self, options: list):
        return options[int(self.rng.integers(len(options)))]

    def constant(self, ty: Scalar) -> Leaf:
        if ty.is_int:
            value = int(self.pick([-7, -5, -3, -2, 2, 3, 4, 5, 7, 9]))
        else:
            value = float(self.pick([-2.5, -1.5, -0.75, 0.25, 0.5, 1.5, 2.0, 2.5, 3.0, 0.125]))
        return n.Const(value, ty), Interval.point(value)

    def leaf(self, ty: Scalar) -> Leaf:
        typed = [x for x in self.leaves if x[0].type == ty]
        if typed and self.rng.random() >= self.vocab.p_const:
            return self.pick(typed)
        others = [x for x in self.leaves if x[0].type in self.vocab.types]
        if not typed and others and self.rng.random() < 0.6:
            e, iv = self.pick(others)
            return self.checked(n.Cast(e, ty), [iv]) or self.constant(ty)
        return self.constant(ty)

    def checked(self, e: n.Expr, ivs: list[Interval]) -> Leaf | None:
        """``(e, interval)`` when ``e`` passes its guard, stays under the magnitude cap, is not one constant
        value and is clean."""
        if analysis.is_identity(e) or analysis.is_self_operation(e) or analysis.is_absorbed(e) or \
                analysis.is_double_negation(e):
            return None
        args = e.args if isinstance(e, n.Call) else (e.value,)
        if args and all(isinstance(a, n.Const) for a in args):
            return None
        if isinstance(e, n.Call) and _one_side_wins(e.op, ivs):
            return None
        row = OPS[e.op] if isinstance(e, n.Call) else OPS["cast"]
        ctx = Ctx(tuple(a.type for a in args), e.type)
        try:
            if row.guard(ctx, *ivs):
                return None
            iv = row.bound(ctx, *ivs)
        except (ValueError, OverflowError, ZeroDivisionError):
            return None
        return (e, iv) if iv.mag <= self.vocab.limit and not iv.is_point else None

    def expr(self, ty: Scalar, depth: int, top: bool = False) -> Leaf:
        """An expression of type ``ty`` and depth at most ``depth``; ``top`` draws an operation at the root
        whenever one fits (no early leaf)."""
        if ty == BOOL:
            return self.condition(depth)
        options = self.candidates.get(ty, [])
        if depth <= 0 or not options or (not top and self.rng.random() < self.vocab.p_leaf):
            return self.leaf(ty)
        if self.helpers and self.rng.random() < self.vocab.p_call:
            made = self.call(ty, depth)
            if made is not None:
                return made
        weights = np.array([self.vocab.ops[o] for o, _ in options], dtype=float)
        for _ in range(6):
            name, arg_types = options[int(self.rng.choice(len(options), p=weights / weights.sum()))]
            parts = [self.expr(t, depth - 1) for t in arg_types]
            parts = self.repair(name, parts)
            made = self.checked(n.Call(name, tuple(p[0] for p in parts)), [p[1] for p in parts])
            if made is not None:
                return made
        return self.leaf(ty)

    def call(self, ty: Scalar, depth: int) -> Leaf | None:
        """A call of a helper returning ``ty``, arguments squashed into the intervals its body was drawn for."""
        fitting = [h for h in self.helpers if h.func.ret == ty]
        if not fitting:
            return None
        h = self.pick(fitting)
        args = []
        for p, dom in zip(h.func.params, h.params):
            arg = self.expr(p.type, depth - 1)
            arg = arg if dom.contains(arg[1]) else self.squash(arg, dom)
            if arg is None or isinstance(arg[0], n.Const):
                return None
            args.append(arg[0])
        return n.FuncCall(h.func, tuple(args)), h.ret

    def repair(self, name: str, parts: list[Leaf]) -> list[Leaf]:
        """Move arguments into the domain: divisors and ``cbrt`` arguments away from 0, ``log``/``sqrt``/``pow``
        bases positive (``abs(x) + c``), arguments of bounded domains (``asin``, ``erfinv``, ``tan``...)
        squashed inside (``tanh(x) * c``)."""
        k = {"div": 1, "mod": 1, "floordiv": 1, "log": 0, "log2": 0, "log10": 0, "sqrt": 0, "cbrt": 0,
             "pow": 0}.get(name)
        if k is None or k >= len(parts):
            return self.squash_args(name, parts)
        e, iv = parts[k]
        if (k == 1 and not iv.contains_zero()) or (k == 0 and iv.lo > 0):
            return parts
        c, c_iv = self.constant(e.type)
        c = n.Const(abs(c.value), e.type)
        if isinstance(e, n.Const):                   # a constant argument: the operation would be constant too
            return parts
        a = n.Call("abs", (e,)) if iv.lo < 0 else e
        fixed = n.Call("add", (a, c))
        lo = (0.0 if iv.contains_zero() else min(abs(iv.lo), abs(iv.hi))) + abs(c_iv.lo)
        return [*parts[:k], (fixed, Interval(lo, iv.mag + abs(c_iv.lo))), *parts[k + 1:]]

    def squash_args(self, name: str, parts: list[Leaf]) -> list[Leaf]:
        row = OPS[name]
        if row.domain is None:
            return parts
        out = list(parts)
        for k, ((e, iv), dom) in enumerate(zip(parts, row.domain(tuple(e.type for e, _ in parts)))):
            if not dom.contains(iv) and math.isfinite(dom.lo) and math.isfinite(dom.hi):
                out[k] = self.squash((e, iv), dom) or out[k]
        return out

    def squash(self, part: Leaf, dom: Interval) -> Leaf | None:
        """``tanh(e) * h + m`` inside ``dom`` (``h`` a short constant below nine tenths of its half width)."""
        e, iv = part
        if not (isinstance(e.type, Scalar) and e.type.is_float):
            return None
        mid, half = (dom.lo + dom.hi) / 2, float(f"{0.9 * (dom.hi - dom.lo) / 2:.2g}")
        made = self.checked(n.Call("tanh", (e,)), [iv])
        if made is not None:
            made = self.checked(n.Call("mul", (made[0], n.Const(half, e.type))), [made[1], Interval.point(half)])
        if made is not None and mid != 0:
            made = self.checked(n.Call("add", (made[0], n.Const(mid, e.type))), [made[1], Interval.point(mid)])
        return made

    def compound(self, ty: Scalar, depth: int) -> Leaf:
        """An operation (never a bare leaf: no copies ``t = x``) of depth at most ``max(depth, 1)``."""
        made = self.expr(ty, max(depth, 1), top=True)
        for _ in range(8):
            if not isinstance(made[0], (n.Var, n.Const, n.Load, n.Cast)):
                return made
            made = self.expr(ty, max(depth, 1), top=True)
        return made

    def sized(self, ty: Scalar, depths: tuple[int, int], max_ops: int) -> Leaf:
        """An operation whose depth lies in ``depths`` with at most ``max_ops`` operations (the closest drawn
        when none of a few draws fits)."""
        target = int(self.rng.integers(depths[0], depths[1] + 1))
        arg, best = target, None
        for _ in range(10):
            made = self.compound(ty, arg)
            d, ops = analysis.depth(made[0]), analysis.size(made[0])
            if depths[0] <= d <= depths[1] and ops <= max_ops:
                return made
            if ops <= max_ops and (best is None or abs(d - target) < abs(analysis.depth(best[0]) - target)):
                best = made
            arg = max(1, arg + (1 if d < depths[0] else -1))
        return best if best is not None else self.compound(ty, depths[0])

    def condition(self, depth: int) -> Leaf:
        """A comparison whose value is not the same on every input, sometimes two joined by and/or."""
        made = self.comparison(depth)
        if self.vocab.p_compound and depth > 1 and self.rng.random() < self.vocab.p_compound:
            other = self.comparison(depth - 1)
            joined = self.checked(n.Call(self.pick(["and", "or"]), (made[0], other[0])), [made[1], other[1]])
            if joined is not None and not joined[1].is_point:
                return joined
        return made

    def comparison(self, depth: int) -> Leaf:
        """A comparison whose value is not the same on every input."""
        for _ in range(8):
            ty = self.pick(list(self.vocab.types))
            (a, ia), (b, ib) = self.expr(ty, max(0, depth - 1)), self.expr(ty, max(0, depth - 1))
            cmp = self.pick(["lt", "le", "gt", "ge"])
            made = self.checked(n.Call(cmp, (a, b)), [ia, ib])
            if made is not None and not made[1].is_point:
                return made
        e, iv = self.leaf(FLOAT32 if FLOAT32 in self.vocab.types else self.vocab.types[0])
        return n.Call("lt", (e, n.Const(iv.lo + (iv.hi - iv.lo) / 2, e.type))), Interval(0.0, 1.0)


HELPER_PARAMS = (("p", "q"), ("x0", "x1"), ("u", "v"), ("lhs", "rhs"), ("s", "t"))
HELPER_RANGES = (Interval(-2.0, 2.0), Interval(-1.0, 1.0), Interval(0.2, 2.0), Interval(-3.0, 3.0))


def random_helper(rng: np.random.Generator, vocab: Vocabulary, ty: Scalar, name: str) -> Helper:
    """A helper of one or two ``ty`` parameters: 0-2 locals, then a returned expression; every parameter and
    local is read."""
    names = HELPER_PARAMS[int(rng.integers(len(HELPER_PARAMS)))][:int(rng.integers(1, 3))]
    ivs = tuple(HELPER_RANGES[int(rng.integers(len(HELPER_RANGES)))] for _ in names)
    gen = ExprBuilder(rng, vocab, [(n.Var(p, ty), iv) for p, iv in zip(names, ivs)])
    body: list[n.Stmt] = []
    for k in range(int(rng.integers(0, 3))):
        e, iv = gen.compound(ty, int(rng.integers(1, 3)))
        local = f"{gen.pick(['t', 'r', 'w', 'z'])}{k}"
        body.append(n.Let(local, e))
        gen.leaves.append((n.Var(local, ty), iv))
    ret = gen.compound(ty, int(rng.integers(1, 3)))
    for var, iv in gen.leaves:
        exprs = [x for s in body for x in n.stmt_exprs(s)] + [ret[0]]
        if analysis.reads(exprs, var.name) == 0:
            ret = gen.checked(n.Call(gen.pick(["add", "sub"]), (ret[0], var)), [ret[1], iv]) or \
                (n.Call("add", (ret[0], var)), ret[1])
    func = n.Func(name, tuple(n.Param(p, ty) for p in names), ty, (*body, n.Return(ret[0])))
    return Helper(func, ivs, ret[1])


@dataclass(frozen=True)
class Layout:
    """The shape :func:`random_kernel` draws: how many input arrays (loaded into locals, or read inline as
    ``a[i]`` with chance ``p_inline``), scalar parameters, statements of each kind (``let``, ``update`` of an
    earlier local, ``if``, ``loop``) and outputs, the expression depths, and whether names come from the
    readable pools."""

    inputs: tuple[int, int] = (1, 3)
    input_ranges: tuple[Interval, ...] = ()      # each input's range drawn from these (else the vocabulary's)
    p_inline: float = 0.0
    scalars: tuple[int, int] = (0, 0)
    scalar_ranges: tuple[Interval, ...] = ()     # likewise for scalar parameters
    statements: tuple[int, int] = (1, 3)
    kinds: Mapping[str, float] = field(default_factory=lambda: {"let": 0.4, "if": 0.3, "loop": 0.3})
    depth: tuple[int, int] = (1, 3)
    outputs: tuple[int, int] = (1, 2)
    out_depth: tuple[int, int] = (2, 3)
    out_ops: int = 0                # > 0: outputs have a depth inside out_depth and at most this many operations
    min_reads: int = 1              # each local bound by ``let`` is read at least this often (shared values)
    p_helper: float = 0.0           # chance of a ``@wp.func`` helper the expressions may call
    named: bool = False


class Names:
    """Distinct names for one kernel: from the readable pools, or ``in0``/``x0``/``out0``/``t0``..."""

    def __init__(self, rng: np.random.Generator, named: bool) -> None:
        self.rng, self.named, self.used = rng, named, {"i"}

    def fresh(self, pool: tuple[str, ...], plain: str, k: int, suffix: bool = False) -> str:
        """``plain``, or (named) an unused pick from ``pool``, with ``k`` appended when ``suffix``."""
        candidates = [plain]
        if self.named:
            order = self.rng.permutation(len(pool))
            candidates = [pool[int(j)] + (str(k) if suffix else "") for j in order] + candidates
        name = next((c for c in candidates if c not in self.used), None)
        extra = 0
        while name is None or name in self.used:
            extra += 1
            name = f"{candidates[0]}_{extra}"
        self.used.add(name)
        return name

    def loaded(self, array: str, k: int) -> str:
        """The local an input array's element is loaded into (``x0``; named: ``a_v`` or ``xa``)."""
        if not self.named:
            return self.fresh((), f"x{k}", k)
        return self.fresh((), f"{array}_v" if self.rng.random() < 0.5 else f"x{array}", k)


def _span(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _range(rng: np.random.Generator, choices: tuple[Interval, ...], default: Interval) -> Interval:
    return choices[int(rng.integers(len(choices)))] if choices else default


def random_kernel(rng: np.random.Generator, vocab: Vocabulary = FLOAT_INT_VOCAB, size: int = 32,
                  name: str = "wkf_kernel", tries: int = 40,
                  layout: Layout = Layout()) -> tuple[n.Kernel, dict[str, Interval]]:
    """A clean kernel over ``size`` threads and the intervals of its inputs (see :func:`is_clean`)."""
    def draw() -> tuple[n.Kernel, dict[str, Interval]]:
        kernel, inputs = _draw(rng, vocab, layout, size, name)
        return analysis.remove_dead(analysis.fold_unused(kernel)), inputs

    return first_clean(draw, size, tries)


def is_clean(kernel: n.Kernel, inputs: Mapping[str, Interval], size: int) -> bool:
    """Guards hold on the inputs' intervals, every input and local reaches an output, no dead code, no identity
    or self operations, no output that is never written or one constant."""
    shapes = {p.name: (size,) for p in kernel.params if isinstance(p.type, Array)}
    facts = intervals.analyze(kernel, inputs, (size,), shapes)
    outputs = sorted({s.array for s in analysis.statements(kernel.body) if isinstance(s, (n.Store, n.Atomic))})
    return not any(analysis.hygiene(kernel).values()) and not facts.violations and \
        not facts.degenerate(outputs) and analysis.reaching(kernel) >= {p.name for p in kernel.params}


Drawn = TypeVar("Drawn", bound=tuple)


def first_clean(draw: Callable[[], Drawn], size: int, tries: int = 20) -> Drawn:
    """The first of ``tries`` draws (each a tuple starting with a kernel and its input intervals) that
    :func:`is_clean`."""
    for _ in range(tries):
        drawn = draw()
        if is_clean(drawn[0], drawn[1], size):
            return drawn
    raise RuntimeError(f"no clean kernel in {tries} draws")


def _draw(rng, vocab: Vocabulary, layout: Layout, size: int, name: str):
    i = n.Var("i", INT32)
    names = Names(rng, layout.named)
    params: list[n.Param] = []
    inputs: dict[str, Interval] = {}
    body: list[n.Stmt] = []
    leaves: list[Leaf] = []
    inline = rng.random() < layout.p_inline
    for k in range(_span(rng, layout.inputs)):
        ty = vocab.types[int(rng.integers(len(vocab.types)))]
        arr = names.fresh(ARRAY_NAMES, f"in{k}", k)
        params.append(n.Param(arr, Array(ty)))
        iv = inputs[arr] = _range(rng, layout.input_ranges, vocab.ranges[ty])
        load = n.Load(arr, Array(ty), (i,))
        if inline:
            leaves.append((load, iv))
            continue
        local = names.loaded(arr, k)
        body.append(n.Let(local, load))
        leaves.append((n.Var(local, ty), iv))
    for k in range(_span(rng, layout.scalars)):
        ty = vocab.types[int(rng.integers(len(vocab.types)))]
        scalar = names.fresh(SCALAR_NAMES, f"s{k}", k)
        iv = _range(rng, layout.scalar_ranges, vocab.ranges[ty])
        params.append(n.Param(scalar, ty))
        inputs[scalar] = iv
        leaves.append((n.Var(scalar, ty), iv))
    gen = ExprBuilder(rng, vocab, leaves)
    if layout.p_helper and rng.random() < layout.p_helper:
        suffix = gen.pick(["f", "g", "h", "fn", "op"])
        gen.helpers.append(random_helper(rng, vocab, vocab.types[int(rng.integers(len(vocab.types)))],
                                         f"{name}_{suffix}"))
    kinds = list(layout.kinds)
    weights = np.array([layout.kinds[x] for x in kinds], dtype=float)
    for k in range(_span(rng, layout.statements)):
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        ty = vocab.types[int(rng.integers(len(vocab.types)))]
        if kind == "update" and _update(gen, body, ty, _span(rng, layout.depth)):
            continue
        if kind in ("let", "update"):
            e, iv = gen.compound(ty, _span(rng, layout.depth))
            local = names.fresh(LOCAL_NAMES, f"t{k}", k, suffix=True)
            body.append(n.Let(local, e))
            gen.leaves.append((n.Var(local, ty), iv))
        elif kind == "if":
            body += _if_block(gen, ty, names.fresh(("v",), f"v{k}", k, suffix=True))
        else:
            body += _loop(gen, ty, names.fresh(("acc",), f"acc{k}", k, suffix=True),
                          names.fresh(("j",), f"j{k}", k, suffix=True), rng)
    outs: list[n.Param] = []
    values: list[Leaf] = []
    for k in range(_span(rng, layout.outputs)):
        ty = vocab.types[int(rng.integers(len(vocab.types)))]
        if layout.out_ops:
            values.append(gen.sized(ty, layout.out_depth, layout.out_ops))
        else:
            values.append(gen.compound(ty, _span(rng, layout.out_depth)))
        outs.append(n.Param(names.fresh(OUT_NAMES, f"out{k}", k), Array(ty)))
    if layout.min_reads > 1:
        values = _share(gen, body, values, layout.min_reads)
    body += [n.Store(p.name, p.type, (i,), e) for p, (e, _) in zip(outs, values)]
    funcs = tuple(h.func for h in gen.helpers)
    return n.Kernel(name, tuple(params + outs), tuple(body), funcs=funcs), inputs


def _share(gen: ExprBuilder, body: list[n.Stmt], values: list[Leaf], min_reads: int) -> list[Leaf]:
    """Fold locals bound by ``let`` that are read fewer than ``min_reads`` times into the outputs (``out + t``,
    ``out * sin(t)``...), round robin, until each is read often enough or no fold passes the guards."""
    values = list(values)
    j = int(gen.rng.integers(len(values)))
    for s in [s for s in body if isinstance(s, n.Let) and isinstance(s.value, n.Call)]:
        var = n.Var(s.name, s.value.type)
        iv = next((v for e, v in gen.leaves if e == var), None)
        exprs = [x for t in analysis.statements(tuple(body)) for x in n.stmt_exprs(t)] + [e for e, _ in values]
        count = analysis.reads(exprs, s.name)
        for _ in range(4 * min_reads):
            if count >= min_reads or iv is None:
                break
            e, e_iv = values[j]
            term: Leaf = (var, iv)
            if e.type.is_float and gen.rng.random() < 0.6:
                unary = gen.pick(["sin", "cos", "tanh", "atan", "exp", "erf"])
                term = gen.checked(n.Call(unary, (var,)), [iv]) or term
            if term[0].type != e.type:
                break
            made = gen.checked(n.Call(gen.pick(["add", "sub", "mul"]), (e, term[0])), [e_iv, term[1]])
            if made is not None:
                values[j] = made
                count += 1
            j = (j + 1) % len(values)
    return values


def _update(gen: ExprBuilder, body: list[n.Stmt], ty: Scalar, depth: int) -> bool:
    """``t = t op e`` for a local ``t`` computed earlier (its new interval replaces the old one)."""
    computed = [s.name for s in body if isinstance(s, n.Let) and isinstance(s.value, n.Call) and s.value.type == ty]
    if not computed:
        return False
    var = n.Var(gen.pick(computed), ty)
    k = next(j for j, (e, _) in enumerate(gen.leaves) if e == var)
    e, iv = gen.compound(ty, depth)
    made = gen.checked(n.Call(gen.pick(["add", "sub", "mul"]), (var, e)), [gen.leaves[k][1], iv])
    if made is None:
        return False
    body.append(n.Assign(var.name, made[0]))
    gen.leaves[k] = (var, made[1])
    return True


def _if_block(gen: ExprBuilder, ty: Scalar, v: str) -> list[n.Stmt]:
    """``v = e0`` then ``if c: v = e1 else: v = e2`` (or no else)."""
    e0, iv0 = gen.expr(ty, 2)
    cond, _ = gen.condition(2)
    e1, iv1 = gen.expr(ty, 2)
    orelse: tuple[n.Stmt, ...] = ()
    iv = iv0.join(iv1)
    if gen.rng.random() < 0.5:
        e2, iv2 = gen.expr(ty, 2)
        orelse, iv = (n.Assign(v, e2),), iv1.join(iv2)
    gen.leaves.append((n.Var(v, ty), iv))
    return [n.Let(v, e0), n.If(cond, (n.Assign(v, e1),), orelse)]


def _loop(gen: ExprBuilder, ty: Scalar, acc: str, j: str, rng) -> list[n.Stmt]:
    """``acc = e0; for j in range(T): [if c: break/continue] acc = acc + e`` with ``e`` free of ``acc``."""
    trips = int(rng.integers(2, 6))
    e0, iv0 = gen.expr(ty, 1)
    saved = list(gen.leaves)
    gen.leaves.append((n.Var(j, INT32), Interval(0.0, trips - 1.0)))
    step, iv_step = gen.expr(ty, 2)
    body: list[n.Stmt] = []
    if rng.random() < 0.6:
        cond, _ = gen.condition(1)
        body.append(n.If(cond, (n.Break() if rng.random() < 0.5 else n.Continue(),)))
    body.append(n.Assign(acc, n.Call("add", (n.Var(acc, ty), step))))
    gen.leaves = saved
    total = Interval(min(0.0, trips * iv_step.lo), max(0.0, trips * iv_step.hi))
    gen.leaves.append((n.Var(acc, ty), Interval(iv0.lo + total.lo, iv0.hi + total.hi)))
    return [n.Let(acc, e0), n.For(j, n.Const(0, INT32), n.Const(trips, INT32), tuple(body))]
