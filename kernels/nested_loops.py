"""nested_loops: 2- and 3-level nested for loops with accumulators at every level and index arithmetic across loops.

Random loop nests in float32, float64 or int32 (C semantics): outer loops over constant ranges (plain, offset,
reversed, strided), an int scalar parameter, a per-element count array or the thread index (``range(1 + i % 4)``);
inner loops over constant ranges or ranges tied to the enclosing loop variables (triangular ``range(j)``,
``range(j + 1)``, ``range(j, K)``, ``range(K - j)``, ``range(wp.min(j + 1, n))``...). Accumulators live at each
level: declared before the nest, or reset at the top of an outer iteration, updated by the inner loop and folded
into the enclosing accumulator after it. Loop bodies gather neighbouring and strided elements with index
arithmetic across loop variables (``a[(i + j * k) % 64]``, ``b[(i + 2 * k + j) % 64]``, ``c[(i + 64 - k) % 64]``),
use the loop variables as values (``float(j * k)``), and leave early with ``break``/``continue`` under index tests
(``k > j``, ``(i + k) % 3 == 0``), data tests on gathered values, or accumulator thresholds.

Expressions come from ``control_flow.CfGen`` (``_expr`` trees with intervals); loop-carried values are checked by
control_flow's interval abstract interpretation over the maximal trip counts, and assignments that could leave
their bound are clamped. Thresholds on accumulators are calibrated by running the program on sample inputs; a
program whose outputs look degenerate there (constant, ignoring an input, ill-conditioned) is regenerated.
Kernels whose loops Warp fully unrolls (constant bounds, or bounds that are unrolled loop variables, no
``break``) are differentiable.
"""

from __future__ import annotations

import numpy as np

from harness.family import Arg, Family, Program
from kernels import _combined_lib as L
from kernels import _expr as E
from kernels._common import ARRAY_NAMES, OUT_NAMES, pick, type_tolerance

N = L.N
Interval = E.Interval
Node = E.Node
SCHEMES = (("j", "k", "l"), ("k", "m", "l"), ("jj", "kk", "ll"), ("r", "c", "l"), ("j", "l", "m"))
ACC_NAMES = ("acc", "s", "tot", "sm", "mx", "run", "part", "agg", "h", "e")
LEVEL_NAMES = ("row", "inner", "sub", "blk", "lv", "ps", "col")
TEMP_NAMES = ("t", "g", "d", "w", "nb", "prod", "val")
INT_BOUNDS = ("n", "steps", "count", "reps", "m_n")
COUNT_ARRAYS = ("cnt", "trips", "nrep", "kcount")
FLOAT_SCALARS = ("alpha", "beta", "scale", "gain", "coef", "offset")
MAX_LINES = 36
TRIP_BUDGET = 72          # product of maximal trip counts of a nest
UNROLL_BUDGET = 12        # body copies Warp emits for unrolled loops (keeps generated code moderate)
ATTEMPTS = 5


class Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        tyname = pick(rng, ("float32", "float32", "float32", "float64", "float64", "int32", "int32"))
        self.ty = L.SCAL[tyname]
        self.is_int = self.ty.is_int
        self.lines = 0
        self.names: set[str] = set()
        self.state: list[str] = []          # accumulators (top level and per-level), all bounded in loops
        self.bounds: dict[str, Interval] = {}
        self.temps: set[str] = set()
        self.loop_stack: list[L.Loop] = []
        self.iter_leaves: list[list[str]] = []   # per open loop: leaves that change with its iteration
        self.static: set[int] = set()
        self.calib: list = []               # (statement, slot) whose threshold is calibrated on samples
        self.features: dict[str, int] = {}
        self.all_unrolled = True
        self.has_break = False

    # ------------------------------------------------------------------------------------------ helpers
    def bump(self, key, n=1):
        self.features[key] = self.features.get(key, 0) + n

    def fresh(self, base: str) -> str:
        k = 0
        while f"{base}{k}" in self.names:
            k += 1
        self.names.add(f"{base}{k}")
        return f"{base}{k}"

    @property
    def leaves(self):
        return self.gen.leaves

    def add_leaf(self, name, iv, dep=True):
        self.leaves[name] = iv
        if dep and self.gen.dep is not None:
            self.gen.dep.add(name)

    # ------------------------------------------------------------------------------------------ setup
    def setup(self):
        rng, ty = self.rng, self.ty
        self.scheme = pick(rng, SCHEMES)
        self.names.update(self.scheme)
        self.names.add("i")
        bound_roll = rng.random()
        scalar_roll = rng.random()
        # a scalar or count input beside a single array: one unlucky re-draw in the verifier's dead-input
        # test would make half of the inputs look dead
        n_in = int(rng.integers(1, 4)) if bound_roll > 0.55 and scalar_roll >= 0.25 else int(rng.integers(2, 4))
        self.inputs = pick(rng, [a for a in ARRAY_NAMES if a not in self.names], n_in)
        self.names.update(self.inputs)
        if self.is_int:
            self.in_iv = Interval(*pick(rng, ((-20, 20), (-9, 9), (0, 30))))
        else:
            self.in_iv = Interval(*pick(rng, ((-2.0, 2.0), (-1.0, 3.0), (0.5, 4.0), (-1.0, 1.0))))
        self.args = [Arg(n, ty.name, "in", (N,), self.in_iv.lo, self.in_iv.hi) for n in self.inputs]
        self.top: list = []
        leaves: dict[str, Interval] = {}
        inline = rng.random() < 0.35
        self.binds = []
        for n in self.inputs:
            node = L.gather(n, L.var("i", Interval(0, N - 1)), self.in_iv)
            if inline:
                self.binds.append((f"{n}[i]", node))
                leaves[f"{n}[i]"] = self.in_iv
            else:
                local = f"{n}_v" if rng.random() < 0.5 else f"x{n}"
                self.names.add(local)
                self.top.append(L.Let(local, node))
                leaves[local] = self.in_iv
                self.lines += 1
        self.input_leaves = list(leaves)
        self.scalar_f = None
        if scalar_roll < 0.25:
            self.scalar_f = pick(rng, FLOAT_SCALARS)
            lo, hi = (1, 9) if self.is_int else (0.5, 2.0)
            self.args.append(Arg(self.scalar_f, ty.name, "scalar", (), lo, hi))
            leaves[self.scalar_f] = Interval(lo, hi)
        self.scalar_n = self.count_arr = None
        if bound_roll < 0.35:
            self.scalar_n = pick(rng, INT_BOUNDS)
            self.n_iv = Interval(int(rng.integers(0, 3)), int(rng.integers(5, 8)))
            self.args.append(Arg(self.scalar_n, "int32", "scalar", (), self.n_iv.lo, self.n_iv.hi))
        elif bound_roll < 0.55:
            self.count_arr = pick(rng, COUNT_ARRAYS)
            self.c_iv = Interval(0, int(rng.integers(3, 6)))
            self.args.append(Arg(self.count_arr, "int32", "in", (N,), self.c_iv.lo, self.c_iv.hi))
            self.binds.append((f"{self.count_arr}[i]",
                               L.gather(self.count_arr, L.var("i", Interval(0, N - 1)), self.c_iv)))
        self.names.update(a.name for a in self.args)
        binary = ("add", "sub", "mul", "div", "min", "max") + (("mod", "floordiv") if self.is_int else ())
        self.gen = L.CfGen(rng, ty, leaves, binary=binary, p_const=0.2)
        self.gen.dep = None if self.is_int else set(leaves) - {self.scalar_f}
        self.gen.hint_env = lambda: {}

    # ------------------------------------------------------------------------------------------ expressions
    def expr(self, depth, must_use=None, no_state=False) -> Node:
        hidden = {}
        if no_state:
            hidden = {s: self.leaves.pop(s) for s in self.state if s in self.leaves and s != must_use}
        try:
            node = self.gen.expr(depth)
            if node.op == "const":
                node = self.gen.apply_binary(pick(self.rng, ("add", "mul", "sub")), self.dep_leaf(), node)
            if self.gen.dep is not None and not (E.uses(node) & self.gen.dep):
                node = self.gen.apply_binary(pick(self.rng, ("add", "mul", "sub")), node, self.dep_leaf())
            if must_use is not None and must_use not in E.uses(node):
                ops = ("add", "sub", "mul", "max", "min") if self.rng.random() < 0.8 else ("mul", "add")
                ops = tuple(op for op in ops if op in self.gen.binary)
                node = self.gen.apply_binary(pick(self.rng, ops), E.var(must_use, self.leaves[must_use]), node)
        finally:
            self.leaves.update(hidden)
        return node

    def dep_leaf(self) -> Node:
        names = [n for n in self.leaves if self.gen.dep is None or n in self.gen.dep]
        name = pick(self.rng, names)
        return E.var(name, self.leaves[name])

    def varying_leaf(self) -> str | None:
        """A leaf that changes with the innermost loop's iteration (gather, loop variable, temp, inner acc)."""
        if not self.iter_leaves:
            return None
        cands = [v for v in self.iter_leaves[-1] if v in self.leaves]
        if not self.is_int:
            gathers = [v for v in cands if "[" in v]
            if gathers and self.rng.random() < 0.6:
                cands = gathers
        return pick(self.rng, cands) if cands else None

    def mark(self, node):
        mutable = set(self.state) | self.temps | {v for lp in self.loop_stack for v in lp.leaves}
        L.mark_static(node, mutable, self.static)

    # ------------------------------------------------------------------------------------------ statements
    def declare_top(self):
        rng = self.rng
        name = self.fresh(pick(rng, ACC_NAMES))
        if rng.random() < 0.55:
            value = int(pick(rng, (0, 0, 1, -1))) if self.is_int else float(pick(rng, (0.0, 0.0, 1.0, -1.0, 0.5)))
            node = L.const(value, self.ty)
        else:
            node = self.expr(int(rng.integers(1, 3)), no_state=True)
        self.state.append(name)
        self.add_leaf(name, node.iv)
        self.lines += 1
        return L.Let(name, node, decl=True)

    def pick_bound(self) -> Interval:
        if self.is_int:
            return Interval(-float(pick(self.rng, (2000, 5000, 10000))), float(pick(self.rng, (2000, 5000, 10000))))
        m = float(pick(self.rng, (512.0, 1000.0, 4096.0)))
        return Interval(-m, m)

    def declare_level(self) -> L.Let:
        """An accumulator reset at the top of every iteration of the loop being built."""
        name = self.fresh(pick(self.rng, LEVEL_NAMES))
        value = int(pick(self.rng, (0, 0, 1))) if self.is_int else float(pick(self.rng, (0.0, 0.0, 0.0, 1.0)))
        node = L.const(value, self.ty)
        self.state.append(name)
        b = self.pick_bound()
        self.bounds[name] = b
        self.add_leaf(name, b)
        self.lines += 1
        self.bump("level_accumulator")
        return L.Let(name, node, decl=True, bound=b)

    def update(self, target: str, must_use: str | None = None) -> L.Let:
        rng = self.rng
        sv = E.var(target, self.leaves[target])
        must = must_use or (self.varying_leaf() if rng.random() < 0.85 else None)
        if must == target:
            must = None
        roll = rng.random()
        aug = False
        if must_use is not None and roll < 0.3:       # fold an inner accumulator: plain or weighted sum
            term = E.var(must_use, self.leaves[must_use])
            if rng.random() < 0.5:
                term = self.gen.apply_binary(pick(rng, ("mul", "add", "sub")), term, self.expr(1, no_state=True))
            node = self.gen.apply_binary(pick(rng, ("add", "add", "sub", "max")), sv, term)
            aug = node.op in ("add", "sub") and rng.random() < 0.6
        elif roll < 0.55:                              # accumulate
            term = self.expr(int(rng.integers(1, 3)), must_use=must, no_state=rng.random() < 0.6)
            node = self.gen.apply_binary(pick(rng, ("add", "add", "sub")), sv, term)
            aug = rng.random() < 0.6
        elif roll < 0.7:                               # running extremum
            term = self.expr(int(rng.integers(1, 3)), must_use=must, no_state=True)
            node = self.gen.apply_binary(pick(rng, ("max", "min")), sv, term)
        elif roll < 0.88:                              # decaying / modular recurrence
            term = self.expr(1, must_use=must, no_state=True)
            node = self.gen.recurrence(sv, term, 0.3)
        else:                                          # general expression of the accumulator
            node = self.expr(2, must_use=target)
            if must and must not in E.uses(node):
                node = self.gen.apply_binary("add", node, E.var(must, self.leaves[must]))
        if node.op == "var" and node.value == target:
            node = self.gen.apply_binary("add", sv, self.expr(1, no_state=True))
        self.lines += 1
        self.mark(node)
        if target not in self.bounds:
            self.leaves[target] = node.iv
        return L.Let(target, node, aug=aug, bound=self.bounds.get(target))

    def temp(self) -> L.Let:
        name = self.fresh(pick(self.rng, TEMP_NAMES))
        must = self.varying_leaf()
        node = self.expr(int(self.rng.integers(1, 3)), must_use=must, no_state=self.rng.random() < 0.7)
        if node.op == "var":
            node = self.gen.apply_binary(pick(self.rng, ("add", "mul")), node, self.expr(1, no_state=True))
        self.temps.add(name)
        self.mark(node)
        self.add_leaf(name, node.iv)
        if self.iter_leaves:
            self.iter_leaves[-1].append(name)
        self.lines += 1
        self.bump("temp")
        return L.Let(name, node)

    # ------------------------------------------------------------------------------------------ conditions
    def index_cond(self, late: bool) -> Node:
        """An exact integer test of loop variables (and the thread index)."""
        rng = self.rng
        loops = self.loop_stack
        inner = loops[-1]
        k = L.var(inner.var, inner.ivar)
        lo, hi = int(inner.ivar.lo), int(inner.ivar.hi)
        i_node = L.var("i", Interval(0, N - 1))
        forms = ["mod", "cmp"]
        if len(loops) > 1:
            forms += ["vs_outer", "vs_outer", "sum_mod", "prod"]
        form = pick(rng, forms)
        ity = E.INT32
        if form == "vs_outer":
            j = L.var(loops[-2].var, loops[-2].ivar)
            op = pick(rng, ("gt", "ge", "eq") if late and inner.step > 0 else ("gt", "lt", "eq", "ne", "ge"))
            if late and inner.step < 0:
                op = pick(rng, ("lt", "eq"))
            c = L.cmp(op, k, j)
        elif form == "sum_mod":
            j = L.var(loops[-2].var, loops[-2].ivar)
            m = int(pick(rng, (2, 3, 4)))
            s = Node("add", (j, k), iv=Interval(j.iv.lo + k.iv.lo, j.iv.hi + k.iv.hi))
            if rng.random() < 0.4:
                s = Node("add", (i_node, s), iv=Interval(s.iv.lo, s.iv.hi + N - 1))
            c = L.cmp(pick(rng, ("eq", "ne")), Node("mod", (s, L.const(m, ity)), iv=Interval(0, m - 1)),
                      L.const(int(rng.integers(0, m)), ity))
        elif form == "prod":
            j = L.var(loops[-2].var, loops[-2].ivar)
            p = Node("mul", (j, k), iv=Interval(0, j.iv.hi * k.iv.hi))
            c = L.cmp(pick(rng, ("gt", "ge")), p, L.const(int(rng.integers(1, max(2, int(p.iv.hi)))), ity))
        elif form == "mod" and not late:
            m = int(pick(rng, (2, 2, 3, 4)))
            base = k if rng.random() < 0.6 else Node("add", (i_node, k), iv=Interval(k.iv.lo, k.iv.hi + N - 1))
            c = L.cmp(pick(rng, ("eq", "ne")), Node("mod", (base, L.const(m, ity)), iv=Interval(0, m - 1)),
                      L.const(int(rng.integers(0, m)), ity))
        else:
            if hi - lo < 2:
                c = L.cmp("eq" if not late else ("gt" if inner.step > 0 else "lt"), k,
                          L.const(lo if not late else (lo if inner.step > 0 else hi), ity))
            elif late:
                if inner.step > 0:
                    c = L.cmp(pick(rng, ("gt", "ge")), k, L.const(int(rng.integers(lo + 1, hi + 1)), ity))
                else:
                    c = L.cmp(pick(rng, ("lt", "le")), k, L.const(int(rng.integers(lo, hi)), ity))
            else:
                c = L.cmp(pick(rng, ("lt", "ge", "gt", "le", "eq")), k, L.const(int(rng.integers(lo + 1, hi)), ity))
        self.bump("index_test")
        return L.tcond(c, "int32") if not self.is_int else c

    def value_cond(self) -> Node:
        """A comparison of an iteration-varying value (gather, temp) with a threshold inside its range."""
        rng = self.rng
        hidden = {s: self.leaves.pop(s) for s in self.state if s in self.leaves}
        try:
            leaf = self.varying_leaf()
            if leaf is None or (not self.is_int and self.gen.dep is not None and leaf not in self.gen.dep):
                leaf = self.dep_leaf().value
            lhs = E.var(leaf, self.leaves[leaf])
            if rng.random() < 0.35:
                lhs = self.gen.apply_binary(pick(rng, ("add", "sub", "mul")), lhs, self.dep_leaf())
            node = L.cmp(pick(rng, ("lt", "le", "gt", "ge")), lhs, self.gen.threshold(lhs))
        finally:
            self.leaves.update(hidden)
        self.bump("data_test")
        return node

    def state_cond(self, late: bool):
        """``acc > threshold``: the threshold is calibrated later on sample runs."""
        rng = self.rng
        cands = [s for s in self.state if s in self.leaves]
        s = pick(rng, cands)
        lhs = E.var(s, self.leaves[s])
        op = pick(rng, ("gt", "ge", "lt", "le"))
        node = L.cmp(op, lhs, L.const(0, self.ty))
        self.bump("accumulator_test")
        return node

    def condition(self, kind: str) -> tuple[Node, bool]:
        """(condition, calibrate?) for a ``break``, ``continue`` or guarded update."""
        rng = self.rng
        late = kind == "break"
        roll = rng.random()
        if roll < 0.4:
            c, calib = self.index_cond(late), False
        elif roll < 0.75 or not self.state:
            c, calib = self.value_cond(), False
        else:
            c, calib = self.state_cond(late), True
        if not calib and rng.random() < 0.25:
            other = self.value_cond() if c.op == "tcond" or self.is_int and rng.random() < 0.5 else self.index_cond(False)
            c = Node(pick(rng, ("and", "or")), (c, other))
        elif not calib and kind != "break" and rng.random() < 0.1:
            c = L.lnot(c)
        if c.op in ("and", "or", "not"):
            self.bump("and_or_not")
        return c, calib

    # ------------------------------------------------------------------------------------------ loops
    def bound_forms(self, level: int):
        """Candidate (start, stop, step, kind) for a loop at ``level``."""
        rng = self.rng
        ity = E.INT32
        forms = []
        outer = self.loop_stack[-1] if self.loop_stack else None
        if outer is None:
            K = int(rng.integers(3, 7))
            forms.append((L.const(0, ity), L.const(K, ity), 1, "const"))
            c = int(rng.integers(1, 3))
            forms.append((L.const(c, ity), L.const(c + K, ity), 1, "offset"))
            forms.append((L.const(K - 1, ity), L.const(-1, ity), -1, "reverse"))
            s = int(rng.integers(2, 4))
            forms.append((L.const(0, ity), L.const(K * s, ity), s, "strided"))
            m = int(rng.integers(2, 5))
            i_node = L.var("i", Interval(0, N - 1))
            lane = Node("add", (L.const(1, ity), Node("mod", (i_node, L.const(m, ity)), iv=Interval(0, m - 1))),
                        iv=Interval(1, m))
            forms.append((L.const(0, ity), lane, 1, "lane"))
            if self.scalar_n:
                forms += [(L.const(0, ity), L.var(self.scalar_n, self.n_iv), 1, "scalar")] * 3
                forms.append((L.const(1, ity), L.var(self.scalar_n, self.n_iv), 1, "scalar"))
            if self.count_arr:
                forms += [(L.const(0, ity), L.var(f"{self.count_arr}[i]", self.c_iv), 1, "array")] * 3
            return forms
        j = L.var(outer.var, outer.ivar)
        jlo, jhi = int(outer.ivar.lo), int(outer.ivar.hi)
        K = int(rng.integers(2, 5))
        forms.append((L.const(0, ity), L.const(K, ity), 1, "const"))
        if jhi >= 2:
            forms += [(L.const(0, ity), j, 1, "triangular")] * 2
        forms.append((L.const(0, ity), Node("add", (j, L.const(1, ity)), iv=Interval(jlo + 1, jhi + 1)), 1,
                      "triangular"))
        K2 = max(jhi + 1, int(rng.integers(3, 6)))
        if K2 - jlo >= 1:
            forms.append((j, L.const(K2, ity), 1, "upper"))
            forms.append((Node("add", (j, L.const(1, ity)), iv=Interval(jlo + 1, jhi + 1)), L.const(K2 + 1, ity), 1,
                          "upper"))
            forms.append((L.const(0, ity), Node("sub", (L.const(K2, ity), j), iv=Interval(K2 - jhi, K2 - jlo)), 1,
                          "shrinking"))
        if self.scalar_n:
            forms.append((L.const(0, ity), L.var(self.scalar_n, self.n_iv), 1, "scalar"))
            mn = Node("min", (Node("add", (j, L.const(1, ity)), iv=Interval(jlo + 1, jhi + 1)),
                              L.var(self.scalar_n, self.n_iv)),
                      iv=Interval(min(jlo + 1, self.n_iv.lo), min(jhi + 1, self.n_iv.hi)))
            forms.append((L.const(0, ity), mn, 1, "min"))
        if self.count_arr:
            forms.append((L.const(0, ity), L.var(f"{self.count_arr}[i]", self.c_iv), 1, "array"))
        return forms

    def make_loop(self, level: int, budget: int) -> L.Loop | None:
        rng = self.rng
        forms = self.bound_forms(level)
        for _ in range(8):
            start, stop, step, kind = pick(rng, forms)
            if step > 0:
                trip = int(max(0, -(-(stop.iv.hi - start.iv.lo) // step)))
                ivar = Interval(start.iv.lo, stop.iv.hi - 1)
            else:
                trip = int(max(0, start.iv.hi - stop.iv.lo))
                ivar = Interval(stop.iv.lo + 1, start.iv.hi)
            if trip < 2 or trip > budget or ivar.hi < ivar.lo:
                continue
            unrolled = all(n.op == "const" or (n.op == "var" and any(lp.var == n.value and lp.unrolled
                                                                      for lp in self.loop_stack))
                           for n in (start, stop))
            copies = int(np.prod([lp.trip for lp in self.loop_stack if lp.unrolled] or [1]))
            if unrolled and copies * trip > UNROLL_BUDGET:
                continue
            loop = L.Loop(self.scheme[level], start, stop, step, trip, ivar, unrolled)
            loop.kind = kind
            return loop
        return None

    def nest(self, level: int, depth: int, budget: int) -> L.Loop | None:
        rng = self.rng
        loop = self.make_loop(level, budget)
        if loop is None:
            return None
        self.bump(f"bound_{loop.kind}")
        self.lines += 1
        if not loop.unrolled:
            self.all_unrolled = False
        saved_leaves = dict(self.leaves)
        saved_dep = set(self.gen.dep) if self.gen.dep is not None else None
        for s in self.state:                       # inside a loop every accumulator lies in its bound
            if s not in self.bounds:
                self.bounds[s] = self.pick_bound()
            self.leaves[s] = self.bounds[s]
        self.loop_stack.append(loop)
        it_leaves: list[str] = []
        self.iter_leaves.append(it_leaves)
        # the loop variable as a value, and as part of the index of gathers
        v = loop.var
        viv = Interval(float(loop.ivar.lo), float(loop.ivar.hi))
        if self.is_int:
            self.leaves[v] = viv
            it_leaves.append(v)
            loop.leaves = (v,)
        else:
            leaf, node = self.index_value(v, viv, loop.unrolled)
            loop.binds.append((leaf, node))
            self.leaves[leaf] = viv
            it_leaves.append(leaf)
            loop.leaves = (leaf,)
            if len(self.loop_stack) > 1 and rng.random() < 0.35:
                leaf2, node2 = self.index_combo()
                loop.binds.append((leaf2, node2))
                self.leaves[leaf2] = node2.iv
                it_leaves.append(leaf2)
        n_gathers = int(pick(rng, (0, 1, 1, 1, 2) if len(self.loop_stack) > 1 else (0, 1, 1)))
        for _ in range(n_gathers):
            leaf, node = self.make_gather()
            if leaf in self.leaves:
                continue
            loop.binds.append((leaf, node))
            self.add_leaf(leaf, node.iv)
            it_leaves.append(leaf)
        body: list = []
        level_acc = None
        if depth > 1 and rng.random() < 0.7:
            d = self.declare_level()
            body.append(d)
            level_acc = d.name
        temp = None
        if rng.random() < 0.35 and self.lines < MAX_LINES - 8:
            temp = self.temp()
            body.append(temp)
        if depth > 1 and rng.random() < 0.3 and self.lines < MAX_LINES - 8:
            kind = "continue" if rng.random() < 0.7 else "break"
            body.append(self.jump(kind))
        inner = None
        if depth > 1:
            inner_budget = max(2, budget // loop.trip)
            inner = self.nest(level + 1, depth - 1, inner_budget)
            if inner is not None:
                body.append(inner)
        # updates after (or, innermost, in) the body
        targets = [s for s in self.state if s != level_acc]
        if level_acc is not None and inner is None:       # no inner loop after all: accumulate here
            body.append(self.update(level_acc))
        if level_acc is not None:
            outer_target = pick(rng, targets) if targets else None
            if outer_target is not None:
                body.append(self.update(outer_target, must_use=level_acc))
                self.bump("fold")
        n_upd = int(pick(rng, (1, 1, 2))) if inner is None else int(pick(rng, (0, 0, 1)))
        for _ in range(n_upd):
            if self.lines > MAX_LINES - 3:
                break
            if rng.random() < 0.25 and self.lines < MAX_LINES - 6:
                body.append(self.guarded(targets))
            else:
                body.append(self.update(pick(rng, self.prefer_targets(targets))))
        if inner is None and depth == 1 and len(self.loop_stack) > 1 and rng.random() < 0.45 \
                and self.lines < MAX_LINES - 3:
            kind = "break" if rng.random() < 0.4 else "continue"
            first = body.index(temp) + 1 if temp is not None else 0
            pos = int(rng.integers(first, len(body) + 1)) if kind == "continue" else len(body)
            body.insert(pos, self.jump(kind))
        if not any(isinstance(s, L.Let) and s.name in self.state for s in body) and not any(
                isinstance(s, L.Loop) for s in body):
            body.append(self.update(pick(rng, self.prefer_targets(targets))))
        if temp is not None and not any(temp.name in L.node_uses(s.node) for s in L.walk(body)
                                        if isinstance(s, L.Let) and s is not temp):
            body.append(self.update(pick(rng, self.prefer_targets(targets)), must_use=temp.name))
        loop.body = body
        if any(isinstance(s, L.Jump) and s.kind == "break" for s in L._walk_same_loop(body)):
            self.has_break = True
            loop.unrolled = False
            self.all_unrolled = False
        # leave the loop: restore leaves (temps, per-iteration leaves and the level accumulator go out of scope)
        self.iter_leaves.pop()
        self.loop_stack.pop()
        self.leaves.clear()
        self.leaves.update(saved_leaves)
        if saved_dep is not None:
            self.gen.dep = saved_dep
        if level_acc is not None:
            self.state.remove(level_acc)
        return loop

    def prefer_targets(self, targets):
        """Innermost accumulators first (level accumulators of enclosing loops)."""
        level = [t for t in targets if t in self.bounds and t not in self.top_state]
        if level and self.rng.random() < 0.7:
            return level[-1:]
        return targets

    def guarded(self, targets) -> L.If:
        rng = self.rng
        cond, calib = self.condition("if")
        self.lines += 1
        body = [self.update(pick(rng, self.prefer_targets(targets)))]
        orelse = None
        if rng.random() < 0.45:
            self.lines += 1
            orelse = [self.update(pick(rng, targets))]
        node = L.If([(cond, body)], orelse)
        if calib:
            self.calib.append((node, "if"))
        self.bump("if")
        return node

    def jump(self, kind: str) -> L.Jump:
        cond, calib = self.condition(kind)
        j = L.Jump(kind, cond)
        if calib:
            self.calib.append((j, kind))
        self.lines += 2
        self.bump(kind)
        return j

    def index_value(self, v: str, iv: Interval, unrolled: bool):
        var_node = L.var(v, iv)
        if self.ty.name == "float32":
            return f"float({v})", L.cast(var_node, "int32", "float32")
        if unrolled:      # Warp 1.19: wp.float64(j) of an unrolled (constant) j retypes j itself
            inner = L.cast(var_node, "int32", "float32")
            return f"wp.float64(float({v}))", L.cast(inner, "float32", "float64")
        return f"wp.float64({v})", L.cast(var_node, "int32", "float64")

    def index_combo(self):
        """``float(j * k)``, ``float(k - j)``, ``float(j + k + 1)`` as a value."""
        rng = self.rng
        a, b = self.loop_stack[-2], self.loop_stack[-1]
        x, y = L.var(a.var, a.ivar), L.var(b.var, b.ivar)
        op = pick(rng, ("mul", "sub", "add"))
        iv = E._iv_binary(op, x.iv, y.iv)
        node = Node(op, (y, x) if op == "sub" else (x, y), iv=iv if op != "sub" else E._iv_binary("sub", y.iv, x.iv))
        spelled = L.emit(node, E.INT32)
        if self.ty.name == "float32":
            return f"float({spelled})", L.cast(node, "int32", "float32")
        return f"wp.float64({spelled})", L.cast(node, "int32", "float64")

    def make_gather(self):
        rng = self.rng
        arr = pick(rng, self.inputs)
        loops = self.loop_stack
        ity = E.INT32
        i_node = L.var("i", Interval(0, N - 1))
        k = L.var(loops[-1].var, loops[-1].ivar)

        def add(x, y):
            return Node("add", (x, y), iv=Interval(x.iv.lo + y.iv.lo, x.iv.hi + y.iv.hi))

        def mul(x, c):
            return Node("mul", (L.const(c, ity), x) if rng.random() < 0.5 else (x, L.const(c, ity)),
                        iv=Interval(x.iv.lo * c, x.iv.hi * c))

        forms = ["shift", "shift", "strided", "back", "scaled_i"]
        if len(loops) > 1:
            forms += ["cross", "cross", "sum", "diff", "lin2"]
        form = pick(rng, forms)
        if form == "shift":
            idx = add(i_node, k)
            if rng.random() < 0.5:
                idx = add(idx, L.const(int(rng.integers(1, 4)), ity))
        elif form == "strided":
            idx = add(i_node, mul(k, int(pick(rng, (2, 3, 4, 8)))))
        elif form == "back":
            idx = Node("sub", (add(i_node, L.const(N, ity)), k), iv=Interval(N - k.iv.hi, 2 * N - 1))
        elif form == "scaled_i":
            idx = add(mul(i_node, int(pick(rng, (2, 3, 5)))), k)
        else:
            j = L.var(loops[-2].var, loops[-2].ivar)
            if form == "cross":
                idx = add(i_node, Node("mul", (j, k), iv=Interval(j.iv.lo * k.iv.lo, j.iv.hi * k.iv.hi)))
            elif form == "sum":
                idx = add(add(i_node, j), k)
            elif form == "diff":
                idx = Node("sub", (add(add(i_node, L.const(N, ity)), j), k), iv=Interval(0, 3 * N))
            else:
                idx = add(add(i_node, mul(j, int(pick(rng, (2, 3, 4))))), k)
                if len(loops) > 2:
                    idx = add(idx, L.var(loops[-3].var, loops[-3].ivar))
        idx = Node("mod", (idx, L.const(N, ity)), iv=Interval(0, N - 1))
        node = L.gather(arr, idx, self.in_iv)
        self.bump("gather")
        return f"{arr}[{L.emit(idx, ity)}]", node

    # ------------------------------------------------------------------------------------------ program
    def build(self) -> Program:
        rng = self.rng
        self.setup()
        stmts = list(self.top)
        n_acc = int(pick(rng, (1, 1, 2, 2, 3)))
        for _ in range(n_acc):
            stmts.append(self.declare_top())
        self.top_state = list(self.state)
        if rng.random() < 0.2:
            t = self.temp()
            self.temps.discard(t.name)
            stmts.append(t)
        depth = int(pick(rng, (2, 2, 3, 3, 3)))
        nests = []
        first = self.top_nest(depth, TRIP_BUDGET)
        stmts.append(first)
        nests.append(first)
        if rng.random() < 0.25 and self.lines < MAX_LINES - 10:
            second = self.top_nest(2, 24)
            stmts.append(second)
            nests.append(second)
        self.features["levels"] = max(_levels(n) for n in nests)
        return self.finish(stmts)

    def top_nest(self, depth, budget):
        entry = {s: (self.leaves[s].lo, self.leaves[s].hi) for s in self.state}
        loop = None
        for _ in range(4):
            loop = self.nest(0, depth, budget)
            if loop is not None:
                break
        if loop is None:
            raise RuntimeError("no loop")
        out = L.fix_loop_bounds(loop, entry, self.is_int, frozenset(self.static))
        for s in self.state:
            self.leaves[s] = Interval(*out[s])
        return loop

    def finish(self, stmts) -> Program:
        rng, ty = self.rng, self.ty
        outs = pick(rng, OUT_NAMES, int(pick(rng, (1, 1, 2))))
        self.gen.binary = tuple(op for op in self.gen.binary if op not in ("min", "max"))
        self.gen.selects = False
        out_nodes = []
        for k, o in enumerate(outs):
            focus = self.state[-1 - k] if k < len(self.state) else pick(rng, self.state)
            node = self.expr(int(rng.integers(1, 3)), must_use=focus)
            out_nodes.append([o, node])
        used = set()
        for _, node in out_nodes:
            used |= E.uses(node)
        missing = [v for v in self.state + self.input_leaves + ([self.scalar_f] if self.scalar_f else [])
                   if v not in used and not self.flows_to_state(stmts, v)]
        missing += [s for s in self.state if s not in used]
        for idx, v in enumerate(dict.fromkeys(missing)):
            slot = out_nodes[idx % len(out_nodes)]
            slot[1] = self.gen.apply_binary(pick(rng, ("add", "sub", "mul")) if self.is_int else
                                            pick(rng, ("add", "sub", "add")), slot[1], E.var(v, self.leaves[v]))
        body_stmts = list(stmts)
        for o, node in out_nodes:
            body_stmts.append(L.Store(o, node))
            self.args.append(Arg(o, ty.name, "out", (N,)))
        lines: list[str] = []
        L.emit_block(body_stmts, lines, "", ty)
        params = [(a.name, L.SPELL[a.dtype] if a.role == "scalar" else L.ARRAY_SPELL[a.dtype]) for a in self.args]
        source = L.kernel_text(params, lines)
        meta = {"ty": ty.name, "arrays": [a.name for a in self.args if a.role == "in"],
                "scalars": [a.name for a in self.args if a.role == "scalar"], "binds": self.binds,
                "stmts": body_stmts, "outputs": [(o, ty.name) for o, _ in out_nodes], "params": params}
        feats = dict(self.features)
        feats["unrolled"] = int(self.all_unrolled)
        features = {"dtype": ty.name, "lines": len(lines) + 1, "constructs": sorted(feats), **feats}
        differentiable = not self.is_int and self.all_unrolled and not self.has_break
        return Program(source, tuple(self.args), (N,), meta, features, differentiable=differentiable)

    def flows_to_state(self, stmts, v) -> bool:
        for s in L.walk(stmts):
            if isinstance(s, L.Let) and s.name in self.top_state and v in E.uses(s.node):
                return True
        return False


def _levels(loop) -> int:
    inner = [s for s in loop.body if isinstance(s, L.Loop)]
    return 1 + max((_levels(s) for s in inner), default=0)


# ------------------------------------------------------------------------------------------------------
# Running programs (reference, calibration, health checks)


def run(meta, values: dict, n_sets: int = 1, probe=None) -> dict:
    if probe is None:
        return L.run(meta, values, n_sets)
    return L.run(meta, values, n_sets, machine=lambda ty, env, outputs, helpers, n: Probe(ty, env, outputs, n, probe))


class Probe(L.Machine):
    """A machine that records, for one jump/if, the left-hand side of its condition on live lanes (and
    treats the condition as false)."""

    def __init__(self, ty, env, outputs, n, probe):
        super().__init__(ty, env, outputs, n=n)
        self.target, self.values = probe

    def block(self, stmts, mask, frame):
        for s in stmts:
            if s is self.target:
                live = mask if frame is None else mask & ~(frame.broken | frame.cont)
                cond = s.cond if isinstance(s, L.Jump) else s.branches[0][0]
                lhs = np.broadcast_to(L.evaluate(cond.args[0], self.env, self.ty), (self.n,))
                self.values.append(np.asarray(lhs)[live])
                if isinstance(s, L.If) and s.orelse:
                    super().block(s.orelse, live, frame)
                continue
            super().block([s], mask, frame)


def calibrate(builder: Builder, program: Program, rng) -> None:
    """Set the thresholds of accumulator tests to quantiles of the values they see on sample inputs."""
    meta = program.meta
    for stmt, kind in builder.calib:
        values = L.dataset(program.args, rng, 3)
        seen: list = []
        run(meta, values, 3, probe=(stmt, seen))
        vals = np.concatenate(seen) if seen else np.zeros(0)
        cond = stmt.cond if isinstance(stmt, L.Jump) else stmt.branches[0][0]
        op, lhs = cond.op, cond.args[0]
        if vals.size == 0:
            q = 0.5
            vals = np.asarray([0.0])
        elif kind == "break":
            q = float(rng.uniform(0.55, 0.9)) if op in ("gt", "ge") else float(rng.uniform(0.1, 0.45))
        else:
            q = float(rng.uniform(0.25, 0.75))
        t = float(np.quantile(vals, q))
        if builder.is_int:
            value = int(round(t))
        else:
            value = float(f"{t:.3g}") if abs(t) >= 1e-3 else 0.0
        new = L.cmp(op, lhs, L.const(value, builder.ty))
        if isinstance(stmt, L.Jump):
            stmt.cond = new
        else:
            stmt.branches[0] = (new, stmt.branches[0][1])


def _build(rng: np.random.Generator) -> Program:
    b = Builder(rng)
    program = b.build()
    if b.calib:
        calibrate(b, program, rng)
        program = L.render(program)
    return program


def generate(rng: np.random.Generator) -> Program:
    return L.generate_healthy(rng, _build, ATTEMPTS)


FAMILY = Family(
    name="nested_loops",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=L.spec_reference,
    tolerance=type_tolerance,
    weight=1.0,
    covers=("nested loops", "triangular loops", "dynamic loop bounds", "accumulators", "index arithmetic",
            "gathers", "break/continue", "loop unrolling", "int32 C semantics", "float64"),
)
