"""The one table of operations: for each Warp builtin or operator the IR uses, one :class:`Op` row.

A row says how Warp spells the operation (a Python operator or ``wp.<name>``), which argument types it accepts
and what it returns (:class:`Sig`), how NumPy computes it with Warp's semantics (C truncating integer ``/`` and
``%``, flooring ``//``, integer wrap-around, ``sign(0) == 1``, ``round`` half away from zero, float32/float16
results rounded to their type), the interval its result lies in given argument intervals, the domain its
arguments must stay in (``log`` > 0, divisors away from 0, no integer overflow), and whether Warp can
differentiate it (and for which arguments its adjoint is right: Warp 1.19's ``frac`` adjoint is zero, float
``%`` ignores its divisor). Like Warp's own ``builtins.py``, adding a builtin is adding a row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import numpy as np

from kernels.ir import numeric as N
from kernels.ir.numeric import BOOL_IV, INF, Interval
from kernels.ir.types import (BOOL, FLOAT_VECTORS, FLOATS, INTS, NUMERIC, SIGNED_INTS, Scalar, Type, Vector,
                              round_to, scalar_of)

Form = Literal["binop", "unop", "compare", "boolop", "not", "ifexp", "call", "construct", "cast"]


@dataclass(frozen=True, slots=True)
class Sig:
    """Argument patterns and result pattern; ``T`` ranges over ``over``, ``S`` is ``T``'s component type."""

    args: tuple
    result: object          # "T", "S", a Type, or a callable T -> Type
    over: tuple[Type, ...]

    def bind(self, types: tuple[Type, ...]) -> Type | None:
        if len(types) != len(self.args):
            return None
        t = next((ty for p, ty in zip(self.args, types) if p == "T"), None)
        if t is None:
            t = next((ty for ty in self.over if all(p != "S" or scalar_of(ty) == a
                                                    for p, a in zip(self.args, types))), None)
        if t not in self.over:
            return None
        for p, ty in zip(self.args, types):
            want = t if p == "T" else scalar_of(t) if p == "S" else p
            if want != ty:
                return None
        return self._result(t)

    def _result(self, t: Type) -> Type:
        if self.result == "T":
            return t
        if self.result == "S":
            return scalar_of(t)
        return self.result(t) if callable(self.result) else self.result

    def instances(self) -> Iterator[tuple[tuple[Type, ...], Type]]:
        for t in self.over:
            args = tuple(t if p == "T" else scalar_of(t) if p == "S" else p for p in self.args)
            yield args, self._result(t)


@dataclass(frozen=True, slots=True)
class Ctx:
    """What an implementation or interval rule sees besides its arguments."""

    types: tuple[Type, ...]
    result: Type
    exact: bool = True

    def rnd(self, x: np.ndarray) -> np.ndarray:
        """Round an intermediate to the result's component type (Warp rounds after every operation)."""
        return round_to(scalar_of(self.result), x, self.exact)


Impl = Callable[..., np.ndarray]
IvRule = Callable[..., Interval]


@dataclass(frozen=True, slots=True)
class Op:
    name: str
    spelling: str                      # "+" / "wp.sqrt"; for construct and cast rows the result type spells it
    form: Form
    sigs: tuple[Sig, ...]
    impl: Impl                         # impl(ctx, *args) -> raw result
    interval: IvRule                   # interval(ctx, *ivs) -> Interval (before rounding allowance)
    domain: Callable[[tuple[Type, ...]], tuple[Interval, ...]] | None = None
    extra_guard: Callable[..., str | None] | None = None     # extra_guard(ctx, *ivs) -> reason or None
    differentiable: bool = True
    casts_to: tuple[Type, ...] = ()    # cast rows: the target types
    adjoint_args: tuple[int, ...] | None = None   # arguments Warp's adjoint is right for (None: all)
    draws: int = 0                     # random builtins: how many times the state (argument 0, a local) advances

    def result(self, types: tuple[Type, ...], target: Type | None = None) -> Type | None:
        """The result type for these argument types, or None where Warp does not accept them."""
        if self.form == "cast":
            ok = len(types) == 1 and types[0] in NUMERIC and target in self.casts_to
            return target if ok else None
        for sig in self.sigs:
            r = sig.bind(tuple(types))
            if r is not None:
                return r
        return None

    def instances(self) -> Iterator[tuple[tuple[Type, ...], Type]]:
        if self.form == "cast":
            yield from (((src,), dst) for src in NUMERIC for dst in self.casts_to)
            return
        for sig in self.sigs:
            yield from sig.instances()

    def eval(self, ctx: Ctx, *args: np.ndarray) -> np.ndarray:
        """NumPy value with Warp's semantics, rounded/wrapped to the result type."""
        with np.errstate(all="ignore"):
            return round_to(ctx.result, self.impl(ctx, *args), ctx.exact)

    def bound(self, ctx: Ctx, *ivs: Interval) -> Interval:
        """Interval of the result, widened for the result type's rounding."""
        iv = self.interval(ctx, *ivs)
        s = scalar_of(ctx.result)
        if s.is_float:
            iv = iv.widen(2 * s.eps, float(np.finfo(s.numpy).smallest_subnormal))
        return iv

    def guard(self, ctx: Ctx, *ivs: Interval) -> str | None:
        """Why arguments in ``ivs`` may leave Warp's defined behaviour (None when they cannot)."""
        if self.domain is not None:
            for k, (iv, dom) in enumerate(zip(ivs, self.domain(ctx.types))):
                if not dom.contains(iv):
                    return f"{self.name}: argument {k} in {iv} leaves the domain {dom}"
        if self.extra_guard is not None:
            reason = self.extra_guard(ctx, *ivs)
            if reason:
                return f"{self.name}: {reason}"
        r = self.bound(ctx, *ivs)
        lo, hi = scalar_of(ctx.result).limits
        if not (math.isfinite(r.lo) and math.isfinite(r.hi) and lo <= r.lo and r.hi <= hi):
            return f"{self.name}: result {r} leaves {scalar_of(ctx.result)}'s range"
        return None


# ---------------------------------------------------------------------------------------------------------
# Shared pieces of rows

FLOAT_LIKE = FLOATS + FLOAT_VECTORS
ARITH = NUMERIC + FLOAT_VECTORS


def _divisor_nonzero(ctx: Ctx, a: Interval, b: Interval) -> str | None:
    return f"divisor {b} contains 0" if b.contains_zero() else None


def _is_int(ctx: Ctx) -> bool:
    return scalar_of(ctx.result).is_int


def _expand(ctx: Ctx, *args: np.ndarray) -> list[np.ndarray]:
    """Give scalar arguments trailing axes when the result is a vector (``s * v``)."""
    if isinstance(ctx.result, Vector):
        return [a[..., None] if not isinstance(t, Vector) else a for a, t in zip(args, ctx.types)]
    return list(args)


def _div(ctx, a, b):
    a, b = _expand(ctx, a, b)
    return N.trunc_div(a, b) if _is_int(ctx) else a / b


def _floordiv(ctx, a, b):
    return N.floor_div_int(a, b) if _is_int(ctx) else np.floor(ctx.rnd(a / b))


def _mod(ctx, a, b):
    return N.c_mod(a, b) if _is_int(ctx) else np.fmod(a, b)


def _iv_div(ctx, a, b):
    q = N.iv_div(a, b)
    return Interval(math.trunc(q.lo), math.trunc(q.hi)) if _is_int(ctx) else q


def _iv_floordiv(ctx, a, b):
    """``floor`` of the quotient, which Warp rounds to the type first (a tiny quotient may round to 0)."""
    q = N.iv_div(a, b)
    s = scalar_of(ctx.result)
    if s.is_float:
        q = q.widen(2 * s.eps, float(np.finfo(s.numpy).smallest_subnormal))
    return N.iv_monotone(math.floor, q)


def _iv_mod(ctx, a, b):
    m = b.mag - (1 if _is_int(ctx) else 0)
    if a.lo >= 0:
        return Interval(0.0, min(a.hi, m))
    if a.hi <= 0:
        return Interval(max(a.lo, -m), 0.0)
    return Interval(max(a.lo, -m), min(a.hi, m))


def _iv_cmp(kind: str) -> IvRule:
    def rule(ctx, a: Interval, b: Interval) -> Interval:
        lt_always, ge_always = a.hi < b.lo, a.lo >= b.hi
        le_always, gt_always = a.hi <= b.lo, a.lo > b.hi
        table = {"lt": (lt_always, ge_always), "le": (le_always, gt_always), "gt": (gt_always, le_always),
                 "ge": (ge_always, lt_always), "eq": (a.is_point and a == b, a.meet(b) is None),
                 "ne": (a.meet(b) is None, a.is_point and a == b)}
        always, never = table[kind]
        return Interval(1.0, 1.0) if always else Interval(0.0, 0.0) if never else BOOL_IV
    return rule


def _iv_bits(ctx, a: Interval, b: Interval) -> Interval:
    """Bitwise and/or/xor of integers of magnitude below 2**k lie in [-2**k, 2**k - 1]."""
    k = int(max(a.mag, b.mag) + 1).bit_length()
    if a.lo >= 0 and b.lo >= 0:
        return Interval(0.0, 2.0 ** k - 1)
    return Interval(-(2.0 ** k), 2.0 ** k - 1)


def _shift_domain(types):
    s = scalar_of(types[0])
    lo = 0.0 if not s.is_signed else s.limits[0]
    return (Interval(lo, s.limits[1]), Interval(0.0, s.bits - 1.0))


def _lshift_domain(types):
    s = scalar_of(types[0])
    return (Interval(0.0, s.limits[1]), Interval(0.0, s.bits - 1.0))


def _iv_rshift(ctx, a, b):
    return Interval.hull([math.floor(x / 2.0 ** y) for x in (a.lo, a.hi) for y in (b.lo, b.hi)])


def _iv_pow(ctx, a, b):
    """``a ** b`` for ``a > 0`` is monotone in each argument: its extremes lie at the corners (computed with
    ``pow`` itself: ``exp(b * log(a))`` loses the last ulp, e.g. 2 ** 12 came out below 4096)."""
    return Interval.hull([_pow(x, y) for x in (a.lo, a.hi) for y in (b.lo, b.hi)])


def _pow(x: float, y: float) -> float:
    try:
        return math.pow(x, y)
    except OverflowError:
        return INF


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else INF


def _positive(types):
    s = scalar_of(types[0])
    return tuple(Interval(float(np.finfo(s.numpy).tiny), INF) for _ in types)


def _unit(types):
    return (Interval(-1.0, 1.0),)


def _any(types):
    return tuple(Interval(-INF, INF) for _ in types)


def _away_from_zero(ctx, a: Interval) -> str | None:
    return f"argument {a} contains 0 (unbounded derivative)" if a.contains_zero() else None


def _erfinv(y: float) -> float:
    return float(N.erfinv(np.asarray([y]))[0])


def _iv_copysign(ctx, a: Interval, b: Interval) -> Interval:
    m = N.iv_abs(a)
    if b.lo >= 0:
        return m
    if b.hi < 0:
        return Interval(-m.hi, -m.lo)
    return Interval(-m.hi, m.hi)


def _edges_apart(ctx, e0: Interval, e1: Interval, x: Interval) -> str | None:
    return None if e0.hi < e1.lo or e1.hi < e0.lo else f"edges {e0} and {e1} may meet"


def _cast(ctx, x):
    src, dst = scalar_of(ctx.types[0]), scalar_of(ctx.result)
    if src.is_float and dst.is_int:
        return np.trunc(x).astype(np.float64).astype(np.int64).astype(dst.numpy)     # C cast truncates
    if dst.is_int:
        return x.astype(dst.numpy)                                                       # integer wrap
    return x.astype(np.float64)


def _iv_cast(ctx, a):
    if scalar_of(ctx.result).is_int:
        return Interval(math.trunc(a.lo), math.trunc(a.hi))
    return a


def _cast_domain(types):
    return (Interval(-INF, INF),)


def _cast_guard(ctx, a):
    lo, hi = scalar_of(ctx.result).limits
    return None if lo <= a.lo and a.hi <= hi else f"{a} does not fit {ctx.result}"


def _dot(ctx, a, b):
    acc = ctx.rnd(a[..., 0] * b[..., 0])
    for k in range(1, a.shape[-1]):
        acc = ctx.rnd(acc + ctx.rnd(a[..., k] * b[..., k]))
    return acc


def _length(ctx, a):
    return np.sqrt(_dot(ctx, a, a))


def _normalize(ctx, a):
    inner = Ctx((ctx.types[0], ctx.types[0]), scalar_of(ctx.result), ctx.exact)
    n = ctx.rnd(_length(inner, a))[..., None]
    return np.where(n > 0, a / np.where(n > 0, n, 1.0), 0.0)


def _cross(ctx, a, b):
    def c(i, j):
        return ctx.rnd(ctx.rnd(a[..., i] * b[..., j]) - ctx.rnd(a[..., j] * b[..., i]))
    return np.stack([c(1, 2), c(2, 0), c(0, 1)], axis=-1)


def _n(ctx) -> int:
    return ctx.types[0].n


def _iv_length(ctx, a):
    """``sqrt(dot(a, a))``; the squares may underflow to 0 below the type's smallest normal."""
    s = scalar_of(ctx.types[0])
    small = 0.0 if a.contains_zero() else min(abs(a.lo), abs(a.hi))
    lo = math.sqrt(_n(ctx)) * small if small * small >= float(np.finfo(s.numpy).tiny) else 0.0
    return Interval(lo, math.sqrt(_n(ctx)) * a.mag)


def _squares_fit(ctx, a):
    """``dot(a, a)`` inside ``length``/``normalize`` must not overflow the component type."""
    s = scalar_of(ctx.types[0])
    return None if _n(ctx) * a.mag ** 2 <= s.limits[1] else f"dot of components {a} overflows {s}"


def _normalize_guard(ctx, a):
    if _iv_length(ctx, a).lo <= 0:
        return f"components {a} may all be 0"
    return _squares_fit(ctx, a)


def _construct(n: int) -> Impl:
    return lambda ctx, *xs: np.stack(xs, axis=-1)


def _row(name, spelling, form, sigs, impl, interval, **kw) -> Op:
    return Op(name, spelling, form, tuple(sigs), impl, interval, **kw)


def _same(over, arity=2, result="T"):
    return Sig(("T",) * arity, result, over)


_NEG_OVER = SIGNED_INTS + FLOAT_LIKE


def _table() -> dict[str, Op]:
    scale = (Sig(("T", "S"), "T", FLOAT_VECTORS), Sig(("S", "T"), "T", FLOAT_VECTORS))
    rows = [
        _row("add", "+", "binop", [_same(ARITH)], lambda c, a, b: a + b,
             lambda c, a, b: Interval(a.lo + b.lo, a.hi + b.hi)),
        _row("sub", "-", "binop", [_same(ARITH)], lambda c, a, b: a - b,
             lambda c, a, b: Interval(a.lo - b.hi, a.hi - b.lo)),
        _row("mul", "*", "binop", [_same(NUMERIC), *scale], lambda c, a, b: np.multiply(*_expand(c, a, b)),
             lambda c, a, b: N.iv_mul(a, b)),
        _row("div", "/", "binop", [_same(NUMERIC), scale[0]], _div, _iv_div, extra_guard=_divisor_nonzero),
        _row("floordiv", "//", "binop", [_same(NUMERIC)], _floordiv,
             _iv_floordiv, extra_guard=_divisor_nonzero,
             differentiable=False),
        _row("mod", "%", "binop", [_same(NUMERIC)], _mod, _iv_mod, extra_guard=_divisor_nonzero, adjoint_args=(0,)),
        _row("neg", "-", "unop", [_same(_NEG_OVER, 1)], lambda c, a: -a, lambda c, a: Interval(-a.hi, -a.lo)),
        *[_row(k, s, "compare", [_same(NUMERIC, 2, BOOL)], f, _iv_cmp(k), differentiable=False)
          for k, s, f in (("lt", "<", np.less), ("le", "<=", np.less_equal), ("gt", ">", np.greater),
                          ("ge", ">=", np.greater_equal), ("eq", "==", np.equal), ("ne", "!=", np.not_equal))
          for f in [lambda c, a, b, f=f: f(a, b)]],
        _row("and", "and", "boolop", [_same((BOOL,))], lambda c, a, b: a & b,
             lambda c, a, b: Interval(a.lo * b.lo, a.hi * b.hi), differentiable=False),
        _row("or", "or", "boolop", [_same((BOOL,))], lambda c, a, b: a | b,
             lambda c, a, b: Interval(max(a.lo, b.lo), max(a.hi, b.hi)), differentiable=False),
        _row("not", "not", "not", [_same((BOOL,), 1)], lambda c, a: ~a,
             lambda c, a: Interval(1 - a.hi, 1 - a.lo), differentiable=False),
        _row("min", "wp.min", "call", [_same(NUMERIC)], lambda c, a, b: np.minimum(a, b),
             lambda c, a, b: Interval(min(a.lo, b.lo), min(a.hi, b.hi))),
        _row("max", "wp.max", "call", [_same(NUMERIC)], lambda c, a, b: np.maximum(a, b),
             lambda c, a, b: Interval(max(a.lo, b.lo), max(a.hi, b.hi))),
        _row("clamp", "wp.clamp", "call", [_same(NUMERIC, 3)], lambda c, x, a, b: np.minimum(np.maximum(x, a), b),
             lambda c, x, a, b: Interval(min(max(x.lo, a.lo), b.lo), min(max(x.hi, a.hi), b.hi))),
        _row("abs", "wp.abs", "call", [_same(SIGNED_INTS + FLOATS, 1)], lambda c, a: np.abs(a),
             lambda c, a: N.iv_abs(a)),
        _row("sign", "wp.sign", "call", [_same(SIGNED_INTS + FLOATS, 1)], lambda c, a: N.sign(a),
             lambda c, a: Interval(-1.0 if a.lo < 0 else 1.0, 1.0 if a.hi >= 0 else -1.0), differentiable=False),
        *[_row(k, s, form, [Sig((BOOL, "T", "T"), "T", ARITH)],
               lambda c, k, a, b: np.where(k[..., None] if isinstance(c.result, Vector) else k, a, b),
               lambda c, k, a, b: a if k.lo == 1 else b if k.hi == 0 else a.join(b))
          for k, s, form in (("where", "wp.where", "call"), ("ifexp", "if", "ifexp"))],
        *[_row(k, f"wp.{k}", "call", [_same(FLOATS, 1)], lambda c, a, f=f: f(a), rule, domain=dom)
          for k, f, rule, dom in (
              ("sqrt", np.sqrt, lambda c, a: N.iv_monotone(math.sqrt, a), lambda t: (Interval(0.0, INF),)),
              ("exp", np.exp, lambda c, a: N.iv_monotone(_exp, a), None),
              ("log", np.log, lambda c, a: N.iv_monotone(math.log, a), _positive),
              ("sin", np.sin, lambda c, a: N.iv_periodic(math.sin, a, math.pi / 2), None),
              ("cos", np.cos, lambda c, a: N.iv_periodic(math.cos, a, 0.0), None),
              ("tan", np.tan, lambda c, a: N.iv_monotone(math.tan, a), lambda t: (Interval(-1.5, 1.5),)),
              ("tanh", np.tanh, lambda c, a: N.iv_monotone(math.tanh, a), None),
              ("asin", np.arcsin, lambda c, a: N.iv_monotone(math.asin, a), _unit),
              ("acos", np.arccos, lambda c, a: N.iv_monotone(math.acos, a, increasing=False), _unit),
              ("atan", np.arctan, lambda c, a: N.iv_monotone(math.atan, a), None),
              ("sinh", np.sinh, lambda c, a: N.iv_monotone(math.sinh, a), None),
              ("cosh", np.cosh, lambda c, a: N.iv_monotone(math.cosh, N.iv_abs(a)), None),
              ("log2", np.log2, lambda c, a: N.iv_monotone(math.log2, a), _positive),
              ("log10", np.log10, lambda c, a: N.iv_monotone(math.log10, a), _positive),
              ("erf", N.erf, lambda c, a: N.iv_monotone(math.erf, a), None),
              ("erfc", N.erfc, lambda c, a: N.iv_monotone(math.erfc, a, increasing=False), None))],
        _row("atan2", "wp.atan2", "call", [_same(FLOATS)], lambda c, y, x: np.arctan2(y, x),
             lambda c, y, x: Interval(-math.pi, math.pi) if x.lo <= 0 else
             Interval.hull([math.atan2(p, q) for p in (y.lo, y.hi) for q in (x.lo, x.hi)])),
        _row("pow", "wp.pow", "call", [_same(FLOATS)], lambda c, a, b: np.power(a, b), _iv_pow,
             domain=lambda t: (_positive(t)[0], Interval(-INF, INF))),
        *[_row(k, f"wp.{k}", "call", [_same(FLOATS, 1)], lambda c, a, f=f: f(a),
               lambda c, a, g=g: N.iv_monotone(g, a), differentiable=False)
          for k, f, g in (("floor", np.floor, math.floor), ("ceil", np.ceil, math.ceil),
                          ("round", N.round_half_away, lambda x: float(N.round_half_away(np.float64(x)))),
                          ("rint", np.rint, lambda x: float(np.rint(x))), ("trunc", np.trunc, math.trunc))],
        _row("frac", "wp.frac", "call", [_same(FLOATS, 1)], lambda c, a: a - np.trunc(a),
             lambda c, a: Interval(max(-1.0, min(0.0, a.lo)), min(1.0, max(0.0, a.hi))), adjoint_args=()),
        _row("step", "wp.step", "call", [_same(FLOATS, 1)], lambda c, a: np.where(a < 0, 1.0, 0.0),
             lambda c, a: Interval(0.0 if a.hi >= 0 else 1.0, 1.0 if a.lo < 0 else 0.0), differentiable=False),
        _row("nonzero", "wp.nonzero", "call", [_same(FLOATS, 1)], lambda c, a: np.where(a != 0, 1.0, 0.0),
             lambda c, a: Interval(0.0 if a.contains_zero() else 1.0, 0.0 if a == Interval(0.0, 0.0) else 1.0),
             differentiable=False),
        *[_row(k, f"wp.{k}", "call", [_same(FLOATS, 1)], lambda c, a, f=f: f(a), rule, domain=dom,
               extra_guard=guard)
          for k, f, rule, dom, guard in (
              ("cbrt", np.cbrt, lambda c, a: N.iv_monotone(math.cbrt, a), None, _away_from_zero),
              ("degrees", np.degrees, lambda c, a: N.iv_monotone(math.degrees, a), None, None),
              ("radians", np.radians, lambda c, a: N.iv_monotone(math.radians, a), None, None),
              ("erfinv", N.erfinv, lambda c, a: N.iv_monotone(_erfinv, a), lambda t: (Interval(-0.999, 0.999),),
               None),
              ("erfcinv", lambda y: N.erfinv(1.0 - y), lambda c, a: N.iv_monotone(lambda y: _erfinv(1.0 - y), a,
                                                                                  increasing=False),
               lambda t: (Interval(0.001, 1.999),), None))],
        _row("copysign", "wp.copysign", "call", [_same(FLOATS)], lambda c, a, b: np.copysign(a, b), _iv_copysign,
             adjoint_args=(0,)),
        _row("lerp", "wp.lerp", "call", [_same(FLOATS, 3)], lambda c, a, b, t: a * (1.0 - t) + b * t,
             lambda c, a, b, t: Interval.hull([x * (1.0 - u) + y * u for x in (a.lo, a.hi) for y in (b.lo, b.hi)
                                               for u in (t.lo, t.hi)])),
        _row("smoothstep", "wp.smoothstep", "call", [_same(FLOATS, 3)], lambda c, e0, e1, x: N.smoothstep(e0, e1, x),
             lambda c, e0, e1, x: Interval(0.0, 1.0), extra_guard=_edges_apart),
        _row("cast", "", "cast", [], _cast, _iv_cast, domain=_cast_domain, extra_guard=_cast_guard,
             casts_to=NUMERIC),
        _row("bit_and", "&", "binop", [_same(INTS)], lambda c, a, b: a & b, _iv_bits, differentiable=False),
        _row("bit_or", "|", "binop", [_same(INTS)], lambda c, a, b: a | b, _iv_bits, differentiable=False),
        _row("bit_xor", "^", "binop", [_same(INTS)], lambda c, a, b: a ^ b, _iv_bits, differentiable=False),
        _row("lshift", "<<", "binop", [_same(INTS)], lambda c, a, b: a << b,
             lambda c, a, b: Interval(a.lo * 2.0 ** b.lo, a.hi * 2.0 ** b.hi), domain=_lshift_domain,
             differentiable=False),
        _row("rshift", ">>", "binop", [_same(INTS)], lambda c, a, b: a >> b, _iv_rshift, domain=_shift_domain,
             differentiable=False),
        _row("invert", "~", "unop", [_same(INTS, 1)], lambda c, a: ~a,
             lambda c, a: Interval(-a.hi - 1, -a.lo - 1) if scalar_of(c.result).is_signed else
             Interval(scalar_of(c.result).limits[1] - a.hi, scalar_of(c.result).limits[1] - a.lo),
             differentiable=False),
        *[_row(f"vec{n}", "", "construct", [Sig(("S",) * n, "T", tuple(v for v in FLOAT_VECTORS if v.n == n))],
               _construct(n), lambda c, *xs: Interval.hull([x.lo for x in xs] + [x.hi for x in xs]))
          for n in (2, 3, 4)],
        _row("dot", "wp.dot", "call", [Sig(("T", "T"), "S", FLOAT_VECTORS)], _dot,
             lambda c, a, b: N.iv_mul(Interval(_n(c), _n(c)), N.iv_mul(a, b))),
        _row("cross", "wp.cross", "call", [_same(tuple(v for v in FLOAT_VECTORS if v.n == 3))], _cross,
             lambda c, a, b: Interval(-2 * a.mag * b.mag, 2 * a.mag * b.mag)),
        _row("length", "wp.length", "call", [Sig(("T",), "S", FLOAT_VECTORS)], _length, _iv_length,
             extra_guard=_squares_fit),
        _row("normalize", "wp.normalize", "call", [_same(FLOAT_VECTORS, 1)], _normalize,
             lambda c, a: Interval(-1.0, 1.0), extra_guard=_normalize_guard),
    ]
    return {r.name: r for r in rows}


def _length_sq(ctx, a):
    return _dot(ctx, a, a)


def _random_value(kind: str, draws: int) -> Impl:
    """Value of random builtin ``kind`` from the state before the call (the interpreter advances the state)."""
    def impl(ctx, state, *args):
        states = N.advanced(state, draws)
        if kind == "randf":
            return N.unit_float(states[0])
        if kind == "randf_range":
            lo, hi = args
            return ctx.rnd(ctx.rnd(hi - lo) * N.unit_float(states[0])) + lo
        if kind == "randi":
            return states[0].view(np.int32)
        if kind == "randi_range":
            lo, hi = args
            span = (hi.astype(np.int64) - lo.astype(np.int64)).astype(np.uint32)
            return ((states[0] % np.where(span == 0, 1, span).astype(np.uint32)).astype(np.int64) + lo).astype(np.int32)
        if kind == "randu":
            return states[0]
        if kind == "randu_range":
            lo, hi = args
            span = np.where(hi == lo, 1, hi - lo).astype(np.uint32)
            return (states[0] % span + lo).astype(np.uint32)
        return N.sample(kind, states)
    return impl


def _range_guard(ctx, state, lo: Interval, hi: Interval) -> str | None:
    return None if lo.hi < hi.lo else f"range [{lo}, {hi}) may be empty"


#: Warp's random samplers: draws consumed, result type and the interval of the components
_SAMPLERS = {"randn": (2, FLOATS[1], Interval(-5.8, 5.8)),
             "sample_unit_ring": (1, Vector(FLOATS[1], 2), Interval(-1.0, 1.0)),
             "sample_unit_disk": (2, Vector(FLOATS[1], 2), Interval(-1.0, 1.0)),
             "sample_unit_sphere_surface": (2, Vector(FLOATS[1], 3), Interval(-1.0, 1.0)),
             "sample_unit_sphere": (3, Vector(FLOATS[1], 3), Interval(-1.0, 1.0)),
             "sample_unit_hemisphere_surface": (2, Vector(FLOATS[1], 3), Interval(-1.0, 1.0)),
             "sample_unit_hemisphere": (3, Vector(FLOATS[1], 3), Interval(-1.0, 1.0)),
             "sample_unit_square": (2, Vector(FLOATS[1], 2), Interval(-0.5, 0.5)),
             "sample_unit_cube": (3, Vector(FLOATS[1], 3), Interval(-0.5, 0.5)),
             "sample_triangle": (2, Vector(FLOATS[1], 2), Interval(0.0, 1.0))}


def _funcs_rows() -> list[Op]:
    """``length_sq`` and Warp's PCG random builtins (rand.h). A random builtin's argument 0 is the state local,
    which it advances ``draws`` times (Warp passes it by reference; a helper's parameter is a copy)."""
    from kernels.ir.types import FLOAT32, INT32, UINT32
    state = (UINT32,)
    u32 = Interval(0.0, 2.0 ** 32 - 1)
    rows = [
        _row("length_sq", "wp.length_sq", "call", [Sig(("T",), "S", FLOAT_VECTORS)], _length_sq,
             lambda c, a: Interval(0.0, _n(c) * a.mag ** 2), extra_guard=_squares_fit),
        _row("rand_init", "wp.rand_init", "call", [Sig((INT32,), UINT32, (INT32,)),
                                                   Sig((INT32, INT32), UINT32, (INT32,))],
             lambda c, seed, offset=None: N.rand_init(seed, offset), lambda c, *a: u32, differentiable=False),
        _row("randf", "wp.randf", "call", [Sig(state, FLOAT32, (UINT32,))], _random_value("randf", 1),
             lambda c, s: Interval(0.0, 1.0 - 2.0 ** -24), draws=1, adjoint_args=(0,)),
        _row("randf_range", "wp.randf", "call", [Sig(state + (FLOAT32, FLOAT32), FLOAT32, (UINT32,))],
             _random_value("randf_range", 1), lambda c, s, lo, hi: lo.join(hi), draws=1, adjoint_args=(0,),
             extra_guard=_range_guard),
        _row("randi", "wp.randi", "call", [Sig(state, INT32, (UINT32,))], _random_value("randi", 1),
             lambda c, s: Interval(-2.0 ** 31, 2.0 ** 31 - 1), draws=1, differentiable=False),
        _row("randi_range", "wp.randi", "call", [Sig(state + (INT32, INT32), INT32, (UINT32,))],
             _random_value("randi_range", 1), lambda c, s, lo, hi: Interval(lo.lo, hi.hi - 1), draws=1,
             differentiable=False, extra_guard=_range_guard),
        _row("randu", "wp.randu", "call", [Sig(state, UINT32, (UINT32,))], _random_value("randu", 1),
             lambda c, s: u32, draws=1, differentiable=False),
        _row("randu_range", "wp.randu", "call", [Sig(state + (UINT32, UINT32), UINT32, (UINT32,))],
             _random_value("randu_range", 1), lambda c, s, lo, hi: Interval(lo.lo, hi.hi - 1), draws=1,
             differentiable=False, extra_guard=_range_guard),
    ]
    rows += [_row(k, f"wp.{k}", "call", [Sig(state, ty, (UINT32,))], _random_value(k, d),
                  lambda c, s, iv=iv: iv, draws=d, adjoint_args=(0,))
             for k, (d, ty, iv) in _SAMPLERS.items()]
    return rows


OPS: dict[str, Op] = _table()
OPS.update({r.name: r for r in _funcs_rows()})


def op(name: str) -> Op:
    """The row of ``name``; an unknown name says which are known."""
    row = OPS.get(name)
    if row is None:
        raise KeyError(f"Expected an operation in {sorted(OPS)} but got {name!r}")
    return row
