"""Shared building blocks of the nested_loops and combined families (until they move to ``kernels/ir``).

A small typed program IR on top of ``kernels._expr`` nodes (``E.Node``), so that expression trees made by
``_expr.ExprGen`` / ``CfGen`` (arithmetic, C integer semantics, selects) and by ``math.MathGen``
(math builtins with domain guards) can be mixed with:

* casts between scalar types (``cast``: ``float(j)``, ``wp.float64(x)``, ``float(n)``),
* gathers ``a[(i + j * k) % 64]`` (``gather``: an int index tree),
* ``wp.vec3`` values (``vec3``, ``vmul``, ``dot``, ``length``, ``length_sq``, ``cross``, ``comp``),
* typed conditions (``tcond``: an integer comparison inside a float kernel), chained comparisons
  (``chain``: ``lo <= x < hi``), bool parameters (``truth``),
* calls of ``@wp.func`` helpers (``call``).

Statements (``Let``/``Store``/``If``/``Loop``/``Jump``) subclass the ``Assign``/``If``/``For``/``Jump`` of
control_flow version 1 (below) so that its interval abstract interpretation (``absint``) checks loop-carried values;
:func:`fix_loop_bounds` clamps the assignments that could leave their assumed bound. :class:`Machine` interprets
statements vectorised over the launch with lane masks (per-lane loop bounds, ``break``/``continue``), with Warp semantics.
Emission is precedence-aware (no redundant parentheses) but keeps the tree's evaluation order.
"""

from __future__ import annotations

import math
import math as _math

import numpy as np

from harness.family import KernelSpec
from kernels import _common as C
from kernels._common import pick
from kernels import _expr as E
from kernels import _math_lib as M

N = 64
BIG = 1e30
Interval = E.Interval
Node = E.Node
SCAL = {"float32": E.FLOAT32, "float64": E.FLOAT64, "int32": E.INT32}
CAST = {"float32": "float", "float64": "wp.float64", "int32": "int"}
SPELL = {"float32": "float", "float64": "wp.float64", "int32": "int", "vec3": "wp.vec3", "bool": "bool"}
ARRAY_SPELL = {"float32": "wp.array(dtype=float)", "float64": "wp.array(dtype=wp.float64)",
               "int32": "wp.array(dtype=int)", "vec3f": "wp.array(dtype=wp.vec3)", "vec3": "wp.array(dtype=wp.vec3)"}
CMP = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
CMP_NP = {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal, "eq": np.equal,
          "ne": np.not_equal}


# ------------------------------------------------------------------------------------------------------
# Statement classes, conditions and loop-carried bounds of control_flow version 1 (moved here when
# control_flow went to kernels/ir; combined and nested_loops use them until they move too)


# ------------------------------------------------------------------------------------------------------
# Statement AST


class Assign:
    """``name = node`` (or ``name += term``...). ``bound`` is the interval the generator assumed for a
    loop-carried ``name``; ``clamp`` is set when the abstract interpretation finds it can leave it."""

    __slots__ = ("name", "node", "aug", "decl", "bound", "clamp", "_clamped")

    def __init__(self, name, node, aug=False, decl=False, bound=None):
        self.name = name
        self.node = node
        self.aug = aug
        self.decl = decl
        self.bound = bound
        self.clamp = None
        self._clamped = None

    def value(self) -> E.Node:
        if self.clamp is None:
            return self.node
        if self._clamped is None or self._clamped[0] != self.clamp:
            self._clamped = (self.clamp, self._clamp_node())
        return self._clamped[1]

    def _clamp_node(self) -> E.Node:
        b, iv = self.bound, self.node.iv
        lo, hi = E.const(b.lo), E.const(b.hi)
        if self.clamp == "hi":
            return E.Node("min", (self.node, hi), iv=Interval(min(iv.lo, b.hi), b.hi))
        if self.clamp == "lo":
            return E.Node("max", (self.node, lo), iv=Interval(b.lo, max(iv.hi, b.lo)))
        return E.Node("clamp", (self.node, lo, hi), iv=b)


class If:
    __slots__ = ("branches", "orelse")

    def __init__(self, branches, orelse):
        self.branches = branches      # [(cond, body)]
        self.orelse = orelse          # body or None


class For:
    __slots__ = ("var", "kind", "start", "stop", "step", "body", "gathers", "trip", "ivar", "leaves")

    def __init__(self, var, kind, start, stop, step):
        self.var = var
        self.kind = kind              # const | scalar | array
        self.start, self.stop, self.step = start, stop, step
        self.body = []
        self.gathers = []             # (leaf, array, mult, add)
        self.trip = 0                 # largest trip count
        self.ivar = None              # interval of the loop variable
        self.leaves = ()              # expression leaves spelling the loop variable


class While:
    __slots__ = ("counter", "limit", "down", "extra", "extra_first", "body", "trip", "aug", "leaves")

    def __init__(self, counter, limit, down, trip):
        self.counter = counter
        self.limit = limit            # int constant or int scalar name
        self.down = down
        self.extra = None
        self.extra_first = False
        self.body = []
        self.trip = trip
        self.aug = False
        self.leaves = ()


class Jump:
    __slots__ = ("kind", "cond")

    def __init__(self, kind, cond):
        self.kind = kind              # break | continue
        self.cond = cond


def _join(a: Interval, b: Interval) -> Interval:
    return Interval(min(a.lo, b.lo), max(a.hi, b.hi))


def _inside(a: Interval, b: Interval) -> bool:
    return b.lo <= a.lo and a.hi <= b.hi


def _clamp_mode(a: Assign) -> str:
    """Which sides of its bound an assignment needs clamped (a second violation clamps both)."""
    if a.clamp is not None:
        return "both"
    iv, b = a.node.iv, a.bound
    if iv.lo >= b.lo:
        return "hi"
    if iv.hi <= b.hi:
        return "lo"
    return "both"


# ------------------------------------------------------------------------------------------------------
# Conditions: _expr comparisons plus exact integer tests of loop variables ("idx" nodes)


def cf_emit_cond(node: E.Node, ty: E.Scalar) -> str:
    op = node.op
    if op == "idx":
        v, kind, a, b = node.value
        if kind == "mod":
            return f"{v} % {a} == {b}"
        return f"{v} {E.COMPARE_SYMBOL[kind]} {a}"
    if op in ("and", "or"):
        return f"({cf_emit_cond(node.args[0], ty)}) {op} ({cf_emit_cond(node.args[1], ty)})"
    if op == "not":
        return f"not ({cf_emit_cond(node.args[0], ty)})"
    return E.emit_cond(node, ty)


def cf_eval_cond(node: E.Node, env, ty: E.Scalar) -> np.ndarray:
    op = node.op
    if op == "idx":
        v, kind, a, b = node.value
        x = np.asarray(env[v])
        if kind == "mod":
            return np.fmod(x, a) == b
        return {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
                "eq": np.equal, "ne": np.not_equal}[kind](x, a)
    if op == "and":
        return cf_eval_cond(node.args[0], env, ty) & cf_eval_cond(node.args[1], env, ty)
    if op == "or":
        return cf_eval_cond(node.args[0], env, ty) | cf_eval_cond(node.args[1], env, ty)
    if op == "not":
        return ~cf_eval_cond(node.args[0], env, ty)
    return E.evaluate_cond(node, env, ty)


def cond_uses_all(node: E.Node) -> set[str]:
    """Every name a condition reads (loop variables of index tests included)."""
    if node.op == "idx":
        return {node.value[0]}
    if node.op in ("and", "or", "not"):
        out: set[str] = set()
        for child in node.args:
            out |= cond_uses_all(child)
        return out
    return E.uses(node)


def cond_uses(node: E.Node) -> set[str]:
    if node.op == "idx":
        return {node.value[0]}
    return E.uses(node)


# ------------------------------------------------------------------------------------------------------
# Interval evaluation under a changed environment (the abstract interpretation of loops). Intervals are
# plain (lo, hi) tuples here: this runs thousands of times per program.


def _cap(lo: float, hi: float) -> tuple:
    if lo != lo or hi != hi:        # NaN from inf * 0
        return (-BIG, BIG)
    return (max(lo, -BIG), min(hi, BIG))


def _tmul(x, y):
    p = (x[0] * y[0], x[0] * y[1], x[1] * y[0], x[1] * y[1])
    return _cap(min(p), max(p))


def mark_static(node: E.Node, mutable, out: set) -> bool:
    """Add to ``out`` the ids of the subtrees of ``node`` that read no ``mutable`` name; their interval is
    the one the generator computed (``node.iv``) whatever the loop state."""
    if node.op == "var":
        static = node.value not in mutable
    elif node.op == "const":
        return True
    else:
        static = True
        for child in node.args:
            static &= mark_static(child, mutable, out)
    if static:
        out.add(id(node))
    return static


def node_iv(node: E.Node, env: dict, is_int: bool, static=frozenset()) -> tuple:
    if id(node) in static:
        return (node.iv.lo, node.iv.hi)
    op = node.op
    if op == "var":
        iv = env.get(node.value)
        return iv if iv is not None else (node.iv.lo, node.iv.hi)
    if op == "const":
        return (node.iv.lo, node.iv.hi)
    a = node.args
    if op in ("where", "ifexp"):
        x, y = node_iv(a[1], env, is_int, static), node_iv(a[2], env, is_int, static)
        return (min(x[0], y[0]), max(x[1], y[1]))
    x = node_iv(a[0], env, is_int, static)
    if op == "neg":
        return (-x[1], -x[0])
    if op == "abs":
        return (0.0 if x[0] <= 0.0 <= x[1] else min(abs(x[0]), abs(x[1])), max(abs(x[0]), abs(x[1])))
    if op == "clamp":
        lo, hi = a[1].iv.lo, a[2].iv.hi
        return (min(max(x[0], lo), hi), max(min(x[1], hi), lo))
    y = node_iv(a[1], env, is_int, static)
    if op == "add":
        return _cap(x[0] + y[0], x[1] + y[1])
    if op == "sub":
        return _cap(x[0] - y[1], x[1] - y[0])
    if op == "mul":
        return _tmul(x, y)
    if op == "min":
        return (min(x[0], y[0]), min(x[1], y[1]))
    if op == "max":
        return (max(x[0], y[0]), max(x[1], y[1]))
    if y[0] <= 0.0 <= y[1]:
        return (-BIG, BIG)
    if op == "mod":
        m = max(abs(y[0]), abs(y[1]))
        return (-m, m)
    d = _tmul(x, (1.0 / y[1], 1.0 / y[0]))
    if op == "floordiv":
        return _cap(min(d[0], x[0], -1) - 1, max(d[1], x[1], 1) + 1)
    if op == "div":
        return _cap(d[0] - 1, d[1] + 1) if is_int else d
    raise ValueError(f"no interval rule for {op!r}")


def _join_states(states):
    out = dict(states[0])
    for s in states[1:]:
        for k, v in s.items():
            o = out.get(k)
            if o is None:
                out[k] = v
            elif v[0] < o[0] or v[1] > o[1]:
                out[k] = (min(o[0], v[0]), max(o[1], v[1]))
    return out


class _Overshoot(Exception):
    """An assignment that can leave its bound by itself (stops an eager abstract interpretation)."""

    def __init__(self, assign):
        super().__init__()
        self.assign = assign


def absint(stmts, st: dict, viol: dict, esc, is_int: bool, iters: int = 1 << 30, static=frozenset()) -> dict:
    """Interval state after ``stmts``. An assignment whose value may leave its ``bound`` is recorded in
    ``viol`` (id -> (assignment, overshoot factor)); ``esc`` collects states at break/continue."""
    for s in stmts:
        if isinstance(s, Assign):
            iv = node_iv(s.value(), st, is_int, static)
            b = s.bound
            if b is not None and (iv[0] < b.lo or iv[1] > b.hi):
                if s.clamp is None and not _inside(s.node.iv, b) and viol.get("eager"):
                    raise _Overshoot(s)
                over = max(abs(iv[0]), abs(iv[1])) / max(b.mag, 1e-30)
                prev = viol.get(id(s))
                if prev is None or prev[1] < over:
                    viol[id(s)] = (s, over)
            st[s.name] = iv
        elif isinstance(s, If):
            outs = [absint(body, dict(st), viol, esc, is_int, iters, static) for _, body in s.branches]
            outs.append(absint(s.orelse, dict(st), viol, esc, is_int, iters, static) if s.orelse else st)
            st = _join_states(outs)
        elif isinstance(s, Jump):
            if esc is not None:
                esc.append(dict(st))
        elif isinstance(s, (For, While)):
            head = dict(st)
            if isinstance(s, For):
                iv = (float(s.ivar.lo), float(s.ivar.hi))
                for leaf in s.leaves:
                    head[leaf] = iv
            else:
                for leaf in s.leaves:
                    head[leaf] = (0.0, float(s.trip))
            for _ in range(min(s.trip, iters)):
                inner: list = []
                end = absint(s.body, dict(head), viol, inner, is_int, iters, static)
                new = _join_states([head, end] + inner)
                if new == head:
                    break
                head = new
            st = head
    return st


# ------------------------------------------------------------------------------------------------------
# Generation


class CfGen(E.ExprGen):
    """ExprGen whose comparisons are never trivial: both sides differ, a constant side lies inside the other
    side's range, and (float kernels) some input-derived value takes part, so that no comparison is decided by
    float32-vs-float64 rounding of constants and loop indices alone."""

    dep: set | None = None
    hint_env = None               # () -> {name: (lo, hi)}: likely ranges of loop-carried values
    anc_of = None                 # node -> the inputs its value derives from (float kernels)

    def condition(self, depth: int) -> E.Node:
        return self._fix(super().condition(depth))

    def recurrence(self, state: E.Node, term: E.Node, c_lo: float) -> E.Node:
        """A bounded update of a loop-carried ``state`` by ``term``: ``state * c + term`` for floats (``c`` in
        [c_lo, 0.95]); ``(state * k + term) % m`` or ``state / 2 + term`` for integers."""
        rng = self.rng
        if not self.ty.is_int:
            c = round(float(rng.uniform(c_lo, 0.95)), 2)
            return self.apply_binary("add", self.apply_binary("mul", state, E.const(c)), term)
        if rng.random() < 0.5:
            m = int(pick(rng, (7, 13, 97, 101, 1009)))
            scaled = self.apply_binary("mul", state, E.const(int(rng.integers(2, 6))))
            return self.apply_binary("mod", self.apply_binary("add", scaled, term), E.const(m))
        return self.apply_binary("add", self.apply_binary("div", state, E.const(2)), term)

    def _fix(self, node):
        if node.op in ("and", "or"):
            return E.Node(node.op, (self._fix(node.args[0]), self._fix(node.args[1])))
        a, b = node.args
        if self.dep is not None and not ((E.uses(a) | E.uses(b)) & self.dep):
            a = self.dep_leaf()
        if a.op == "const":
            a, b = b, a
        for _ in range(3):
            if a != b:
                break
            b = self.expr(1)
        # Two sides derived from the same inputs can be equal by an algebraic identity (k - (k + m) == -m)
        # that holds exactly in the float64 reference but not after float32 rounding, and no input
        # perturbation moves such a tie: compare with a constant instead.
        shared = self.anc_of is not None and bool(self.anc_of(a) & self.anc_of(b))
        if a == b or b.op == "const" or shared:
            b = self.threshold(a)
        return E.Node(node.op, (a, b))

    def threshold(self, a: E.Node) -> E.Node:
        """A constant inside the likely range of ``a`` (the middle 60%)."""
        lo, hi = node_iv(a, self.hint_env(), self.ty.is_int) if self.hint_env else (a.iv.lo, a.iv.hi)
        lo, hi = max(lo, -1e4), min(hi, 1e4)
        lo, hi = lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo)
        if not hi > lo:
            lo = hi = 0.5 * (lo + hi) + 0.0
        if self.ty.is_int:
            value = int(self.rng.integers(math.floor(lo), math.floor(hi) + 1))
        else:
            value = float(self.rng.uniform(lo, hi)) if hi > lo else lo
            value = round(value, 1 if abs(value) >= 10 else 2)
            if value == 0.0:            # x - x and friends are exactly 0: no threshold there
                value = 0.05
        return E.const(value, Interval(self.ty.const_value(value), self.ty.const_value(value)))

    def dep_leaf(self) -> E.Node:
        names = [n for n in self.leaves if self.dep is None or n in self.dep]
        name = names[int(self.rng.integers(len(names)))]
        return E.var(name, self.leaves[name])




def _walk_same_loop(stmts):
    """Statements of a loop body, descending into ifs but not into nested loops."""
    for s in stmts:
        yield s
        if isinstance(s, If):
            for _, body in s.branches:
                yield from _walk_same_loop(body)
            if s.orelse:
                yield from _walk_same_loop(s.orelse)



# ------------------------------------------------------------------------------------------------------
# Node constructors


def var(name: str, iv: Interval) -> Node:
    return E.var(name, iv)


def const(value, ty: E.Scalar) -> Node:
    v = ty.const_value(value)
    return E.const(value, Interval(v, v))


def cast(node: Node, src: str, dst: str) -> Node:
    """``node`` (of scalar type ``src``) converted to ``dst``; float -> int truncates toward zero."""
    iv = node.iv
    if dst == "int32":
        iv = Interval(float(_math.trunc(iv.lo)), float(_math.trunc(iv.hi)))
    return Node("cast", (node,), (src, dst), iv)


def gather(array: str, index: Node, iv: Interval) -> Node:
    return Node("gather", (index,), array, iv)


def tcond(cond: Node, ty: str) -> Node:
    """A condition evaluated (and emitted) in scalar type ``ty`` inside a program of another type."""
    return Node("tcond", (cond,), ty)


def cmp(op: str, a: Node, b: Node) -> Node:
    return Node(op, (a, b))


def lnot(c: Node) -> Node:
    return Node("not", (c,))


def chain(lo: Node, op1: str, x: Node, op2: str, hi: Node) -> Node:
    """``lo op1 x op2 hi`` (a Python chained comparison)."""
    return Node("chain", (lo, x, hi), (op1, op2))


def truth(name: str) -> Node:
    return Node("truth", (), name)


# ------------------------------------------------------------------------------------------------------
# Emission


BINARY = {"add": ("+", 11), "sub": ("-", 11), "mul": ("*", 12), "div": ("/", 12), "floordiv": ("//", 12),
          "mod": ("%", 12), "pow": ("**", 14), "vmul": ("*", 12), "band": ("&", 9), "bxor": ("^", 8),
          "bor": ("|", 7)}
ATOM = 100
VEC_CALLS = {"dot": "dot", "length": "length", "length_sq": "length_sq", "cross": "cross",
             "normalize": "normalize", "vmin": "min", "vmax": "max"}


def _symbolic(node: Node, ty: E.Scalar) -> bool:
    """Whether a binary node is spelled with an operator symbol (``%``) rather than a call (``wp.mod``):
    _expr's integer trees and explicit ``"op"`` styles use the symbol; math.MathGen's float ``mod``,
    ``floordiv`` and ``pow`` nodes without a style are calls."""
    if node.op in ("add", "sub", "mul", "div", "vmul", "band", "bor", "bxor"):
        return True
    return node.value == "op" or (ty.is_int and node.value is None)


def emit(node: Node, ty: E.Scalar) -> str:
    return _emit(node, ty)[0]


def _wrap(part: tuple, need: bool) -> str:
    return f"({part[0]})" if need else part[0]


def _emit(node: Node, ty: E.Scalar) -> tuple[str, int]:
    op, a = node.op, node.args
    if op == "var":
        return str(node.value), ATOM
    if op == "const":
        text = ty.literal(node.value)
        return text, (13 if text.startswith("-") else ATOM)
    if op in BINARY and _symbolic(node, ty):
        sym, p = BINARY[op]
        left, right = _emit(a[0], ty), _emit(a[1], ty)
        if op == "pow":
            return f"{_wrap(left, left[1] <= p)} {sym} {_wrap(right, right[1] < p)}", p
        lneg = a[0].op == "const" and left[0].startswith("-")
        rneg = a[1].op == "const" and right[0].startswith("-")
        return f"{_wrap(left, left[1] < p or lneg)} {sym} {_wrap(right, right[1] <= p or rneg)}", p
    if op == "neg":
        inner = _emit(a[0], ty)
        return f"-{_wrap(inner, inner[1] < 13 or inner[0].startswith('-'))}", 13
    if op == "where":
        return f"wp.where({emit_cond(a[0], ty)}, {emit(a[1], ty)}, {emit(a[2], ty)})", ATOM
    if op == "ifexp":
        x, c, y = _emit(a[1], ty), _emit_cond(a[0], ty), _emit(a[2], ty)
        return f"{_wrap(x, x[1] <= 2)} if {_wrap(c, c[1] <= 2)} else {_wrap(y, y[1] <= 2)}", 2
    if op == "cast":
        src, dst = node.value
        return f"{CAST[dst]}({emit(a[0], SCAL[src])})", ATOM
    if op == "gather":
        return f"{node.value}[{emit(a[0], E.INT32)}]", ATOM
    if op == "call":
        return f"{node.value}({', '.join(emit(x, _arg_ty(x, ty)) for x in a)})", ATOM
    if op == "vec3":
        return f"wp.vec3({', '.join(emit(x, E.FLOAT32) for x in a)})", ATOM
    if op in VEC_CALLS:
        return f"wp.{VEC_CALLS[op]}({', '.join(emit(x, E.FLOAT32) for x in a)})", ATOM
    if op == "comp":
        inner = _emit(a[0], ty)
        return f"{_wrap(inner, inner[1] < ATOM)}[{node.value}]", ATOM
    if op == "text":
        return str(node.value), ATOM
    if op in M.WP_NAME or op in E.CALLS:
        name = M.WP_NAME.get(op) or E.CALLS[op]
        return f"wp.{name}({', '.join(emit(x, ty) for x in a)})", ATOM
    raise ValueError(f"cannot emit op {op!r}")


def _arg_ty(node: Node, ty: E.Scalar) -> E.Scalar:
    return ty


def emit_cond(node: Node, ty: E.Scalar) -> str:
    return _emit_cond(node, ty)[0]


def _emit_cond(node: Node, ty: E.Scalar) -> tuple[str, int]:
    op, a = node.op, node.args
    if op in CMP:
        left, right = _emit(a[0], ty), _emit(a[1], ty)
        return f"{_wrap(left, left[1] <= 6)} {CMP[op]} {_wrap(right, right[1] <= 6)}", 6
    if op == "chain":
        o1, o2 = node.value
        parts = [_emit(x, ty) for x in a]
        lo, x, hi = (_wrap(p, p[1] <= 6) for p in parts)
        return f"{lo} {CMP[o1]} {x} {CMP[o2]} {hi}", 6
    if op == "and":
        left, right = _emit_cond(a[0], ty), _emit_cond(a[1], ty)
        return f"{_wrap(left, left[1] < 4)} and {_wrap(right, right[1] <= 4)}", 4
    if op == "or":
        left, right = _emit_cond(a[0], ty), _emit_cond(a[1], ty)
        return f"{_wrap(left, left[1] < 3 or left[1] == 4)} or {_wrap(right, right[1] <= 4)}", 3
    if op == "not":
        inner = _emit_cond(a[0], ty)
        return f"not {_wrap(inner, inner[1] < 6)}", 5
    if op == "tcond":
        return _emit_cond(a[0], SCAL[node.value])
    if op == "truth":
        return str(node.value), ATOM
    if op == "idx":
        return cf_emit_cond(node, ty), 6
    raise ValueError(f"not a condition: {op!r}")


# ------------------------------------------------------------------------------------------------------
# Evaluation (NumPy, float64 for floats, int64 holding int32 values), Warp semantics


def evaluate(node: Node, env: dict, ty: E.Scalar, helpers: dict | None = None, cache: dict | None = None):
    """Value of ``node`` (an array over lanes, or a 0-d array) in scalar context ``ty``."""
    return compiled(node, ty, helpers, {} if cache is None else cache)(env)


def evaluate_cond(node: Node, env: dict, ty: E.Scalar, helpers: dict | None = None, cache: dict | None = None):
    return compiled_cond(node, ty, helpers, {} if cache is None else cache)(env)


# Nodes are compiled into closures, once per run (the interpreter evaluates loop bodies many times); a cache
# entry keeps its node alive, so that an id is not reused while the entry lives.


def _cached(node: Node, ty: E.Scalar, helpers, cache: dict, cond: bool):
    key = (id(node), ty.name, cond)
    hit = cache.get(key)
    if hit is not None:
        return hit[1]
    fn = (_compile_cond if cond else _compile)(node, ty, helpers, cache)
    cache[key] = (node, fn)
    return fn


def compiled(node: Node, ty: E.Scalar, helpers, cache: dict):
    return _cached(node, ty, helpers, cache, False)


def compiled_cond(node: Node, ty: E.Scalar, helpers, cache: dict):
    return _cached(node, ty, helpers, cache, True)


def _w32(x):
    """int32 wrap-around of int64 values (two's complement truncation)."""
    return np.asarray(x, dtype=np.int64).astype(np.int32).astype(np.int64)


def _idiv(x, y):                         # C: truncates toward zero
    q = np.abs(x) // np.abs(y)
    return _w32(np.where((x < 0) != (y < 0), -q, q))


def _imod(x, y):                         # C: remainder has the sign of the dividend
    r = np.abs(x) % np.abs(y)
    return _w32(np.where(x < 0, -r, r))


INT_BINARY = {"add": lambda x, y: _w32(x + y), "sub": lambda x, y: _w32(x - y), "mul": lambda x, y: _w32(x * y),
              "div": _idiv, "floordiv": lambda x, y: _w32(np.floor_divide(x, y)), "mod": _imod,
              "min": np.minimum, "max": np.maximum, "band": np.bitwise_and, "bor": np.bitwise_or,
              "bxor": np.bitwise_xor}
INT_UNARY = {"neg": lambda x: _w32(-x), "abs": lambda x: _w32(np.abs(x)), "sign": lambda x: np.where(x < 0, -1, 1)}


def _compile(node: Node, ty: E.Scalar, helpers, cache: dict):
    op, a = node.op, node.args
    if op == "var":
        name = node.value
        return lambda env: env[name]
    if op == "const":
        v = np.asarray(ty.const_value(node.value), dtype=ty.np_ref)
        return lambda env: v
    if op in ("where", "ifexp"):
        c = compiled_cond(a[0], ty, helpers, cache)
        x, y = compiled(a[1], ty, helpers, cache), compiled(a[2], ty, helpers, cache)
        return lambda env: _select(c(env), x(env), y(env))
    if op == "cast":
        src, dst = node.value
        x = compiled(a[0], SCAL[src], helpers, cache)
        if dst == "int32":
            if src == "int32":
                return x
            return lambda env: _w32(np.trunc(x(env)))
        if dst == "float32" and src != "float32":        # float(beta) of a float64 or int value rounds
            return lambda env: np.asarray(x(env), dtype=np.float64).astype(np.float32).astype(np.float64)
        return lambda env: np.asarray(x(env), dtype=np.float64)
    if op == "gather":
        idx = compiled(a[0], E.INT32, helpers, cache)
        key = f"@{node.value}"

        def gather_fn(env):
            i = np.asarray(idx(env), dtype=np.int64)
            base = env.get("@base")            # several input sets stacked: each lane reads its own
            return env[key][i if base is None else i + base]
        return gather_fn
    if op == "call":
        fs = [compiled(x, ty, helpers, cache) for x in a]
        name = node.value
        return lambda env: call_helper(name, [f(env) for f in fs], ty, helpers, cache)
    if op == "vec3":
        fs = [compiled(x, E.FLOAT32, helpers, cache) for x in a]

        def vec_fn(env):
            parts = [np.asarray(f(env), dtype=np.float64) for f in fs]
            shape = np.broadcast_shapes(*[p.shape for p in parts])
            return np.stack([np.broadcast_to(p, shape) for p in parts], axis=-1)
        return vec_fn
    fs = [compiled(x, ty, helpers, cache) for x in a]
    if op == "vmul":
        v, sc = fs
        return lambda env: v(env) * np.asarray(sc(env))[..., None]
    if op == "dot":
        x, y = fs
        return lambda env: np.sum(x(env) * y(env), axis=-1)
    if op == "length":
        x = fs[0]
        return lambda env: np.sqrt(np.sum(np.square(x(env)), axis=-1))
    if op == "length_sq":
        x = fs[0]
        return lambda env: np.sum(np.square(x(env)), axis=-1)
    if op == "cross":
        x, y = fs
        return lambda env: np.cross(*np.broadcast_arrays(x(env), y(env)))
    if op == "normalize":
        x = fs[0]

        def normalize_fn(env):
            v = x(env)
            n = np.sqrt(np.sum(v * v, axis=-1))[..., None]
            return np.where(n > 0, v / np.where(n > 0, n, 1.0), 0.0)
        return normalize_fn
    if op in ("vmin", "vmax"):
        f = np.minimum if op == "vmin" else np.maximum
        x, y = fs
        return lambda env: f(x(env), y(env))
    if op == "comp":
        x, k = fs[0], node.value
        return lambda env: x(env)[..., k]
    if ty.is_int:
        if op in INT_BINARY:
            f, (x, y) = INT_BINARY[op], fs
            return lambda env: f(x(env), y(env))
        if op in INT_UNARY:
            f, x = INT_UNARY[op], fs[0]
            return lambda env: f(x(env))
        if op == "clamp":
            x, lo, hi = fs
            return lambda env: np.minimum(np.maximum(x(env), lo(env)), hi(env))
        raise ValueError(f"cannot evaluate integer op {op!r}")
    if op in M.NARY_NP:
        f = M.NARY_NP[op]
        if len(fs) == 2:
            x, y = fs
            return lambda env: f(x(env), y(env))
        return lambda env: f(*[g(env) for g in fs])
    if op in M.UNARY_NP:
        f, x = M.UNARY_NP[op], fs[0]
        return lambda env: f(x(env))
    if op in E.NUMPY_UNARY:
        f, x = E.NUMPY_UNARY[op], fs[0]
        return lambda env: f(x(env))
    raise ValueError(f"cannot evaluate op {op!r}")


#: Near-ties of float comparisons: a lane whose comparison sides agree to this relative tolerance may branch
#: differently in the kernel (float32 rounding, or another evaluation order) than in the float64 reference.
TIE_RTOL = {"float32": 2e-5, "float64": 1e-11}
#: While a statement is evaluated with tie tracking, the lanes where some float comparison was a near-tie.
_TIES: list = [None]


def _note_tie(x, y, rt: float) -> None:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    close = np.abs(x - y) <= rt * (np.abs(x) + np.abs(y) + 1.0)
    acc = _TIES[0]
    if close.ndim > acc.ndim:
        close = close.reshape(close.shape[0], -1).any(axis=1)
    acc |= close


def _compile_cond(node: Node, ty: E.Scalar, helpers, cache: dict):
    op, a = node.op, node.args
    rt = None if ty.is_int else TIE_RTOL[ty.name]
    if op in CMP:
        f, x, y = CMP_NP[op], compiled(a[0], ty, helpers, cache), compiled(a[1], ty, helpers, cache)
        if rt is None:
            return lambda env: f(x(env), y(env))

        def cmp_fn(env):
            xv, yv = x(env), y(env)
            if _TIES[0] is not None:
                _note_tie(xv, yv, rt)
            return f(xv, yv)
        return cmp_fn
    if op == "chain":
        o1, o2 = node.value
        f1, f2 = CMP_NP[o1], CMP_NP[o2]
        lo, x, hi = (compiled(t, ty, helpers, cache) for t in a)

        def chain_fn(env):
            xv, lv, hv = x(env), lo(env), hi(env)
            if rt is not None and _TIES[0] is not None:
                _note_tie(lv, xv, rt)
                _note_tie(xv, hv, rt)
            return f1(lv, xv) & f2(xv, hv)
        return chain_fn
    if op in ("and", "or"):
        x, y = compiled_cond(a[0], ty, helpers, cache), compiled_cond(a[1], ty, helpers, cache)
        if op == "and":
            return lambda env: x(env) & y(env)
        return lambda env: x(env) | y(env)
    if op == "not":
        x = compiled_cond(a[0], ty, helpers, cache)
        return lambda env: ~x(env)
    if op == "tcond":
        return compiled_cond(a[0], SCAL[node.value], helpers, cache)
    if op == "truth":
        name = node.value
        return lambda env: np.asarray(env[name]) != 0
    if op == "idx":
        return lambda env: cf_eval_cond(node, env, ty)
    raise ValueError(f"not a condition: {op!r}")


def _select(c, x, y):
    c, x, y = np.asarray(c), np.asarray(x), np.asarray(y)
    if max(x.ndim, y.ndim) > c.ndim and c.ndim > 0:
        c = c[..., None]
    return np.where(c, x, y)


class Helper:
    """A ``@wp.func``: typed parameters, a body of statements, a returned expression."""

    def __init__(self, name, params, body, ret, ret_ty, ty):
        self.name = name
        self.params = params          # [(name, type name)]
        self.body = body
        self.ret = ret
        self.ret_ty = ret_ty          # type name of the result
        self.ty = ty                  # evaluation scalar type of the body (E.Scalar)

    def source(self) -> str:
        sig = ", ".join(f"{p}: {SPELL[t]}" for p, t in self.params)
        lines = ["@wp.func", f"def {self.name}({sig}) -> {SPELL[self.ret_ty]}:"]
        emit_block(self.body, lines, "    ", self.ty)
        lines.append(f"    return {emit(self.ret, self.ty)}")
        return "\n".join(lines)


def call_helper(name: str, args: list, ty: E.Scalar, helpers: dict, cache: dict | None = None):
    h = helpers[name]
    if not isinstance(h, Helper):             # math.MathGen's (params, statements, ret) helpers
        return M.apply_op("call", name, args, ty, helpers)
    shape = np.broadcast_shapes(*[np.shape(x)[:1] for x in args]) if args else ()
    n = shape[0] if shape else 1
    env = {p: np.asarray(x) for (p, _), x in zip(h.params, args)}
    m = Machine(h.ty, env, {}, helpers, n=n, cache=cache)       # tracks ties inside a tracked caller
    m.block(h.body, np.ones(n, dtype=bool), None)
    return evaluate(h.ret, m.env, h.ty, helpers, m.cache)


# ------------------------------------------------------------------------------------------------------
# Statements


class Let(Assign):
    """``name = node`` in type ``ety`` (a scalar type name or ``"vec3"``; None: the program's type)."""

    __slots__ = ("ety",)

    def __init__(self, name, node, aug=False, decl=False, bound=None, ety=None):
        super().__init__(name, node, aug, decl, bound)
        self.ety = ety


class Store:
    """``array[index] = node`` (an output write; ``index`` is source text, ``i`` by default)."""

    __slots__ = ("array", "node", "ety", "index")

    def __init__(self, array, node, ety=None, index="i"):
        self.array = array
        self.node = node
        self.ety = ety
        self.index = index




class Loop(For):
    """``for var in range(start, stop, step)`` with int-tree bounds (per lane); ``binds`` are leaves
    (name -> node, e.g. ``float(j)`` or a gather) recomputed at the start of each iteration."""

    __slots__ = ("binds", "unrolled", "start_node", "stop_node")

    def __init__(self, var_name, start_node, stop_node, step, trip, ivar, unrolled):
        super().__init__(var_name, "expr", None, None, step)
        self.start_node = start_node
        self.stop_node = stop_node
        self.trip = trip
        self.ivar = ivar
        self.unrolled = unrolled
        self.binds = []
        self.leaves = ()


# ------------------------------------------------------------------------------------------------------
# Statement emission


def _ty_of(s, ty: E.Scalar) -> E.Scalar:
    ety = getattr(s, "ety", None)
    if ety is None:
        return ty
    return E.FLOAT32 if ety == "vec3" else SCAL[ety]


def emit_block(stmts, lines: list, ind: str, ty: E.Scalar):
    for s in stmts:
        if isinstance(s, Let):
            lines.append(ind + emit_let(s, _ty_of(s, ty)))
        elif isinstance(s, Store):
            lines.append(f"{ind}{s.array}[{s.index}] = {emit(s.node, _ty_of(s, ty))}")
        elif isinstance(s, If):
            for b, (c, body) in enumerate(s.branches):
                lines.append(f"{ind}{'if' if b == 0 else 'elif'} {emit_cond(c, ty)}:")
                emit_block(body, lines, ind + "    ", ty)
            if s.orelse:
                lines.append(f"{ind}else:")
                emit_block(s.orelse, lines, ind + "    ", ty)
        elif isinstance(s, Jump):
            lines.append(f"{ind}if {emit_cond(s.cond, ty)}:")
            lines.append(f"{ind}    {s.kind}")
        elif isinstance(s, Loop):
            start = emit(s.start_node, E.INT32)
            stop = emit(s.stop_node, E.INT32)
            if s.step != 1:
                text = f"range({start}, {stop}, {s.step})"
            elif start != "0":
                text = f"range({start}, {stop})"
            else:
                text = f"range({stop})"
            lines.append(f"{ind}for {s.var} in {text}:")
            emit_block(s.body, lines, ind + "    ", ty)
        else:
            raise TypeError(f"cannot emit statement {type(s).__name__}")


def emit_let(s: Let, ty: E.Scalar) -> str:
    node = s.value()
    if s.decl and node.op == "const":
        value = int(node.value) if ty.is_int else float(node.value)
        return f"{s.name} = {CAST[ty.name]}({value!r})"
    if s.clamp is None and s.aug and node.op in ("add", "sub", "mul") and node.args[0].op == "var" \
            and node.args[0].value == s.name:
        sym = {"add": "+=", "sub": "-=", "mul": "*="}[node.op]
        return f"{s.name} {sym} {emit(node.args[1], ty)}"
    return f"{s.name} = {emit(node, ty)}"


# ------------------------------------------------------------------------------------------------------
# Vectorised interpreter


class _Frame:
    __slots__ = ("broken", "cont")

    def __init__(self, n):
        self.broken = np.zeros(n, dtype=bool)
        self.cont = np.zeros(n, dtype=bool)


class Machine:
    """Runs statements over ``n`` lanes at once. ``env`` maps leaf names (source text) to values; gathers
    read ``env['@<array>']``; ``outputs`` receives stores (initialised by the caller)."""

    def __init__(self, ty: E.Scalar, env: dict, outputs: dict, helpers: dict | None = None, n: int = N,
                 cache: dict | None = None, fragile: np.ndarray | None = None):
        self.ty = ty
        self.env = env
        self.outputs = outputs
        self.helpers = helpers or {}
        self.n = n
        self.cache = {} if cache is None else cache
        # lanes that met a near-tie in a float comparison that mattered (tracked when given, or when this
        # machine runs inside a tracked statement, e.g. a helper body)
        self.fragile = fragile
        self.track = fragile is not None or _TIES[0] is not None

    def tracked(self, fn, live):
        """``fn()``, noting the near-ties of its float comparisons on the ``live`` lanes."""
        if not self.track:
            return fn()
        prev = _TIES[0]
        acc = np.zeros(self.n, dtype=bool)
        _TIES[0] = acc
        try:
            result = fn()
        finally:
            _TIES[0] = prev
        hit = acc & live
        if self.fragile is not None:
            self.fragile |= hit
        if prev is not None:
            prev |= hit
        return result

    def value(self, node, ty):
        return evaluate(node, self.env, ty, self.helpers, self.cache)

    def cond(self, node, ty):
        return evaluate_cond(node, self.env, ty, self.helpers, self.cache)

    def _put(self, store: dict, name, value, live, dtype, vec: bool):
        value = np.asarray(value, dtype=dtype)
        shape = (self.n, 3) if vec else (self.n,)
        if value.shape != shape:
            value = np.broadcast_to(value, shape)
        old = store.get(name)
        store[name] = value.copy() if old is None else _select(live, value, old)

    def block(self, stmts, mask, frame):
        ty = self.ty
        for s in stmts:
            live = mask if frame is None else mask & ~(frame.broken | frame.cont)
            if not live.any():
                return
            if isinstance(s, Let):
                sty = _ty_of(s, ty)
                value = self.tracked(lambda: self.value(s.value(), sty), live)
                self._put(self.env, s.name, value, live, sty.np_ref, s.ety == "vec3")
            elif isinstance(s, Store):
                sty = _ty_of(s, ty)
                value = self.tracked(lambda: self.value(s.node, sty), live)
                self._put(self.outputs, s.array, value, live, sty.np_ref, s.ety == "vec3")
            elif isinstance(s, If):
                remaining = live
                for c, body in s.branches:
                    cv = self.tracked(lambda: self.cond(c, ty), remaining)
                    self.block(body, remaining & cv, frame)
                    remaining = remaining & ~cv
                if s.orelse:
                    self.block(s.orelse, remaining, frame)
            elif isinstance(s, Jump):
                cv = live & self.tracked(lambda: self.cond(s.cond, ty), live)
                if s.kind == "break":
                    frame.broken |= cv
                else:
                    frame.cont |= cv
            elif isinstance(s, Loop):
                self.loop(s, live)
            else:
                raise TypeError(f"cannot run statement {type(s).__name__}")

    def loop(self, s: Loop, live):
        n = self.n
        start = np.broadcast_to(np.asarray(self.value(s.start_node, E.INT32), dtype=np.int64), (n,))
        stop = np.broadcast_to(np.asarray(self.value(s.stop_node, E.INT32), dtype=np.int64), (n,))
        step = s.step
        if step > 0:
            trips = np.maximum(0, (stop - start + step - 1) // step)
        else:
            trips = np.maximum(0, (start - stop + (-step) - 1) // (-step))
        frame = _Frame(n)
        top = int(trips[live].max(initial=0))
        for t in range(top):
            it = live & ~frame.broken & (t < trips)
            if not it.any():
                break
            frame.cont[:] = False
            self.env[s.var] = start + t * step
            for leaf, node in s.binds:
                self.env[leaf] = self.value(node, self.ty)
            self.block(s.body, it, frame)


# ------------------------------------------------------------------------------------------------------
# Loop-carried bounds (control_flow's abstract interpretation)


def fix_loop_bounds(loop, entry: dict, is_int: bool, static=frozenset()) -> dict:
    """Clamp, one at a time, the assignment inside ``loop`` that overshoots its bound most, until the interval
    abstract interpretation from ``entry`` (name -> (lo, hi)) over the maximal trip counts shows that no
    assignment leaves its bound. Returns the interval state after the loop."""
    for _ in range(64):
        viol: dict = {"eager": True}
        try:
            out = absint([loop], dict(entry), viol, None, is_int, static=static)
        except _Overshoot as stop:
            a = stop.assign
        else:
            del viol["eager"]
            if not viol:
                return out
            cands = [(over, a) for a, over in viol.values() if a.clamp != "both"]
            if not cands:
                raise RuntimeError("clamp fixing did not converge")
            _, a = max(cands, key=lambda t: t[0])
        a.clamp = _clamp_mode(a)
    raise RuntimeError("clamp fixing did not converge")


# ------------------------------------------------------------------------------------------------------
# Walking programs


def walk(stmts):
    """Every statement, depth first (into branches and loop bodies)."""
    for s in stmts:
        yield s
        if isinstance(s, If):
            for _, body in s.branches:
                yield from walk(body)
            if s.orelse:
                yield from walk(s.orelse)
        elif isinstance(s, Loop):
            yield from walk(s.body)


def cond_uses(node: Node) -> set[str]:
    if node.op == "idx":
        return {node.value[0]}
    if node.op == "truth":
        return {node.value}
    out: set[str] = set()
    if node.op == "var":
        out.add(node.value)
    for child in node.args:
        out |= cond_uses(child)
    return out


def node_uses(node: Node) -> set[str]:
    """Names an expression or condition reads (gather index names included)."""
    return cond_uses(node)


def kernel_text(params: list[tuple[str, str]], body: list[str], helpers: list[str] = ()) -> str:
    """Source of a kernel; ``params`` are (name, spelled type)."""
    return C.kernel_text(", ".join(f"{n}: {t}" for n, t in params), body, helpers)


# ------------------------------------------------------------------------------------------------------
# Running whole programs: reference, sample runs, early health checks
#
# ``meta`` of a program built on this module holds: ``ty`` (the kernel's scalar type name), ``arrays``
# (input array names), ``scalars`` (scalar parameter names), ``binds`` ([(leaf, node)] evaluated before the
# body, e.g. ``a[i]``), ``stmts`` (the body), ``outputs`` ([(name, type name)], type ``vec3`` for wp.vec3),
# ``params`` ([(name, spelled type)]), ``helpers`` ({name: Helper}) and ``helper_src`` (their source texts).


def run(meta: dict, values: dict, n_sets: int = 1, machine=None, fragile: np.ndarray | None = None) -> dict:
    """Run the program on ``n_sets`` input sets stacked along the lanes (``values[a]`` holds ``n_sets * N``
    elements for arrays, one value per lane or a single value for scalars). With ``fragile`` (lanes), mark the
    lanes whose control flow or selects met a near-tie of a float comparison."""
    ty = SCAL[meta["ty"]]
    n = N * n_sets
    env: dict = {"i": np.tile(np.arange(N, dtype=np.int64), n_sets)}
    if n_sets > 1:
        env["@base"] = np.repeat(np.arange(n_sets, dtype=np.int64) * N, N)
    for a in meta["arrays"]:
        x = np.asarray(values[a])
        env["@" + a] = x.astype(np.int64) if np.issubdtype(x.dtype, np.integer) else x.astype(np.float64)
    for s in meta["scalars"]:
        x = np.asarray(values[s])
        x = x.astype(np.int64) if np.issubdtype(x.dtype, np.integer) or x.dtype == bool else x.astype(np.float64)
        env[s] = np.broadcast_to(x, (n,) + x.shape[1:] if x.ndim > 1 else (n,))
    helpers = meta.get("helpers") or {}
    with np.errstate(all="ignore"):
        for leaf, node in meta["binds"]:
            env[leaf] = np.broadcast_to(evaluate(node, env, ty, helpers), (n,))
        outputs = {}
        for o, oty in meta["outputs"]:
            if oty == "vec3":
                outputs[o] = np.zeros((n, 3), dtype=np.float64)
            else:
                outputs[o] = np.zeros(n, dtype=SCAL[oty].np_ref)
        if machine is None:
            m = Machine(ty, env, outputs, helpers, n=n, fragile=fragile)
        else:
            m = machine(ty, env, outputs, helpers, n)
        m.block(meta["stmts"], np.ones(n, dtype=bool), None)
    return outputs


def reference(meta: dict, inputs: dict) -> dict:
    """Outputs for one input set, as masked arrays hiding the lanes that met a near-tie in a float comparison
    (there the kernel may branch the other way: float32 rounding, evaluation order)."""
    fragile = np.zeros(N, dtype=bool)
    out = run(meta, inputs, 1, fragile=fragile)
    result = {}
    for o, v in out.items():
        mask = fragile if v.ndim == 1 else np.repeat(fragile[:, None], v.shape[1], axis=1)
        result[o] = np.ma.masked_array(v, mask=mask.copy())
    return result


def spec_reference(spec: KernelSpec, inputs) -> dict:
    """A family's ``reference``: :func:`reference` of the program's meta."""
    return reference(spec.meta, inputs)


def dataset(args, rng: np.random.Generator, n_sets: int) -> dict:
    """``n_sets`` input sets drawn like the verifier's default sampler, stacked (scalars: one per lane)."""
    values = {}
    for a in args:
        if a.role in ("out", "aux"):
            continue
        comps = (3,) if a.dtype in ("vec3f", "vec3d") else ()
        size = (n_sets,) + comps if a.role == "scalar" else (n_sets * N,) + comps
        if a.dtype in ("int32", "uint32", "int64"):
            v = rng.integers(int(a.low), int(a.high) + 1, size=size)
        else:
            v = rng.uniform(a.low, a.high, size=size)
            v = v.astype(np.float32).astype(np.float64) if a.dtype in ("float32", "vec3f") else v
        values[a.name] = np.repeat(v, N, axis=0) if a.role == "scalar" else v
    return values


def healthy(program, rng: np.random.Generator, tol, draw=dataset, min_changed: float = 0.1,
            max_moved: float = 0.2) -> bool:
    """The verifier's questions asked early, on two sample input sets: finite outputs that vary over the
    lanes and copy no input, that move under input perturbations of rounding size on at most ``max_moved``
    of the elements (ill-conditioning), and that change on at least ``min_changed`` of the lanes when any
    one input is drawn again (no dead inputs)."""
    meta = program.meta
    args = [a for a in program.args if a.role not in ("out", "aux")]
    base = draw(program.args, rng, 2)
    variants = [base]
    floats = [a for a in args if a.dtype not in ("int32", "uint32", "int64")]
    if floats and tol.rtol > 0:
        eps = np.finfo(np.float64 if meta["ty"] == "float64" else np.float32).eps
        scale = max(2 * eps, min(32 * eps, tol.rtol / 16))
        for _ in range(2):
            pert = dict(base)
            for a in floats:
                x = base[a.name]
                pert[a.name] = x * (1.0 + scale * rng.choice([-1.0, 1.0], size=x.shape))
            variants.append(pert)
    n_pert = len(variants) - 1
    for a in args:
        changed = dict(base)
        fresh = base[a.name]
        for _ in range(8):
            fresh = draw([a], rng, 2)[a.name]
            if not np.array_equal(fresh, base[a.name]):
                break
        changed[a.name] = fresh
        variants.append(changed)
    k = len(variants)
    stacked = {name: np.concatenate([v[name] for v in variants]) for name in base}
    fragile = np.zeros(2 * k * N, dtype=bool)
    out = run(meta, stacked, 2 * k, fragile=fragile)
    n2 = 2 * N
    if fragile[:n2].mean() > max_moved / 2:        # near-ties of comparisons: lanes the verifier cannot use
        return False
    rows_of = {o: v.reshape((k, n2) + v.shape[1:]) for o, v in out.items()}
    for o, rows in rows_of.items():
        if not np.all(np.isfinite(rows)):
            return False
        r0 = rows[0]
        if np.all(r0 == r0.reshape(-1)[0]):
            return False
        for a in args:
            if a.role == "in" and np.shape(base[a.name]) == r0.shape and np.array_equal(base[a.name], r0):
                return False
        if n_pert:
            moved = np.zeros(r0.shape, dtype=bool)
            for r in rows[1:1 + n_pert]:
                moved |= ~(np.abs(r - r0) <= (tol.atol + tol.rtol * np.abs(r0)) / 2)
            if moved.mean() > max_moved:
                return False
    for j in range(len(args)):
        changed = np.zeros(n2, dtype=bool)
        for rows in rows_of.values():
            diff = rows[1 + n_pert + j] != rows[0]
            changed |= diff.reshape(n2, -1).any(axis=1)
        if changed.mean() < min_changed:
            return False
    return True


def generate_healthy(rng: np.random.Generator, build, attempts: int):
    """``build(rng)`` until its program is :func:`healthy` under the tolerance of its type, at most ``attempts``
    times (the last program otherwise)."""
    program = None
    with np.errstate(all="ignore"):
        for _ in range(attempts):
            program = build(rng)
            if healthy(program, rng, C.TYPE_TOLERANCES[program.meta["ty"]]):
                break
    return program


def render(program):
    """The program with its source emitted again from its statements (after in-place edits)."""
    from dataclasses import replace

    meta = program.meta
    lines: list[str] = []
    emit_block(meta["stmts"], lines, "", SCAL[meta["ty"]])
    return replace(program, source=kernel_text(meta["params"], lines, meta.get("helper_src", ())))


def signature_params(args) -> list[tuple[str, str]]:
    return [(a.name, SPELL_ARG(a)) for a in args if a.role != "aux"]


def SPELL_ARG(a) -> str:  # noqa: N802
    if a.role == "scalar":
        return {"float32": "float", "float64": "wp.float64", "int32": "int", "uint32": "wp.uint32",
                "vec3f": "wp.vec3"}[a.dtype]
    return ARRAY_SPELL[a.dtype]
