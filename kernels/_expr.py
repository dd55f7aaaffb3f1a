"""Composable random float expressions with value intervals and a NumPy evaluator: the post-processing
expressions of ``spatial``'s grid, BVH and mesh kinds (its volume kind, and every other family, use the IR in
``kernels/ir``; these stay until ``spatial``'s programs are regenerated on it).

Every node knows the interval its value lies in (for the sampled inputs), which lets the generator keep
programs inside their domains by construction: denominators are kept away from zero and values stay modest.
The evaluator copies Warp's semantics (float32 literals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FLOAT_LIMIT = 1e6          # keep float intermediates modest: no overflow, bounded cancellation


@dataclass(frozen=True, slots=True)
class Interval:
    lo: float
    hi: float

    def __post_init__(self):
        if not self.lo <= self.hi:
            raise ValueError(f"bad interval [{self.lo}, {self.hi}]")

    @property
    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    def contains_zero(self, margin: float = 0.0) -> bool:
        return self.lo - margin <= 0.0 <= self.hi + margin


def _hull(values) -> Interval:
    vals = [v for v in values if not math.isnan(v)]
    return Interval(min(vals), max(vals))


# --------------------------------------------------------------------------------------------------------
# Nodes


@dataclass(frozen=True, slots=True)
class Node:
    op: str
    args: tuple = ()
    value: object = None          # variable name or constant
    iv: Interval = Interval(0.0, 0.0)

    def children(self):
        return self.args


def var(name: str, iv: Interval) -> Node:
    return Node("var", (), name, iv)


def const(value: float, iv: Interval | None = None) -> Node:
    return Node("const", (), value, iv or Interval(value, value))


# --------------------------------------------------------------------------------------------------------
# Types: how a scalar kind spells constants and casts, and how NumPy evaluates it


@dataclass(frozen=True, slots=True)
class Scalar:
    name: str            # float32 | float64
    wp: str              # source spelling of the type
    np_ref: type         # NumPy type the reference computes in

    def literal(self, value) -> str:
        text = repr(float(value))
        return text if self.name == "float32" else f"wp.float64({text})"

    def const_value(self, value) -> float:
        """The value a literal has inside the kernel: bare float literals are float32 in Warp, while
        ``wp.float64(<literal>)`` keeps the literal's full float64 value (measured on Warp 1.19)."""
        return float(value) if self.name == "float64" else float(np.float32(value))


FLOAT32 = Scalar("float32", "float", np.float64)
FLOAT64 = Scalar("float64", "wp.float64", np.float64)
SCALARS = {s.name: s for s in (FLOAT32, FLOAT64)}


# --------------------------------------------------------------------------------------------------------
# Source emission


def emit(node: Node, ty: Scalar) -> str:
    op = node.op
    a = node.args
    if op == "var":
        return str(node.value)
    if op == "const":
        text = ty.literal(node.value)
        return f"({text})" if text.startswith("-") else text
    if op in BINARY_SYMBOL:
        return f"({emit(a[0], ty)} {BINARY_SYMBOL[op]} {emit(a[1], ty)})"
    if op == "neg":
        return f"(-{emit(a[0], ty)})"
    if op == "where":
        return f"wp.where({emit_cond(a[0], ty)}, {emit(a[1], ty)}, {emit(a[2], ty)})"
    if op == "ifexp":
        return f"({emit(a[1], ty)} if {emit_cond(a[0], ty)} else {emit(a[2], ty)})"
    if op in CALLS:
        return f"wp.{CALLS[op]}({', '.join(emit(x, ty) for x in a)})"
    raise ValueError(f"cannot emit op {op!r}")


def emit_cond(node: Node, ty: Scalar) -> str:
    if node.op in COMPARE_SYMBOL:
        return f"{emit(node.args[0], ty)} {COMPARE_SYMBOL[node.op]} {emit(node.args[1], ty)}"
    if node.op in ("and", "or"):
        return f"({emit_cond(node.args[0], ty)}) {node.op} ({emit_cond(node.args[1], ty)})"
    if node.op == "not":
        return f"not ({emit_cond(node.args[0], ty)})"
    raise ValueError(f"not a condition: {node.op!r}")


BINARY_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
COMPARE_SYMBOL = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
CALLS = {"min": "min", "max": "max", "abs": "abs"}



# --------------------------------------------------------------------------------------------------------
# NumPy evaluation with Warp semantics


def evaluate(node: Node, env: dict[str, np.ndarray], ty: Scalar) -> np.ndarray:
    op = node.op
    if op == "var":
        return env[node.value]
    if op == "const":
        return np.asarray(ty.const_value(node.value), dtype=ty.np_ref)
    args = [evaluate(x, env, ty) if x.op not in COMPARE_SYMBOL and x.op not in ("and", "or", "not")
            else evaluate_cond(x, env, ty) for x in node.args]
    with np.errstate(all="ignore"):
        if op == "add":
            return args[0] + args[1]
        if op == "sub":
            return args[0] - args[1]
        if op == "mul":
            return args[0] * args[1]
        if op == "div":
            return args[0] / args[1]
        if op == "neg":
            return -args[0]
        if op == "min":
            return np.minimum(args[0], args[1])
        if op == "max":
            return np.maximum(args[0], args[1])
        if op in ("where", "ifexp"):
            return np.where(args[0], args[1], args[2])
        if op == "abs":
            return np.abs(args[0])
    raise ValueError(f"cannot evaluate op {op!r}")


def evaluate_cond(node: Node, env, ty: Scalar) -> np.ndarray:
    if node.op in COMPARE_SYMBOL:
        a = evaluate(node.args[0], env, ty)
        b = evaluate(node.args[1], env, ty)
        return {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
                "eq": np.equal, "ne": np.not_equal}[node.op](a, b)
    if node.op == "and":
        return evaluate_cond(node.args[0], env, ty) & evaluate_cond(node.args[1], env, ty)
    if node.op == "or":
        return evaluate_cond(node.args[0], env, ty) | evaluate_cond(node.args[1], env, ty)
    if node.op == "not":
        return ~evaluate_cond(node.args[0], env, ty)
    raise ValueError(f"not a condition: {node.op!r}")


# --------------------------------------------------------------------------------------------------------
# Interval rules


def _iv_binary(op: str, a: Interval, b: Interval) -> Interval:
    if op == "add":
        return Interval(a.lo + b.lo, a.hi + b.hi)
    if op == "sub":
        return Interval(a.lo - b.hi, a.hi - b.lo)
    if op == "mul":
        return _hull([a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi])
    if op == "div":
        return _hull([a.lo / b.lo, a.lo / b.hi, a.hi / b.lo, a.hi / b.hi])
    if op == "min":
        return Interval(min(a.lo, b.lo), min(a.hi, b.hi))
    if op == "max":
        return Interval(max(a.lo, b.lo), max(a.hi, b.hi))
    raise ValueError(op)


# --------------------------------------------------------------------------------------------------------
# Generation


@dataclass
class ExprGen:
    """Random expressions over ``leaves`` (name -> interval) for scalar type ``ty``.

    ``binary``/``unary`` choose the operator vocabulary; ``p_leaf`` the chance to stop early at each level.
    """

    rng: np.random.Generator
    ty: Scalar
    leaves: dict[str, Interval]
    binary: tuple[str, ...] = ("add", "sub", "mul", "div", "min", "max")
    unary: tuple[str, ...] = ("neg", "abs")
    selects: bool = True
    p_leaf: float = 0.3
    p_const: float = 0.25

    def leaf(self) -> Node:
        if not self.leaves or self.rng.random() < self.p_const:
            return self.constant()
        name = list(self.leaves)[int(self.rng.integers(len(self.leaves)))]
        return var(name, self.leaves[name])

    def constant(self) -> Node:
        digits = int(self.rng.integers(1, 4))
        value = round(float(self.rng.uniform(-4.0, 4.0)), digits)
        return const(value, Interval(self.ty.const_value(value), self.ty.const_value(value)))

    def expr(self, depth: int) -> Node:
        if depth <= 0 or self.rng.random() < self.p_leaf:
            return self.leaf()
        roll = self.rng.random()
        if self.selects and roll < 0.12:
            return self.select(depth)
        if self.unary and roll < 0.27:
            op = self.unary[int(self.rng.integers(len(self.unary)))]
            arg = self.expr(depth - 1)
            return self.apply_unary(op, arg if arg.op != "const" else self.var_leaf())
        op = self.binary[int(self.rng.integers(len(self.binary)))]
        return self.apply_binary(op, self.expr(depth - 1), self.expr(depth - 1))

    def condition(self, depth: int) -> Node:
        a = self.expr(max(0, depth - 1))
        b = self.expr(max(0, depth - 1))
        if a.op == "const" and b.op == "const":
            a = self.leaf() if self.leaves else a
        cmp = ("lt", "le", "gt", "ge")[int(self.rng.integers(4))]
        node = Node(cmp, (a, b))
        if depth > 1 and self.rng.random() < 0.25:
            other = self.condition(depth - 1)
            node = Node(("and", "or")[int(self.rng.integers(2))], (node, other))
        return node

    def select(self, depth: int) -> Node:
        cond = self.condition(max(1, depth - 1))
        x, y = self.expr(depth - 1), self.expr(depth - 1)
        for _ in range(3):
            if x != y:
                break
            y = self.expr(depth - 1)
        kind = "where" if self.rng.random() < 0.5 else "ifexp"
        return Node(kind, (cond, x, y), iv=Interval(min(x.iv.lo, y.iv.lo), max(x.iv.hi, y.iv.hi)))

    def apply_unary(self, op: str, x: Node) -> Node:
        if op == "neg":
            return Node("neg", (x,), iv=Interval(-x.iv.hi, -x.iv.lo))
        if op == "abs" and x.iv.lo >= 0:            # identity on this interval: negate instead
            return Node("neg", (x,), iv=Interval(-x.iv.hi, -x.iv.lo))
        if op == "abs":
            lo = 0.0 if x.iv.contains_zero() else min(abs(x.iv.lo), abs(x.iv.hi))
            return Node("abs", (x,), iv=Interval(lo, x.iv.mag))
        raise ValueError(op)

    def var_leaf(self) -> Node:
        if not self.leaves:
            return self.constant()
        name = list(self.leaves)[int(self.rng.integers(len(self.leaves)))]
        return var(name, self.leaves[name])

    def apply_binary(self, op: str, x: Node, y: Node) -> Node:
        if x.op == "const" and y.op == "const":          # no constant folding fodder
            y = self.var_leaf()
        if x == y and op in ("sub", "div", "min", "max"):   # x - x, x / x ...
            y = self.var_leaf() if x.op != "var" or len(self.leaves) > 1 else self.constant()
            if x == y:
                op = "add"
        limit = FLOAT_LIMIT
        if op in ("min", "max") and (x.iv.hi <= y.iv.lo or y.iv.hi <= x.iv.lo):
            op = "add"                                   # one side always wins: the other would be dead code
        if op == "div" and y.op == "const" and abs(y.value) <= 1:
            y = const(2.5)                               # x / 1: a no-op
        if op == "div":
            y = self.nonzero(y)
        iv = _iv_binary(op, x.iv, y.iv)
        if iv.mag > limit:
            # too large: fall back to an operation that cannot blow up
            op = "add" if self.rng.random() < 0.5 else "min"
            iv = _iv_binary(op, x.iv, y.iv)
            if iv.mag > limit:
                return x if x.iv.mag <= y.iv.mag else y
        return Node(op, (x, y), iv=iv)

    def nonzero(self, y: Node) -> Node:
        """``y`` if its interval stays away from zero, else a denominator built from it that does."""
        if y.iv.lo >= 0.25 or y.iv.hi <= -0.25:
            return y
        c = float(self.rng.choice([0.5, 0.75, 1.0, 1.5, 2.0]))
        a = Node("abs", (y,), iv=Interval(0.0, y.iv.mag))
        return Node("add", (a, const(c)), iv=Interval(c, y.iv.mag + c))


def uses(node: Node) -> set[str]:
    if node.op == "var":
        return {node.value}
    out: set[str] = set()
    for child in node.args:
        out |= uses(child)
    return out
