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
from kernels.ir.types import (BOOL, FLOAT16, FLOAT_VECTORS, FLOATS, INTS, NUMERIC, SIGNED_INTS, Scalar, Type, Vector,
                              round_to, scalar_of)
from kernels.ir.types import FLOAT32, FLOAT64, INT32, Matrix, Quat, SpatialVector, Transform

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
    trailing: tuple[str, ...] = ()     # source arguments the printer appends after the IR's (wp.Volume.LINEAR)
    writes: Type | None = None         # type of a second result written into a last out argument (see LetOut);
    writes_interval: IvRule | None = None  # its interval; impl then returns (value, written)
    #: refine(sub, args, ctx) -> (reason or None, interval): a rule that needs the argument expressions, not
    #: only their intervals (``sub(e)`` is the interval of a sub-expression); the interval engine prefers it
    refine: Callable[..., tuple[str | None, Interval]] | None = None
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
            raw = self.impl(ctx, *args)
        return round_to(ctx.result, raw[0] if self.writes is not None else raw, ctx.exact)

    def eval_out(self, ctx: Ctx, *args: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Value and written out argument of a row with ``writes``, each rounded to its type."""
        with np.errstate(all="ignore"):
            value, written = self.impl(ctx, *args)
        return round_to(ctx.result, value, ctx.exact), round_to(self.writes, written, ctx.exact)

    def bound(self, ctx: Ctx, *ivs: Interval) -> Interval:
        """Interval of the result, widened for the result type's rounding."""
        iv = self.interval(ctx, *ivs)
        s = scalar_of(ctx.result)
        if s.is_float:
            iv = iv.widen(2 * s.eps, float(np.finfo(s.numpy).smallest_subnormal))
        elif _wraps(self.name, ctx) and not (s.limits[0] <= iv.lo and iv.hi <= s.limits[1]):
            iv = Interval(*s.limits)
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


def _iv_and(ctx, a: Interval, b: Interval) -> Interval:
    """``x & m`` with ``m >= 0`` lies in ``[0, m]`` (its bits are a subset of ``m``'s)."""
    nonneg = [x.hi for x in (a, b) if x.lo >= 0]
    return Interval(0.0, min(nonneg)) if nonneg else _iv_bits(ctx, a, b)


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
    if _wraps("cast", ctx):
        return None
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
    return ctx.types[0].shape[0]


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


def _half_steps(ctx: Ctx):
    """Rounding of the intermediates of a compound builtin: Warp's half operators round every operation to half
    (``float_to_half`` of the float32 result); wider types are left as before (rounded once, at the end)."""
    return ctx.rnd if scalar_of(ctx.result) == FLOAT16 else (lambda x: x)


def _lerp(ctx, a, b, t):
    """``a * (1 - t) + b * t`` (builtin.h ``lerp``)."""
    r = _half_steps(ctx)
    return r(a * r(1.0 - t)) + r(b * t)


def _iv_lerp(ctx, a, b, t):
    """The corners' hull; for half, widened by the rounding of ``1 - t`` and of both products."""
    iv = Interval.hull([x * (1.0 - u) + y * u for x in (a.lo, a.hi) for y in (b.lo, b.hi) for u in (t.lo, t.hi)])
    if scalar_of(ctx.result) != FLOAT16:
        return iv
    slack = 1.01 * FLOAT16.eps * (a.mag * (1.0 + t.mag) + b.mag * t.mag)
    return Interval(iv.lo - slack, iv.hi + slack)


def _lerp_fits(ctx, a, b, t):
    """Half products ``a * (1 - t)`` and ``b * t`` are rounded (and overflow) before they are added."""
    if scalar_of(ctx.result) != FLOAT16:
        return None
    big = max(a.mag * (1.0 + t.mag), b.mag * t.mag)
    return f"a product of {a}, {b}, {t} may overflow float16" if big > FLOAT16.limits[1] / 2 else None


def _smoothstep(ctx, e0, e1, x):
    """``t = clamp((x - e0) / (e1 - e0), 0, 1)``, ``t * t * (3 - 2 * t)`` (every half operation rounded)."""
    if scalar_of(ctx.result) != FLOAT16:
        return N.smoothstep(e0, e1, x)
    r = ctx.rnd
    t = np.clip(r(r(x - e0) / r(e1 - e0)), 0.0, 1.0)
    return r(t * t) * r(3.0 - r(2.0 * t))


def _iv_length_sq(ctx, a):
    """``dot(a, a)``; the squares may underflow to 0 below the type's smallest normal."""
    s = scalar_of(ctx.types[0])
    small = 0.0 if a.contains_zero() else min(abs(a.lo), abs(a.hi))
    lo = _n(ctx) * small * small if small * small >= float(np.finfo(s.numpy).tiny) else 0.0
    return Interval(lo, _n(ctx) * a.mag * a.mag)


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
        _row("lerp", "wp.lerp", "call", [_same(FLOATS, 3)], _lerp, _iv_lerp, extra_guard=_lerp_fits),
        _row("smoothstep", "wp.smoothstep", "call", [_same(FLOATS, 3)], _smoothstep,
             lambda c, e0, e1, x: Interval(0.0, 1.0), extra_guard=_edges_apart),
        _row("cast", "", "cast", [], _cast, _iv_cast, domain=_cast_domain, extra_guard=_cast_guard,
             casts_to=NUMERIC),
        _row("bit_and", "&", "binop", [_same(INTS)], lambda c, a, b: a & b, _iv_and, differentiable=False),
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
        # the same operations under their other Warp spellings: ``a ** b``, ``wp.mod(a, b)``, ``wp.floordiv(a, b)``
        _row("pow_op", "**", "binop", [_same(FLOATS)], lambda c, a, b: np.power(a, b), _iv_pow,
             domain=lambda t: (_positive(t)[0], Interval(-INF, INF))),
        _row("mod_fn", "wp.mod", "call", [_same(NUMERIC)], _mod, _iv_mod, extra_guard=_divisor_nonzero,
             adjoint_args=(0,)),
        _row("floordiv_fn", "wp.floordiv", "call", [_same(NUMERIC)], _floordiv, _iv_floordiv,
             extra_guard=_divisor_nonzero, differentiable=False),
    ]
    return {r.name: r for r in rows}


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


# ---------------------------------------------------------------------------------------------------------
# Volumes: a ``wp.uint64`` volume id and index-/world-space points. The interpreter's value of the id is a key
# of ``kernels.ir.volume.HANDLES`` (the family's reference binds the NumPy volume); the interval rules hold for
# every volume ``kernels.ir.volume.DenseVolume`` admits.

def _volume_rows() -> dict[str, Op]:
    from kernels.ir import volume as V
    from kernels.ir.types import FLOAT32, INT32, UINT64
    vec3 = Vector(FLOAT32, 3)

    def on(f):
        return lambda c, ids, *xs: f(V.handle(ids), c, *xs)

    def inside_int32(c, h, x):
        return None if V.fits_int32(x) else f"index coordinates {x} do not fit int32"

    def sample(mode):
        return on(lambda vol, c, uvw: vol.sample(uvw, np.full(uvw.shape[0], mode), c.exact))

    values = lambda c, *ivs: V.VALUES
    rows = [
        _row("volume_world_to_index", "wp.volume_world_to_index", "call", [Sig((UINT64, vec3), vec3, (vec3,))],
             on(lambda vol, c, x: vol.world_to_index(x, c.exact)), lambda c, h, x: V.iv_world_to_index(x)),
        _row("volume_index_to_world", "wp.volume_index_to_world", "call", [Sig((UINT64, vec3), vec3, (vec3,))],
             on(lambda vol, c, u: vol.index_to_world(u, c.exact)), lambda c, h, u: V.iv_index_to_world(u)),
        _row("volume_sample_linear", "wp.volume_sample_f", "call", [Sig((UINT64, vec3), FLOAT32, (vec3,))],
             sample(V.LINEAR), values, extra_guard=inside_int32, trailing=("wp.Volume.LINEAR",)),
        _row("volume_sample_closest", "wp.volume_sample_f", "call", [Sig((UINT64, vec3), FLOAT32, (vec3,))],
             sample(V.CLOSEST), values, extra_guard=inside_int32, trailing=("wp.Volume.CLOSEST",),
             differentiable=False),
        _row("volume_sample_grad_linear", "wp.volume_sample_grad_f", "call", [Sig((UINT64, vec3), FLOAT32, (vec3,))],
             on(lambda vol, c, uvw: vol.sample_grad(uvw, c.exact)), values, extra_guard=inside_int32,
             trailing=("wp.Volume.LINEAR",), differentiable=False, writes=vec3,
             writes_interval=lambda c, h, uvw: V.grad_bound()),
        _row("volume_lookup", "wp.volume_lookup_f", "call", [Sig((UINT64, INT32, INT32, INT32), FLOAT32, (FLOAT32,))],
             on(lambda vol, c, i, j, k: vol.read(i.astype(np.int64), j.astype(np.int64), k.astype(np.int64))),
             values, differentiable=False),
        _row("volume_lookup_index", "wp.volume_lookup_index", "call", [Sig((UINT64, INT32, INT32, INT32), INT32,
                                                                            (INT32,))],
             lambda c, ids, i, j, k: V.index_handle(ids).lookup(i, j, k),
             lambda c, *ivs: Interval(-1.0, V.MAX_ACTIVE - 1.0), differentiable=False),
    ]
    return {r.name: r for r in rows}


# ---------------------------------------------------------------------------------------------------------
# Vectors, matrices, quaternions and transforms (warp/native/vec.h, mat.h, quat.h, spatial.h). Intervals bound
# every component of a value (the hull), so the rules below bound components; the inverse alone needs its
# argument's structure (diagonal dominance, see :func:`_refine_inverse`).

COMPOSITE_SCALARS = (FLOAT32, FLOAT64)
VECS = tuple(Vector(s, k) for s in COMPOSITE_SCALARS for k in (2, 3, 4))
INT_VECTORS = tuple(Vector(INT32, k) for k in (2, 3, 4))
MATS = tuple(Matrix(s, k, k) for s in COMPOSITE_SCALARS for k in (2, 3, 4))
QUATS = tuple(Quat(s) for s in COMPOSITE_SCALARS)
XFORMS = tuple(Transform(s) for s in COMPOSITE_SCALARS)
SPATIAL = tuple(SpatialVector(s, 6) for s in COMPOSITE_SCALARS)
#: the smallest diagonal-dominance margin under which ``wp.inverse`` is applied (bounds ||M^-1||_inf by 1/margin)
INVERSE_MARGIN = 0.3


def vec_of(s: Scalar, k: int) -> Vector:
    return Vector(s, k)


def _sym(m: float) -> Interval:
    return Interval(-m, m)


def _bcast(ctx: Ctx, *args: np.ndarray) -> list[np.ndarray]:
    """Scalars given trailing axes to combine with the composite result."""
    nd = len(ctx.result.shape) if not isinstance(ctx.result, Scalar) else 0
    return [a.reshape(a.shape + (1,) * nd) if isinstance(t, Scalar) else a for a, t in zip(args, ctx.types)]


def _qmul(a, b):
    ax, ay, az, aw = (a[..., k] for k in range(4))
    bx, by, bz, bw = (b[..., k] for k in range(4))
    return np.stack([aw * bx + bw * ax + ay * bz - by * az, aw * by + bw * ay + az * bx - bz * ax,
                     aw * bz + bw * az + ax * by - bx * ay, aw * bw - ax * bx - ay * by - az * bz], axis=-1)


def _qrot(q, x, sign=1.0):
    """Warp's quat_rotate (``sign=-1``: quat_rotate_inv): a rotation for unit ``q``, the same formula otherwise."""
    qx, qy, qz, qw = (q[..., k] for k in range(4))
    c = 2.0 * qw * qw - 1.0
    d = 2.0 * (qx * x[..., 0] + qy * x[..., 1] + qz * x[..., 2])
    return np.stack([x[..., 0] * c + qx * d + sign * (qy * x[..., 2] - qz * x[..., 1]) * qw * 2.0,
                     x[..., 1] * c + qy * d + sign * (qz * x[..., 0] - qx * x[..., 2]) * qw * 2.0,
                     x[..., 2] * c + qz * d + sign * (qx * x[..., 1] - qy * x[..., 0]) * qw * 2.0], axis=-1)


def _conj(q):
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def _tmul(a, b):
    return np.concatenate([_qrot(a[..., 3:], b[..., :3]) + a[..., :3], _qmul(a[..., 3:], b[..., 3:])], axis=-1)


def _tinv(t):
    qi = _conj(t[..., 3:])
    return np.concatenate([-_qrot(qi, t[..., :3]), qi], axis=-1)


def _quat_rpy(r, p, y):
    cy, sy, cr, sr = np.cos(y * 0.5), np.sin(y * 0.5), np.cos(r * 0.5), np.sin(r * 0.5)
    cp, sp = np.cos(p * 0.5), np.sin(p * 0.5)
    return np.stack([cy * sr * cp - sy * cr * sp, cy * cr * sp + sy * sr * cp, sy * cr * cp - cy * sr * sp,
                     cy * cr * cp + sy * sr * sp], axis=-1)


def _axis_angle(axis, angle):
    half = angle * 0.5
    return np.concatenate([axis * np.sin(half)[..., None], np.cos(half)[..., None]], axis=-1)


def _quat_to_matrix(q):
    eye = np.eye(3)
    cols = [_qrot(q, np.broadcast_to(eye[k], q.shape[:-1] + (3,))) for k in range(3)]
    return np.stack(cols, axis=-1)


def _skew(v):
    z = np.zeros_like(v[..., 0])
    return np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1), np.stack([v[..., 2], z, -v[..., 0]], -1),
                     np.stack([-v[..., 1], v[..., 0], z], -1)], axis=-2)


def _inverse(ctx, m):
    det = np.linalg.det(m)
    safe = np.where((det != 0)[..., None, None], m, np.eye(m.shape[-1]))
    return np.where((det != 0)[..., None, None], np.linalg.inv(safe), 0.0)   # Warp: zero matrix if det == 0


def _hull(*ivs: Interval) -> Interval:
    return Interval(min(iv.lo for iv in ivs), max(iv.hi for iv in ivs))


def _iv_qmul(ctx, a, b):
    return _sym(4 * a.mag * b.mag)


def _rot_bound(q: Interval, x: Interval) -> float:
    """Component bound of Warp's quat_rotate(q, x) for components of q in ``q`` and of x in ``x``."""
    mq = q.mag
    return x.mag * (max(1.0, abs(2 * mq * mq - 1)) + 6 * mq * mq + 4 * mq * mq)


def _iv_det(ctx, a):
    k = ctx.types[0].rows
    if k == 2:
        p = N.iv_mul(a, a)
        return Interval(p.lo - p.hi, p.hi - p.lo)
    return _sym((math.sqrt(k) * a.mag) ** k)               # Hadamard's bound


def _diag_shift(e, n_):
    """``(A, D)`` when ``e`` is ``A + D`` or ``D + A`` with ``D`` diagonal (``wp.diag(v)`` or ``s * wp.identity``)."""
    if getattr(e, "op", None) != "add":
        return None
    for a, d in (e.args, e.args[::-1]):
        if getattr(d, "op", None) == "diag":
            return a, d.args[0]
        if getattr(d, "op", None) == "mscale":
            s, ident = d.args if isinstance(d.args[0].type, Scalar) else d.args[::-1]
            if getattr(ident, "op", "").startswith("identity"):
                return a, s
    return None


def inverse_margin(k: int, a: Interval, d: Interval) -> float:
    """Diagonal-dominance margin of ``A + D`` (``A``'s entries in ``a``, ``D``'s diagonal in ``d``): the
    smallest ``|m_ii| - sum_j!=i |m_ij|``; ``||(A + D)^-1||_inf <= 1 / margin`` when it is positive."""
    diag = Interval(a.lo + d.lo, a.hi + d.hi)
    low = 0.0 if diag.contains_zero() else min(abs(diag.lo), abs(diag.hi))
    return low - (k - 1) * a.mag


def _refine_inverse(sub, args, ctx):
    k = ctx.types[0].rows
    parts = _diag_shift(args[0], k)
    if parts is None:
        return "argument is not a diagonal shift A + D (its conditioning is unknown)", Interval(-INF, INF)
    margin = inverse_margin(k, sub(parts[0]), sub(parts[1]))
    if margin < INVERSE_MARGIN:
        return f"diagonal-dominance margin {margin:g} < {INVERSE_MARGIN}", Interval(-INF, INF)
    return None, _sym(1.0 / margin)


def _no_structure(ctx, *ivs):
    return "needs its argument's structure (the interval engine's refine rule)"


def _len_sq(ctx, a):
    return _dot(ctx, a, a)


def _per(types, make):
    """One signature per type: ``make(t) -> (args, result)`` with concrete argument types."""
    return [Sig(a, r, (t,)) for t in types for a, r in [make(t)]]


def _mat_vec(m):
    return vec_of(m.scalar, m.rows)


def _composite_table() -> dict[str, Op]:
    composite = MATS + QUATS
    mm = [Sig(("T", "T"), "T", MATS)]
    mv = _per(MATS, lambda m: ((m, _mat_vec(m)), _mat_vec(m)))
    vm = _per(MATS, lambda m: ((_mat_vec(m), m), _mat_vec(m)))
    qq = [Sig(("T", "T"), "T", QUATS + XFORMS)]
    iv_mm = lambda c, a, b: N.iv_mul(Interval(c.types[0].shape[-1], c.types[0].shape[-1]), N.iv_mul(a, b))
    matmul = lambda c, a, b: np.einsum("...ij,...jk->...ik" if a.ndim == b.ndim == 3 else
                                       "...ij,...j->...i" if a.ndim == 3 else "...i,...ij->...j", a, b)

    def mul_impl(c, a, b):
        if isinstance(c.types[0], Quat):
            return _qmul(a, b)
        if isinstance(c.types[0], Transform):
            return _tmul(a, b)
        return matmul(c, a, b)

    def mul_iv(c, a, b):
        if isinstance(c.types[0], Quat):
            return _iv_qmul(c, a, b)
        if isinstance(c.types[0], Transform):
            return _sym(_rot_bound(a, b) + a.mag + 4 * a.mag * b.mag)
        return iv_mm(c, a, b)

    rows = [
        _row("mscale", "*", "binop", [Sig(("T", "S"), "T", composite), Sig(("S", "T"), "T", composite)],
             lambda c, a, b: np.multiply(*_bcast(c, a, b)), lambda c, a, b: N.iv_mul(a, b)),
        _row("mdiv", "/", "binop", [Sig(("T", "S"), "T", composite)], lambda c, a, b: np.divide(*_bcast(c, a, b)),
             lambda c, a, b: N.iv_div(a, b), extra_guard=_divisor_nonzero),
        _row("matmul", "@", "binop", mm + mv + vm, matmul, iv_mm),
        _row("wp_mul", "wp.mul", "call", mm + mv + vm + qq, mul_impl, mul_iv),
        _row("qmul", "*", "binop", qq, mul_impl, mul_iv),
        _row("select", "wp.where", "call", [Sig((BOOL, "T", "T"), "T", composite + XFORMS)],
             lambda c, k, a, b: np.where(k.reshape(k.shape + (1,) * len(c.result.shape)), a, b),
             lambda c, k, a, b: a if k.lo == 1 else b if k.hi == 0 else a.join(b)),
        *[_row(f"splat{k}", "", "construct", [Sig(("S",), "T", tuple(v for v in VECS if v.n == k))],
               lambda c, s: np.broadcast_to(s[..., None], s.shape + c.result.shape).copy(), lambda c, s: s)
          for k in (2, 3, 4)],
        *[_row(f"ivec{k}", "", "construct", [Sig((INT32,) * k, Vector(INT32, k), (Vector(INT32, k),))],
               _construct(k), lambda c, *xs: Interval.hull([x.lo for x in xs] + [x.hi for x in xs]))
          for k in (2, 3, 4)],
        _row("cw_mul", "wp.cw_mul", "call", [_same(VECS + MATS)], lambda c, a, b: a * b,
             lambda c, a, b: N.iv_mul(a, b)),
        _row("cw_div", "wp.cw_div", "call", [_same(VECS + MATS)], lambda c, a, b: a / b,
             lambda c, a, b: N.iv_div(a, b), extra_guard=_divisor_nonzero),
        _row("length_sq", "wp.length_sq", "call", [Sig(("T",), "S", FLOAT_VECTORS + QUATS)], _len_sq,
             _iv_length_sq, extra_guard=_squares_fit),
        _row("vmin", "wp.min", "call", [Sig(("T",), "S", VECS)], lambda c, a: a.min(axis=-1), lambda c, a: a,
             differentiable=False),
        _row("vmax", "wp.max", "call", [Sig(("T",), "S", VECS)], lambda c, a: a.max(axis=-1), lambda c, a: a,
             differentiable=False),
        _row("transpose", "wp.transpose", "call", [_same(MATS, 1)], lambda c, a: np.swapaxes(a, -1, -2),
             lambda c, a: a),
        _row("determinant", "wp.determinant", "call", [Sig(("T",), "S", MATS)], lambda c, a: np.linalg.det(a),
             _iv_det),
        _row("trace", "wp.trace", "call", [Sig(("T",), "S", MATS)], lambda c, a: np.trace(a, axis1=-2, axis2=-1),
             lambda c, a: Interval(c.types[0].rows * a.lo, c.types[0].rows * a.hi)),
        _row("inverse", "wp.inverse", "call", [_same(MATS, 1)], _inverse, lambda c, a: Interval(-INF, INF),
             extra_guard=_no_structure, refine=_refine_inverse),
        _row("diag", "wp.diag", "call", _per(MATS, lambda m: ((_mat_vec(m),), m)),
             lambda c, v: v[..., None] * np.eye(v.shape[-1]), lambda c, v: v.join(Interval(0.0, 0.0))),
        _row("get_diag", "wp.get_diag", "call", _per(MATS, lambda m: ((m,), _mat_vec(m))),
             lambda c, a: np.diagonal(a, axis1=-2, axis2=-1), lambda c, a: a),
        _row("outer", "wp.outer", "call", _per(MATS, lambda m: ((_mat_vec(m), _mat_vec(m)), m)),
             lambda c, a, b: a[..., :, None] * b[..., None, :], lambda c, a, b: N.iv_mul(a, b)),
        _row("skew", "wp.skew", "call", _per(tuple(m for m in MATS if m.rows == 3), lambda m: ((_mat_vec(m),), m)),
             lambda c, v: _skew(v), lambda c, v: _sym(v.mag)),
        _row("ddot", "wp.ddot", "call", [Sig(("T", "T"), "S", MATS)], lambda c, a, b: (a * b).sum(axis=(-1, -2)),
             lambda c, a, b: N.iv_mul(Interval(c.types[0].rows ** 2, c.types[0].rows ** 2), N.iv_mul(a, b))),
        *[_row(f"matrix_from_{kind}", f"wp.matrix_from_{kind}", "call",
               _per(MATS, lambda m: ((_mat_vec(m),) * m.rows, m)),
               (lambda c, *vs: np.stack(vs, axis=-2)) if kind == "rows" else (lambda c, *vs: np.stack(vs, axis=-1)),
               lambda c, *vs: _hull(*vs)) for kind in ("rows", "cols")],
        *[_row(f"identity{k}{suffix}", f"wp.identity(n={k}, dtype={{dtype}})", "constant",
               [Sig((), Matrix(s, k, k), (Matrix(s, k, k),))],
               lambda c, k=k: np.eye(k), lambda c: Interval(0.0, 1.0), differentiable=False)
          for k in (2, 3, 4) for s, suffix in ((FLOAT32, ""), (FLOAT64, "d"))],
        _row("pi", "wp.pi", "constant", [Sig((), FLOAT32, (FLOAT32,))], lambda c: np.float64(math.pi),
             lambda c: Interval.point(math.pi), differentiable=False),
        # quaternions
        _row("quat", "", "construct", [Sig(("S",) * 4, "T", QUATS)], _construct(4),
             lambda c, *xs: _hull(*xs)),
        _row("quat_vw", "", "construct", _per(QUATS, lambda q: ((vec_of(q.scalar, 3), q.scalar), q)),
             lambda c, v, w: np.concatenate([v, w[..., None]], axis=-1), lambda c, v, w: v.join(w)),
        _row("quat_from_axis_angle", "wp.quat_from_axis_angle", "call",
             _per(QUATS, lambda q: ((vec_of(q.scalar, 3), q.scalar), q)), lambda c, a, t: _axis_angle(a, t),
             lambda c, a, t: _sym(max(a.mag, 1.0))),
        _row("quat_rpy", "wp.quat_rpy", "call", [Sig(("S", "S", "S"), "T", QUATS)],
             lambda c, r, p, y: _quat_rpy(r, p, y), lambda c, *xs: Interval(-1.0, 1.0)),
        _row("quat_identity", "wp.quat_identity()", "constant", [Sig((), Quat(FLOAT32), (Quat(FLOAT32),))],
             lambda c: np.array([0.0, 0.0, 0.0, 1.0]), lambda c: Interval(0.0, 1.0), differentiable=False),
        _row("quat_inverse", "wp.quat_inverse", "call", [_same(QUATS, 1)], lambda c, q: _conj(q),
             lambda c, q: _sym(q.mag)),
        *[_row(k, f"wp.{k}", "call", _per(QUATS, lambda q: ((q, vec_of(q.scalar, 3)), vec_of(q.scalar, 3))),
               lambda c, q, x, sign=sign: _qrot(q, x, sign), lambda c, q, x: _sym(_rot_bound(q, x)))
          for k, sign in (("quat_rotate", 1.0), ("quat_rotate_inv", -1.0))],
        _row("quat_to_matrix", "wp.quat_to_matrix", "call", _per(QUATS, lambda q: ((q,), Matrix(q.scalar, 3, 3))),
             lambda c, q: _quat_to_matrix(q), lambda c, q: _sym(_rot_bound(q, Interval(-1.0, 1.0)))),
        # transforms: position (3) then rotation (4)
        _row("transform", "", "construct",
             _per(XFORMS, lambda t: ((vec_of(t.scalar, 3), Quat(t.scalar)), t)),
             lambda c, p, q: np.concatenate([p, q], axis=-1), lambda c, p, q: p.join(q)),
        *[_row(k, f"wp.{k}", "call", _per(XFORMS, lambda t: ((t, vec_of(t.scalar, 3)), vec_of(t.scalar, 3))),
               impl, rule) for k, impl, rule in (
              ("transform_point", lambda c, t, x: t[..., :3] + _qrot(t[..., 3:], x),
               lambda c, t, x: _sym(t.mag + _rot_bound(t, x))),
              ("transform_vector", lambda c, t, x: _qrot(t[..., 3:], x), lambda c, t, x: _sym(_rot_bound(t, x))))],
        _row("transform_multiply", "wp.transform_multiply", "call", [_same(XFORMS)], lambda c, a, b: _tmul(a, b),
             mul_iv),
        _row("transform_inverse", "wp.transform_inverse", "call", [_same(XFORMS, 1)], lambda c, t: _tinv(t),
             lambda c, t: _sym(max(t.mag, _rot_bound(t, t)))),
        _row("transform_get_translation", "wp.transform_get_translation", "call",
             _per(XFORMS, lambda t: ((t,), vec_of(t.scalar, 3))), lambda c, t: t[..., :3], lambda c, t: t),
        _row("transform_get_rotation", "wp.transform_get_rotation", "call",
             _per(XFORMS, lambda t: ((t,), Quat(t.scalar))), lambda c, t: t[..., 3:], lambda c, t: t),
        # spatial vectors (spatial.h): angular part on top, linear part at the bottom
        _row("spatial_vector", "", "construct",
             _per(SPATIAL, lambda s: ((vec_of(s.scalar, 3), vec_of(s.scalar, 3)), s)),
             lambda c, w, v: np.concatenate([w, v], axis=-1), lambda c, w, v: w.join(v)),
        *[_row(k, f"wp.{k}", "call", _per(SPATIAL, lambda s: ((s,), vec_of(s.scalar, 3))), impl, lambda c, a: a)
          for k, impl in (("spatial_top", lambda c, a: a[..., :3]), ("spatial_bottom", lambda c, a: a[..., 3:]))],
        _row("spatial_dot", "wp.spatial_dot", "call", [Sig(("T", "T"), "S", SPATIAL)], _dot,
             lambda c, a, b: N.iv_mul(Interval(6, 6), N.iv_mul(a, b))),
        _row("spatial_cross", "wp.spatial_cross", "call", [_same(SPATIAL)],
             lambda c, a, b: np.concatenate([_cross(c, a[..., :3], b[..., :3]),
                                             _cross(c, a[..., 3:], b[..., :3]) + _cross(c, a[..., :3], b[..., 3:])],
                                            axis=-1),
             lambda c, a, b: _sym(4 * a.mag * b.mag)),
    ]
    return {r.name: r for r in rows}


OPS.update(_volume_rows())


# ---------------------------------------------------------------------------------------------------------
# Integer widths, bit counts, finiteness and binary search (atomic, bitwise and indexing families)

#: operations whose unsigned results wrap modulo 2**bits in C (defined behaviour, unlike signed overflow)
UNSIGNED_WRAPS = frozenset({"add", "sub", "mul", "neg", "lshift", "invert"})


def _wraps(name: str, ctx: Ctx) -> bool:
    """Unsigned integer results (and integer conversions to an unsigned type) wrap modulo 2**bits."""
    s = scalar_of(ctx.result)
    if not s.is_int or s.is_signed:
        return False
    return name in UNSIGNED_WRAPS or (name == "cast" and scalar_of(ctx.types[0]).is_int)


def _popcount(ctx, a):
    s = scalar_of(ctx.types[0])
    unsigned = np.dtype(f"uint{s.bits}")
    return np.bitwise_count(np.asarray(a).astype(s.numpy).view(unsigned)).astype(np.int32)


def _lower_bound(ctx, arr, v):
    """Warp's ``lower_bound`` (native/array.h): the first index whose element is >= ``v``, but its binary search
    starts with ``upper = n - 1``, so a value above every element gives ``n - 1``, not ``n``."""
    return np.minimum(np.searchsorted(arr, v, side="left"), len(arr) - 1)


def _extra_rows() -> list[Op]:
    from kernels.ir.types import INT32, Array, BOOL as _B
    search = (FLOATS[1], FLOATS[2], INT32)
    return [
        _row("bit_count", "wp.bit_count", "call", [Sig(("T",), INT32, INTS)], _popcount,
             lambda c, a: Interval(0.0, float(scalar_of(c.types[0]).bits)) if a.lo < 0 or a.hi > 0 else
             Interval(0.0, 0.0), differentiable=False),
        _row("isfinite", "wp.isfinite", "call", [Sig(("T",), _B, FLOATS)], lambda c, a: np.isfinite(a),
             lambda c, a: Interval(1.0, 1.0) if math.isfinite(a.lo) and math.isfinite(a.hi) else BOOL_IV,
             differentiable=False),
        # Python's spellings of conversions to int32 and float32 (``int(x)``, ``float(i)``): C semantics as casts
        _row("to_int", "int", "call", [Sig(("T",), INT32, NUMERIC)], _cast, _iv_cast,
             extra_guard=lambda c, a: _cast_guard(c, a), differentiable=False),
        _row("to_float", "float", "call", [Sig(("T",), FLOATS[1], NUMERIC)], _cast, _iv_cast,
             differentiable=False),
        _row("to_bool", "bool", "call", [Sig(("T",), _B, NUMERIC)], lambda c, a: a != 0,
             lambda c, a: Interval(0.0 if a.contains_zero() else 1.0, 0.0 if a == Interval(0.0, 0.0) else 1.0),
             differentiable=False),
        # the array argument's interval is its index range (kernels.ir.intervals)
        _row("lower_bound", "wp.lower_bound", "call", [Sig((Array(s), s), INT32, (s,)) for s in search],
             _lower_bound, lambda c, a, v: Interval(max(a.lo, 0.0), a.hi), differentiable=False),
    ]


OPS.update({r.name: r for r in _extra_rows()})


def _variant(row: Op, **changes) -> Op:
    """``row`` with some fields changed."""
    return Op(**{**{f: getattr(row, f) for f in Op.__slots__}, **changes})


def _extend(name: str, *sigs: Sig) -> None:
    """More signatures for a row whose NumPy implementation and interval rule already hold for them."""
    OPS[name] = _variant(OPS[name], sigs=OPS[name].sigs + sigs)


OPS.update(_composite_table())
_extend("add", Sig(("T", "T"), "T", MATS + QUATS + INT_VECTORS + SPATIAL))
_extend("sub", Sig(("T", "T"), "T", MATS + QUATS + INT_VECTORS + SPATIAL))
_extend("neg", Sig(("T",), "T", MATS + QUATS + INT_VECTORS + SPATIAL))
_extend("mul", Sig(("T", "S"), "T", SPATIAL), Sig(("S", "T"), "T", SPATIAL))
_extend("min", Sig(("T", "T"), "T", VECS))
_extend("max", Sig(("T", "T"), "T", VECS))
_extend("abs", Sig(("T",), "T", VECS))
_extend("dot", Sig(("T", "T"), "S", QUATS))
_extend("length", Sig(("T",), "S", QUATS))
_extend("normalize", Sig(("T",), "T", QUATS))


# Integer vectors (the ``lattice`` family): Warp's generic vector builtins over ``wp.vec2i/vec3i/vec4i``. They are
# rows of their own, so that the vocabularies of the other families draw exactly what they drew before, with the
# spelling, NumPy semantics and interval rule of the row they alias (integers wrap in their carrier dtype).
#: alias row -> the row whose semantics it shares (the source-hygiene checks read them as that row)
ALIASES = {"ivmul": "mul", "ivmin": "min", "ivmax": "max", "ivabs": "abs", "ivdot": "dot", "ivreduce_min": "vmin",
           "ivreduce_max": "vmax", "ivwhere": "where"}
_IV_SIGS = {"ivmul": (Sig(("T", "S"), "T", INT_VECTORS), Sig(("S", "T"), "T", INT_VECTORS)),
            "ivmin": (_same(INT_VECTORS),), "ivmax": (_same(INT_VECTORS),), "ivabs": (_same(INT_VECTORS, 1),),
            "ivdot": (Sig(("T", "T"), "S", INT_VECTORS),), "ivreduce_min": (Sig(("T",), "S", INT_VECTORS),),
            "ivreduce_max": (Sig(("T",), "S", INT_VECTORS),), "ivwhere": (Sig((BOOL, "T", "T"), "T", INT_VECTORS),)}
OPS.update({name: _variant(OPS[ALIASES[name]], name=name, sigs=sigs, differentiable=False)
            for name, sigs in _IV_SIGS.items()})
