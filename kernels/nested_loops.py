"""nested_loops: 2- and 3-level nested for loops with accumulators at every level and index arithmetic across loops.

Random loop nests in float32, float64 or int32 (C semantics): outer loops over constant ranges (plain, offset,
reversed, strided), an int scalar parameter, a per-element count array or the thread index (``range(1 + i % 4)``);
inner loops over constant ranges or ranges tied to the enclosing loop variable (triangular ``range(j)``,
``range(j + 1)``, ``range(j, K)``, ``range(K - j)``, ``range(wp.min(j + 1, n))``...). Accumulators live at each
level: declared before the nest, or reset at the top of an outer iteration, updated by the inner loop and folded
into an enclosing accumulator after it. Loop bodies gather neighbouring and strided elements with index
arithmetic across loop variables (``a[(i + j * k) % 64]``, ``b[(i + 2 * j + k) % 64]``, ``c[(i + 64 - k) % 64]``),
use the loop variables as values (``float(j * k)``), and leave early with ``break``/``continue`` under index tests
(``k > j``, ``(i + j + k) % 3 == 0``) or data tests on gathered values and accumulators.

Programs are drawn by the IR's control-flow builder (``kernels/ir/flow.py``; this module says how nests, their
bounds, gathers and level accumulators look): loop-carried values are bounded by the interval engine and
clamped where they could escape, and the reference is the IR interpreter. Loops Warp unrolls (constant bounds,
or bounds that are unrolled loop variables) are kept to a few body copies so that a record's Python and generated
code stay well under the token budget. Kernels whose loops all have constant bounds and no ``break`` are
differentiable.
"""

from __future__ import annotations

import numpy as np

from harness.family import Program
from kernels.ir import analysis, intervals
from kernels.ir import nodes as n
from kernels.ir.family import adjoints_right, features, ir_family, program
from kernels.ir.flow import LOOP_VARS, I, FlowBuilder, Redraw, Shape, constructs, jump, unrolled
from kernels.ir.gen import Vocabulary, first_clean
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, FLOAT64, INT32, Array, Scalar

N = 64
TYPES = (FLOAT32, FLOAT32, FLOAT32, FLOAT64, FLOAT64, INT32, INT32)
FLOAT_RANGES = (Interval(-2.0, 2.0), Interval(-1.0, 3.0), Interval(0.5, 4.0), Interval(-1.0, 1.0))
INT_RANGES = (Interval(-20.0, 20.0), Interval(-9.0, 9.0), Interval(0.0, 30.0))
OPS = {"add": 3, "sub": 3, "mul": 3, "div": 1.2, "min": 1, "max": 1, "neg": 0.4, "abs": 0.4, "where": 0.5,
       "ifexp": 0.4}
INT_OPS = {**OPS, "mod": 1, "floordiv": 1}
LEVEL_NAMES = ("row", "inner", "sub", "blk", "lv", "ps", "col")
SHAPE = Shape(max_lines=17, unrolled=14, p_gather=0.8, p_bound=0.45, p_aug=0.6)
UNROLL_COPIES = 8          # body copies Warp emits for nested unrolled loops (keeps records under budget)
MAX_DYNAMIC_COPIES = 2     # unrolled copies of a dynamic loop (Warp's adjoint of each is long)
TRIP_BUDGET = 36           # product of the maximal trip counts of a nest


class NestBuilder(FlowBuilder):
    """A :class:`FlowBuilder` whose top level is one or two loop nests of a drawn depth: each level may reset an
    accumulator, compute a temporary, leave early, run the next level and fold its accumulator outward."""

    def __init__(self, rng: np.random.Generator, ty: Scalar, vocab: Vocabulary) -> None:
        super().__init__(rng, ty, vocab, SHAPE, N)
        self.names.used |= set(LOOP_VARS)          # a three-level nest needs three of them free
        self.loop_names |= set(LOOP_VARS)
        self.levels: set[str] = set()          # level accumulators (declared inside a loop)
        self.target = 0                        # depth of the nest being built
        self.nest_body = False
        self.dependent: list[bool] = []        # per open loop: do its bounds read the enclosing loop variable
        self.warp_unrolled: list[bool] = []    # per open loop: does Warp unroll it
        self.trips: list[int] = []
        self.bound_level = -1
        self.copies_left = UNROLL_COPIES       # unrolled body copies the kernel may still make (all nests)
        self.used_copies = 0
        self.tags: dict[str, int] = {}

    def tag(self, key: str) -> None:
        self.tags[key] = self.tags.get(key, 0) + 1

    # ---------------------------------------------------------------------------------------------- bounds
    def loop_bounds(self, nested: bool) -> tuple[n.Expr, n.Expr, int, Interval, int, bool]:
        rng, level = self.rng, len(self.loops)
        budget = TRIP_BUDGET // max(1, int(np.prod(self.trips or [1])))
        copies = int(np.prod([t for t, u in zip(self.trips, self.warp_unrolled) if u] or [1]))
        forms = self.outer_forms() if not nested else self.inner_forms()
        if self.bound_param is not None and level == self.bound_level:
            forms = [f for f in forms if f[3] in ("scalar", "array", "min")] or forms
        fits = []
        for start, stop, step, kind in forms:
            s_iv, e_iv = self.typical(start), self.typical(stop)
            if step > 0:
                trips, iv = int(max(0, -(-(e_iv.hi - s_iv.lo) // step))), Interval(s_iv.lo, e_iv.hi - 1)
            else:
                trips, iv = int(max(0, s_iv.hi - e_iv.lo)), Interval(e_iv.lo + 1, s_iv.hi)
            const = all(self.constant(b) for b in (start, stop))
            deeper = self.target - level - 1          # levels still to nest inside this one
            room = self.copies_left // (copies * trips) if const else self.copies_left // copies
            if trips < 2 or trips > budget or iv.hi < iv.lo or (const and copies * trips > self.copies_left):
                continue
            if (const and deeper and room < 2 ** deeper) or (not const and copies > MAX_DYNAMIC_COPIES):
                continue
            fits.append((1.0, (start, stop, step, iv, trips, const, kind)))
        if not fits:
            raise Redraw("no loop bounds fit the trip budget")
        w = np.array([f[0] for f in fits])
        start, stop, step, iv, trips, const, kind = fits[int(rng.choice(len(fits), p=w / w.sum()))][1]
        if kind in ("scalar", "array", "min"):
            self.bound_used = True
        self.tag(f"bound_{kind}")
        self.used_copies = max(self.used_copies, copies * trips if const else copies)
        self.trips.append(trips)
        self.warp_unrolled.append(const)
        self.dependent.append(kind in ("triangular", "upper", "shrinking", "min"))
        return start, stop, step, iv, trips, const

    def constant(self, b: n.Expr) -> bool:
        """Whether Warp sees loop bound ``b`` as a constant (literals and variables of unrolled loops)."""
        if isinstance(b, n.Const):
            return True
        if isinstance(b, n.Var):
            return b.name in self.unrolled_vars()
        return isinstance(b, n.Call) and all(self.constant(a) for a in b.args)

    def typical(self, e: n.Expr) -> Interval:
        """The builder's typical interval, the thread index included (bounds and gathers read it)."""
        env = {**self.ranges, **{k: iv for k, (_, iv) in self.vis.items()}}
        env.update({s: self.entry[s] for s in self.state if s in self.entry and self.loops})
        env.update({lp.var: lp.iv for lp in self.loops})
        env["i"] = Interval(0.0, N - 1.0)
        engine = intervals.Engine(n.Kernel("t", tuple(self.params), ()), self.ranges, (self.size,))
        return engine.expr(e, env)

    def unrolled_vars(self) -> set[str]:
        return {lp.var for lp, u in zip(self.loops, self.warp_unrolled) if u}

    def bound_exprs(self) -> list[tuple[n.Expr, str]]:
        p = self.bound_param
        if p is None:
            return []
        if isinstance(p.type, Scalar):
            return [(n.Var(p.name, INT32), "scalar")]
        return [(n.Load(p.name, p.type, (I,)), "array")]

    def outer_forms(self) -> list[tuple[n.Expr, n.Expr, int, str]]:
        rng, c = self.rng, (lambda v: n.Const(int(v), INT32))  # noqa: E731
        k, a, s, m = int(rng.integers(2, 6)), int(rng.integers(1, 3)), int(rng.integers(2, 4)), int(rng.integers(2, 5))
        forms = [(c(0), c(k), 1, "const"), (c(0), c(k), 1, "const"), (c(a), c(a + k), 1, "offset"),
                 (c(k - 1), c(-1), -1, "reverse"), (c(0), c(k * s), s, "strided"),
                 (c(0), n.Call("add", (c(1), n.Call("mod", (I, c(m))))), 1, "lane")]
        for stop, kind in self.bound_exprs():
            forms += [(c(0), stop, 1, kind)] * 3
            if kind == "scalar":
                forms.append((c(1), stop, 1, kind))
        return forms

    def inner_forms(self) -> list[tuple[n.Expr, n.Expr, int, str]]:
        rng, c = self.rng, (lambda v: n.Const(int(v), INT32))  # noqa: E731
        outer = self.loops[-1]
        j, jlo, jhi = n.Var(outer.var, INT32), int(outer.iv.lo), int(outer.iv.hi)
        j1 = n.Call("add", (j, c(1)))
        k = int(rng.integers(2, 5))
        forms = [(c(0), c(k), 1, "const"), (c(0), j1, 1, "triangular"), (c(k - 1), c(-1), -1, "reverse"),
                 (c(0), c(2 * k), 2, "strided")]
        if jlo >= 0 and jhi >= 2:
            forms += [(c(0), j, 1, "triangular")] * 2
        k2 = max(jhi + 1, int(rng.integers(3, 6)))
        if jlo >= 0:
            forms += [(j, c(k2), 1, "upper"), (j1, c(k2 + 1), 1, "upper"), (c(0), n.Call("sub", (c(k2), j)), 1,
                                                                               "shrinking")]
        for stop, kind in self.bound_exprs():
            forms.append((c(0), stop, 1, kind))
            if kind == "scalar" and jlo >= 0:
                forms.append((c(0), n.Call("min", (j1, stop)), 1, "min"))
        return forms

    # ---------------------------------------------------------------------------------------------- loops
    def for_loop(self, depth: int) -> n.For:
        self.nest_body = True
        loop = super().for_loop(depth)
        self.trips.pop()
        self.warp_unrolled.pop()
        self.dependent.pop()
        return loop

    def block(self, depth: int, count: int) -> list[n.Stmt]:
        if not self.nest_body:
            return super().block(depth, count)
        self.nest_body = False
        return self.level_body(depth)

    def level_body(self, depth: int) -> list[n.Stmt]:
        """One level of the nest: [level accumulator] [temporary] [jump] [next level, fold] updates."""
        rng = self.rng
        level = len(self.loops)
        inner = level < self.target
        out: list[n.Stmt] = []
        acc = self.declare_level() if inner and rng.random() < 0.7 else None
        if acc is not None:
            out.append(acc)
        if rng.random() < 0.3 and self.lines < self.budget - 6:
            out += self.temp()
            self.tag("temp")
        if inner and level > 1 and rng.random() < 0.45 and self.lines < self.budget - 6:
            out.append(self.jump(rng.random() < 0.3))
        if inner:
            out.append(self.for_loop(depth))
            if acc is not None and acc.name not in {s.name for s in _assigns(out[-1])}:
                out.append(self.update(target=acc.name))
            if acc is not None:
                targets = [s for s in self.state if s != acc.name]
                out.append(self.update(must=acc.name, target=self.pick(targets)))
                self.tag("fold")
        elif acc is None:
            count = int(self.pick([1, 1, 2]))
            for k in range(count):
                if k and self.lines >= self.budget - 2:
                    break
                if rng.random() < 0.35 and self.lines < self.budget - 4:
                    out.append(self.guarded())
                else:
                    out.append(self.update(target=self.innermost_acc()))
            if level > 1 and rng.random() < 0.55 and self.lines < self.budget - 2:
                brk = rng.random() < 0.4
                pos = len(out) if brk else int(rng.integers(0, len(out) + 1))
                out.insert(pos, self.jump(brk))
        if acc is not None and inner and not any(isinstance(s, n.For) for s in out):
            out.append(self.update(target=acc.name))
        if acc is not None:
            self.state.remove(acc.name)
            del self.vis[acc.name]
            self.sync()
        return out

    def innermost_acc(self) -> str:
        levels = [s for s in self.state if s in self.levels]
        return levels[-1] if levels and self.rng.random() < 0.7 else self.pick(self.state)

    def declare_level(self) -> n.Let:
        name = self.names.fresh(LEVEL_NAMES, f"lv{len(self.levels)}", len(self.levels))
        value = int(self.pick([0, 0, 1])) if self.ty.is_int else float(self.pick([0.0, 0.0, 0.0, 1.0]))
        L = float(self.pick([2000, 5000, 10000] if self.ty.is_int else [512.0, 1000.0, 4096.0]))
        self.bound[name] = Interval(-L, L)
        self.entry[name] = Interval.point(value)
        self.leaf(name, n.Var(name, self.ty), self.bound[name], dep=False)
        self.state.append(name)
        self.levels.add(name)
        self.lines += 1
        self.tag("level_accumulator")
        return n.Let(name, n.Const(value, self.ty))

    def guarded(self) -> n.If:
        cond = self.condition()
        self.lines += 1
        then = (self.update(target=self.innermost_acc()),)
        orelse = ()
        if self.rng.random() < 0.45:
            self.lines += 1
            orelse = (self.update(),)
        self.tag("if")
        return n.If(cond, then, orelse)

    def jump(self, brk: bool) -> n.If:
        self.lines += 2
        self.tag("break" if brk else "continue")
        return jump(self.condition(late=brk), "break" if brk else "continue")

    def update(self, must: str | None = None, target: str | None = None) -> n.Assign:
        """The builder's update, of ``target`` when given (rather than a random state variable)."""
        if target is None:
            return super().update(must)
        state = self.state
        self.state = [target]
        try:
            return super().update(must)
        finally:
            self.state = state

    def escapes(self, loop: n.Stmt) -> set[str] | None:
        facts = self.facts(loop)
        names = {s.name for s in _assigns(loop)} & (set(self.state) | self.levels)
        if facts.violations:
            return names
        slack = {s: Interval(self.bound[s].lo * (1 + 1e-6), self.bound[s].hi * (1 + 1e-6)) for s in names}
        bad = {s for s in names if not slack[s].contains(facts.env.get(s, Interval(-np.inf, np.inf)))}
        return bad or None

    # ---------------------------------------------------------------------------------------------- conditions
    def index_test(self, late: bool = False) -> n.Expr:
        """The builder's tests of one loop variable, or tests across the two innermost loops: ``k > j``,
        ``(i + j + k) % 3 == 0``, ``j * k > c`` (a ``late`` one is false on the first trip)."""
        if len(self.loops) < 2 or self.rng.random() < 0.5:
            return super().index_test(late)
        c = lambda x: n.Const(int(x), INT32)  # noqa: E731
        outer, inner = self.loops[-2], self.loops[-1]
        j, k = n.Var(outer.var, INT32), n.Var(inner.var, INT32)
        form = self.pick(["vs", "sum_mod", "prod"] if not self.dependent[-1] else ["sum_mod", "prod"])
        if form == "vs" and late:
            return n.Call("gt" if inner.direction > 0 else "lt", (k, j))
        if form == "vs":
            return n.Call(self.pick(["gt", "lt", "ne", "ge"]), (k, j))
        if form == "sum_mod" and not late:
            m = int(self.pick([2, 3, 4]))
            s = n.Call("add", (j, k))
            if self.rng.random() < 0.4:
                s = n.Call("add", (I, s))
            return n.Call(self.pick(["eq", "ne"]), (n.Call("mod", (s, c(m))), c(self.rng.integers(0, m))))
        lo, hi = int(outer.iv.lo * inner.iv.lo), int(outer.iv.hi * inner.iv.hi)
        if min(outer.iv.lo, inner.iv.lo) < 0 or hi - lo < 2:
            return super().index_test(late)
        return n.Call("gt", (n.Call("mul", (j, k)), c(self.rng.integers(max(lo, 1), hi))))

    # ---------------------------------------------------------------------------------------------- gathers
    def gather(self, var: str) -> str:
        """A neighbour of index arithmetic across the loop variables (``a[(i + j * k) % 64]``...), or for a
        nested loop sometimes the loop variables as a value (``float(j * k)``)."""
        rng = self.rng
        c = lambda x: n.Const(int(x), INT32)  # noqa: E731
        add = lambda x, y: n.Call("add", (x, y))  # noqa: E731
        k = n.Var(var, INT32)
        outer = self.loops[-2] if len(self.loops) > 1 else None
        if outer is not None and rng.random() < 0.3:
            j = n.Var(outer.var, INT32)
            op = self.pick(["mul", "sub", "add"])
            e = n.Call(op, (k, j) if op == "sub" else (j, k))
            iv = self.typical(e)
            value = e if self.ty.is_int else n.Cast(e, self.ty)
            name = f"({outer.var} {op} {var})"
            self.leaf(name, value, iv)
            self.tag("index_value")
            return name
        forms = ["shift", "shift", "strided", "back", "scaled_i"] + (["cross", "sum", "diff", "lin2"] * 2 if outer
                                                                     else [])
        form = self.pick(forms)
        if form == "shift":
            idx = add(I, k) if rng.random() < 0.5 else add(add(I, k), c(rng.integers(1, 4)))
        elif form == "strided":
            idx = add(I, n.Call("mul", (k, c(self.pick([2, 3, 4, 8])))))
        elif form == "back":
            idx = n.Call("sub", (add(I, c(N)), k))
        elif form == "scaled_i":
            idx = add(n.Call("mul", (I, c(self.pick([2, 3, 5])))), k)
        else:
            j = n.Var(outer.var, INT32)
            if form == "cross":
                idx = add(I, n.Call("mul", (j, k)))
            elif form == "sum":
                idx = add(add(I, j), k)
            elif form == "diff":
                idx = n.Call("sub", (add(add(I, c(N)), j), k))
            else:
                idx = add(add(I, n.Call("mul", (j, c(self.pick([2, 3, 4]))))), k)
                if len(self.loops) > 2:
                    idx = add(idx, n.Var(self.loops[-3].var, INT32))
        if self.typical(idx).lo < 0:
            idx = add(idx, c(N))
        arr, (_, iv) = self.pick(self.inputs)
        load = n.Load(arr, Array(self.ty), (n.Call("mod", (idx, c(N))),))
        name = f"{arr}[{form}..{var}]"
        self.leaf(name, load, iv)
        self.tag("gather")
        return name

    # ---------------------------------------------------------------------------------------------- program
    def build(self) -> tuple[n.Kernel, dict[str, Interval]]:
        rng = self.rng
        self.body: list[n.Stmt] = []
        self.setup()
        for k in range(int(self.pick([1, 1, 2, 2, 3]))):
            self.body.append(self.declare())
        self.target = int(self.pick([2, 2, 3, 3, 3]))
        self.bound_level = int(rng.integers(self.target)) if self.bound_param is not None else -1
        self.body.append(self.for_loop(1))
        levels = self.target
        self.copies_left -= self.used_copies
        if levels == 2 and rng.random() < 0.35 and self.lines < self.shape.max_lines - 8 and self.copies_left >= 1:
            self.target, self.bound_level = 2, -1
            self.body.append(self.for_loop(1))
        if not self.bound_used:
            raise Redraw("the loop-bound input is unused")
        self.tags["levels"] = levels
        return self.finish(), self.ranges


def _assigns(loop: n.Stmt) -> list[n.Assign]:
    return [s for s in analysis.statements((loop,)) if isinstance(s, n.Assign)]


def draw(rng: np.random.Generator) -> Program:
    ty = TYPES[int(rng.integers(len(TYPES)))]
    ranges = INT_RANGES if ty.is_int else FLOAT_RANGES
    iv = ranges[int(rng.integers(len(ranges)))]
    vocab = Vocabulary(INT_OPS if ty.is_int else OPS, types=(ty,), ranges={ty: iv}, limit=1e5, p_leaf=0.4)
    tags: dict[str, int] = {}

    def build():
        for _ in range(10):
            b = NestBuilder(rng, ty, vocab)
            try:
                drawn = b.build()
            except Redraw:
                continue
            tags.clear()
            tags.update(b.tags)
            return drawn
        raise RuntimeError("nested_loops: no bounded draw in 10 tries")

    kernel, ranges_ = first_clean(build, N)
    info = {**constructs(kernel), **tags}
    return program(kernel, ranges_, (N,), {**features(kernel), **info, "constructs": sorted(info)},
                   differentiable=not ty.is_int and unrolled(kernel) and adjoints_right(kernel))


FAMILY = ir_family("nested_loops", __doc__, draw, version=2,
                   covers=("nested loops", "triangular loops", "dynamic loop bounds", "accumulators",
                           "index arithmetic", "gathers", "break/continue", "loop unrolling", "int32 C semantics",
                           "float64"))
