"""control_flow: if/elif/else, for and while loops, break/continue, nested conditions.

Random programs over a small statement AST: state variables declared before the control flow that uses
them, assignments of random expressions (``kernels._expr``), if/elif/else chains on compound conditions
(and/or/not, loop-index tests), ``for`` loops over constant ranges, ranges bounded by an int scalar
parameter or by a per-element int array (with steps, offsets and reversed ranges, neighbour gathers),
nested loops, ``while`` loops with a termination counter (counting up or down, with data-dependent exit
conditions), and conditional ``break``/``continue``, nested up to three levels, in float32, float64 or
int32 (C semantics).

Value bounds: every expression knows an interval (``_expr``). Inside a loop, each state variable is assumed
to stay inside a bound ``B`` chosen at the loop's entry, which keeps denominators away from zero and int32
far from overflow; after the loop is built, an interval abstract interpretation over its maximal trip count
checks every assignment, and only those that can leave their bound get wrapped in a clamp.

The reference interprets the same AST vectorised over the launch: both sides of a branch run under masks,
loops iterate with an ``active`` mask (per-element trip counts, ``break`` and ``continue`` clear it).
"""

from __future__ import annotations

import math

import numpy as np

from harness.family import Arg, Family, KernelSpec, Program
from kernels import _expr as E
from kernels._common import ARRAY_NAMES, LOCAL_NAMES, OUT_NAMES, kernel_source, pick, strip_parens, type_tolerance

N = 64
BIG = 1e30
FLOAT_SCALARS = ("alpha", "beta", "scale", "gain", "bias", "shift", "coef", "eps", "offset")
INT_SCALARS = ("n", "count", "steps", "iters", "reps", "nsteps")
COUNT_ARRAYS = ("cnt", "trips", "nrep", "kcount")
LOOP_VARS = ("j", "k", "l", "jj")
COUNTERS = ("w", "it", "nit", "q")
TEMP_NAMES = ("tmp", "term", "d", "u", "z", "delta", "inc")
MAX_LINES = 28
UNROLLED_LINES = 24       # budget of body lines x enclosing constant trip counts


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


Interval = E.Interval


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


def emit_cond(node: E.Node, ty: E.Scalar) -> str:
    op = node.op
    if op == "idx":
        v, kind, a, b = node.value
        if kind == "mod":
            return f"{v} % {a} == {b}"
        return f"{v} {E.COMPARE_SYMBOL[kind]} {a}"
    if op in ("and", "or"):
        return f"({emit_cond(node.args[0], ty)}) {op} ({emit_cond(node.args[1], ty)})"
    if op == "not":
        return f"not ({emit_cond(node.args[0], ty)})"
    return E.emit_cond(node, ty)


def eval_cond(node: E.Node, env, ty: E.Scalar) -> np.ndarray:
    op = node.op
    if op == "idx":
        v, kind, a, b = node.value
        x = np.asarray(env[v])
        if kind == "mod":
            return np.fmod(x, a) == b
        return {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
                "eq": np.equal, "ne": np.not_equal}[kind](x, a)
    if op == "and":
        return eval_cond(node.args[0], env, ty) & eval_cond(node.args[1], env, ty)
    if op == "or":
        return eval_cond(node.args[0], env, ty) | eval_cond(node.args[1], env, ty)
    if op == "not":
        return ~eval_cond(node.args[0], env, ty)
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


class Builder:
    """Generates one program: statement AST, source text, reference meta and features."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.ty = E.SCALARS[pick(rng, ("float32", "float32", "float64", "int32"))]
        self.is_int = self.ty.is_int
        self.lines = 0
        self.max_depth = 0
        self.loop_depth = 0
        self.static_only = True       # every loop is unrolled by Warp (the kernel is differentiable)
        self.names_used: set[str] = set()
        self.state: list[str] = []    # variables declared at top level, assigned anywhere
        self.updated: set[str] = set()
        self.bounds: dict[str, Interval] = {}
        self.typical: dict[str, tuple] = {}   # likely (not sound) ranges of state variables, for thresholds
        self.exact: dict[str, Interval] = {}      # loop variables as values (floats: only as factors)
        self.loop_iv: dict[str, Interval] = {}
        self.loop_dir: dict[str, int] = {}
        self.loop_var_stack: list[str] = []
        self.tracked = 0
        self.static: set[int] = set()
        self.temp_names: set[str] = set()
        self.anc: dict[str, set] = {}
        self.limit = MAX_LINES        # line budget of the current loop body (Warp unrolls constant ranges)
        self.unroll = 1               # product of the trip counts of the enclosing unrolled loops

    # -------------------------------------------------------------------------------------------- names
    def fresh(self, base: str) -> str:
        k = len(self.names_used)
        while f"{base}{k}" in self.names_used:
            k += 1
        self.names_used.add(f"{base}{k}")
        return f"{base}{k}"

    def index_leaf(self, v: str, unrolled: bool) -> str:
        if self.is_int:
            return v
        if self.ty.name == "float32":
            return f"float({v})"
        # Warp 1.19: wp.float64(c) of a constant Var retypes that Var in place, so wp.float64(j) of an
        # unrolled loop index turns j itself into a float64 for the rest of the iteration
        return f"wp.float64(float({v}))" if unrolled else f"wp.float64({v})"

    # -------------------------------------------------------------------------------------------- setup
    def setup(self):
        rng, ty = self.rng, self.ty
        bound_roll = rng.random()
        # with a loop-bound input, two or more arrays: the harness calls a kernel degenerate when half of
        # its inputs do not matter, and a re-drawn trip count can equal the old one
        n_in = int(rng.integers(1, 4)) if bound_roll >= 0.5 else int(rng.integers(2, 4))
        self.inputs = pick(rng, ARRAY_NAMES, n_in)
        self.in_lo, self.in_hi = (-20, 20) if self.is_int else pick(rng, ((-2.0, 2.0), (-1.0, 3.0), (0.5, 4.0)))
        self.in_mag = max(abs(self.in_lo), abs(self.in_hi))
        self.args = [Arg(n, ty.name, "in", (N,), self.in_lo, self.in_hi) for n in self.inputs]
        self.loads: list[tuple[str, str]] = []       # (leaf name, array)
        leaves: dict[str, Interval] = {}
        inline = rng.random() < 0.35
        for n in self.inputs:
            if inline:
                leaf = f"{n}[i]"
            else:
                leaf = f"{n}_v" if rng.random() < 0.5 else f"x{n}"
                self.loads.append((leaf, n))
            leaves[leaf] = Interval(self.in_lo, self.in_hi)
        self.input_leaves = list(leaves)
        self.scalar_f = None
        if rng.random() < 0.3:
            self.scalar_f = pick(rng, FLOAT_SCALARS)
            lo, hi = (1, 5) if self.is_int else (0.5, 2.0)
            self.args.append(Arg(self.scalar_f, ty.name, "scalar", (), lo, hi))
            leaves[self.scalar_f] = Interval(lo, hi)
        self.scalar_n = self.count_arr = None
        self.bound_used = False
        if bound_roll < 0.35:
            self.scalar_n = pick(rng, INT_SCALARS)
            self.n_lo = int(rng.integers(1, 3))
            self.n_hi = int(rng.integers(5, 9))
            self.args.append(Arg(self.scalar_n, "int32", "scalar", (), self.n_lo, self.n_hi))
        elif bound_roll < 0.5:
            self.count_arr = pick(rng, COUNT_ARRAYS)
            self.c_hi = int(rng.integers(3, 7))
            self.args.append(Arg(self.count_arr, "int32", "in", (N,), 0, self.c_hi))
        self.names_used.update(a.name for a in self.args)
        self.names_used.update(leaf for leaf, _ in self.loads)
        binary = ("add", "sub", "mul", "div", "min", "max") + (("mod", "floordiv") if self.is_int else ())
        self.gen = CfGen(rng, self.ty, leaves, binary=binary, p_const=0.2)
        self.gen.dep = None if self.is_int else set(leaves)
        self.gen.hint_env = self.hint_env
        self.gen.anc_of = None if self.is_int else self.anc_of

    # -------------------------------------------------------------------------------------------- expressions
    @property
    def leaves(self) -> dict[str, Interval]:
        return self.gen.leaves

    def add_leaf(self, name: str, iv: Interval, dep: bool = True):
        self.leaves[name] = iv
        if dep and self.gen.dep is not None:
            self.gen.dep.add(name)

    def anc_of(self, node: E.Node) -> set:
        """The inputs (array loads, float scalar) whose values ``node`` derives from."""
        out: set[str] = set()
        for v in E.uses(node):
            if v not in self.exact:
                out |= self.anc.get(v, {v})
        return out

    def derive(self, name: str, node: E.Node):
        self.anc[name] = self.anc.get(name, set()) | self.anc_of(node)

    def expr(self, depth: int, must_use: str | None = None, no_state: bool = False) -> E.Node:
        if no_state:
            hidden = {s: self.leaves.pop(s) for s in self.state if s in self.leaves}
            try:
                return self.expr(depth, must_use)
            finally:
                self.leaves.update(hidden)
        node = self.gen.expr(depth)
        if node.op == "const":
            node = self.gen.apply_binary(pick(self.rng, ("add", "mul", "sub")), self.gen.dep_leaf(), node)
        if self.gen.dep is not None and not (E.uses(node) & self.gen.dep):
            node = self.gen.apply_binary("add", node, self.gen.dep_leaf())
        if must_use and must_use not in E.uses(node):
            ops = tuple(op for op in ("add", "sub", "mul", "max", "min") if op in self.gen.binary)
            node = self.gen.apply_binary(pick(self.rng, ops), E.var(must_use, self.leaves[must_use]), node)
        return node

    def with_index(self, node: E.Node) -> E.Node:
        """Bring a loop variable into ``node`` (floats: as a factor or divisor, so the value stays
        input-derived and every comparison involving it moves with the inputs)."""
        if not self.exact or self.rng.random() < 0.4:
            return node
        leaf = pick(self.rng, list(self.exact))
        iv = self.exact[leaf]
        v = E.var(leaf, iv)
        if self.is_int:
            ops = ("add", "sub", "mul") if iv.hi <= 4 else ("add", "sub")
            return self.gen.apply_binary(pick(self.rng, ops), node, v)
        if iv.lo < 0 or (iv.hi <= 4 and self.rng.random() < 0.5):
            prod = E._iv_binary("mul", node.iv, iv)
            return E.Node("mul", (node, v), iv=prod) if prod.mag <= E.FLOAT_LIMIT else node
        c = float(pick(self.rng, (1.0, 2.0, 0.5)))
        den = E.Node("add", (v, E.const(c)), iv=Interval(iv.lo + c, iv.hi + c))
        return E.Node("div", (node, den), iv=E._iv_binary("div", node.iv, den.iv))

    def compare(self) -> E.Node:
        rng = self.rng
        if rng.random() < 0.55:
            candidates = [n for n, iv in self.leaves.items() if (self.gen.dep is None or n in self.gen.dep)
                          and iv.hi > iv.lo] or self.input_leaves
            name = pick(rng, candidates)
            lhs = E.var(name, self.leaves[name])
            if rng.random() < 0.4:
                lhs = self.gen.apply_binary(pick(rng, ("add", "sub", "mul", "max", "min")), lhs, self.gen.expr(1))
            return E.Node(pick(rng, ("lt", "le", "gt", "ge")), (lhs, self.gen.threshold(lhs)))
        return self.gen.condition(int(rng.integers(1, 3)))

    def hint_env(self) -> dict:
        """Likely ranges for thresholds: inside loops, state variables near their entry values."""
        return self.typical

    def index_test(self, late: bool = False) -> E.Node:
        """An exact test of a loop variable; ``late`` ones hold only after the first iteration (for a
        ``break``, which would otherwise end the loop before it did anything)."""
        rng = self.rng
        v = self.loop_var_stack[-1] if late else pick(rng, self.loop_var_stack)
        lo, hi = int(self.loop_iv[v].lo), int(self.loop_iv[v].hi)
        if not late and (rng.random() < 0.4 or hi - lo < 2):
            m = int(pick(rng, (2, 2, 3)))
            return E.Node("idx", value=(v, "mod", m, int(rng.integers(0, m))))
        if not late:
            op = pick(rng, ("lt", "ge", "eq", "ne", "gt", "le"))
            return E.Node("idx", value=(v, op, int(rng.integers(lo + 1, hi)), None))
        # false on the first iteration (lo or hi, by direction), true on a later one
        op = pick(rng, ("ge", "gt", "eq"))
        if self.loop_dir[v] > 0:
            c = int(rng.integers(lo, hi)) if op == "gt" else int(rng.integers(lo + 1, hi + 1))
        else:
            op = {"ge": "le", "gt": "lt", "eq": "eq"}[op]
            c = int(rng.integers(lo + 1, hi + 1)) if op == "lt" else int(rng.integers(lo, hi))
        return E.Node("idx", value=(v, op, c, None))

    def condition(self, allow_index: bool = True, late: bool = False) -> E.Node:
        for _ in range(4):
            cond = self.condition_once(allow_index, late)
            if self.splits(cond):
                break
        return cond

    def condition_once(self, allow_index: bool, late: bool) -> E.Node:
        rng = self.rng
        if allow_index and self.loop_var_stack and rng.random() < 0.3:
            node = self.index_test(late)
            if rng.random() < 0.5:
                node = E.Node(pick(rng, ("and", "or")), (node, self.compare()))
        else:
            node = self.compare()
            if rng.random() < 0.25:
                node = E.Node(pick(rng, ("and", "or")), (node, self.compare()))
        if rng.random() < 0.15 and not (late and node.op in ("idx", "and")):
            node = E.Node("not", (node,))
        return node

    # -------------------------------------------------------------------------------------------- statements
    def declare(self) -> Assign:
        rng = self.rng
        name = self.fresh(pick(rng, LOCAL_NAMES))
        if rng.random() < 0.5:
            value = int(pick(rng, (0, 0, 1, -1, 2))) if self.is_int else float(pick(rng, (0.0, 0.0, 1.0, -1.0, 0.5)))
            node = E.const(value, Interval(self.ty.const_value(value), self.ty.const_value(value)))
        else:
            for _ in range(4):
                node = self.expr(int(rng.integers(1, 3)))
                if (node.op != "var" or node.value in self.input_leaves) and self.varies(node, False):
                    break
        self.add_leaf(name, node.iv)
        self.derive(name, node)
        self.state.append(name)
        self.lines += 1
        return Assign(name, node, decl=True)

    def target(self) -> str:
        fresh = [s for s in self.state if s not in self.updated]
        if fresh and self.rng.random() < 0.8:
            return pick(self.rng, fresh)
        return pick(self.rng, self.state)

    def update(self, must_use: str | None = None) -> Assign:
        s = self.target()
        self.updated.add(s)
        for _ in range(4):
            node, aug = self.update_value(s, must_use)
            if self.varies(node, False) and (must_use is None or must_use in E.uses(node)):
                break
        self.lines += 1
        self.mark(node)
        self.derive(s, node)
        if self.loop_depth:
            return Assign(s, node, aug=aug, bound=self.bounds[s])
        self.leaves[s] = node.iv
        return Assign(s, node, aug=aug)

    def mark(self, node: E.Node):
        mark_static(node, set(self.state) | self.temp_names | set(self.exact), self.static)

    def update_value(self, s: str, must_use: str | None):
        rng = self.rng
        sv = E.var(s, self.leaves[s])
        roll = rng.random()
        aug = False
        in_loop = self.loop_depth > 0
        no_state = in_loop and rng.random() < 0.6
        if must_use is not None:                                # fold a temp into the state
            term = self.with_index(self.expr(int(rng.integers(0, 2)), must_use=must_use))
            node = self.gen.apply_binary(pick(rng, ("add", "add", "sub", "max", "min")), sv, term)
            aug = node.op in ("add", "sub") and rng.random() < 0.5
        elif roll < 0.4:                                        # accumulate
            term = self.with_index(self.expr(int(rng.integers(1, 3)), no_state=no_state))
            node = self.gen.apply_binary(pick(rng, ("add", "add", "sub")), sv, term)
            aug = rng.random() < 0.5
        elif roll < 0.55:                                       # running extremum
            term = self.with_index(self.expr(int(rng.integers(1, 3)), no_state=no_state))
            node = self.gen.apply_binary(pick(rng, ("max", "min")), sv, term)
        elif roll < 0.75:                                       # decay / bounded recurrence
            term = self.with_index(self.expr(1, no_state=no_state))
            node = self.gen.recurrence(sv, term, 0.2)
        else:                                                   # general expression of the state
            node = self.expr(int(rng.integers(1, 3 if in_loop else 4)), must_use=s)
        if node.op == "var" and node.value == s:
            node = self.gen.apply_binary("add", sv, self.expr(1))
        return node, aug

    def temp_and_use(self, stmts: list, temps: list):
        """``t = expr`` followed by an update folding ``t`` into the state."""
        name = self.fresh(pick(self.rng, TEMP_NAMES))
        for _ in range(4):
            node = self.with_index(self.expr(int(self.rng.integers(1, 3))))
            if node.op != "var" and self.varies(node, False):
                break
        self.temp_names.add(name)
        self.mark(node)
        self.derive(name, node)
        self.add_leaf(name, node.iv)
        update = self.update(must_use=name)
        if name in E.uses(update.node):
            self.lines += 1
            stmts.append(Assign(name, node))
            temps.append(name)
        else:                       # the interval rules dropped it (overflow guard): no dead temp
            self.leaves.pop(name)
        stmts.append(update)

    def block(self, depth: int, n: int, in_loop: bool) -> list:
        """``n`` statements at nesting ``depth``; temps defined here are dropped from the leaves after."""
        rng = self.rng
        self.max_depth = max(self.max_depth, depth)
        stmts: list = []
        temps: list = []
        jumps = 0
        for _ in range(n):
            room = min(MAX_LINES, self.limit) - self.lines
            kinds = ["update", "update", "update"]
            if room > 3:
                kinds.append("temp")
            if depth < 3 and room > 4:
                kinds += ["if", "if"]
            if depth < 3 and room > 5 and self.loop_depth < 2:
                kinds.append("for")
                if self.loop_depth == 0:
                    kinds.append("while")
            if in_loop and jumps == 0 and room > 2:
                kinds.append("jump")
            kind = pick(rng, kinds)
            if kind == "update":
                stmts.append(self.update())
            elif kind == "temp":
                self.temp_and_use(stmts, temps)
            elif kind == "if":
                stmts.append(self.if_chain(depth, in_loop))
            elif kind == "for":
                stmts.append(self.for_loop(depth))
            elif kind == "while":
                stmts.append(self.while_loop(depth))
            else:
                jumps += 1
                stmts.append(self.jump())
        if not any(isinstance(s, Assign) and s.name in self.state for s in stmts):
            stmts.append(self.update())
        for t in temps:
            self.leaves.pop(t, None)
        return stmts

    def jump(self) -> Jump:
        kind = "break" if self.rng.random() < 0.5 else "continue"
        self.lines += 2
        return Jump(kind, self.condition(late=kind == "break"))

    def if_chain(self, depth: int, in_loop: bool) -> If:
        rng = self.rng
        n_elif = int(rng.choice([0, 0, 1, 1, 2])) if self.lines < min(MAX_LINES, self.limit) - 8 else 0
        before = dict(self.leaves)
        outs = []
        branches = []
        for _ in range(1 + n_elif):
            self.leaves.clear()
            self.leaves.update(before)
            cond = self.condition()
            self.lines += 1
            branches.append((cond, self.block(depth + 1, int(rng.integers(1, 3)), in_loop)))
            outs.append(dict(self.leaves))
        orelse = None
        if rng.random() < 0.55:
            self.leaves.clear()
            self.leaves.update(before)
            self.lines += 1
            orelse = self.block(depth + 1, int(rng.integers(1, 3)), in_loop)
            outs.append(dict(self.leaves))
        else:
            outs.append(before)
        self.leaves.clear()
        for k in before:
            lo = min(o[k].lo for o in outs)
            hi = max(o[k].hi for o in outs)
            self.leaves[k] = Interval(lo, hi)
        return If(branches, orelse)

    def enter_loop(self):
        """Widen every state variable to its loop bound; returns what ``exit_loop`` needs."""
        top = self.loop_depth == 0
        saved = dict(self.leaves)
        if top:
            self.bounds = {}
        for s in self.state:
            if s not in self.bounds:
                cur = self.leaves[s]
                if self.is_int:
                    L = float(pick(self.rng, (256, 1000, 4096, 10000)))
                else:
                    L = float(pick(self.rng, (64.0, 100.0, 256.0, 1000.0)))
                L = float(math.ceil(max(L, 2 * cur.mag)))
                self.bounds[s] = Interval(-L, L)
            self.leaves[s] = self.bounds[s]
        self.loop_depth += 1
        return top, saved

    def exit_loop(self, loop, top, saved, leaves_added):
        self.loop_depth -= 1
        for leaf in leaves_added:
            self.leaves.pop(leaf, None)
            self.exact.pop(leaf, None)
        if not top:
            return
        # Abstract interpretation from the real entry state over the maximal trip counts. While every state
        # variable stays inside its bound, the generation-time intervals hold; clamp, one at a time, the
        # assignment that overshoots most until none can leave its bound.
        entry = {s: (saved[s].lo, saved[s].hi) for s in self.state}
        for _ in range(64):
            viol: dict = {"eager": True}
            try:
                out = absint([loop], dict(entry), viol, None, self.is_int, static=self.static)
            except _Overshoot as stop:
                a = stop.assign
            else:
                del viol["eager"]
                if not viol:
                    break
                cands = [(over, a) for a, over in viol.values() if a.clamp != "both"]
                if not cands:
                    raise RuntimeError("clamp fixing did not converge")
                _, a = max(cands, key=lambda t: t[0])
            a.clamp = _clamp_mode(a)
        else:
            raise RuntimeError("clamp fixing did not converge")
        self.leaves.clear()
        self.leaves.update(saved)
        for s in self.state:
            self.leaves[s] = Interval(*out[s])

    def loop_leaves(self, v: str, iv: Interval, unrolled: bool, direction: int = 1) -> list[str]:
        leaf = self.index_leaf(v, unrolled)
        self.loop_dir[v] = direction
        self.loop_iv[v] = iv
        self.exact[leaf] = iv
        if self.is_int:
            self.leaves[leaf] = iv
        return [leaf]

    def for_loop(self, depth: int) -> For:
        rng = self.rng
        var = next(v for v in LOOP_VARS if v not in self.loop_var_stack)
        nested = self.loop_depth > 0
        options = ["const", "const"]
        if self.scalar_n and not nested:
            options += ["scalar", "scalar"]
        if self.count_arr and not nested:
            options += ["array", "array"]
        kind = pick(rng, options)
        if not nested and self.unused_bound():
            kind = "scalar" if self.scalar_n else "array"
        if kind == "const":
            K = int(rng.integers(2, (4 if nested else 8) + 1))
            form = pick(rng, ("plain", "plain", "plain", "offset", "reverse", "step"))
            if form == "offset":
                start = int(rng.integers(1, 3))
                loop = For(var, kind, start, start + K, 1)
            elif form == "reverse":
                loop = For(var, kind, K - 1, -1, -1)
            elif form == "step":
                step = int(rng.integers(2, 4))
                loop = For(var, kind, 0, K * step, step)
            else:
                loop = For(var, kind, 0, K, 1)
            seq = range(loop.start, loop.stop, loop.step)
            loop.trip = len(seq)
            loop.ivar = Interval(min(seq), max(seq))
        elif kind == "scalar":
            start = int(pick(rng, (0, 0, 0, 1)))
            loop = For(var, kind, start, self.scalar_n, 1)
            loop.trip = max(0, self.n_hi - start)
            loop.ivar = Interval(start, max(start, self.n_hi - 1))
        else:
            loop = For(var, kind, 0, self.count_arr, 1)
            loop.trip = self.c_hi
            loop.ivar = Interval(0, max(0, self.c_hi - 1))
        if kind != "const":
            self.bound_used = True
            self.static_only = False
        self.lines += 1
        top, saved = self.enter_loop()
        added = self.loop_leaves(var, Interval(float(loop.ivar.lo), float(loop.ivar.hi)), kind == "const",
                                 1 if loop.step > 0 else -1)
        loop.leaves = tuple(added)
        if rng.random() < 0.35:
            arr = pick(rng, self.inputs)
            mult = int(pick(rng, (1, 1, 2)))
            add = int(pick(rng, (0, 0, 1, 3)))
            idx = f"i + {var}" if mult == 1 else f"i + {mult} * {var}"
            if add:
                idx += f" + {add}"
            leaf = f"{arr}[({idx}) % {N}]"
            self.add_leaf(leaf, Interval(self.in_lo, self.in_hi))
            self.anc[leaf] = {self.input_leaves[self.inputs.index(arr)]}
            loop.gathers.append((leaf, arr, mult, add))
            added.append(leaf)
        self.loop_var_stack.append(var)
        saved_limit, saved_unroll = self.limit, self.unroll
        if kind == "const":
            # Warp unrolls a constant range (up to max_unroll = 16 trips): keep trips x body lines moderate
            self.unroll *= loop.trip
            self.limit = min(self.limit, self.lines + max(3, UNROLLED_LINES // self.unroll))
        loop.body = self.block(depth + 1, int(rng.integers(1, 4)), True)
        self.limit, self.unroll = saved_limit, saved_unroll
        if loop.gathers and not any(loop.gathers[0][0] in _stmt_uses(s) for s in loop.body):
            loop.body.append(self.update_using(loop.gathers[0][0]))
        self.loop_var_stack.pop()
        if any(isinstance(s, Jump) and s.kind == "break" for s in _walk_same_loop(loop.body)):
            self.static_only = False
        self.exit_loop(loop, top, saved, added)
        return loop

    def unused_bound(self) -> bool:
        return bool(self.scalar_n or self.count_arr) and not self.bound_used

    def update_using(self, leaf: str) -> Assign:
        s = self.target()
        self.updated.add(s)
        sv = E.var(s, self.leaves[s])
        node = self.gen.apply_binary(pick(self.rng, ("add", "add", "sub", "max")), sv, E.var(leaf, self.leaves[leaf]))
        self.lines += 1
        self.mark(node)
        self.derive(s, node)
        return Assign(s, node, aug=self.rng.random() < 0.5, bound=self.bounds[s])

    def while_loop(self, depth: int) -> While:
        rng = self.rng
        counter = next(c for c in COUNTERS if c not in self.names_used)
        self.names_used.add(counter)
        if self.scalar_n and (rng.random() < 0.5 or not self.bound_used):
            self.bound_used = True
            loop = While(counter, self.scalar_n, rng.random() < 0.35, self.n_hi)
        else:
            K = int(rng.integers(2, 9))
            loop = While(counter, K, rng.random() < 0.35, K)
        loop.aug = rng.random() < 0.5
        self.static_only = False
        self.lines += 3
        top, saved = self.enter_loop()
        if rng.random() < 0.45:        # before the counter is a leaf: the test runs before the increment
            loop.extra = self.condition(allow_index=False)
            loop.extra_first = rng.random() < 0.3
        iv = Interval(0.0, float(loop.trip - 1)) if loop.down else Interval(1.0, float(loop.trip))
        added = self.loop_leaves(counter, iv, False, -1 if loop.down else 1)
        loop.leaves = tuple(added)
        self.loop_var_stack.append(counter)
        loop.body = self.block(depth + 1, int(rng.integers(1, 4)), True)
        self.loop_var_stack.pop()
        self.exit_loop(loop, top, saved, added)
        return loop

    # -------------------------------------------------------------------------------------------- program
    def build(self) -> Program:
        rng = self.rng
        self.setup()
        stmts: list = []
        n_top = int(rng.choice([1, 2, 2, 3]))
        had_flow = False          # a loop or an if: every kernel has some control flow
        for t in range(6):
            done = t >= n_top and had_flow and self.lines >= 7
            if done or (self.lines > MAX_LINES - 6 and had_flow):
                break
            self.track(stmts)
            if t == 0 or rng.random() < (0.5 if t == 1 else 0.35):
                stmts.append(self.declare())
                if t == 0 and rng.random() < 0.4:
                    stmts.append(self.declare())
                self.track(stmts)
            roll = rng.random()
            last = t >= n_top - 1 or self.lines > MAX_LINES - 12
            if (last and self.unused_bound()) or roll < 0.45 or (last and not had_flow and roll < 0.9):
                stmts.append(self.for_loop(1))
            elif roll < 0.65:
                stmts.append(self.while_loop(1))
            elif roll < 0.9 or (last and not had_flow):
                stmts.append(self.if_chain(1, False))
            elif rng.random() < 0.5:
                self.temp_and_use(stmts, [])
                continue
            else:
                stmts.append(self.update())
                continue
            had_flow = True
        return self.finish(stmts)

    def varies(self, node: E.Node, not_input: bool = True) -> bool:
        """False when ``node`` is (numerically) a constant or a bare input: evaluated at random points
        of its leaves' ranges, the value never changes or always equals one leaf."""
        occ: list[str] = []
        _var_occurrences(node, occ)
        if not occ:
            return False
        if not not_input and len(set(occ)) == len(occ) and not _has_zero(node):
            return True          # every leaf read once: only saturating min/max could make it constant
        names = sorted(set(occ))
        env = self.sample_env(names, 16, typical=False)
        with np.errstate(all="ignore"):
            value = np.broadcast_to(E.evaluate(node, env, self.ty), (16,))
        if np.all(value == value[0]):
            return False
        return not not_input or not any(np.array_equal(value, env[v]) for v in names if v in self.input_leaves)

    def sample_env(self, names, n: int, typical: bool) -> dict:
        """Random values for ``names``: uniform over their generation intervals, or over their typical
        ranges (``typical``); loop variables take integer values."""
        env = {}
        rng = self.rng
        for v in names:
            if v in self.loop_iv:                       # a loop variable in an exact index test
                iv = self.loop_iv[v]
                env[v] = rng.integers(int(iv.lo), int(iv.hi) + 1, size=n).astype(np.int64)
                continue
            if v in self.exact:
                iv = self.exact[v]
                vals = rng.integers(int(iv.lo), int(iv.hi) + 1, size=n)
                env[v] = vals.astype(np.int64) if self.is_int else vals.astype(np.float64)
                continue
            t = self.typical.get(v) if typical else None
            lo, hi = t if t is not None else (self.leaves[v].lo, self.leaves[v].hi)
            lo, hi = max(lo, -1e4), min(hi, 1e4)
            if self.is_int:
                env[v] = rng.integers(int(math.floor(lo)), int(math.floor(hi)) + 1, size=n).astype(np.int64)
            else:
                env[v] = rng.uniform(lo, hi, size=n) if hi > lo else np.full(n, lo)
        return env

    def splits(self, cond: E.Node) -> bool:
        """Whether ``cond`` is sometimes true and sometimes false over typical values (a heuristic: it
        ignores correlations between variables, but catches thresholds out of reach)."""
        names = sorted(cond_uses_all(cond))
        env = self.sample_env(names, 48, typical=True)
        with np.errstate(all="ignore"):
            c = np.broadcast_to(eval_cond(cond, env, self.ty), (48,))
        return bool(c.any() and not c.all())

    def track(self, stmts):
        """Typical ranges after the top-level statements not yet tracked: two iterations of every loop."""
        new = stmts[self.tracked:]
        self.tracked = len(stmts)
        if new:
            out = absint(new, dict(self.typical), {}, None, self.is_int, iters=2, static=self.static)
            self.typical = {k: v for k, v in out.items() if k in self.leaves}

    def finish(self, stmts) -> Program:
        rng, ty = self.rng, self.ty
        outs = pick(rng, OUT_NAMES, int(rng.choice([1, 1, 2])))
        # no min/max in the read-out: against a constant they saturate into constant outputs
        self.gen.binary = tuple(op for op in self.gen.binary if op not in ("min", "max"))
        self.gen.selects = False
        out_nodes = []
        for k, o in enumerate(outs):
            focus = self.state[-1 - k] if k < len(self.state) else pick(rng, self.state)
            for _ in range(8):
                node = self.expr(int(rng.integers(1, 3)), must_use=focus)
                if self.varies(node):
                    break
            out_nodes.append((o, node))
        # fold state variables, temps and inputs that reach no output into the first output
        live = _live(stmts, out_nodes)
        pool = self.state + self.input_leaves + ([self.scalar_f] if self.scalar_f else [])
        pool += [s.name for s in stmts if isinstance(s, Assign) and s.name not in self.state]
        missing = [v for v in pool if v not in live and v in self.leaves]
        o, node = out_nodes[0]
        for v in missing:
            node = self.gen.apply_binary(pick(rng, ("add", "sub", "mul")), node, E.var(v, self.leaves[v]))
        out_nodes[0] = (o, node)
        out_if = None
        if rng.random() < 0.2:
            cond = self.condition(allow_index=False)
            alt = []
            for o, n in out_nodes:
                others = [v for v in self.input_leaves if v not in E.uses(n)] or self.input_leaves
                v = pick(rng, others)
                alt.append((o, self.gen.apply_binary(pick(rng, ("add", "sub", "mul")), n, E.var(v, self.leaves[v]))))
            out_if = (cond, out_nodes, alt)
        for o in outs:
            self.args.append(Arg(o, ty.name, "out", (N,)))
        body = self.emit(stmts, out_nodes, out_if)
        meta = {"ty": ty.name, "loads": self.loads, "inputs": self.inputs, "stmts": stmts, "outputs": out_nodes,
                "out_if": out_if, "scalar_f": self.scalar_f, "scalar_n": self.scalar_n, "count_arr": self.count_arr}
        counts = _features(stmts, out_if)
        features = {"dtype": ty.name, "max_depth": self.max_depth, "lines": len(body) + 1,
                    "constructs": sorted(counts), **counts}
        return Program(kernel_source(self.args, body), tuple(self.args), (N,), meta, features,
                       differentiable=not self.is_int and self.static_only)

    # -------------------------------------------------------------------------------------------- emission
    def emit(self, stmts, out_nodes, out_if) -> list[str]:
        ty = self.ty
        lines = [f"{leaf} = {arr}[i]" for leaf, arr in self.loads]
        self.emit_block(stmts, lines, "")
        if out_if is None:
            lines += [f"{o}[i] = {strip_parens(E.emit(n, ty))}" for o, n in out_nodes]
        else:
            cond, a, b = out_if
            lines.append(f"if {emit_cond(cond, ty)}:")
            lines += [f"    {o}[i] = {strip_parens(E.emit(n, ty))}" for o, n in a]
            lines.append("else:")
            lines += [f"    {o}[i] = {strip_parens(E.emit(n, ty))}" for o, n in b]
        return lines

    def emit_block(self, stmts, lines, ind):
        ty = self.ty
        for s in stmts:
            if isinstance(s, Assign):
                lines.append(ind + self.emit_assign(s))
            elif isinstance(s, If):
                for b, (cond, body) in enumerate(s.branches):
                    lines.append(f"{ind}{'if' if b == 0 else 'elif'} {emit_cond(cond, ty)}:")
                    self.emit_block(body, lines, ind + "    ")
                if s.orelse:
                    lines.append(f"{ind}else:")
                    self.emit_block(s.orelse, lines, ind + "    ")
            elif isinstance(s, Jump):
                lines.append(f"{ind}if {emit_cond(s.cond, ty)}:")
                lines.append(f"{ind}    {s.kind}")
            elif isinstance(s, For):
                if s.kind == "array":
                    stop = f"{s.stop}[i]"
                else:
                    stop = str(s.stop)
                if s.step != 1:
                    rng_text = f"range({s.start}, {stop}, {s.step})"
                elif s.start != 0:
                    rng_text = f"range({s.start}, {stop})"
                else:
                    rng_text = f"range({stop})"
                lines.append(f"{ind}for {s.var} in {rng_text}:")
                self.emit_block(s.body, lines, ind + "    ")
            elif isinstance(s, While):
                c = s.counter
                if s.down:
                    lines.append(f"{ind}{c} = int({s.limit})")
                    test = f"{c} > 0"
                    step = f"{c} -= 1" if s.aug else f"{c} = {c} - 1"
                else:
                    lines.append(f"{ind}{c} = int(0)")
                    test = f"{c} < {s.limit}"
                    step = f"{c} += 1" if s.aug else f"{c} = {c} + 1"
                if s.extra is not None:
                    extra = emit_cond(s.extra, ty)
                    test = f"({extra}) and {test}" if s.extra_first else f"{test} and ({extra})"
                lines.append(f"{ind}while {test}:")
                lines.append(f"{ind}    {step}")
                self.emit_block(s.body, lines, ind + "    ")

    def emit_assign(self, s: Assign) -> str:
        ty = self.ty
        node = s.value()
        if s.decl and node.op == "const":
            cast = {"float32": "float", "float64": "wp.float64", "int32": "int"}[ty.name]
            value = int(node.value) if ty.is_int else float(node.value)
            return f"{s.name} = {cast}({value!r})"
        if s.clamp is None and s.aug and node.op in ("add", "sub") and node.args[0].op == "var" \
                and node.args[0].value == s.name:
            return f"{s.name} {'+=' if node.op == 'add' else '-='} {strip_parens(E.emit(node.args[1], ty))}"
        return f"{s.name} = {strip_parens(E.emit(node, ty))}"


def _features(stmts, out_if) -> dict[str, int]:
    """Counts of the control-flow constructs in the final program (zero counts left out)."""
    c: dict[str, int] = {}

    def bump(key, n=1):
        if n:
            c[key] = c.get(key, 0) + n

    def cond(node):
        ops = set()
        _cond_ops(node, ops)
        bump("and_or_not", int(bool(ops & {"and", "or", "not"})))
        bump("index_test", int("idx" in ops))

    def walk(block, loops):
        for s in block:
            if isinstance(s, Assign):
                bump("clamp", int(s.clamp is not None))
            elif isinstance(s, If):
                bump("if")
                bump("elif", len(s.branches) - 1)
                bump("else", int(bool(s.orelse)))
                for k, body in s.branches:
                    cond(k)
                    walk(body, loops)
                walk(s.orelse or (), loops)
            elif isinstance(s, Jump):
                bump(s.kind)
                cond(s.cond)
            elif isinstance(s, (For, While)):
                bump("nested_loop", int(loops > 0))
                if isinstance(s, For):
                    bump(f"for_{s.kind}")
                    bump("for_step", int(s.kind == "const" and (s.start != 0 or s.step != 1)))
                    bump("gather", len(s.gathers))
                else:
                    bump("while")
                    bump("while_data_exit", int(s.extra is not None))
                    if s.extra is not None:
                        cond(s.extra)
                walk(s.body, loops + 1)

    walk(stmts, 0)
    if out_if is not None:
        bump("if")
        bump("else")
        cond(out_if[0])
    return c


def _cond_ops(node: E.Node, out: set):
    out.add(node.op)
    if node.op in ("and", "or", "not"):
        for child in node.args:
            _cond_ops(child, out)


def _var_occurrences(node: E.Node, out: list):
    if node.op == "var":
        out.append(node.value)
    for child in node.args:
        _var_occurrences(child, out)


def _has_zero(node: E.Node) -> bool:
    if node.op == "const":
        return node.value == 0
    return any(_has_zero(child) for child in node.args)


def _walk_same_loop(stmts):
    """Statements of a loop body, descending into ifs but not into nested loops."""
    for s in stmts:
        yield s
        if isinstance(s, If):
            for _, body in s.branches:
                yield from _walk_same_loop(body)
            if s.orelse:
                yield from _walk_same_loop(s.orelse)


def _stmt_uses(s) -> set[str]:
    if isinstance(s, Assign):
        return E.uses(s.node)
    if isinstance(s, Jump):
        return cond_uses(s.cond)
    out: set[str] = set()
    if isinstance(s, If):
        for c, body in s.branches:
            out |= cond_uses(c)
            for t in body:
                out |= _stmt_uses(t)
        for t in s.orelse or ():
            out |= _stmt_uses(t)
    elif isinstance(s, (For, While)):
        if isinstance(s, While) and s.extra is not None:
            out |= cond_uses(s.extra)
        for t in s.body:
            out |= _stmt_uses(t)
    return out


def _live(stmts, out_nodes) -> set[str]:
    """Names whose values flow into an output through assignments (data flow only: a variable that merely
    steers a branch is folded into an output too, so that the outputs see it directly)."""
    deps: dict[str, set[str]] = {}

    def walk(block):
        for s in block:
            if isinstance(s, Assign):
                deps.setdefault(s.name, set()).update(E.uses(s.node))
            elif isinstance(s, If):
                for _, body in s.branches:
                    walk(body)
                walk(s.orelse or ())
            elif isinstance(s, (For, While)):
                walk(s.body)

    walk(stmts)
    roots: set[str] = set()
    for _, node in out_nodes:
        roots |= E.uses(node)
    return E.reachable(deps, roots)


def generate(rng: np.random.Generator) -> Program:
    return Builder(rng).build()


# ------------------------------------------------------------------------------------------------------
# Reference: the AST interpreted over all elements at once


class _Frame:
    __slots__ = ("broken", "cont")

    def __init__(self):
        self.broken = np.zeros(N, dtype=bool)
        self.cont = np.zeros(N, dtype=bool)


class _Interp:
    def __init__(self, meta, inputs):
        self.ty = E.SCALARS[meta["ty"]]
        self.is_int = self.ty.is_int
        self.idx = np.arange(N)
        env: dict = {}
        self.arrays = {}
        for n in meta["inputs"]:
            value = inputs[n].astype(self.ty.np_ref)
            self.arrays[n] = value
            env[f"{n}[i]"] = value
        for leaf, arr in meta["loads"]:
            env[leaf] = self.arrays[arr]
        if meta["scalar_f"]:
            env[meta["scalar_f"]] = np.asarray(inputs[meta["scalar_f"]], dtype=self.ty.np_ref)
        self.n = int(inputs[meta["scalar_n"]]) if meta["scalar_n"] else None
        self.cnt = inputs[meta["count_arr"]].astype(np.int64) if meta["count_arr"] else None
        self.env = env

    def set_index(self, v: str, value):
        env = self.env
        env[v] = value
        if not self.is_int:
            f = np.asarray(value, dtype=np.float64)
            env[f"float({v})"] = f
            env[f"wp.float64({v})"] = f
            env[f"wp.float64(float({v}))"] = f

    def assign(self, name, value, live):
        value = np.broadcast_to(np.asarray(value, dtype=self.ty.np_ref), (N,))
        old = self.env.get(name)
        self.env[name] = value.copy() if old is None else np.where(live, value, old)

    def block(self, stmts, mask, frame):
        ty, env = self.ty, self.env
        for s in stmts:
            live = mask if frame is None else mask & ~(frame.broken | frame.cont)
            if not live.any():
                return
            if isinstance(s, Assign):
                self.assign(s.name, E.evaluate(s.value(), env, ty), live)
            elif isinstance(s, If):
                remaining = live
                for cond, body in s.branches:
                    c = eval_cond(cond, env, ty)
                    self.block(body, remaining & c, frame)
                    remaining = remaining & ~c
                if s.orelse:
                    self.block(s.orelse, remaining, frame)
            elif isinstance(s, Jump):
                c = live & eval_cond(s.cond, env, ty)
                if s.kind == "break":
                    frame.broken |= c
                else:
                    frame.cont |= c
            elif isinstance(s, For):
                self.for_loop(s, live)
            elif isinstance(s, While):
                self.while_loop(s, live)

    def for_loop(self, s: For, live):
        if s.kind == "const":
            seq = range(s.start, s.stop, s.step)
        elif s.kind == "scalar":
            seq = range(s.start, self.n, s.step)
        else:
            seq = range(0, int(self.cnt.max(initial=0)), 1)
        frame = _Frame()
        for j in seq:
            it = live & ~frame.broken
            if s.kind == "array":
                it = it & (j < self.cnt)
            if not it.any():
                break
            frame.cont[:] = False
            self.set_index(s.var, j)
            for leaf, arr, mult, add in s.gathers:
                self.env[leaf] = self.arrays[arr][(self.idx + mult * j + add) % N]
            self.block(s.body, it, frame)

    def while_loop(self, s: While, live):
        c = s.counter
        limit = s.limit if isinstance(s.limit, int) else self.n
        self.set_index(c, np.full(N, limit if s.down else 0, dtype=np.int64))
        frame = _Frame()
        exited = np.zeros(N, dtype=bool)
        for _ in range(s.trip + 1):
            w = self.env[c]
            go = (w > 0) if s.down else (w < limit)
            if s.extra is not None:
                go = go & eval_cond(s.extra, self.env, self.ty)
            exited |= ~go
            it = live & ~frame.broken & ~exited
            if not it.any():
                return
            frame.cont[:] = False
            self.set_index(c, np.where(it, w - 1 if s.down else w + 1, w))
            self.block(s.body, it, frame)
        raise AssertionError("while loop ran past its trip bound")


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    meta = spec.meta
    with np.errstate(all="ignore"):
        interp = _Interp(meta, inputs)
        interp.block(meta["stmts"], np.ones(N, dtype=bool), None)
        ty, env = interp.ty, interp.env
        out_if = meta["out_if"]
        result = {}
        if out_if is None:
            for o, node in meta["outputs"]:
                result[o] = np.broadcast_to(E.evaluate(node, env, ty), (N,)).copy()
        else:
            cond, a, b = out_if
            c = eval_cond(cond, env, ty)
            for (o, na), (_, nb) in zip(a, b):
                result[o] = np.where(c, E.evaluate(na, env, ty), E.evaluate(nb, env, ty))
    return result


FAMILY = Family(
    name="control_flow",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=reference,
    tolerance=type_tolerance,
    weight=1.0,
    covers=("if/elif/else", "for loops", "dynamic loop bounds", "while loops", "break/continue",
            "nested conditions", "nested loops", "and/or/not", "int32 C semantics", "float64"),
)
