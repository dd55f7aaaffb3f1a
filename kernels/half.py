"""half: float16 kernels: random expression trees over wp.float16 values with float32 sub-expressions.

Kernels read float16 arrays (and sometimes float32 arrays, converted with ``wp.float16(a[i])``), float16/float32
scalar parameters, and compose + - * /, ``%``, ``//``, ``**``, min/max/abs/neg, selects, comparisons and the math
builtins (sin cos tan exp log log2 log10 sqrt cbrt tanh atan asin acos sinh cosh erf erfc atan2 pow floor ceil
round rint trunc frac sign copysign clamp lerp smoothstep degrees radians) in half precision, with conversions
``float(h)`` / ``wp.float16(f)`` to and from float32 sub-expressions, local bindings, an optional half-precision
accumulation loop over a stencil, an optional ``if``/``else`` block, an optional ``@wp.func`` helper on halves and
an optional ``wp.vec3h`` block (vec3h input arrays or ``wp.vec3h(...)`` built from halves; ``length``,
``length_sq``, ``dot``, components as half leaves; a vec3h output of sums, differences, ``cross``,
``normalize`` and scalings). Outputs are float16, float32, int32 (``int(h)``) or vec3h arrays. The harness's
dtype table has no vec3h: those arguments are declared float16 of shape (N, 3) and ``prepare`` passes them as
``wp.array(dtype=wp.vec3h)``.

Warp semantics copied by the reference (read in warp/native/builtin.h and measured bit-exact on Warp 1.19 CPU over
every finite half in each function's domain): every half operation converts its operands to float32, computes
in float32 (``::sinf`` ... for the math builtins) and rounds the result to half once (``float_to_half``, round to
nearest even). The reference therefore computes each node in float64, rounds to float32, then to float16
(``f64 -> f32 -> f16``; for + - * / the float32 step is innocuous, for the math builtins it copies the float32
libm result). ``lerp(a, b, t) = a*(1-t) + b*t`` and ``smoothstep`` (``x*x*(3-2x)`` of the clamped ratio) round
after every half operation; half ``a // b`` is ``floor`` of the half-rounded quotient; ``%`` is ``fmod``;
``wp.float16(c)`` for a literal rounds the float32 literal ``c`` to half; ``float(h)`` is exact; ``int(h)``
truncates. Half arithmetic with a float32 literal does not compile (``Input types must be the same``): every
constant in a half expression is ``wp.float16(c)``. Float32 sub-expressions round to float32 after every op.
vec3h: ``dot`` is ``(a0*b0 + a1*b1) + a2*b2``, ``length = sqrt(dot(a, a))``, ``cross`` and ``normalize``
(``a / length(a)`` unless the length is 0: ``kEps`` is 0) round every component operation to half (measured
bit-exact).

Tolerance: rtol 1e-2, atol 2e-3 on every output. On CPU the reference is bit-exact except for rare 1-ulp
differences of ``atan2`` (3 in 200k measured); on CUDA the float32 libm (``sinf``...) and FMA contraction of
float32 sub-expressions may flip a half rounding by one ulp (~1e-3 relative). The tolerance is 10 half ulps
because the harness's conditioning test perturbs float16 inputs by at least 2 half ulps (``2 * eps(float16)``,
relative 2e-3) and masks elements that move by more than half the tolerance: measured over 150 kernels,
rtol 2e-3 masks 42% of the elements (39% of kernels rejected ill_conditioned), 5e-3 masks 22% (13%), 1e-2
masks 10% (<1%). Gradients are not checked (``differentiable=False``): the reference
rounds to half after every operation, so finite differences of it are a staircase.
"""

from __future__ import annotations

import math as _math
from dataclasses import dataclass

import numpy as np

from harness.family import Arg, Family, KernelSpec, Program, Tolerance
from kernels._common import ARRAY_NAMES, LOCAL_NAMES, OUT_NAMES, SCALAR_NAMES, kernel_text
from kernels._common import pick as _pick_k
from kernels._expr import Interval, reachable, uses
from kernels._numeric import abs_range, basic_unary_iv, erf, erfc, erfinv_newton, nice, round_half_away, sin_range


def pick(rng, options, k=None):
    """One option (``k is None``) or ``k`` distinct options (fast path for single picks)."""
    if k is None:
        return options[int(rng.random() * len(options))]
    return _pick_k(rng, options, k)


N = 64
LIMIT = 48.0          # magnitude bound of intermediate values (half has ~3.3 digits; max 65504)
SAMPLES = 24          # random points of the input box used to keep selects/clamps/steps lively

H = "h"               # node types: float16 / float32
F = "f"

# --------------------------------------------------------------------------------------------------------
# Rounding and NumPy semantics


def r32(x):
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


def r16(x):
    """Warp's half result of a float64 value: round to float32 (the float32 computation), then to half."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float16).astype(np.float64)


def rnd(ty: str, x):
    return r16(x) if ty == H else r32(x)


UNARY_NP = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "exp": np.exp, "log": np.log, "log2": np.log2,
    "log10": np.log10, "sqrt": np.sqrt, "cbrt": np.cbrt, "tanh": np.tanh, "atan": np.arctan, "asin": np.arcsin,
    "acos": np.arccos, "sinh": np.sinh, "cosh": np.cosh, "erf": erf, "erfc": erfc, "erfinv": erfinv_newton,
    "abs": np.abs, "neg": np.negative, "degrees": np.degrees, "radians": np.radians, "floor": np.floor,
    "ceil": np.ceil, "round": round_half_away, "rint": np.rint, "trunc": np.trunc,
    "frac": lambda x: x - np.trunc(x), "sign": lambda x: np.where(x < 0, -1.0, 1.0),
}
BINARY_NP = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "mod": np.fmod,
    "min": np.minimum, "max": np.maximum, "atan2": np.arctan2, "pow": np.power, "copysign": np.copysign,
}
SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%", "floordiv": "//", "pow": "**"}
COMPARE = {"lt": ("<", np.less), "le": ("<=", np.less_equal), "gt": (">", np.greater),
           "ge": (">=", np.greater_equal)}
SMOOTH = ("sin", "cos", "tan", "exp", "log", "log2", "log10", "sqrt", "cbrt", "tanh", "atan", "asin", "acos",
          "sinh", "cosh", "erf", "erfc", "erfinv", "abs", "neg", "degrees", "radians")
STEPS = ("floor", "ceil", "round", "rint", "trunc", "frac", "sign")
#: math builtins Warp implements for float16 (all of the above); float32 sub-expressions use a smaller set
F32_UNARY = ("sin", "cos", "exp", "log", "sqrt", "tanh", "atan", "abs", "neg", "floor")
ARITH = ("add", "sub", "mul", "div")
MATH_BINARY = ("min", "max", "atan2", "pow", "mod", "floordiv", "copysign", "clamp", "lerp", "smoothstep")


# --------------------------------------------------------------------------------------------------------
# Typed nodes


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    op: str
    args: tuple
    value: object          # variable name, constant value, operator style or helper name
    iv: Interval
    ty: str                # H or F


def apply(op: str, ty: str, style, vals: list, helpers: dict):
    """Value of one operation on evaluated arguments, rounded like Warp rounds it (callers silence FP warnings)."""
    if True:
        if op == "to_f":
            return r32(vals[0])                    # exact for halves; rounds float64 leaves of float32 type
        if op == "to_h":
            return r16(vals[0])
        if op == "to_i":
            return np.trunc(vals[0])
        if op == "call":
            params, body = helpers[style]
            return evaluate(body, dict(zip(params, vals)), helpers)
        if op in ("where", "ifexp"):
            return np.where(vals[0], vals[1], vals[2])
        if op in COMPARE:
            return COMPARE[op][1](vals[0], vals[1])
        if op in UNARY_NP:
            return rnd(ty, UNARY_NP[op](vals[0]))
        if op in BINARY_NP:
            return rnd(ty, BINARY_NP[op](vals[0], vals[1]))
        if op == "floordiv":
            return rnd(ty, np.floor(rnd(ty, vals[0] / vals[1])))
        if op == "clamp":
            return np.minimum(np.maximum(vals[0], vals[1]), vals[2])
        if op == "lerp":
            a, b, t = vals
            return rnd(ty, rnd(ty, a * rnd(ty, 1.0 - t)) + rnd(ty, b * t))
        if op == "smoothstep":
            e0, e1, x = vals
            t = np.minimum(np.maximum(rnd(ty, rnd(ty, x - e0) / rnd(ty, e1 - e0)), 0.0), 1.0)
            return rnd(ty, rnd(ty, t * t) * rnd(ty, 3.0 - rnd(ty, 2.0 * t)))
    raise ValueError(f"cannot evaluate {op!r}")


def const_value(ty: str, c: float) -> float:
    """A literal's value in the kernel: float32 literal, rounded to half under ``wp.float16(...)``."""
    return float(r16(c)) if ty == H else float(r32(c))


def evaluate(node: Node, env: dict, helpers: dict):
    op = node.op
    if op == "var":
        return env[node.value]
    if op == "const":
        return np.asarray(const_value(node.ty, node.value))
    return apply(op, node.ty, node.value, [evaluate(a, env, helpers) for a in node.args], helpers)


def emit(node: Node) -> str:
    op, a = node.op, node.args
    if op == "var":
        return str(node.value)
    if op == "const":
        text = repr(float(node.value))
        if node.ty == H:
            return f"wp.float16({text})"
        return f"({text})" if text.startswith("-") else text
    if op == "neg":
        return f"(-{emit(a[0])})"
    if op in SYMBOL and (op in ARITH or node.value == "op"):
        return f"({emit(a[0])} {SYMBOL[op]} {emit(a[1])})"
    if op == "to_f":
        return f"{node.value}({emit(a[0])})"
    if op == "to_h":
        return f"wp.float16({emit(a[0])})"
    if op == "to_i":
        return f"int({emit(a[0])})"
    if op == "call":
        return f"{node.value}({', '.join(emit(x) for x in a)})"
    if op in COMPARE:
        return f"{emit(a[0])} {COMPARE[op][0]} {emit(a[1])}"
    if op == "where":
        return f"wp.where({emit(a[0])}, {emit(a[1])}, {emit(a[2])})"
    if op == "ifexp":
        return f"({emit(a[1])} if {emit(a[0])} else {emit(a[2])})"
    name = {"mod": "mod", "floordiv": "floordiv", "pow": "pow"}.get(op, op)
    return f"wp.{name}({', '.join(emit(x) for x in a)})"


def ops_of(node: Node) -> set[str]:
    out = set() if node.op in ("var", "const") else {node.op if node.op != "call" else "helper"}
    for child in node.args:
        out |= ops_of(child)
    return out


# --------------------------------------------------------------------------------------------------------
# Half vectors (wp.vec3h): every component operation rounds to half, like the scalar ones. Vector expressions
# are small tuples: ("v", name) | ("add"/"sub", x, y) | ("cross", x, y) | ("normalize", x)
# | ("scale", x, node, left) (node * x or x * node)


def vdot(a, b):
    """Warp's half ``dot`` of (n,3) arrays: ((a0*b0 + a1*b1) + a2*b2), every op rounded to half."""
    return r16(r16(r16(a[:, 0] * b[:, 0]) + r16(a[:, 1] * b[:, 1])) + r16(a[:, 2] * b[:, 2]))


def vlength(a):
    return r16(np.sqrt(vdot(a, a)))


def vnormalize(a):
    ln = vlength(a)
    with np.errstate(all="ignore"):
        return np.where(ln[:, None] > 0.0, r16(a / ln[:, None]), 0.0)     # kEps is 0 in builtin.h


def vcross(a, b):
    return np.stack([r16(r16(a[:, 1] * b[:, 2]) - r16(a[:, 2] * b[:, 1])),
                     r16(r16(a[:, 2] * b[:, 0]) - r16(a[:, 0] * b[:, 2])),
                     r16(r16(a[:, 0] * b[:, 1]) - r16(a[:, 1] * b[:, 0]))], axis=1)


def veval(vx, venv: dict, env: dict, helpers: dict, n: int):
    kind = vx[0]
    if kind == "v":
        return venv[vx[1]]
    if kind in ("add", "sub"):
        a, b = veval(vx[1], venv, env, helpers, n), veval(vx[2], venv, env, helpers, n)
        return r16(a + b) if kind == "add" else r16(a - b)
    if kind == "cross":
        return vcross(veval(vx[1], venv, env, helpers, n), veval(vx[2], venv, env, helpers, n))
    if kind == "normalize":
        return vnormalize(veval(vx[1], venv, env, helpers, n))
    x = veval(vx[1], venv, env, helpers, n)
    k = np.broadcast_to(evaluate(vx[2], env, helpers), (n,))
    return r16(x * k[:, None])


def vemit(vx) -> str:
    kind = vx[0]
    if kind == "v":
        return vx[1]
    if kind in ("add", "sub"):
        return f"({vemit(vx[1])} {'+' if kind == 'add' else '-'} {vemit(vx[2])})"
    if kind == "cross":
        return f"wp.cross({vemit(vx[1])}, {vemit(vx[2])})"
    if kind == "normalize":
        return f"wp.normalize({vemit(vx[1])})"
    return f"({emit(vx[2])} * {vemit(vx[1])})" if vx[3] else f"({vemit(vx[1])} * {emit(vx[2])})"


def vector_env(vectors: list, env: dict, inputs, n: int) -> dict:
    """Vector locals (n,3) from their definitions: ("input", array) or ("build", [three half leaf names])."""
    venv = {}
    for name, kind, src in vectors:
        if kind == "input":
            venv[name] = r16(np.asarray(inputs[src], dtype=np.float64).reshape(n, 3))
        else:
            venv[name] = np.stack([np.broadcast_to(env[c] if isinstance(c, str) else r16(c), (n,)) for c in src], 1)
    return venv


def vector_leaf_value(leaf: tuple, venv: dict):
    op, a, b = leaf
    if op == "length":
        return vlength(venv[a])
    if op == "length_sq":
        return vdot(venv[a], venv[a])
    if op == "dot":
        return vdot(venv[a], venv[b])
    return venv[a][:, b]


def vector_leaf_text(leaf: tuple) -> str:
    op, a, b = leaf
    if op in ("length", "length_sq"):
        return f"wp.{op}({a})"
    if op == "dot":
        return f"wp.dot({a}, {b})"
    return f"{a}[{b}]"


# --------------------------------------------------------------------------------------------------------
# Interval helpers


def _pow_hull(base: Interval, e: Interval) -> Interval:
    """Hull of ``b ** ex`` over the corners. The base is made positive (``abs(x) + c``), but its sampled
    interval can reach below zero, where a fractional power is complex: then bound with ``|b|`` (at least the
    positivity floor) instead of raising."""
    vals = [b ** ex for b in (base.lo, base.hi) for ex in (e.lo, e.hi)]
    if any(isinstance(v, complex) for v in vals):
        vals = [max(abs(b), 0.25) ** ex for b in (base.lo, base.hi) for ex in (e.lo, e.hi)]
    return _hull(vals)


def _hull(vals) -> Interval:
    vals = [float(v) for v in vals]
    return Interval(min(vals), max(vals))


def _pad(iv: Interval, rel: float = 2e-3) -> Interval:
    """Widen by rounding slack (half rounding moves values by up to 2^-11 relative)."""
    m = rel * iv.mag + 1e-4
    return Interval(iv.lo - m, iv.hi + m)


def unary_iv(op: str, iv: Interval) -> Interval:
    lo, hi = iv.lo, iv.hi
    m = _math
    if op == "sin":
        return sin_range(lo, hi)
    if op == "cos":
        return sin_range(lo + m.pi / 2, hi + m.pi / 2)
    basic = basic_unary_iv(op, iv)
    if basic is not None:
        return basic
    if op == "erfc":
        return Interval(m.erfc(hi), m.erfc(lo))
    if op == "acos":
        return Interval(m.acos(min(1.0, hi)), m.acos(max(-1.0, lo)))
    if op in ("log", "log2", "log10", "sqrt") and lo <= 0.0:
        # The argument was made positive (``abs(x) + c``, c >= 0.5, so every value is >= c), but the float16
        # rounding margin of the hull, relative to its magnitude, can push the hull's low end below zero.
        lo = min(0.25, hi)
    inc = {"tan": m.tan, "exp": m.exp, "log": m.log, "log2": m.log2, "log10": m.log10, "sqrt": m.sqrt,
           "cbrt": lambda x: m.copysign(abs(x) ** (1.0 / 3.0), x), "tanh": m.tanh, "atan": m.atan,
           "asin": lambda x: m.asin(max(-1.0, min(1.0, x))), "sinh": m.sinh, "erf": m.erf,
           "erfinv": lambda x: float(erfinv_newton(np.asarray([x]))[0]), "floor": m.floor, "ceil": m.ceil,
           "round": lambda x: float(round_half_away(x)), "rint": lambda x: float(np.rint(x)), "trunc": m.trunc,
           "degrees": m.degrees, "radians": m.radians}
    return Interval(inc[op](lo), inc[op](hi))


def _quantiles(v: np.ndarray, *qs: float) -> list[float]:
    v = np.sort(np.ravel(v))
    return [float(v[int(round(q * (len(v) - 1)))]) for q in qs]


# --------------------------------------------------------------------------------------------------------
# Generation


class Gen:
    """Random typed expressions over leaves (name -> (type, interval)) that stay in their domains."""

    def __init__(self, rng: np.random.Generator, leaves: dict, samples: dict, helpers: dict | None = None,
                 helper_sig: dict | None = None, p_conv: float = 0.12):
        self.rng = rng
        self.leaves = dict(leaves)          # name -> (ty, Interval)
        self.samples = dict(samples)        # name -> values at SAMPLES points
        self.helpers = helpers or {}        # name -> (params, body)     (for evaluation)
        self.helper_sig = helper_sig or {}  # name -> (param intervals, return interval)
        self.p_conv = p_conv
        self._cache: dict[int, tuple] = {}

    # -- sample values -------------------------------------------------------------------------------------
    def val(self, node: Node) -> np.ndarray:
        hit = self._cache.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        if node.op == "var":
            v = self.samples[node.value]
        elif node.op == "const":
            v = np.asarray(const_value(node.ty, node.value))
        else:
            v = apply(node.op, node.ty, node.value, [self.val(a) for a in node.args], self.helpers)
        if np.ndim(v) == 0:
            v = np.full(SAMPLES, float(v))
        self._cache[id(node)] = (node, v)
        return v

    def lively(self, node: Node) -> bool:
        v = self.val(node)
        return bool(np.all(np.isfinite(v))) and float(v.max() - v.min()) > 1e-3 * (1.0 + float(np.abs(v).max()))

    # -- leaves --------------------------------------------------------------------------------------------
    def var_leaf(self, ty: str) -> Node:
        names = [n for n, (t, _) in self.leaves.items() if t == ty]
        if not names:
            other = F if ty == H else H
            return self.convert(self.var_leaf(other), ty)
        name = pick(self.rng, names)
        return Node("var", (), name, self.leaves[name][1], ty)

    def const(self, ty: str, lo: float = -3.0, hi: float = 3.0, nonzero: float = 0.1) -> Node:
        value = 0.5
        for _ in range(10):
            value = round(float(self.rng.uniform(lo, hi)), int(self.rng.integers(1, 3)))
            if abs(value) >= nonzero:
                break
        return self.c(ty, value)

    def c(self, ty: str, value: float) -> Node:
        v = const_value(ty, value)
        return Node("const", (), value, Interval(v, v), ty)

    def convert(self, x: Node, ty: str) -> Node:
        if x.ty == ty:
            return x
        if ty == F:
            return Node("to_f", (x,), pick(self.rng, ("float", "float", "wp.float32")), x.iv, F)
        return Node("to_h", (x,), None, _pad(x.iv), H)

    # -- expressions ---------------------------------------------------------------------------------------
    def expr(self, ty: str, depth: int, p_leaf: float = 0.2) -> Node:
        if depth <= 0 or self.rng.random() < p_leaf:
            return self.var_leaf(ty)
        roll = self.rng.random()
        if roll < self.p_conv:
            other = F if ty == H else H
            return self.convert(self.expr(other, depth - 1), ty)
        if self.helper_sig and ty == H and roll < self.p_conv + 0.08:
            return self.call(depth)
        if roll < 0.2:
            return self.select(ty, depth)
        if roll < 0.5:
            ops = (SMOOTH * 2 + STEPS) if ty == H else F32_UNARY
            return self.unary(pick(self.rng, ops), self.expr(ty, depth - 1))
        if roll < 0.78:
            op = pick(self.rng, ARITH)
            x = self.expr(ty, depth - 1)
            y = self.expr(ty, depth - 1, 0.4) if self.rng.random() < 0.75 else self.const(ty, nonzero=0.2)
            if op in ("add", "mul") and self.rng.random() < 0.5:
                x, y = y, x
            return self.arith(op, x, y)
        if ty == F:
            return self.arith(pick(self.rng, ("add", "mul", "sub")), self.expr(ty, depth - 1),
                              self.expr(ty, depth - 1))
        return self.math_binary(pick(self.rng, MATH_BINARY), depth)

    def mk(self, op: str, args, iv: Interval, ty: str, style=None) -> Node:
        return Node(op, tuple(args), style, _pad(iv), ty)

    def tame(self, x: Node, limit: float = LIMIT) -> Node:
        """``x`` if its magnitude stays under ``limit``, else a squashed version of it."""
        if x.iv.mag <= limit:
            return x
        roll = self.rng.random()
        if roll < 0.4 or x.ty == F:
            return self.mk("tanh" if x.ty == H or roll < 0.2 else "atan",
                           (self.scale(x, nice(2.0 / x.iv.mag)),), Interval(-1.0, 1.0), x.ty)
        if roll < 0.7:
            return self.mk("atan", (x,), unary_iv("atan", x.iv), x.ty)
        cval = float(self.rng.choice([1.0, 2.0, 4.0]))
        den = self.arith_raw("add", self.mk("abs", (x,), abs_range(x.iv), x.ty), self.c(x.ty, cval))
        return self.mk("div", (x, den), Interval(-1.0, 1.0), x.ty)

    def scale(self, x: Node, k: float) -> Node:
        k = k if k != 0 else 0.01
        return self.arith_raw("mul", x, self.c(x.ty, k)) if self.rng.random() < 0.5 else \
            self.arith_raw("mul", self.c(x.ty, k), x)

    def arith_raw(self, op: str, x: Node, y: Node) -> Node:
        a, b = x.iv, y.iv
        if op == "add":
            iv = Interval(a.lo + b.lo, a.hi + b.hi)
        elif op == "sub":
            iv = Interval(a.lo - b.hi, a.hi - b.lo)
        elif op == "mul":
            iv = _hull([a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi])
        else:
            iv = _hull([a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi])
        return self.mk(op, (x, y), iv, x.ty)

    def positive(self, x: Node, floor: float = 0.25) -> Node:
        """``x`` if it stays >= floor, else ``abs(x) + c`` or ``x * x + c``."""
        if x.iv.lo >= floor:
            return x
        cval = float(self.rng.choice([0.5, 1.0, 1.5, 2.0]))
        if self.rng.random() < 0.7 or x.iv.mag > 6:
            inner = self.mk("abs", (x,), abs_range(x.iv), x.ty)
        else:
            a = abs_range(x.iv)
            inner = self.mk("mul", (x, x), Interval(a.lo * a.lo, a.hi * a.hi), x.ty)
        return self.arith_raw("add", inner, self.c(x.ty, cval))

    def nonzero(self, y: Node) -> Node:
        if y.iv.lo >= 0.25 or y.iv.hi <= -0.25:
            return y
        if y.op == "const":
            return self.c(y.ty, float(self.rng.choice([0.5, 0.75, 1.25, 2.0, -1.5])))
        return self.positive(y)

    def arith(self, op: str, x: Node, y: Node) -> Node:
        if x.op == "const" and y.op == "const":
            y = self.var_leaf(x.ty)
        ex, ey = emit(x), emit(y)
        if ex == ey and op in ("sub", "div"):                        # x - x, x / x
            y = self.const(x.ty, nonzero=0.5)
        elif op in ("add", "sub") and (f"(-{ex})" == ey or f"(-{ey})" == ex):   # x + (-x)
            op = "mul"
        if op == "div":
            y = self.nonzero(y)
        node = self.arith_raw(op, x, y)
        if node.iv.mag > LIMIT:
            node = self.arith_raw("add", x, y)
        return self.tame(node)

    def bounded(self, x: Node, limit: float) -> Node:
        """``x`` scaled so that its magnitude stays below ``limit``."""
        if x.iv.mag <= limit:
            return x
        return self.scale(x, nice(limit / x.iv.mag))

    def squash1(self, x: Node, bound: float) -> Node:
        """A value in [-bound, bound] made from ``x`` (for asin/acos/erfinv arguments)."""
        if x.iv.mag <= bound:
            return x
        cval = nice(max(1.0, x.iv.mag), 1) + 1.0           # |x| / (|x| + c) <= mag / (mag + c) < 1/2...
        den = self.arith_raw("add", self.mk("abs", (x,), abs_range(x.iv), x.ty), self.c(x.ty, cval))
        q = self.mk("div", (x, den), Interval(-0.5, 0.5), x.ty)
        return q if bound >= 0.55 else self.scale(q, nice(bound / 0.55))

    def unary(self, op: str, x: Node) -> Node:
        ty = x.ty
        if x.op == "const":
            x = self.var_leaf(ty)
        if op in ("sin", "cos"):
            x = self.bounded(x, 6.0)
        elif op in ("exp", "sinh", "cosh"):
            x = self.bounded(x, 3.0)
        elif op == "tan":
            x = self.bounded(x, 1.2)
        elif op in ("log", "log2", "log10", "sqrt"):
            x = self.positive(x)
        elif op in ("asin", "acos"):
            x = self.squash1(x, 0.9)
        elif op == "erfinv":
            x = self.squash1(x, 0.8)
        elif op == "degrees":
            x = self.bounded(x, 0.8)
        elif op in STEPS and op != "sign":
            if not self.lively(self.mk("floor", (x,), unary_iv("floor", x.iv), ty)):
                x = self.scale(x, float(self.rng.choice([2.5, 4.0, 7.5])))
                x = self.bounded(x, LIMIT / 2)
        elif op == "abs" and x.iv.lo >= 0:
            op = "neg"
        return self.tame(self.mk(op, (x,), unary_iv(op, x.iv), ty))

    def math_binary(self, op: str, depth: int) -> Node:
        x = self.expr(H, depth - 1)
        if op in ("min", "max"):
            y = self.expr(H, depth - 1, 0.4)
            v = np.concatenate([self.val(x) - self.val(y)])
            if np.all(v <= 0) or np.all(v >= 0):          # one side always wins: shift it
                y = self.arith_raw("add", y, self.c(H, float(nice(float(_quantiles(v, 0.5)[0]), 2))))
            iv = Interval(min(x.iv.lo, y.iv.lo), min(x.iv.hi, y.iv.hi)) if op == "min" else \
                Interval(max(x.iv.lo, y.iv.lo), max(x.iv.hi, y.iv.hi))
            return self.mk(op, (x, y), iv, H)
        if op == "atan2":
            y = self.expr(H, depth - 1, 0.4)
            if self.rng.random() < 0.5:
                y = self.positive(y)
            return self.mk(op, (x, y), Interval(-_math.pi, _math.pi), H)
        if op == "pow":
            base = self.positive(x)
            if self.rng.random() < 0.5:
                e = self.c(H, float(self.rng.choice([0.5, 1.5, 2.0, 3.0, -1.0, -0.5, 2.5])))
            else:
                e = self.bounded(self.expr(H, depth - 1, 0.5), 2.0)
            iv = _pow_hull(base.iv, e.iv)
            if iv.mag > LIMIT:
                base = self.bounded(base, 4.0) if base.iv.lo >= 0.25 else base
                iv = _pow_hull(base.iv, e.iv)
            style = "op" if self.rng.random() < 0.4 else "call"
            return self.tame(self.mk(op, (base, e), iv, H, style))
        if op in ("mod", "floordiv"):
            y = self.nonzero(self.expr(H, depth - 1, 0.5)) if self.rng.random() < 0.6 else \
                self.c(H, float(self.rng.choice([0.7, 1.5, 2.0, 2.5, -1.25])))
            style = "op" if self.rng.random() < 0.6 else "call"
            if op == "mod":
                return self.mk(op, (x, y), Interval(-min(x.iv.mag, y.iv.mag), min(x.iv.mag, y.iv.mag)), H, style)
            q = _hull([x.iv.lo / y.iv.lo, x.iv.lo / y.iv.hi, x.iv.hi / y.iv.lo, x.iv.hi / y.iv.hi])
            return self.tame(self.mk(op, (x, y), Interval(_math.floor(q.lo) - 1, _math.floor(q.hi) + 1), H, style))
        if op == "copysign":
            y = self.expr(H, depth - 1, 0.4)
            return self.mk(op, (x, y), Interval(-x.iv.mag, x.iv.mag), H)
        if op == "clamp":
            q = _quantiles(self.val(x), 0.2, 0.8)
            lo, hi = nice(float(q[0]), 2), nice(float(q[1]), 2)
            if not lo < hi:
                lo, hi = lo - 0.5, lo + 0.5
            return self.mk(op, (x, self.c(H, lo), self.c(H, hi)), Interval(lo, hi), H)
        if op == "lerp":
            y = self.expr(H, depth - 1, 0.4)
            t = self.expr(H, depth - 1, 0.6)
            if t.iv.mag > 1.5:
                t = self.mk("sin", (self.bounded(t, 6.0),), Interval(-1.0, 1.0), H)
            corners = [a * (1 - tt) + b * tt for a in (x.iv.lo, x.iv.hi) for b in (y.iv.lo, y.iv.hi)
                       for tt in (t.iv.lo, t.iv.hi)]
            return self.tame(self.mk(op, (x, y, t), _hull(corners), H))
        # smoothstep(e0, e1, x) with constant edges inside x's sampled range
        q = _quantiles(self.val(x), 0.15, 0.85)
        e0, e1 = nice(float(q[0]), 2), nice(float(q[1]), 2)
        if not e1 - e0 > 0.1:
            e0, e1 = e0 - 0.5, e0 + 0.5
        if self.rng.random() < 0.2:
            e0, e1 = e1, e0                        # decreasing ramp
        return self.mk(op, (self.c(H, e0), self.c(H, e1), x), Interval(0.0, 1.0), H)

    def condition(self, ty: str, depth: int) -> Node:
        a = self.expr(ty, max(0, depth - 1), 0.4)
        b = self.expr(ty, max(0, depth - 1), 0.6) if self.rng.random() < 0.6 else None
        if b is None or emit(a) == emit(b):
            q = float(_quantiles(self.val(a), 0.5)[0])
            b = self.c(ty, nice(q, 2) if abs(q) > 0.05 else 0.0)
        return Node(pick(self.rng, tuple(COMPARE)), (a, b), None, Interval(0.0, 1.0), ty)

    def select(self, ty: str, depth: int) -> Node:
        cond = self.condition(pick(self.rng, (H, H, F)) if ty == H else ty, depth - 1)
        x, y = self.expr(ty, depth - 1), self.expr(ty, depth - 1)
        if emit(x) == emit(y):
            y = self.arith("add", y, self.const(ty, nonzero=0.5))
        kind = "where" if self.rng.random() < 0.55 else "ifexp"
        return Node(kind, (cond, x, y), None, Interval(min(x.iv.lo, y.iv.lo), max(x.iv.hi, y.iv.hi)), ty)

    def call(self, depth: int) -> Node:
        name = pick(self.rng, tuple(self.helper_sig))
        params, ret = self.helper_sig[name]
        args = []
        for piv in params:
            a = self.expr(H, depth - 1, 0.5)
            if a.iv.lo < piv.lo or a.iv.hi > piv.hi:          # keep the helper inside its domain
                a = self.tame(a, 1.0)
                a = self.mk("clamp", (a, self.c(H, piv.lo), self.c(H, piv.hi)), piv, H) \
                    if a.iv.lo < piv.lo or a.iv.hi > piv.hi else a
            args.append(a)
        return Node("call", tuple(args), name, ret, H)


# --------------------------------------------------------------------------------------------------------
# Program assembly


HELPER_NAMES = ("wkf_kernel_hf", "wkf_kernel_g16", "wkf_kernel_mix", "wkf_kernel_op", "wkf_kernel_blend")
PARAM_NAMES = (("p", "q"), ("x0", "x1"), ("u", "v"), ("lhs", "rhs"), ("s", "t"))
INPUT_RANGES = ((-2.0, 2.0), (-1.0, 1.0), (0.5, 3.0), (-3.0, 1.0), (0.1, 2.0), (-4.0, 4.0), (-8.0, 8.0))


def _sample_points(rng, lo, hi, kind):
    v = rng.uniform(lo, hi, SAMPLES)
    return r16(v) if kind == H else r32(v)


def generate(rng: np.random.Generator) -> Program:
    with np.errstate(all="ignore"):
        return _generate(rng)


def _generate(rng: np.random.Generator) -> Program:
    n_h = int(rng.integers(1, 4))
    n_f = int(rng.random() < 0.3)
    names = pick(rng, ARRAY_NAMES, n_h + n_f)
    args: list[Arg] = []
    body: list[str] = []
    leaves: dict = {}
    samples: dict = {}
    loads = []                                   # (array name, local name, kind)
    raw: dict = {}                               # input values at the sample points (for liveness checks)
    inline = rng.random() < 0.3
    for k, n in enumerate(names):
        lo, hi = pick(rng, INPUT_RANGES)
        is_half = k < n_h
        args.append(Arg(n, "float16" if is_half else "float32", "in", (N,), lo, hi))
        if is_half:
            if inline:
                leaf = f"{n}[i]"
            else:
                leaf = pick(rng, (f"{n}_h", f"h{n}", f"{n}16", f"x{n}"))
                body.append(f"{leaf} = {n}[i]")
            raw[n] = _sample_points(rng, lo, hi, H)
            leaves[leaf] = (H, Interval(lo, hi))
            samples[leaf] = raw[n]
            loads.append((n, leaf, "h"))
        elif rng.random() < 0.6:                 # float32 input rounded to half in the kernel
            leaf = pick(rng, (f"{n}_h", f"h{n}", f"{n}16"))
            body.append(f"{leaf} = wp.float16({n}[i])")
            raw[n] = _sample_points(rng, lo, hi, F)
            leaves[leaf] = (H, _pad(Interval(lo, hi)))
            samples[leaf] = r16(raw[n])
            loads.append((n, leaf, "f2h"))
        else:
            leaf = pick(rng, (f"{n}_f", f"f{n}", f"{n}32"))
            body.append(f"{leaf} = {n}[i]")
            raw[n] = _sample_points(rng, lo, hi, F)
            leaves[leaf] = (F, Interval(lo, hi))
            samples[leaf] = raw[n]
            loads.append((n, leaf, "f"))
    scalars = []
    if rng.random() < 0.35:
        sname = pick(rng, SCALAR_NAMES)
        ty = H if rng.random() < 0.75 else F
        args.append(Arg(sname, "float16" if ty == H else "float32", "scalar", (), 0.5, 2.0))
        leaves[sname] = (ty, Interval(0.5, 2.0))
        raw[sname] = _sample_points(rng, 0.5, 2.0, ty)
        samples[sname] = raw[sname]
        scalars.append((sname, ty))

    vectors: list = []           # (local name, "input"|"build", array name | component leaves)
    vleaves: list = []           # (leaf text, (op, a, b))
    vec_args: list = []          # names of vec3h arrays (made by prepare)
    if rng.random() < 0.25:
        _vector_block(rng, args, body, leaves, samples, raw, loads, vectors, vleaves, vec_args, names)

    helpers: list[str] = []
    helper_defs: dict = {}
    helper_sig: dict = {}
    if rng.random() < 0.25:
        hname = pick(rng, HELPER_NAMES)
        pnames = pick(rng, PARAM_NAMES)
        piv = Interval(-2.0, 2.0)
        hleaves = {p: (H, piv) for p in pnames}
        hsamples = {p: r16(rng.uniform(-2.0, 2.0, SAMPLES)) for p in pnames}
        hg = Gen(rng, hleaves, hsamples, p_conv=0.1)
        hbody = hg.expr(H, int(rng.integers(2, 4)))
        for _ in range(3):
            if len(uses(hbody)) == 2 and hbody.op != "var":
                break
            hbody = hg.arith(pick(rng, ARITH), hbody, hg.var_leaf(H))
        hbody = hg.tame(hbody)
        helper_defs[hname] = (pnames, hbody)
        helper_sig[hname] = ((piv, piv), hbody.iv)
        helpers.append("\n".join([
            "@wp.func",
            f"def {hname}({pnames[0]}: wp.float16, {pnames[1]}: wp.float16) -> wp.float16:",
            f"    return {emit(hbody)}"]))

    gen = Gen(rng, leaves, samples, helper_defs, helper_sig, p_conv=float(rng.choice([0.05, 0.12, 0.2])))
    statements = []            # ("let", name, node) | ("loop", name, K, init, term_node, op) | ("if", ...)
    n_stmt = int(rng.integers(0, 4))
    for k in range(n_stmt):
        name = f"{pick(rng, LOCAL_NAMES)}{k}"
        ty = H if rng.random() < 0.8 else F
        node = gen.expr(ty, int(rng.integers(1, 4)))
        if node.op in ("var", "const"):
            node = gen.arith(pick(rng, ARITH), node, gen.expr(ty, 1))
        statements.append(("let", name, node))
        body.append(f"{name} = {emit(node)}")
        gen.leaves[name] = (ty, node.iv)
        gen.samples[name] = gen.val(node)

    n_out = int(rng.integers(1, 3))
    outs = pick(rng, OUT_NAMES, n_out)
    if rng.random() < 0.3:
        _loop_block(rng, gen, args, body, statements, outs)
    if rng.random() < 0.2:
        _if_block(rng, gen, body, statements)

    out_nodes = []
    for o in outs:
        roll = rng.random()
        kind = "h" if roll < 0.65 else ("f" if roll < 0.92 else "i")
        node = gen.expr(F if kind == "f" else H, int(rng.integers(2, 5)))
        if not uses(node) or node.op == "var":
            node = gen.arith(pick(rng, ARITH), node, gen.expr(node.ty, 2))
        out_nodes.append([o, kind, node])
    # every input and local must reach an output: fold missing ones into the first half/float output
    reach = _reaching(statements, [n for _, _, n in out_nodes])
    missing = [v for v in gen.leaves if v not in reach]
    if missing:
        slot = out_nodes[0]
        node = slot[2]
        for v in missing:
            leaf = Node("var", (), v, gen.leaves[v][1], gen.leaves[v][0])
            node = gen.arith(pick(rng, ("add", "sub", "mul")), node, gen.convert(leaf, node.ty))
        slot[2] = node
    input_samples = [gen.samples[leaf] for _, leaf, _ in loads]
    for slot in out_nodes:
        o, kind, node = slot
        for _ in range(4):                     # no constant outputs, no copies of an input
            probe = Node("to_i", (node,), None, node.iv, H) if kind == "i" else node
            v = gen.val(probe)
            if gen.lively(probe) and not any(np.array_equal(v, s) for s in input_samples):
                break
            if kind == "i":
                node = gen.tame(gen.scale(node, float(rng.choice([3.0, 5.0, 8.0]))), 40.0)
            else:
                node = gen.arith(pick(rng, ("add", "mul", "sub")), node, gen.expr(node.ty, 2, 0.5))
        slot[2] = node
    _revive_dead_inputs(rng, gen, statements, out_nodes, loads, scalars, raw, helper_defs, vectors, vleaves)
    for o, kind, node in out_nodes:
        if kind == "i":
            node = Node("to_i", (node,), None, node.iv, H)
            args.append(Arg(o, "int32", "out", (N,)))
        else:
            args.append(Arg(o, "float16" if kind == "h" else "float32", "out", (N,)))
        body.append(f"{o}[i] = {emit(node)}")
    vouts = []
    if vectors and rng.random() < 0.55:
        vo = pick(rng, [o for o in ("vout", "vel_out", "dir_out", "vres") if o not in names])
        vx = _vector_expr(rng, gen, [v for v, _, _ in vectors])
        args.append(Arg(vo, "float16", "out", (N, 3)))
        vec_args.append(vo)
        body.append(f"{vo}[i] = {vemit(vx)}")
        vouts.append((vo, vx))
    meta = {"loads": loads, "scalars": scalars, "statements": statements,
            "outputs": [(o, k, n) for o, k, n in out_nodes], "helpers": helper_defs,
            "vectors": vectors, "vleaves": vleaves, "vouts": vouts, "vec_args": vec_args}
    ops = set()
    for st in statements:
        for part in st[2:]:
            if isinstance(part, Node):
                ops |= ops_of(part)
    for _, _, n in out_nodes:
        ops |= ops_of(n)
    features = {"dtype": "float16", "ops": sorted(ops), "statements": len(statements), "outputs": n_out,
                "inputs": len(names), "float32_inputs": n_f, "helper": bool(helpers),
                "vec3h": sorted({lf[0] for _, lf in vleaves} | ({"output"} if vouts else set())),
                "blocks": sorted({st[0] for st in statements if st[0] != "let"}),
                "output_dtypes": sorted({{"h": "float16", "f": "float32", "i": "int32"}[k] for _, k, _ in out_nodes})}
    source = _source(args, body, helpers)
    return Program(source, tuple(args), (N,), meta, features, differentiable=False)


def _revive_dead_inputs(rng, gen: Gen, statements, out_nodes, loads, scalars, raw, helper_defs,
                        vectors=(), vleaves=()) -> None:
    """Fold inputs the outputs ignore at the sample points (saturation, absorption, dominated selects) into
    the first non-integer output, so that the harness's dead-input check finds every input alive."""
    leaf_of = {n: leaf for n, leaf, _ in loads} | {s: s for s, _ in scalars}
    for text, (op, a, b) in vleaves:                  # a vector input is revived through one of its leaves
        for name, kind, src in vectors:
            if name == a and kind == "input":
                leaf_of.setdefault(src, text)
    names = list(raw)
    nb = len(names) + 1
    batch = {}                 # block 0: the samples; block k: input k-1 replaced by other values
    for k, name in enumerate(names):
        value = np.asarray(raw[name])
        value = value if value.ndim == 2 else np.broadcast_to(value, (SAMPLES,))
        changed = rng.permutation(value) * 0.9 + 0.1 * float(np.mean(value))
        batch[name] = np.concatenate([changed if b == k + 1 else value for b in range(nb)])
    for _ in range(2):
        meta = {"loads": loads, "scalars": scalars, "statements": statements, "helpers": helper_defs,
                "vectors": vectors, "vleaves": vleaves, "vouts": [],
                "outputs": [(o, k, Node("to_i", (n,), None, n.iv, H) if k == "i" else n) for o, k, n in out_nodes]}
        res = run_program(meta, batch, SAMPLES * nb, block=SAMPLES)
        dead = []
        for k, name in enumerate(names):
            moved = slice((k + 1) * SAMPLES, (k + 2) * SAMPLES)
            if all(np.array_equal(v[moved], v[:SAMPLES]) for v in res.values()):
                dead.append(name)
        if not dead:
            return
        slot = next((s for s in out_nodes if s[1] != "i"), out_nodes[0])
        node = slot[2]
        for name in dead:
            if name not in leaf_of:
                continue
            leaf = leaf_of[name]
            ty, iv = gen.leaves[leaf]
            node = gen.arith_raw(pick(rng, ("add", "sub")), node, gen.convert(Node("var", (), leaf, iv, ty), node.ty))
        slot[2] = gen.tame(node)


VEC_NAMES = ("vp", "vel", "dir3", "nrm", "pos3", "uvw")


def _vector_block(rng, args, body, leaves, samples, raw, loads, vectors, vleaves, vec_args, names) -> None:
    """One wp.vec3h input array (and a second vec3h: another input or one built from half leaves) whose
    lengths, dot products and components become half leaves."""
    vn = pick(rng, [v for v in VEC_NAMES if v not in names])
    lo, hi = pick(rng, ((-2.0, 2.0), (-1.0, 1.0), (0.5, 3.0)))
    args.append(Arg(vn, "float16", "in", (N, 3), lo, hi))
    vec_args.append(vn)
    pv = f"{vn}_v"
    body.append(f"{pv} = {vn}[i]")
    raw[vn] = r16(rng.uniform(lo, hi, (SAMPLES, 3)))
    vectors.append((pv, "input", vn))
    mag = max(abs(lo), abs(hi))
    others = [pv]
    if rng.random() < 0.5:
        wn = pick(rng, [v for v in VEC_NAMES if v not in names and v != vn])
        args.append(Arg(wn, "float16", "in", (N, 3), -1.5, 1.5))
        vec_args.append(wn)
        wv = f"{wn}_v"
        body.append(f"{wv} = {wn}[i]")
        raw[wn] = r16(rng.uniform(-1.5, 1.5, (SAMPLES, 3)))
        vectors.append((wv, "input", wn))
        wmag = 1.5
    else:
        halves = [lf for lf, (t, _) in leaves.items() if t == H]
        comps = []
        for _ in range(3):
            comps.append(pick(rng, halves) if halves and rng.random() < 0.75 else
                         round(float(rng.uniform(-1.5, 1.5)), 2))
        wv = pick(rng, ("w3", "axis", "ref3"))
        body.append(f"{wv} = wp.vec3h({', '.join(c if isinstance(c, str) else f'wp.float16({c!r})' for c in comps)})")
        vectors.append((wv, "build", comps))
        wmag = max([leaves[c][1].mag for c in comps if isinstance(c, str)] + [1.5])
    others.append(wv)
    venv = vector_env(vectors, samples, raw, SAMPLES)
    options = [("length", pv, None), ("dot", pv, wv), ("comp", pv, int(rng.integers(0, 3))),
               ("length_sq", wv, None), ("length", wv, None), ("comp", wv, int(rng.integers(0, 3)))]
    chosen = [options[0] if rng.random() < 0.5 else options[1]] + \
        [options[int(k)] for k in rng.choice(len(options), size=int(rng.integers(1, 3)), replace=False)]
    ivs = {"length": lambda a: Interval(0.0, 1.8 * (mag if a == pv else wmag)),
           "length_sq": lambda a: Interval(0.0, 3.2 * (mag if a == pv else wmag) ** 2),
           "dot": lambda a: Interval(-3.2 * mag * wmag, 3.2 * mag * wmag),
           "comp": lambda a: Interval(-(mag if a == pv else wmag), mag if a == pv else wmag)}
    for leaf in chosen:
        text = vector_leaf_text(leaf)
        if text in leaves:
            continue
        leaves[text] = (H, _pad(ivs[leaf[0]](leaf[1])))
        samples[text] = vector_leaf_value(leaf, venv)
        vleaves.append((text, leaf))


def _vector_expr(rng, gen: Gen, vnames: list):
    """A small vec3h expression: sums, differences, cross products, normalisation, scaling by half exprs."""
    def base():
        return ("v", pick(rng, vnames))
    roll = rng.random()
    if roll < 0.3:
        vx = ("scale", base(), gen.tame(gen.expr(H, int(rng.integers(1, 3))), 4.0), rng.random() < 0.5)
    elif roll < 0.5 and len(vnames) > 1:
        vx = ("cross", ("v", vnames[0]), ("v", vnames[1]))
    elif roll < 0.7:
        vx = ("normalize", base())
        vx = ("scale", vx, gen.tame(gen.expr(H, 1), 4.0), rng.random() < 0.5)
    else:
        vx = (pick(rng, ("add", "sub")), ("v", vnames[0]), ("v", vnames[-1] if len(vnames) > 1 else vnames[0]))
        if vx[1] == vx[2]:
            vx = ("scale", vx[1], gen.tame(gen.expr(H, 1), 4.0), False)
    if rng.random() < 0.4:
        vx = (pick(rng, ("add", "sub")), vx, base())
    return vx


def prepare(spec: KernelSpec, inputs, device, namespace) -> dict:
    """vec3h arrays (the harness's dtype table has no vec3h): (N, 3) float16 values as wp.vec3h arrays."""
    import warp as wp
    values = {}
    for a in spec.args:
        if a.name in spec.meta.get("vec_args", ()):
            if a.role == "out":
                values[a.name] = wp.zeros(a.shape[0], dtype=wp.vec3h, device=device)
            else:
                values[a.name] = wp.array(np.asarray(inputs[a.name], dtype=np.float16), dtype=wp.vec3h,
                                          device=device)
    return values


def _loop_block(rng, gen: Gen, args, body, statements, taken) -> None:
    """A half-precision accumulation over a stencil: acc = acc (op) term(a[(i + j) % N], j)."""
    halves = [a for a in args if a.role == "in" and a.dtype == "float16" and len(a.shape) == 1]
    src = pick(rng, halves)
    K = int(rng.integers(2, 5))
    acc = pick(rng, [a for a in ("acc", "total", "run", "sm", "accum") if a not in taken])
    jname = pick(rng, ("j", "k", "m"))
    idx = f"{src.name}[(i + {jname}) % {N}]" if rng.random() < 0.5 else f"{src.name}[(i * {K} + {jname}) % {N}]"
    stencil = "shift" if "i + " in idx else "stride"
    nb = f"{src.name}_n"
    init = float(rng.choice([0.0, 0.0, 1.0, 0.5]))
    body.append(f"{acc} = wp.float16({init})")
    body.append(f"for {jname} in range({K}):")
    body.append(f"    {nb} = {idx}")
    leaves_saved = dict(gen.leaves)
    samples_saved = dict(gen.samples)
    gen.leaves[nb] = (H, Interval(src.low, src.high))
    gen.samples[nb] = r16(rng.uniform(src.low, src.high, SAMPLES))
    use_j = rng.random() < 0.4
    if use_j:
        gen.leaves["wp.float16(" + jname + ")"] = (H, Interval(0.0, K - 1.0))
        gen.samples["wp.float16(" + jname + ")"] = r16(rng.integers(0, K, SAMPLES).astype(float))
    term = gen.expr(H, int(rng.integers(1, 3)), 0.3)
    if nb not in uses(term):
        term = gen.arith(pick(rng, ("add", "mul", "sub")), term, Node("var", (), nb, gen.leaves[nb][1], H))
    term = gen.tame(term, LIMIT / (2 * K))
    gen.leaves = leaves_saved
    gen.samples = samples_saved
    kind = pick(rng, ("add", "add", "max", "mul_add"))
    if kind == "add":
        body.append(f"    {acc} = {acc} + {emit(term)}")
        iv = Interval(init + K * min(0.0, term.iv.lo), init + K * max(0.0, term.iv.hi))
    elif kind == "max":
        body.append(f"    {acc} = wp.max({acc}, {emit(term)})")
        iv = Interval(min(init, term.iv.lo), max(init, term.iv.hi))
    else:
        body.append(f"    {acc} = {acc} * wp.float16(0.5) + {emit(term)}")
        iv = Interval(min(init, 0.0) + 2 * min(0.0, term.iv.lo), max(init, 0.0) + 2 * max(0.0, term.iv.hi))
    statements.append(("loop", acc, K, init, term, kind, src.name, stencil, jname, nb, use_j))
    gen.leaves[acc] = (H, _pad(iv))
    total = np.full(SAMPLES, float(r16(init)))           # the accumulator at the sample points
    src_samples = r16(rng.uniform(src.low, src.high, SAMPLES))
    for j in range(K):
        local = dict(gen.samples)
        local[nb] = rng.permutation(src_samples)
        local["wp.float16(" + jname + ")"] = np.asarray(float(j))
        t = evaluate(term, local, gen.helpers)
        total = r16(total + t) if kind == "add" else (np.maximum(total, t) if kind == "max" else
                                                     r16(r16(total * 0.5) + t))
    gen.samples[acc] = np.broadcast_to(total, (SAMPLES,))


def _if_block(rng, gen: Gen, body, statements) -> None:
    """``if cond: y = e1 else: y = e2`` over half values."""
    name = pick(rng, ("sel", "branch", "pick_v", "yv"))
    cond = gen.condition(H, 2)
    e1 = gen.expr(H, int(rng.integers(1, 3)))
    e2 = gen.expr(H, int(rng.integers(1, 3)))
    body += [f"{name} = wp.float16(0.0)", f"if {emit(cond)}:", f"    {name} = {emit(e1)}", "else:",
             f"    {name} = {emit(e2)}"]
    statements.append(("if", name, cond, e1, e2))
    gen.leaves[name] = (H, Interval(min(e1.iv.lo, e2.iv.lo), max(e1.iv.hi, e2.iv.hi)))
    gen.samples[name] = np.where(gen.val(cond), gen.val(e1), gen.val(e2))


def _reaching(statements, out_nodes) -> set[str]:
    deps: dict[str, set[str]] = {}
    for st in statements:
        used: set[str] = set()
        for part in st[2:]:
            if isinstance(part, Node):
                used |= uses(part)
        if st[0] == "loop":
            used = (used - {st[9], f"wp.float16({st[8]})"}) | {f"@array:{st[6]}"}
        deps[st[1]] = used
    roots: set[str] = set()
    for node in out_nodes:
        roots |= uses(node)
    return reachable(deps, roots)


def _source(args, body, helpers) -> str:
    spell = {"float16": "wp.array(dtype=wp.float16)", "float32": "wp.array(dtype=float)",
             "int32": "wp.array(dtype=int)"}
    sspell = {"float16": "wp.float16", "float32": "float"}

    def one(a):
        if a.role == "scalar":
            return sspell[a.dtype]
        return "wp.array(dtype=wp.vec3h)" if len(a.shape) == 2 else spell[a.dtype]
    return kernel_text(", ".join(f"{a.name}: {one(a)}" for a in args), body, helpers)


# --------------------------------------------------------------------------------------------------------
# Reference


def run_program(meta: dict, inputs, n: int, block: int | None = None) -> dict[str, np.ndarray]:
    """Outputs of the program on ``inputs`` (arrays of length ``n``), with Warp's rounding.

    ``block``: stencils wrap around within blocks of this length (the generator's batched liveness check)."""
    block = block or n
    helpers = meta["helpers"]
    env: dict[str, np.ndarray] = {}
    arrays = {}
    for name, leaf, kind in meta["loads"]:
        value = np.asarray(inputs[name], dtype=np.float64)
        arrays[name] = value
        env[leaf] = r16(value) if kind in ("h", "f2h") else r32(value)
    for name, ty in meta["scalars"]:
        env[name] = rnd(ty, np.asarray(inputs[name], dtype=np.float64))
    venv = vector_env(meta.get("vectors", ()), env, inputs, n)
    for text, leaf in meta.get("vleaves", ()):
        env[text] = vector_leaf_value(leaf, venv)
    for st in meta["statements"]:
        if st[0] == "let":
            env[st[1]] = evaluate(st[2], env, helpers)
        elif st[0] == "if":
            _, name, cond, e1, e2 = st
            env[name] = np.where(evaluate(cond, env, helpers), evaluate(e1, env, helpers),
                                 evaluate(e2, env, helpers))
        else:
            _, acc, K, init, term, kind, src, stencil, jname, nb, use_j = st
            a = r16(arrays[src])
            idx = np.arange(n) % block
            start = np.arange(n) - idx
            total = np.full(n, init)
            for j in range(K):
                local = dict(env)
                local[nb] = a[start + (idx + j) % block] if stencil == "shift" else a[start + (idx * K + j) % block]
                if use_j:
                    local[f"wp.float16({jname})"] = np.asarray(float(j))
                t = evaluate(term, local, helpers)
                if kind == "add":
                    total = r16(total + t)
                elif kind == "max":
                    total = np.maximum(total, t)
                else:
                    total = r16(r16(total * 0.5) + t)
            env[acc] = total
    out = {}
    for o, kind, node in meta["outputs"]:
        v = np.broadcast_to(evaluate(node, env, helpers), (n,))
        out[o] = v.astype({"h": np.float16, "f": np.float32, "i": np.int32}[kind])
    for o, vx in meta.get("vouts", ()):
        out[o] = np.broadcast_to(veval(vx, venv, env, helpers, n), (n, 3)).astype(np.float16)
    return out


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    with np.errstate(all="ignore"):
        return run_program(spec.meta, inputs, N)


def tolerance(spec: KernelSpec) -> Tolerance:
    return Tolerance(1e-2, 2e-3)


FAMILY = Family(
    name="half",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=reference,
    tolerance=tolerance,
    prepare=prepare,
    weight=1.0,
    covers=("float16", "wp.vec3h", "half rounding", "float16/float32 conversions", "math builtins in half",
            "half accumulation loops", "wp.func on halves"),
)
