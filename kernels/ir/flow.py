"""Random structured control flow over the IR: state variables carried through if/elif/else chains, ``for``
loops (constant, parameter or per-element bounds; offsets, steps, reversed; gathers of neighbours), counted
``while`` loops with data-dependent exits, conditional ``break``/``continue`` and augmented assignments.

A :class:`FlowBuilder` draws one kernel from a :class:`Shape` (statement weights, nesting, line budgets) and a
:class:`~kernels.ir.gen.Vocabulary`; expressions come from :class:`~kernels.ir.gen.ExprBuilder`. Loop-carried
values are bounded by construction: inside a loop every state variable is assumed to stay in a bound ``B``
picked at the outermost loop's entry (expressions are drawn for it), and once the loop is built the interval
engine checks it from the real entry state; assignments of variables that can leave ``B`` get a clamp
(``wp.min``/``wp.max``/``wp.clamp``), and clamps the engine finds unnecessary are dropped again. Comparison
thresholds lie in the middle of the values their left side takes at the loop's entry (not the wide ``B``), so
branches are taken both ways. Families choose the shape and may override :meth:`FlowBuilder.loop_bounds`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from kernels.ir import analysis, intervals
from kernels.ir import nodes as n
from kernels.ir.gen import ARRAY_NAMES, LOCAL_NAMES, OUT_NAMES, SCALAR_NAMES, ExprBuilder, Leaf, Names, Vocabulary
from kernels.ir.numeric import Interval
from kernels.ir.types import INT32, Array, Scalar

I = n.Var("i", INT32)
LOOP_VARS = ("j", "k", "l", "m")
COUNTERS = ("w", "it", "nit", "q")
TEMP_NAMES = ("tmp", "term", "d", "u", "z", "delta", "inc")
BOUND_NAMES = ("n", "count", "steps", "iters", "reps")
COUNT_ARRAYS = ("cnt", "trips", "nrep", "kcount")
MAX_UNROLL = 16            # Warp unrolls range() loops of constant bounds up to this many trips


class Redraw(Exception):
    """The draw cannot be completed cleanly (a loop whose values stay unbounded even clamped)."""


@dataclass(frozen=True)
class Shape:
    """Statement weights inside blocks, nesting limits and line budgets (``unrolled``: body lines times the trip
    counts of the enclosing constant loops, which Warp copies once per trip)."""

    kinds: dict[str, float] = field(default_factory=lambda: {"update": 3, "temp": 1, "if": 2, "for": 1,
                                                               "while": 0.5, "jump": 1})
    max_depth: int = 3
    max_loops: int = 2
    max_lines: int = 24
    unrolled: int = 20
    trips: tuple[int, int] = (2, 8)
    p_bound: float = 0.5           # chance of an int loop-bound input (scalar parameter or count array)
    p_gather: float = 0.35
    p_aug: float = 0.5


def chain(arms: list[tuple[n.Expr, tuple[n.Stmt, ...]]], orelse: tuple[n.Stmt, ...] = ()) -> n.If:
    """``if c0: b0 elif c1: b1 ... else: orelse`` (the printer writes nested ``If``s in ``orelse`` as ``elif``)."""
    for cond, body in reversed(arms):
        orelse = (n.If(cond, body, orelse),)
    return orelse[0]


def jump(cond: n.Expr, kind: str) -> n.If:
    """``if cond: break`` or ``if cond: continue``."""
    return n.If(cond, (n.Break() if kind == "break" else n.Continue(),))


def counted_while(counter: str, limit: n.Expr, max_trips: int, body: tuple[n.Stmt, ...],
                  extra: n.Expr | None = None, extra_first: bool = False,
                  augmented: bool = True) -> list[n.Stmt]:
    """``w = 0; while w < limit [and extra]: w += 1; body``: at most ``max_trips`` trips by construction."""
    w = n.Var(counter, INT32)
    test = n.Call("lt", (w, limit))
    if extra is not None:
        test = n.Call("and", (extra, test) if extra_first else (test, extra))
    step = n.Assign(counter, n.Call("add", (w, n.Const(1, INT32))), augmented)
    return [n.Let(counter, n.Const(0, INT32)), n.While(test, (step, *body), max_trips)]


def assigned(body: tuple[n.Stmt, ...]) -> set[str]:
    return {s.name for s in analysis.statements(body) if isinstance(s, n.Assign)}


@dataclass
class _Loop:
    var: str
    iv: Interval
    direction: int
    const: bool


class FlowBuilder:
    """Draws one kernel (see module docstring); :meth:`build` returns it with its input intervals."""

    def __init__(self, rng: np.random.Generator, ty: Scalar, vocab: Vocabulary, shape: Shape, size: int,
                 name: str = "wkf_kernel") -> None:
        self.rng, self.ty, self.vocab, self.shape, self.size, self.name = rng, ty, vocab, shape, size, name
        self.names = Names(rng, True)
        self.params: list[n.Param] = []
        self.ranges: dict[str, Interval] = {}
        self.vis: dict[str, Leaf] = {}           # leaves expressions may read, by name
        self.dep: set[str] = set()               # leaves derived from inputs (comparisons read one)
        self.state: list[str] = []
        self.bound: dict[str, Interval] = {}     # loop bound B of each state variable
        self.entry: dict[str, Interval] = {}     # state intervals at the outermost loop's entry (thresholds)
        self.loops: list[_Loop] = []
        self.inputs: list[tuple[str, Leaf]] = []
        self.lines = 0
        self.unroll = 1
        self.clamped: dict[n.Assign, Interval] = {}
        self.gen = ExprBuilder(rng, vocab, [])
        self.bound_param: n.Param | None = None
        self.bound_hi = 0
        self.budget = shape.max_lines            # line budget of the current loop body
        self.loop_names: set[str] = set()

    # ---------------------------------------------------------------------------------------------- helpers
    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def sync(self) -> None:
        self.gen.leaves = list(self.vis.values())

    def leaf(self, name: str, e: n.Expr, iv: Interval, dep: bool = True) -> None:
        self.vis[name] = (e, iv)
        if dep:
            self.dep.add(name)
        self.sync()

    def expr(self, depth: int, must: str | None = None) -> Leaf:
        e = self.gen.compound(self.ty, max(1, depth))
        if must is not None and must not in analysis.uses(e[0]):
            m = self.vis[must]
            e = self.gen.checked(n.Call(self.pick(["add", "sub", "mul"]), (m[0], e[0])), [m[1], e[1]]) or \
                self.gen.checked(n.Call("add", (m[0], e[0])), [m[1], e[1]]) or e
        return e

    def with_index(self, part: Leaf) -> Leaf:
        """Bring the innermost loop variable into ``part`` (floats: as a factor or a divisor ``j + c``, so the
        value keeps moving with the inputs)."""
        if not self.loops or self.rng.random() < 0.4:
            return part
        loop = self.pick(self.loops)
        j = n.Var(loop.var, INT32)
        if self.ty.is_int:
            return self.gen.checked(n.Call(self.pick(["add", "sub"]), (part[0], j)), [part[1], loop.iv]) or part
        fj = n.Cast(j, self.ty)
        if loop.iv.lo < 0 or self.rng.random() < 0.5:
            return self.gen.checked(n.Call("mul", (part[0], fj)), [part[1], loop.iv]) or part
        c = float(self.pick([1.0, 2.0, 0.5]))
        den = n.Call("add", (fj, n.Const(c, self.ty)))
        return self.gen.checked(n.Call("div", (part[0], den)),
                                [part[1], Interval(loop.iv.lo + c, loop.iv.hi + c)]) or part

    def typical(self, e: n.Expr) -> Interval:
        """The interval of ``e`` with state variables at their entry intervals (where thresholds belong)."""
        env = {k: iv for k, (_, iv) in self.vis.items()}
        env.update({s: self.entry[s] for s in self.state if s in self.entry and self.loops})
        env.update({lp.var: lp.iv for lp in self.loops})
        engine = intervals.Engine(n.Kernel("t", tuple(self.params), ()), self.ranges, (self.size,))
        return engine.expr(e, env)

    # ---------------------------------------------------------------------------------------------- conditions
    def compare(self, avoid: frozenset[str] = frozenset()) -> tuple[n.Expr, str]:
        """``lhs < c`` (or ``<=``, ``>``, ``>=``) for ``lhs`` an input-derived leaf, perhaps combined with an
        expression of other leaves (one leaf on both sides is how ``e - (e - j)`` and never-true tests arise),
        and ``c`` inside the middle of ``lhs``'s typical values; returns it and the leaf's name."""
        names = sorted((self.dep & set(self.vis)) - avoid) or sorted(self.dep & set(self.vis))
        for _ in range(6):
            name = self.pick(names)
            lhs = self.vis[name]
            if self.rng.random() < 0.4:
                other = self.gen.expr(self.ty, 1)
                if name not in analysis.uses(other[0]) and self.vis[name][0] not in analysis.subexprs(other[0]):
                    lhs = self.gen.checked(n.Call(self.pick(["add", "sub", "mul", "max", "min"]),
                                                  (lhs[0], other[0])), [lhs[1], other[1]]) or lhs
            t = self.typical(lhs[0])
            lo, hi = max(t.lo, -1e4), min(t.hi, 1e4)
            lo, hi = lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo)
            if self.ty.is_int:
                if hi - lo < 1:
                    continue
                c = float(self.rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1))
            else:
                c = round(float(self.rng.uniform(lo, hi)), 2) or 0.05
            made = self.gen.checked(n.Call(self.pick(["lt", "le", "gt", "ge"]), (lhs[0], n.Const(c, self.ty))),
                                    [lhs[1], Interval.point(c)])
            if made is not None:
                return made[0], name
        return self.gen.condition(2)[0], ""

    def index_test(self, late: bool = False) -> n.Expr:
        """An exact test of a loop variable; a ``late`` one is false on the first trip (for a ``break``)."""
        loop = self.loops[-1] if late else self.pick(self.loops)
        v, lo, hi = n.Var(loop.var, INT32), int(loop.iv.lo), int(loop.iv.hi)
        c = lambda x: n.Const(int(x), INT32)  # noqa: E731
        if not late and (self.rng.random() < 0.4 or hi - lo < 2):
            m = int(self.pick([2, 2, 3]))
            return n.Call("eq", (n.Call("mod", (v, c(m))), c(self.rng.integers(0, m))))
        if not late:
            return n.Call(self.pick(["lt", "ge", "ne", "gt", "le"]), (v, c(self.rng.integers(lo + 1, hi))))
        if loop.direction > 0:
            op = self.pick(["ge", "gt", "eq"])
            return n.Call(op, (v, c(self.rng.integers(lo, hi) if op == "gt" else self.rng.integers(lo + 1, hi + 1))))
        op = self.pick(["le", "lt", "eq"])
        return n.Call(op, (v, c(self.rng.integers(lo + 1, hi + 1) if op == "lt" else self.rng.integers(lo, hi))))

    def condition(self, index: bool = True, late: bool = False) -> n.Expr:
        can_index = index and self.loops and (not late or self.loops[-1].iv.hi > self.loops[-1].iv.lo)
        if can_index and self.rng.random() < 0.3 + 0.4 * late:
            cond = self.index_test(late)
            if self.rng.random() < 0.4:
                cond = n.Call("and" if late else self.pick(["and", "or"]), (cond, self.compare()[0]))
            return cond
        cond, name = self.compare()
        if self.rng.random() < 0.25:
            cond = n.Call(self.pick(["and", "or"]), (cond, self.compare(frozenset({name}))[0]))
        if self.rng.random() < 0.12:
            cond = n.Call("not", (cond,))
        return cond

    # ---------------------------------------------------------------------------------------------- statements
    def declare(self) -> n.Let:
        name = self.names.fresh(LOCAL_NAMES, f"s{len(self.state)}", len(self.state))
        if self.rng.random() < 0.5:
            v = self.pick([0, 0, 1, -1, 2]) if self.ty.is_int else self.pick([0.0, 0.0, 1.0, -1.0, 0.5])
            e, iv = n.Const(v, self.ty), Interval.point(float(v))
        else:
            e, iv = self.expr(int(self.rng.integers(1, 3)))
        self.leaf(name, n.Var(name, self.ty), iv)
        self.state.append(name)
        self.lines += 1
        return n.Let(name, e)

    def update(self, must: str | None = None) -> n.Assign:
        s = self.pick(self.state)
        sv = self.vis[s]
        roll = self.rng.random()
        made: Leaf | None = None
        if must is not None or roll < 0.4:                      # accumulate
            term = self.with_index(self.vis[must] if must else self.expr(int(self.rng.integers(1, 3))))
            made = self.gen.checked(n.Call(self.pick(["add", "add", "sub"]), (sv[0], term[0])), [sv[1], term[1]])
        elif roll < 0.55:                                       # running extremum
            term = self.with_index(self.expr(int(self.rng.integers(1, 3))))
            made = self.gen.checked(n.Call(self.pick(["max", "min"]), (sv[0], term[0])), [sv[1], term[1]])
        elif roll < 0.75:                                       # decay: s * c + term (ints: s / 2 + term)
            term = self.with_index(self.expr(1))
            c = round(float(self.rng.uniform(0.2, 0.95)), 2) if not self.ty.is_int else 2.0
            scaled = self.gen.checked(n.Call("div" if self.ty.is_int else "mul", (sv[0], n.Const(
                int(c) if self.ty.is_int else c, self.ty))), [sv[1], Interval.point(c)])
            if scaled is not None:
                made = self.gen.checked(n.Call("add", (scaled[0], term[0])), [scaled[1], term[1]])
        if made is None:                                        # a general expression of the state
            made = self.expr(int(self.rng.integers(1, 3)), must=s)
        self.lines += 1
        if not self.loops:
            self.leaf(s, sv[0], made[1])
        aug = isinstance(made[0], n.Call) and made[0].op in n.AUGMENTED and made[0].args[0] == sv[0] and \
            self.rng.random() < self.shape.p_aug
        out = n.Assign(s, made[0], aug)
        self.clamped[out] = made[1]
        return out

    def temp(self) -> list[n.Stmt]:
        """``t = e`` and an update that folds ``t`` into the state."""
        name = self.names.fresh(TEMP_NAMES, f"t{self.lines}", self.lines, suffix=True)
        e, iv = self.with_index(self.expr(int(self.rng.integers(1, 3))))
        self.leaf(name, n.Var(name, self.ty), iv)
        upd = self.update(must=name)
        del self.vis[name]
        self.sync()
        self.lines += 1
        return [n.Let(name, e), upd]

    def block(self, depth: int, count: int) -> list[n.Stmt]:
        out: list[n.Stmt] = []
        jumps = 0
        kinds = list(self.shape.kinds)
        for _ in range(count):
            room = min(self.shape.max_lines - self.lines, self.budget - self.lines)
            allowed = {"update": True, "temp": room > 3, "if": depth < self.shape.max_depth and room > 4,
                       "for": depth < self.shape.max_depth and room > 5 and len(self.loops) < self.shape.max_loops,
                       "while": not self.loops and depth < self.shape.max_depth and room > 5,
                       "jump": bool(self.loops) and jumps == 0 and room > 2}
            options = [k for k in kinds if allowed.get(k)]
            w = np.array([self.shape.kinds[k] for k in options])
            kind = options[int(self.rng.choice(len(options), p=w / w.sum()))]
            if kind == "update":
                out.append(self.update())
            elif kind == "temp":
                out += self.temp()
            elif kind == "if":
                out.append(self.if_chain(depth))
            elif kind == "for":
                out.append(self.for_loop(depth))
            elif kind == "while":
                out += self.while_loop(depth)
            else:
                jumps += 1
                brk = self.rng.random() < 0.5
                self.lines += 2
                out.append(jump(self.condition(late=brk), "break" if brk else "continue"))
        if not any(isinstance(s, n.Assign) for s in out):
            out.append(self.update())
        return out

    def if_chain(self, depth: int) -> n.If:
        before = dict(self.vis)
        arms, outs = [], []
        n_arms = 1 + int(self.pick([0, 0, 1, 1, 2])) if self.lines < self.budget - 8 else 1
        for _ in range(n_arms):
            self.vis = dict(before)
            self.sync()
            cond = self.condition()
            self.lines += 1
            arms.append((cond, tuple(self.block(depth + 1, int(self.rng.integers(1, 3))))))
            outs.append(self.vis)
        orelse: tuple[n.Stmt, ...] = ()
        if self.rng.random() < 0.55:
            self.vis = dict(before)
            self.sync()
            self.lines += 1
            orelse = tuple(self.block(depth + 1, int(self.rng.integers(1, 3))))
            outs.append(self.vis)
        else:
            outs.append(before)
        self.vis = {k: (e, iv) for k, (e, iv) in before.items()}
        for k in self.state:
            joined = outs[0][k][1]
            for o in outs[1:]:
                joined = joined.join(o[k][1])
            self.vis[k] = (before[k][0], joined)
        self.sync()
        return chain(arms, orelse)

    # ---------------------------------------------------------------------------------------------- loops
    def loop_bounds(self, nested: bool) -> tuple[n.Expr, n.Expr, int, Interval, int, bool]:
        """``(start, stop, step, loop variable interval, max trips, constant)`` of a new ``for`` loop."""
        rng = self.rng
        p = self.bound_param
        if p is not None and not nested and (rng.random() < 0.5 or not self.bound_used):
            self.bound_used = True
            stop = n.Var(p.name, INT32) if isinstance(p.type, Scalar) else n.Load(p.name, p.type, (I,))
            start = int(self.pick([0, 0, 0, 1])) if isinstance(p.type, Scalar) else 0
            return n.Const(start, INT32), stop, 1, Interval(start, max(start, self.bound_hi - 1)), \
                self.bound_hi - start, False
        lo, hi = self.shape.trips
        trips = int(rng.integers(lo, (max(lo, hi // 2) if nested else hi) + 1))
        form = self.pick(["plain", "plain", "plain", "offset", "reverse", "step"])
        if form == "offset":
            a = int(rng.integers(1, 3))
            seq = range(a, a + trips)
        elif form == "reverse":
            seq = range(trips - 1, -1, -1)
        elif form == "step":
            seq = range(0, trips * int(rng.integers(2, 4)), int(rng.integers(2, 4)))
        else:
            seq = range(trips)
        return n.Const(seq.start, INT32), n.Const(seq.stop, INT32), seq.step, Interval(min(seq), max(seq)), \
            len(seq), True

    def enter(self) -> dict | None:
        """Widen the state to its loop bounds at the outermost loop; returns what :meth:`leave` restores."""
        if self.loops:
            return None
        saved = dict(self.vis)
        self.entry = {s: self.vis[s][1] for s in self.state}
        for s in self.state:
            cur = self.vis[s][1]
            L = float(self.pick([256, 1000, 4096, 10000] if self.ty.is_int else [64.0, 100.0, 256.0, 1000.0]))
            L = float(np.ceil(max(L, 2 * cur.mag)))
            self.bound[s] = Interval(-L, L)
            self.vis[s] = (n.Var(s, self.ty), self.bound[s])
        self.sync()
        return saved

    def leave(self, loop: n.Stmt, saved: dict | None, added: list[str]) -> n.Stmt:
        for name in added:
            self.vis.pop(name, None)
            self.dep.discard(name)
        self.sync()
        if saved is None:
            return loop
        self.probe = self.probe_of(saved)
        loop = self.bounded(loop)
        facts = self.facts(loop)
        self.vis = saved
        for s in self.state:
            self.vis[s] = (n.Var(s, self.ty), facts.env.get(s, self.bound[s]))
        self.sync()
        return loop

    def probe_of(self, saved: dict) -> tuple[tuple[n.Param, ...], dict[str, Interval]]:
        """Parameters and input intervals that stand for the locals at the loop's entry (state variables at
        their entry intervals), so that the engine analyses the loop alone, not the program before it."""
        names = {p.name for p in self.params}
        local = [(k, e, iv) for k, (e, iv) in saved.items() if isinstance(e, n.Var) and k not in names]
        params = tuple(self.params) + tuple(n.Param(k, e.type) for k, e, _ in local)
        return params, {**self.ranges, **{k: iv for k, _, iv in local}}

    def facts(self, loop: n.Stmt) -> intervals.Facts:
        params, ranges = self.probe
        head = tuple(s for s in self.body[-1:] if isinstance(loop, n.While) and isinstance(s, n.Let)
                     and s.name == loop.body[0].name)             # a while loop's counter
        kernel = n.Kernel("probe", params, head + (loop,))
        return intervals.analyze(kernel, ranges, (self.size,), self.shapes)

    def escapes(self, loop: n.Stmt) -> set[str] | None:
        """State variables the loop can carry out of their bounds (all it assigns when a guard fails), or None."""
        facts = self.facts(loop)
        names = assigned((loop,)) & set(self.state)
        if facts.violations:
            return names
        slack = {s: Interval(self.bound[s].lo * (1 + 1e-6), self.bound[s].hi * (1 + 1e-6)) for s in names}
        bad = {s for s in names if not slack[s].contains(facts.env[s])}   # (float bounds round outward)
        return bad or None

    def bounded(self, loop: n.Stmt) -> n.Stmt:
        """``loop`` with clamps on the assignments of escaping state variables whose values, drawn for the
        bound, can leave it (an assignment inside its bound keeps the variable there by induction)."""
        bad = self.escapes(loop)
        if not bad:
            return loop
        targets = [s for s in analysis.statements((loop,)) if isinstance(s, n.Assign) and s.name in bad
                   and not self.bound[s.name].contains(self.clamped.get(s, Interval(-np.inf, np.inf)))]
        clamped = _rewrite(loop, {s: self.clamp(s) for s in targets})
        if self.escapes(clamped):
            raise Redraw("loop values stay unbounded")
        return clamped

    def clamp(self, s: n.Assign) -> n.Assign:
        b, iv = self.bound[s.name], self.clamped.get(s, Interval(-np.inf, np.inf))
        lo, hi = n.Const(b.lo if not self.ty.is_int else int(b.lo), self.ty), \
            n.Const(b.hi if not self.ty.is_int else int(b.hi), self.ty)
        if iv.lo >= b.lo:
            value = n.Call("min", (s.value, hi))
        elif iv.hi <= b.hi:
            value = n.Call("max", (s.value, lo))
        else:
            value = n.Call("clamp", (s.value, lo, hi))
        return n.Assign(s.name, value)

    def for_loop(self, depth: int) -> n.For:
        nested = bool(self.loops)
        active = {lp.var for lp in self.loops}
        var = next(v for v in LOOP_VARS if v not in active and (v in self.loop_names or v not in self.names.used))
        self.names.used.add(var)
        self.loop_names.add(var)
        start, stop, step, iv, trips, const = self.loop_bounds(nested)
        self.lines += 1
        saved = self.enter()
        self.loops.append(_Loop(var, iv, 1 if step > 0 else -1, const))
        added = []
        if self.ty.is_int:
            self.leaf(var, n.Var(var, INT32), iv, dep=False)
            added.append(var)
        gathered = self.gather(var) if self.rng.random() < self.shape.p_gather else None
        added += [gathered] if gathered else []
        budget, unroll = self.budget, self.unroll
        if const:
            self.unroll *= trips
            self.budget = min(budget, self.lines + max(3, self.shape.unrolled // self.unroll))
        body = self.block(depth + 1, int(self.rng.integers(1, 4)))
        self.budget, self.unroll = budget, unroll
        if gathered and not any(self.vis[gathered][0] in analysis.subexprs(e)
                                for s in analysis.statements(tuple(body)) for e in n.stmt_exprs(s)):
            body.append(self.update(must=gathered))
        self.loops.pop()
        return self.leave(n.For(var, start, stop, tuple(body), step), saved, added)

    def gather(self, var: str) -> str:
        """A neighbour ``a[(i + m * j + c) % size]`` of the innermost loop variable, bound to a local."""
        arr, (_, iv) = self.pick(self.inputs)
        m, c = int(self.pick([1, 1, 2])), int(self.pick([0, 0, 1, 3]))
        idx: n.Expr = n.Var(var, INT32) if m == 1 else n.Call("mul", (n.Const(m, INT32), n.Var(var, INT32)))
        idx = n.Call("add", (I, idx))
        if c:
            idx = n.Call("add", (idx, n.Const(c, INT32)))
        load = n.Load(arr, Array(self.ty), (n.Call("mod", (idx, n.Const(self.size, INT32))),))
        self.leaf(f"{arr}[..{var}]", load, iv)
        return f"{arr}[..{var}]"

    def while_loop(self, depth: int) -> list[n.Stmt]:
        counter = self.names.fresh(COUNTERS, "w", 0)
        p = self.bound_param
        if p is not None and isinstance(p.type, Scalar) and (self.rng.random() < 0.5 or not self.bound_used):
            self.bound_used = True
            limit, trips = n.Var(p.name, INT32), self.bound_hi
        else:
            trips = int(self.rng.integers(2, 9))
            limit = n.Const(trips, INT32)
        self.lines += 3
        extra = self.condition(index=False) if self.rng.random() < 0.45 else None
        saved = self.enter()
        self.loops.append(_Loop(counter, Interval(1.0, float(trips)), 1, False))
        added = []
        if self.ty.is_int:
            self.leaf(counter, n.Var(counter, INT32), self.loops[-1].iv, dep=False)
            added.append(counter)
        body = self.block(depth + 1, int(self.rng.integers(1, 4)))
        self.loops.pop()
        let, loop = counted_while(counter, limit, trips, tuple(body), extra, self.rng.random() < 0.3,
                                  self.rng.random() < self.shape.p_aug)
        self.body.append(let)
        return [self.leave(loop, saved, added)]

    # ---------------------------------------------------------------------------------------------- program
    def setup(self) -> None:
        rng, ty = self.rng, self.ty
        bound = rng.random() < self.shape.p_bound
        k_in = int(rng.integers(1, 4)) if not bound else int(rng.integers(2, 4))
        iv = self.vocab.ranges[ty]
        inline = rng.random() < 0.35
        self.shapes = {}
        for k in range(k_in):
            arr = self.names.fresh(ARRAY_NAMES, f"in{k}", k)
            self.params.append(n.Param(arr, Array(ty)))
            self.ranges[arr] = iv
            self.shapes[arr] = (self.size,)
            load = n.Load(arr, Array(ty), (I,))
            if inline:
                self.leaf(f"{arr}[i]", load, iv)
            else:
                local = self.names.loaded(arr, k)
                self.body.append(n.Let(local, load))
                self.leaf(local, n.Var(local, ty), iv)
            self.inputs.append((arr, (load, iv)))
        if rng.random() < 0.3:
            name = self.names.fresh(SCALAR_NAMES, "s0", 0)
            siv = Interval(1.0, 5.0) if ty.is_int else Interval(0.5, 2.0)
            self.params.append(n.Param(name, ty))
            self.ranges[name] = siv
            self.leaf(name, n.Var(name, ty), siv)
        self.bound_used = not bound
        if bound and rng.random() < 0.7:
            name = self.names.fresh(BOUND_NAMES, "n", 0)
            lo, self.bound_hi = int(rng.integers(1, 3)), int(rng.integers(5, 9))
            self.bound_param = n.Param(name, INT32)
            self.ranges[name] = Interval(lo, self.bound_hi)
        elif bound:
            name = self.names.fresh(COUNT_ARRAYS, "cnt", 0)
            self.bound_hi = int(rng.integers(3, 7))
            self.bound_param = n.Param(name, Array(INT32))
            self.ranges[name] = Interval(0, self.bound_hi)
            self.shapes[name] = (self.size,)
        if self.bound_param is not None:
            self.params.append(self.bound_param)

    def build(self) -> tuple[n.Kernel, dict[str, Interval]]:
        rng = self.rng
        self.body: list[n.Stmt] = []
        self.setup()
        n_top = int(self.pick([1, 2, 2, 3]))
        flow = False
        for t in range(6):
            if (t >= n_top and flow and self.lines >= 7) or (self.lines > self.shape.max_lines - 6 and flow):
                break
            if t == 0 or rng.random() < (0.5 if t == 1 else 0.35):
                self.body.append(self.declare())
                if t == 0 and rng.random() < 0.4:
                    self.body.append(self.declare())
            roll = rng.random()
            last = t >= n_top - 1 or self.lines > self.shape.max_lines - 12
            if (last and not self.bound_used) or roll < 0.45 or (last and not flow and roll < 0.9):
                self.body.append(self.for_loop(1))
            elif roll < 0.65:
                self.body += self.while_loop(1)
            elif roll < 0.9 or (last and not flow):
                self.body.append(self.if_chain(1))
            else:
                self.body += self.temp() if rng.random() < 0.5 else [self.update()]
                continue
            flow = True
        return self.finish(), self.ranges

    def finish(self) -> n.Kernel:
        outs = []
        for k in range(int(self.pick([1, 1, 2]))):
            focus = self.state[-1 - k] if k < len(self.state) else self.pick(self.state)
            e, _ = self.expr(int(self.rng.integers(1, 3)), must=focus)
            out = self.names.fresh(OUT_NAMES, f"out{k}", k)
            outs.append(n.Param(out, Array(self.ty)))
            self.body.append(n.Store(out, Array(self.ty), (I,), e))
        kernel = n.Kernel(self.name, tuple(self.params + outs), tuple(self.body))
        return analysis.remove_dead(analysis.fold_unused(kernel, self.pick(["add", "sub"])))


def _rewrite(s: n.Stmt, swap: dict[n.Stmt, n.Stmt]) -> n.Stmt:
    """``s`` with the statements in ``swap`` replaced (blocks rebuilt around them)."""
    if s in swap:
        return swap[s]
    if isinstance(s, n.If):
        return replace(s, then=tuple(_rewrite(x, swap) for x in s.then),
                       orelse=tuple(_rewrite(x, swap) for x in s.orelse))
    if isinstance(s, (n.For, n.While)):
        return replace(s, body=tuple(_rewrite(x, swap) for x in s.body))
    return s


def unrolled(kernel: n.Kernel) -> bool:
    """Whether Warp unrolls every loop (constant ``range`` bounds of at most :data:`MAX_UNROLL` trips, no
    ``while``, no ``break``): the condition for Warp's adjoint of a kernel with loops."""
    for s in analysis.statements(kernel.body):
        if isinstance(s, (n.While, n.Break)):
            return False
        if isinstance(s, n.For):
            if not (isinstance(s.start, n.Const) and isinstance(s.stop, n.Const)):
                return False
            if len(range(s.start.value, s.stop.value, s.step)) > MAX_UNROLL:
                return False
    return True


def constructs(kernel: n.Kernel) -> dict[str, int]:
    """Counts of the control-flow constructs of a kernel (zero counts left out)."""
    c: dict[str, int] = {}

    def bump(key: str, k: int = 1) -> None:
        if k:
            c[key] = c.get(key, 0) + k

    def walk(body: tuple[n.Stmt, ...], loops: int, elif_: bool = False) -> None:
        for s in body:
            if isinstance(s, n.If) and not (len(s.then) == 1 and isinstance(s.then[0], (n.Break, n.Continue))):
                bump("elif" if elif_ else "if")
                tail = len(s.orelse) == 1 and isinstance(s.orelse[0], n.If)
                bump("else", int(bool(s.orelse) and not tail))
                walk(s.then, loops)
                walk(s.orelse, loops, elif_=tail)
            elif isinstance(s, n.If):
                bump(type(s.then[0]).__name__.lower())
            elif isinstance(s, (n.For, n.While)):
                bump("nested_loop", int(loops > 0))
                if isinstance(s, n.While):
                    bump("while")
                    bump("while_data_exit", int(s.cond.op == "and"))
                else:
                    bump("for_const" if isinstance(s.stop, n.Const) else "for_dynamic")
                walk(s.body, loops + 1)
            elif isinstance(s, n.Assign):
                bump("augmented", int(s.augmented))
                bump("clamp", int(isinstance(s.value, n.Call) and s.value.op in ("clamp", "min", "max")
                                  and isinstance(s.value.args[-1], n.Const)))

    walk(kernel.body, 0)
    bump("gather", sum(isinstance(x, n.Load) and isinstance(x.index[0], n.Call) for x in
                       analysis.expressions(kernel.body)))
    return c
