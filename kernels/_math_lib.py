"""Random math-builtin expressions with intervals and sample values (``MathGen``), used by the families that are
not yet on the program IR (``combined`` and ``nested_loops``, through ``_combined_lib``). The ``math`` family
itself is written against ``kernels/ir``; this module goes once its last user has moved.

Warp semantics copied by the evaluator (measured on Warp 1.19): ``sign(0) == 1``; ``step(x) = 1 if x < 0 else 0``;
``nonzero(x) = 1 if x != 0 else 0``; ``round`` rounds half away from zero while ``rint`` rounds half to even;
``frac(x) = x - trunc(x)``; float ``%`` and ``wp.mod`` are C ``fmod``; float ``//`` is ``floor(a / b)``;
``clamp(x, lo, hi) = min(max(x, lo), hi)``; ``lerp(a, b, t) = a * (1 - t) + b * t``; ``smoothstep`` clamps
``(x - e0) / (e1 - e0)`` to [0, 1]; ``asin``/``acos`` clamp their argument to [-1, 1].
"""

from __future__ import annotations

import bisect
import itertools
import math as _math

import numpy as np

from kernels import _expr as E
from kernels._common import pick
from kernels._numeric import abs_range, basic_unary_iv, erf, erfc, erfinv_newton, nice, round_half_away, sin_range

LIMIT = 40.0            # magnitude bound for intermediate values; larger intervals are squashed back
Interval = E.Interval
Node = E.Node

# --------------------------------------------------------------------------------------------------------
# Vocabulary

SMOOTH_UNARY = ("sin", "cos", "tan", "exp", "log", "log2", "log10", "sqrt", "cbrt", "tanh", "atan", "asin",
                "acos", "sinh", "cosh", "erf", "erfc", "erfinv", "erfcinv", "abs", "neg", "degrees", "radians")
STEP_UNARY = ("floor", "ceil", "round", "rint", "trunc", "frac", "sign", "step", "nonzero")
UNARY_WEIGHTS = {op: 1.0 for op in SMOOTH_UNARY + STEP_UNARY}
UNARY_WEIGHTS.update({"neg": 0.3, "abs": 0.5, "degrees": 0.3, "radians": 0.3, "nonzero": 0.7, "frac": 0.0,
                      "rint": 0.7, "step": 0.9, "sign": 1.0, "erfcinv": 0.6, "erfinv": 0.7, "log10": 0.7,
                      "sin": 1.5, "cos": 1.5, "exp": 1.3, "sqrt": 1.3, "log": 1.3})
UNARY_OPS = tuple(UNARY_WEIGHTS)
#: cumulative weights for differentiable programs (no frac, whose adjoint Warp 1.19 lacks) and for the others
UNARY_CUM = {True: tuple(itertools.accumulate(UNARY_WEIGHTS[o] for o in UNARY_OPS)),
             False: tuple(itertools.accumulate(UNARY_WEIGHTS[o] if o != "frac" else 3.0 for o in UNARY_OPS))}

ARITH = ("add", "sub", "mul", "div")
MATH_BINARY = ("min", "max", "atan2", "pow", "copysign", "mod", "floordiv", "clamp", "lerp", "smoothstep")
MATH_BINARY_CUM = tuple(itertools.accumulate((1.0, 1.0, 1.2, 1.4, 0.6, 0.7, 0.5, 0.9, 0.8, 0.7)))

#: piecewise-constant operators (their value jumps; derivative zero elsewhere)
PIECEWISE = frozenset(("floor", "ceil", "round", "rint", "trunc", "sign", "step", "nonzero", "floordiv"))

SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "floordiv": "//", "pow": "**"}
WP_NAME = {op: op for op in SMOOTH_UNARY + STEP_UNARY + MATH_BINARY}



# --------------------------------------------------------------------------------------------------------
# Interval rules


def _mono(f, iv: Interval, increasing: bool = True) -> Interval:
    a, b = f(iv.lo), f(iv.hi)
    return Interval(a, b) if increasing else Interval(b, a)


def _sin_iv(iv: Interval, shift: float = 0.0) -> Interval:
    """Range of sin(x + shift) over ``iv``."""
    return sin_range(iv.lo + shift, iv.hi + shift)


def _erfinv_scalar(y: float) -> float:
    return float(_erfinv(np.asarray([y], dtype=np.float64))[0])


def unary_iv(op: str, iv: Interval) -> Interval:
    lo, hi = iv.lo, iv.hi
    m = _math
    if op == "sin":
        return _sin_iv(iv)
    if op == "cos":
        return _sin_iv(iv, m.pi / 2)
    basic = basic_unary_iv(op, iv)
    if basic is not None:
        return basic
    if op == "step":
        return Interval(0.0 if hi >= 0 else 1.0, 1.0 if lo < 0 else 0.0)
    if op == "nonzero":
        return Interval(0.0, 1.0)
    increasing = {"tan": m.tan, "exp": m.exp, "log": m.log, "log2": m.log2, "log10": m.log10, "sqrt": m.sqrt,
                  "cbrt": lambda x: m.copysign(abs(x) ** (1.0 / 3.0), x), "tanh": m.tanh, "atan": m.atan,
                  "asin": m.asin, "sinh": m.sinh, "erf": m.erf, "erfinv": _erfinv_scalar, "floor": m.floor,
                  "ceil": m.ceil, "round": lambda x: float(round_half_away(x)), "rint": lambda x: float(np.rint(x)),
                  "trunc": m.trunc, "degrees": m.degrees, "radians": m.radians}
    if op in increasing:
        return _mono(increasing[op], iv)
    decreasing = {"acos": m.acos, "erfc": m.erfc, "erfcinv": lambda x: _erfinv_scalar(1.0 - x)}
    if op in decreasing:
        return _mono(decreasing[op], iv, increasing=False)
    raise ValueError(op)


def _weighted(rng: np.random.Generator, options, cum):
    """One of ``options`` with probabilities proportional to the increments of ``cum``."""
    return options[bisect.bisect_right(cum, float(rng.random()) * cum[-1])]


def _corners(f, *ivs: Interval) -> Interval:
    """Range of ``f`` over a box, for ``f`` monotone in each argument separately (extremes at corners)."""
    vals = [f(*c) for c in itertools.product(*[(iv.lo, iv.hi) for iv in ivs])]
    return Interval(min(vals), max(vals))


# --------------------------------------------------------------------------------------------------------
# Emission


def emit(node: Node, ty: E.Scalar) -> str:
    op, a, style = node.op, node.args, node.value
    if op == "var":
        return str(node.value)
    if op == "const":
        text = ty.literal(node.value)
        return f"({text})" if text.startswith("-") else text
    if op == "neg":
        return f"(-{emit(a[0], ty)})"
    if op in ("add", "sub", "mul", "div") or (op in SYMBOL and style == "op"):
        return f"({emit(a[0], ty)} {SYMBOL[op]} {emit(a[1], ty)})"
    if op == "call":
        return f"{style}({', '.join(emit(x, ty) for x in a)})"
    if op in WP_NAME:
        return f"wp.{WP_NAME[op]}({', '.join(emit(x, ty) for x in a)})"
    raise ValueError(f"cannot emit op {op!r}")


# --------------------------------------------------------------------------------------------------------
# NumPy evaluation with Warp semantics (float64 throughout; the kernel's float32 constants are pre-rounded)


def _erfinv(y):
    """Inverse error function to float64 accuracy, ``+-inf`` at ``+-1`` and nan beyond."""
    y = np.asarray(y, dtype=np.float64)
    x = erfinv_newton(y)
    return np.where(np.abs(y) < 1.0, x, np.where(np.abs(y) == 1.0, np.copysign(np.inf, y), np.nan))


UNARY_NP = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "exp": np.exp, "log": np.log, "log2": np.log2,
    "log10": np.log10, "sqrt": np.sqrt, "cbrt": np.cbrt, "tanh": np.tanh, "atan": np.arctan, "asin": np.arcsin,
    "acos": np.arccos, "sinh": np.sinh, "cosh": np.cosh, "erf": erf, "erfc": erfc, "erfinv": _erfinv,
    "erfcinv": lambda x: _erfinv(1.0 - x), "abs": np.abs, "neg": np.negative, "degrees": np.degrees,
    "radians": np.radians, "floor": np.floor, "ceil": np.ceil, "round": round_half_away, "rint": np.rint,
    "trunc": np.trunc, "frac": lambda x: x - np.trunc(x), "sign": lambda x: np.where(x < 0, -1.0, 1.0),
    "step": lambda x: np.where(x < 0, 1.0, 0.0), "nonzero": lambda x: np.where(x != 0, 1.0, 0.0),
}


def _smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


NARY_NP = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "mod": np.fmod,
    "floordiv": lambda a, b: np.floor(a / b), "min": np.minimum, "max": np.maximum, "atan2": np.arctan2,
    "pow": np.power, "copysign": np.copysign, "clamp": lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi),
    "lerp": lambda a, b, t: a * (1.0 - t) + b * t, "smoothstep": _smoothstep,
}


def apply_op(op: str, style, args: list, ty: E.Scalar, helpers: dict):
    """Value of operator ``op`` on evaluated ``args`` (float64 arrays) with Warp semantics."""
    if op == "call":
        params, statements, ret = helpers[style]
        local = dict(zip(params, args))
        for name, stmt in statements:
            local[name] = evaluate(stmt, local, ty, helpers)
        return evaluate(ret, local, ty, helpers)
    if op in UNARY_NP:
        return UNARY_NP[op](args[0])
    return NARY_NP[op](*args)


def evaluate(node: Node, env: dict, ty: E.Scalar, helpers: dict) -> np.ndarray:
    op = node.op
    if op == "var":
        return env[node.value]
    if op == "const":
        return np.asarray(ty.const_value(node.value), dtype=np.float64)
    return apply_op(op, node.value, [evaluate(x, env, ty, helpers) for x in node.args], ty, helpers)


def is_piecewise(node: Node) -> bool:
    """True when the node's value is piecewise constant in its variables (or constant)."""
    if node.op == "var":
        return False
    if node.op == "const" or node.op in PIECEWISE:
        return True
    if node.op == "call":
        return False
    return all(is_piecewise(x) for x in node.args)


def size(node: Node) -> int:
    """Number of operations in the tree."""
    if node.op in ("var", "const"):
        return 0
    return 1 + sum(size(x) for x in node.args)


def uses(node: Node) -> set[str]:
    return E.uses(node)


def builtins_of(node: Node) -> set[str]:
    out = set()
    if node.op in ("mod", "floordiv", "pow") and node.value == "op":
        out.add(SYMBOL[node.op])
    elif node.op == "neg":
        out.add("-x")
    elif node.op in WP_NAME:
        out.add(f"wp.{node.op}")
    elif node.op in ("add", "sub", "mul", "div", "neg"):
        out.add(node.op)
    for child in node.args:
        out |= builtins_of(child)
    return out


# --------------------------------------------------------------------------------------------------------
# Generation


class MathGen:
    """Random math expressions over ``leaves`` (name -> interval), keeping every builtin in its domain.

    Domain safety uses the conservative node intervals only. ``samples`` (name -> values at a few random points
    of the input box) give empirical value ranges, used where only liveliness is at stake: where clamp and
    smoothstep edges sit, how far rounding and step arguments are spread, whether a statement is constant.
    """

    def __init__(self, rng: np.random.Generator, ty: E.Scalar, leaves: dict[str, Interval],
                 samples: dict[str, np.ndarray], weights: dict[str, float] | None = None,
                 helper_sig: dict | None = None, helper_defs: dict | None = None, differentiable: bool = True):
        self.rng = rng
        self.differentiable = differentiable
        self.ty = ty
        self.leaves = dict(leaves)
        self.samples = dict(samples)
        self.weights = dict(weights or {})
        self.helpers = helper_sig or {}        # name -> (params, param intervals, return interval)
        self.helper_defs = helper_defs or {}   # name -> (params, statements, return node)
        self.guards: set[str] = set()
        self.scalars: frozenset[str] = frozenset()     # leaves that are constant across a launch
        self._vals: dict[int, tuple[Node, np.ndarray]] = {}

    # -- values at the sample points ---------------------------------------------------------------------
    def val(self, node: Node) -> np.ndarray:
        hit = self._vals.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        if node.op == "var":
            v = self.samples[node.value]
        elif node.op == "const":
            v = np.asarray(self.ty.const_value(node.value), dtype=np.float64)
        else:
            v = apply_op(node.op, node.value, [self.val(a) for a in node.args], self.ty, self.helper_defs)
        self._vals[id(node)] = (node, v)
        return v

    def quantiles(self, node: Node, *qs: float) -> list[float]:
        v = np.sort(np.atleast_1d(self.val(node)))
        return [float(v[int(round(q * (len(v) - 1)))]) for q in qs]

    def lively(self, node: Node) -> bool:
        v = self.val(node)
        if np.ndim(v) == 0:
            return False
        lo, hi = float(v.min()), float(v.max())
        return _math.isfinite(lo) and _math.isfinite(hi) and hi - lo > 1e-6 * (1.0 + max(abs(lo), abs(hi)))

    # -- leaves ------------------------------------------------------------------------------------------
    def var(self, name: str) -> Node:
        node = E.var(name, self.leaves[name])
        self.val(node)                         # pin its current value: locals may be reassigned later
        return node

    def var_leaf(self, avoid: Node | None = None) -> Node:
        names = list(self.leaves)
        if avoid is not None and avoid.op == "var" and len(names) > 1:
            names = [n for n in names if n != avoid.value]
        name = _weighted(self.rng, names, tuple(itertools.accumulate(self.weights.get(n, 1.0) for n in names)))
        return self.var(name)

    def const(self, lo: float = -3.0, hi: float = 3.0, nonzero: float = 0.0) -> Node:
        value = nonzero
        for _ in range(10):
            value = round(float(self.rng.uniform(lo, hi)), int(self.rng.integers(1, 3)))
            if abs(value) >= nonzero:
                break
        else:
            value = nonzero if hi > 0 else -nonzero
        return self.c(value)

    def c(self, value: float) -> Node:
        v = self.ty.const_value(value)
        return E.const(value, Interval(v, v))

    def mk(self, op: str, args, iv: Interval, style=None) -> Node:
        return Node(op, tuple(args), style, iv)

    # -- expressions -------------------------------------------------------------------------------------
    def expr(self, depth: int, p_leaf: float = 0.2) -> Node:
        """A non-constant expression."""
        if depth <= 0 or self.rng.random() < p_leaf:
            return self.var_leaf()
        roll = self.rng.random()
        if self.helpers and roll < 0.1:
            return self.call(depth)
        if roll < 0.52:
            op = _weighted(self.rng, UNARY_OPS, UNARY_CUM[self.differentiable])
            return self.unary(op, self.expr(depth - 1))
        if roll < 0.78:
            op = pick(self.rng, ARITH)
            x = self.expr(depth - 1)
            y = self.expr(depth - 1, p_leaf=0.4) if self.rng.random() < 0.75 else self.const(nonzero=0.2)
            if self.rng.random() < 0.5 and op in ("add", "mul"):
                x, y = y, x
            return self.arith(op, x, y)
        op = _weighted(self.rng, MATH_BINARY, MATH_BINARY_CUM)
        return self.math_binary(op, depth)

    def tame(self, x: Node, limit: float = LIMIT) -> Node:
        """``x`` itself if its magnitude stays under ``limit``, else a squashed version of it."""
        if x.iv.mag <= limit:
            return x
        self.guards.add("squash")
        roll = self.rng.random()
        if roll < 0.3:
            return self.fit(x, -4.0, 4.0)
        if roll < 0.5:
            inner = self.scale(x, nice(2.0 / x.iv.mag), allow_div=False)
            return self.mk("tanh", (inner,), unary_iv("tanh", inner.iv))
        if roll < 0.65:
            return self.mk("atan", (x,), unary_iv("atan", x.iv))
        if roll < 0.85:
            cval = float(self.rng.choice([0.5, 1.0, 2.0, 4.0]))
            den = self.shift(self.mk("abs", (x,), abs_range(x.iv)), cval)
            return self.mk("div", (x, den), Interval(-1.0, 1.0))
        if x.iv.mag <= limit ** 3 and not x.iv.contains_zero(0.1):
            return self.mk("cbrt", (x,), unary_iv("cbrt", x.iv))
        return self.fit(x, -4.0, 4.0)

    def arith_raw(self, op: str, x: Node, y: Node) -> Node:
        ivs = {"add": lambda: Interval(x.iv.lo + y.iv.lo, x.iv.hi + y.iv.hi),
               "sub": lambda: Interval(x.iv.lo - y.iv.hi, x.iv.hi - y.iv.lo),
               "mul": lambda: _corners(lambda a, b: a * b, x.iv, y.iv),
               "div": lambda: _corners(lambda a, b: a / b, x.iv, y.iv)}
        return self.mk(op, (x, y), ivs[op]())

    def arith(self, op: str, x: Node, y: Node) -> Node:
        if x == y:
            y = self.var_leaf(avoid=x) if self.rng.random() < 0.7 else self.const(nonzero=0.3)
            if x == y:
                op = "mul" if op in ("sub", "div") else op
        if x.op == "const" and y.op == "const":
            y = self.var_leaf()
        if op == "div":
            y = self.away_from_zero(y)
        return self.tame(self.arith_raw(op, x, y))

    def away_from_zero(self, y: Node, margin: float = 0.25) -> Node:
        if y.iv.lo >= margin or y.iv.hi <= -margin:
            return y
        if y.op == "const":
            return self.const(nonzero=max(margin, 0.5))
        return self.positive(y, margin)

    # -- domain guards -----------------------------------------------------------------------------------
    def shift(self, x: Node, c: float) -> Node:
        if c == 0:
            return x
        cv = self.ty.const_value(c)
        iv = Interval(x.iv.lo + cv, x.iv.hi + cv)
        if c < 0 and self.rng.random() < 0.6:
            return self.mk("sub", (x, self.c(-c)), iv)
        if self.rng.random() < 0.3:
            return self.mk("add", (self.c(c), x), iv)
        return self.mk("add", (x, self.c(c)), iv)

    def scale(self, x: Node, s: float, allow_div: bool = True) -> Node:
        if s == 1:
            return x
        sv = self.ty.const_value(s)
        iv = Interval(min(sv * x.iv.lo, sv * x.iv.hi), max(sv * x.iv.lo, sv * x.iv.hi))
        inv = round(1.0 / s, 1)
        if allow_div and self.rng.random() < 0.3 and inv != 0 and abs(inv - 1.0 / s) < 1e-9:
            dv = self.ty.const_value(inv)
            return self.mk("div", (x, self.c(inv)), Interval(min(x.iv.lo / dv, x.iv.hi / dv),
                                                              max(x.iv.lo / dv, x.iv.hi / dv)))
        if self.rng.random() < 0.5:
            return self.mk("mul", (self.c(s), x), iv)
        return self.mk("mul", (x, self.c(s)), iv)

    def _shift_into(self, node: Node, lo: float, hi: float) -> Node:
        cmin, cmax = lo - node.iv.lo, hi - node.iv.hi
        if cmin <= 0 <= cmax:
            return node
        c = (cmin + cmax) / 2.0
        for digits in (1, 2, 3, 5):
            cand = round(float(self.rng.uniform(cmin, cmax)), digits)
            if cmin <= self.ty.const_value(cand) <= cmax:
                c = cand
                break
        return self.shift(node, c)

    def fit(self, x: Node, lo: float, hi: float) -> Node:
        """``x``, or an affine image ``x * s + c`` of it, inside [lo, hi] (by the conservative interval)."""
        iv = x.iv
        if iv.lo >= lo and iv.hi <= hi:
            return x
        self.guards.add("affine")
        width, target = iv.hi - iv.lo, hi - lo
        s = nice(target * 0.98 / width) if width > target * 0.98 else 1.0
        if s != 1.0 and self.rng.random() < 0.2:
            s = -s
        return self._shift_into(self.scale(x, s), lo, hi)

    def spread(self, x: Node, width: float, center: float, max_scale: float = 8.0) -> Node:
        """An affine image of ``x`` whose sampled values span about ``width`` around ``center``: rounding and
        step functions then see several jumps."""
        lo, mid, hi = self.quantiles(x, 0.05, 0.5, 0.95)
        s = 1.0
        if hi - lo > 0:
            s = min(max_scale, width / (hi - lo), LIMIT / max(x.iv.mag, 1e-9))
            s = nice(s) if abs(s - 1.0) > 0.15 else 1.0
            s = s if s != 0 else 1.0
        node = self.scale(x, s)
        c = round(center - s * mid, 2)
        if abs(c) < 0.05:
            return node
        return self.shift(node, c)

    def positive(self, x: Node, low: float = 0.1) -> Node:
        """A strictly positive expression (at least ``low``) built from ``x``."""
        if x.iv.lo >= low and self.rng.random() < 0.7:
            return x
        roll = self.rng.random()
        c = round(float(self.rng.choice([0.1, 0.25, 0.5, 1.0, 1.5])) + low, 3)
        if roll < 0.45:
            self.guards.add("abs_shift")
            a = x if x.op == "abs" else self.mk("abs", (x,), abs_range(x.iv))
            return self.shift(a, c)
        if roll < 0.65 and x.iv.mag <= 6.0 and size(x) <= 2:
            self.guards.add("square_shift")
            sq = self.mk("mul", (x, x), Interval(abs_range(x.iv).lo ** 2, x.iv.mag ** 2))
            return self.shift(sq, c)
        if roll < 0.75:
            self.guards.add("exp")
            inner = self.fit(x, -2.0, 2.0)
            return self.mk("exp", (inner,), unary_iv("exp", inner.iv))
        if roll < 0.85:
            cv = self.ty.const_value(c)
            if x.iv.hi > cv and self.quantiles(x, 0.3)[0] > cv:
                self.guards.add("max")
                return self.mk("max", (x, self.c(c)), Interval(cv, x.iv.hi))
        self.guards.add("affine")
        return self.fit(x, low, low + float(self.rng.choice([1.0, 2.0, 4.0])))

    def bounded(self, x: Node, low: float, high: float) -> Node:
        """An expression inside [low, high] (``0 < low < high``) built from ``x``."""
        p = self.positive(x, low)
        return p if p.iv.hi <= high else self.fit(p, low, high)

    def unit(self, x: Node, bound: float) -> Node:
        """An expression inside [-bound, bound] built from ``x``."""
        roll = self.rng.random()
        if roll < 0.55 or x.iv.mag <= bound:
            return self.fit(x, -bound, bound)
        self.guards.add("squash")
        if roll < 0.7:
            inner = self.mk("tanh", (x,), unary_iv("tanh", x.iv))
        elif roll < 0.85:
            inner = self.mk("sin", (x,), unary_iv("sin", x.iv))
        else:
            den = self.shift(self.mk("abs", (x,), abs_range(x.iv)), 1.0)
            inner = self.mk("div", (x, den), Interval(-1.0, 1.0))
        bv = self.ty.const_value(bound)
        return self.mk("mul", (inner, self.c(bound)), Interval(bv * inner.iv.lo, bv * inner.iv.hi))

    # -- builtins ----------------------------------------------------------------------------------------
    def unary(self, op: str, x: Node) -> Node:
        rng = self.rng
        if op in STEP_UNARY and (is_piecewise(x) or not self.lively(x) or uses(x) <= self.scalars):
            op = pick(rng, ("sin", "exp", "tanh", "atan", "cos"))
        if op == "frac" and self.differentiable:              # Warp 1.19's adjoint of frac is zero
            op = pick(rng, ("floor", "ceil", "round", "trunc", "sin", "cos"))
        if op in ("abs", "neg") and x.op in ("abs", "neg"):
            op = pick(rng, ("sin", "cos", "atan"))
        if op in ("sin", "cos"):
            x = self.fit(x, -6.0, 6.0)
        elif op == "tan":
            x = self.fit(x, -1.2, 1.2)
        elif op == "exp":
            lim = float(rng.choice([1.5, 2.0, 3.0]))
            x = self.fit(x, -lim, lim) if rng.random() < 0.7 else self.unit(x, lim)
        elif op in ("sinh", "cosh"):
            x = self.fit(x, -3.0, 3.0)
        elif op in ("log", "log2", "log10"):
            x = self.bounded(x, float(rng.choice([0.05, 0.1, 0.2, 0.5])), LIMIT)
        elif op == "sqrt":
            x = self.bounded(x, float(rng.choice([0.01, 0.1, 0.25])), LIMIT)
        elif op == "cbrt":                  # away from 0, where its derivative is infinite
            x = self.tame(x)
            if x.iv.contains_zero(0.1):
                x = self.away_from_zero(x, 0.1)
            if x.iv.mag > LIMIT:
                x = self.fit(x, 0.1, LIMIT) if x.iv.lo > 0 else self.fit(x, -LIMIT, -0.1)
        elif op in ("tanh", "atan", "erf", "erfc"):
            x = self.fit(x, -4.0, 4.0)
        elif op in ("asin", "acos", "erfinv"):
            x = self.unit(x, {"asin": 0.95, "acos": 0.9, "erfinv": 0.9}[op])
        elif op == "erfcinv":
            x = self.shift(self.unit(x, 0.85), 1.0)
        elif op == "degrees":
            x = self.fit(x, -0.6, 0.6)
        elif op in ("floor", "ceil", "round", "rint", "trunc", "frac"):
            x = self.spread(x, float(rng.uniform(3.0, 6.0)), float(rng.uniform(-2.0, 2.0)))
        elif op in ("sign", "step"):
            x = self.spread(x, float(rng.uniform(1.0, 3.0)), float(rng.uniform(-0.3, 0.3)), max_scale=4.0)
        elif op == "nonzero":
            inner = pick(rng, ("floor", "round", "trunc", "ceil"))
            x = self.spread(x, float(rng.uniform(2.0, 3.0)), float(rng.uniform(-0.5, 0.5)))
            x = self.mk(inner, (x,), unary_iv(inner, x.iv))
        return self.tame(self.mk(op, (x,), unary_iv(op, x.iv)))

    def operands(self, depth: int) -> tuple[Node, Node]:
        x = self.expr(depth - 1)
        y = self.expr(depth - 1, p_leaf=0.4)
        for _ in range(3):
            if y != x:
                break
            y = self.var_leaf(avoid=x)
        if y == x:
            y = self.unary(pick(self.rng, ("sin", "cos", "exp", "atan", "tanh")), x)
        return x, y

    def _edges(self, x: Node, gap: float) -> tuple[float, float] | None:
        """Two rounded values inside the sampled range of ``x``, at least ``gap`` quantiles apart."""
        u1 = float(self.rng.uniform(0.05, 0.5 - gap / 2))
        u2 = float(self.rng.uniform(0.5 + gap / 2, 0.95))
        a, b = self.quantiles(x, u1, u2)
        for digits in (2, 3, 4):
            ra, rb = round(a, digits), round(b, digits)
            if ra < rb:
                return ra, rb
        return None

    def math_binary(self, op: str, depth: int) -> Node:
        rng, ty = self.rng, self.ty
        x, y = self.operands(depth)
        if op in ("min", "max"):
            diff = self.val(x) - self.val(y)
            if not 0.15 <= float(np.mean(diff > 0)) <= 0.85:      # one side always wins: move the other
                y = self.shift(y, round(float(np.median(diff)), 2))
            f = min if op == "min" else max
            return self.mk(op, (x, y), Interval(f(x.iv.lo, y.iv.lo), f(x.iv.hi, y.iv.hi)))
        if op == "atan2":
            if rng.random() < 0.5:
                x = self.positive(x, 0.2)                  # y > 0: result in (0, pi), no branch cut
                return self.mk("atan2", (x, y), Interval(0.0, _math.pi))
            y = self.positive(y, 0.2)                      # x > 0: result in (-pi/2, pi/2)
            return self.mk("atan2", (x, y), Interval(-_math.pi / 2, _math.pi / 2))
        if op == "pow":
            base = self.bounded(x, float(rng.choice([0.1, 0.2, 0.5])), 4.0)
            if rng.random() < 0.5:
                expo = self.c(float(rng.choice([2.0, 3.0, 0.5, 1.5, -1.0, -0.5, 2.5, 0.75, -2.0, 1.25])))
            else:
                expo = self.fit(y, -2.0, 2.5)
            iv = _corners(lambda a, b: a ** b, base.iv, expo.iv)
            style = "op" if rng.random() < 0.3 else None
            return self.tame(self.mk("pow", (base, expo), iv, style))
        if op == "copysign":
            return self.mk("copysign", (x, y), Interval(-x.iv.mag, x.iv.mag))
        if op in ("mod", "floordiv"):
            # Warp 1.19's adjoint of fmod ignores the divisor: differentiable programs divide by constants
            if rng.random() < 0.5 or not self.lively(y) or (op == "mod" and self.differentiable):
                d = self.c(float(rng.choice([0.5, 0.75, 1.0, 1.5, 2.0, 2.5, -1.0, -1.5])))
            else:
                d = self.away_from_zero(y, 0.5)
                if d.iv.mag > 4.0:
                    d = self.fit(d, 0.5, 4.0) if d.iv.lo > 0 else self.fit(d, -4.0, -0.5)
            style = "op" if rng.random() < 0.6 else None
            if is_piecewise(x) or not self.lively(x):
                x = self.var_leaf()
            dmed = float(np.median(np.abs(self.val(d))))
            if op == "mod":
                x = self.spread(x, float(rng.uniform(2.0, 4.0)) * dmed, float(rng.uniform(-1.0, 1.0)) * dmed)
                dm = d.iv.mag
                iv = Interval(-min(dm, abs(x.iv.lo)) if x.iv.lo < 0 else 0.0, min(dm, x.iv.hi) if x.iv.hi > 0 else 0.0)
                return self.mk("mod", (x, d), iv, style)
            x = self.spread(x, float(rng.uniform(3.0, 5.0)) * dmed, float(rng.uniform(-2.0, 2.0)) * dmed)
            q = _corners(lambda a, b: a / b, x.iv, d.iv)
            iv = Interval(_math.floor(q.lo), _math.floor(q.hi))
            return self.tame(self.mk("floordiv", (x, d), iv, style))
        if op == "clamp":
            if is_piecewise(x):
                x, y = y, x
            edges = self._edges(x, 0.3)
            if edges is None:
                return self.unary("atan", x)
            lo, hi = edges
            lv, hv = ty.const_value(lo), ty.const_value(hi)
            return self.mk("clamp", (x, self.c(lo), self.c(hi)), Interval(min(max(x.iv.lo, lv), hv),
                                                                         max(min(x.iv.hi, hv), lv)))
        if op == "lerp":
            t = self.expr(depth - 1, p_leaf=0.4)
            if rng.random() < 0.6:
                t = self.fit(t, 0.0, 1.0)
            else:
                t = self.mk("smoothstep", (self.c(-1.0), self.c(1.0), self.fit(t, -1.5, 1.5)), Interval(0.0, 1.0))
            iv = _corners(lambda a, b, s: a * (1.0 - s) + b * s, x.iv, y.iv, t.iv)
            return self.mk("lerp", (x, y, t), iv)
        if op == "smoothstep":
            if is_piecewise(x):
                x = self.var_leaf()
            edges = self._edges(x, 0.4)
            if edges is None:
                return self.unary("tanh", x)
            e0, e1 = edges if rng.random() < 0.75 else edges[::-1]
            return self.mk("smoothstep", (self.c(e0), self.c(e1), x), Interval(0.0, 1.0))
        raise ValueError(op)

    def call(self, depth: int) -> Node:
        name = pick(self.rng, list(self.helpers))
        params, param_ivs, ret_iv = self.helpers[name]
        args = [self.fit(self.expr(depth - 1, p_leaf=0.4), piv.lo, piv.hi) for piv in param_ivs]
        return self.tame(self.mk("call", args, ret_iv, name))

    def statement(self, depth: int) -> Node:
        """A lively, not piecewise-constant expression with at least one operation."""
        node = self.expr(depth, p_leaf=0.0)
        for _ in range(4):
            if node.op not in ("var", "const") and not is_piecewise(node) and self.lively(node):
                break
            node = self.expr(depth, p_leaf=0.0)
        return node
