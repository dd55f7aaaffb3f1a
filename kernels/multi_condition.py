"""multi_condition: long if/elif/else chains and deeply nested conditionals over compound conditions.

Float32/float64 kernels over 1-3 float arrays, 0-2 small-integer arrays (labels, kinds, buckets), float
threshold parameters and an int mode parameter. Control: if/elif chains of 2-6 branches, conditionals nested up
to four deep, and sequences of chains (a later chain refining a result computed by an earlier one). Conditions
are and/or/not combinations of comparisons of inputs with constants, with scalar parameters and with each
other, of small math expressions (``wp.abs(x - y) < 0.4``), integer tests with C semantics (parity
``k % 2 == 1`` is false for negative odd ``k``; ranges as chained comparisons ``-2 <= k < 3``; ``k == mode``),
lane-index tests (``i % 4 == 0``) and mixed ones (``wp.float32(k) * 0.5 < x``). Each branch computes its own
random expression (the IR's builders: math builtins kept inside their domains), often through branch-local
temporaries, and either stores the outputs directly or assigns a result variable used after the chain.

Thresholds are quantiles of the values their left-hand sides take on a sample launch (the IR interpreter),
over the lanes that reach the condition, so that every branch of a chain is taken by some lanes; the reference
is the interpreter, and a program the verifier would call degenerate on its outputs is drawn again.
"""

from __future__ import annotations

import numpy as np

from harness.family import PLACEHOLDER, Program
from kernels.ir import analysis, interp, intervals
from kernels.ir import nodes as n
from kernels.ir.family import adjoints_right, features, ir_family, program
from kernels.ir.gen import ARRAY_NAMES, OUT_NAMES, ExprBuilder, Leaf, Names, Vocabulary, first_clean
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, FLOAT64, INT32, Array

N = 64
I = n.Var("i", INT32)
FLOAT_RANGES = ((-2.0, 2.0), (-1.0, 1.0), (0.5, 3.0), (-3.0, 1.0), (-1.5, 2.5), (0.0, 4.0))
INT_ARRAYS = ("kind", "label", "tag", "cls", "bucket", "code", "state", "group")
INT_RANGES = ((-5, 5), (0, 7), (-3, 8), (0, 3), (-8, 8), (1, 6))
FLOAT_PARAMS = ("thr", "cut", "lo", "limit", "level", "bias", "edge")
INT_PARAMS = ("mode", "sel", "which", "variant", "phase")
RESULT_NAMES = ("res", "r", "val", "y", "outv", "acc", "f")
TEMP_NAMES = ("t", "u", "h", "g", "tmp", "w", "d", "q")
OPS = {"add": 3, "sub": 3, "mul": 3, "div": 1, "neg": 0.3, "abs": 0.4, "min": 0.6, "max": 0.6, "sin": 1,
       "cos": 1, "tanh": 0.8, "atan": 0.6, "exp": 0.5, "sqrt": 0.6, "log": 0.5, "erf": 0.4}
FLOAT_CMP = ("lt", "le", "gt", "ge")
MAX_LINES = 30


def _const(value: float | int, ty) -> n.Const:
    return n.Const(value, ty)


class Builder:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.ty = FLOAT32 if rng.random() < 0.6 else FLOAT64
        self.names = Names(rng, named=True)
        self.params: list[n.Param] = []
        self.ranges: dict[str, Interval] = {}
        self.body: list[n.Stmt] = []
        self.env: dict[str, np.ndarray] = {"i": np.arange(N, dtype=np.int32)}
        self.arrays: dict[str, np.ndarray] = {}
        self.floats: list[n.Expr] = []
        self.ints: list[tuple[n.Expr, Interval]] = []
        self.fparams: list[n.Var] = []
        self.iparam: tuple[n.Var, Interval] | None = None
        self.lines = 0
        self.gen = ExprBuilder(rng, Vocabulary(OPS, types=(self.ty,), ranges={self.ty: Interval(-2, 2)}, limit=1e3),
                               [])

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def value(self, e: n.Expr) -> np.ndarray:
        return np.broadcast_to(interp.evaluate(e, self.env, self.arrays, N), (N,))

    # ---------------------------------------------------------------------------------------------- inputs
    def array(self, name: str, ty, iv: Interval, inline: bool) -> n.Expr:
        self.params.append(n.Param(name, Array(ty)))
        self.ranges[name] = iv
        if ty.is_int:
            self.arrays[name] = self.rng.integers(int(iv.lo), int(iv.hi) + 1, N).astype(np.int32)
        else:
            self.arrays[name] = self.rng.uniform(iv.lo, iv.hi, N)
        load: n.Expr = n.Load(name, Array(ty), (I,))
        if inline:
            return load
        local = self.names.loaded(name, 0)
        self.body.append(n.Let(local, load))
        self.env[local] = self.arrays[name].astype(np.float64 if ty.is_float else np.int32)
        self.lines += 1
        return n.Var(local, ty)

    def setup(self) -> None:
        rng, ty = self.rng, self.ty
        inline = rng.random() < 0.3
        for _ in range(int(self.pick((1, 2, 2, 3)))):
            iv = Interval(*self.pick(FLOAT_RANGES))
            x = self.array(self.names.fresh(ARRAY_NAMES, "x", 0), ty, iv, inline)
            self.floats.append(x)
            self.gen.leaves.append((x, iv))
        for _ in range(int(self.pick((0, 1, 1, 1, 2)))):
            iv = Interval(*self.pick(INT_RANGES))
            k = self.array(self.names.fresh(INT_ARRAYS, "k", 0), INT32, iv, inline)
            self.ints.append((k, iv))
            if rng.random() < 0.5:                  # the label as a float value too
                self.gen.leaves.append((n.Cast(k, ty), iv))
        for _ in range(int(self.pick((0, 0, 1, 1, 2)))):
            ref = self.ranges[self.params[0].name]
            w = ref.hi - ref.lo
            iv = Interval(round(ref.lo + 0.25 * w, 2), round(ref.hi - 0.25 * w, 2))
            p = n.Var(self.names.fresh(FLOAT_PARAMS, "thr", 0), ty)
            self.params.append(n.Param(p.name, ty))
            self.ranges[p.name] = iv
            self.env[p.name] = np.full(N, rng.uniform(iv.lo, iv.hi))
            self.fparams.append(p)
            self.gen.leaves.append((p, iv))
        if self.ints and rng.random() < 0.45:
            iv = self.ints[0][1]
            p = n.Var(self.names.fresh(INT_PARAMS, "mode", 0), INT32)
            self.params.append(n.Param(p.name, INT32))
            self.ranges[p.name] = iv
            self.env[p.name] = np.full(N, int(rng.integers(int(iv.lo), int(iv.hi) + 1)), dtype=np.int32)
            self.iparam = (p, iv)

    # ---------------------------------------------------------------------------------------------- conditions
    def quantile(self, e: n.Expr, mask: np.ndarray) -> float:
        v = self.value(e)
        v = np.sort(v[mask] if mask.any() else v)
        t = float(v[int(round(self.rng.uniform(0.2, 0.8) * (v.size - 1)))])
        return 0.0 if abs(t) < 1e-3 else float(f"{t:.2g}") if self.rng.random() < 0.6 else float(f"{t:.3g}")

    def atom(self, mask: np.ndarray) -> n.Expr:
        kinds = ["fconst"] * 3 + ["fexpr"] * 2 + ["fparam"] * 2 * bool(self.fparams) + \
            ["fpair"] * 2 * (len(self.floats) > 1) + ["lane"]
        if self.ints:
            kinds += ["parity"] * 2 + ["irange"] * 2 + ["ieq"] + ["iparam"] * 2 * bool(self.iparam)
            kinds += ["mixed"] * any(isinstance(e, n.Cast) for e, _ in self.gen.leaves)
        return getattr(self, f"atom_{self.pick(kinds)}")(mask)

    def atom_fconst(self, mask):
        x = self.pick(self.floats)
        return n.Call(self.pick(FLOAT_CMP), (x, _const(self.quantile(x, mask), self.ty)))

    def atom_fparam(self, mask):
        x, p = self.pick(self.floats), self.pick(self.fparams)
        return n.Call(self.pick(FLOAT_CMP), (x, p) if self.rng.random() < 0.7 else (p, x))

    def atom_fpair(self, mask):
        a, b = (self.floats[int(j)] for j in self.rng.choice(len(self.floats), 2, replace=False))
        if self.rng.random() < 0.4:
            b = n.Call("mul", (b, _const(float(self.pick((0.5, 2.0, -0.5, 1.5, 0.25))), self.ty)))
        return n.Call(self.pick(FLOAT_CMP), (a, b))

    def atom_fexpr(self, mask):
        x, roll = self.pick(self.floats), self.rng.random()
        others = [y for y in self.floats if y != x]
        if roll < 0.3 and others:
            e = n.Call("abs", (n.Call("sub", (x, self.pick(others))),))
        elif roll < 0.55 and others:
            e = n.Call(self.pick(("mul", "add", "sub")), (x, self.pick(others)))
        else:
            e = self.gen.compound(self.ty, int(self.rng.integers(1, 3)))[0]
        return n.Call(self.pick(FLOAT_CMP), (e, _const(self.quantile(e, mask), self.ty)))

    def atom_lane(self, mask):
        if self.rng.random() < 0.5 or not self.ints:
            m = int(self.pick((2, 3, 4)))
            lhs = n.Call("mod", (I, _const(m, INT32)))
            return n.Call(self.pick(("eq", "ne")), (lhs, _const(int(self.rng.integers(0, m)), INT32)))
        m = int(self.pick((2, 3)))
        lhs = n.Call("mod", (n.Call("add", (I, self.pick(self.ints)[0])), _const(m, INT32)))
        return n.Call("eq", (lhs, _const(int(self.rng.integers(0, m)), INT32)))

    def atom_parity(self, mask):
        k, iv = self.pick(self.ints)
        m = int(self.pick((2, 2, 3, 4)))
        r = int(self.rng.integers(0, m))
        if iv.lo < 0 and self.rng.random() < 0.25:
            r = -int(self.rng.integers(1, m))         # C remainder of negative labels
        return n.Call(self.pick(("eq", "eq", "ne")), (n.Call("mod", (k, _const(m, INT32))), _const(r, INT32)))

    def atom_irange(self, mask):
        k, iv = self.pick(self.ints)
        lo, hi = int(iv.lo), int(iv.hi)
        if hi - lo >= 3 and self.rng.random() < 0.6:
            a = int(self.rng.integers(lo, hi - 1))
            b = int(self.rng.integers(a + 2, hi + 1))
            return n.Call("and", (n.Call(self.pick(("le", "lt")), (_const(a, INT32), k)),
                                  n.Call(self.pick(("lt", "le")), (k, _const(b, INT32)))))
        return n.Call(self.pick(FLOAT_CMP), (k, _const(int(self.rng.integers(lo + 1, hi + 1)), INT32)))

    def atom_ieq(self, mask):
        k, iv = self.pick(self.ints)
        return n.Call(self.pick(("eq", "ne")), (k, _const(int(self.rng.integers(int(iv.lo), int(iv.hi) + 1)), INT32)))

    def atom_iparam(self, mask):
        (k, kiv), (p, piv) = self.pick(self.ints), self.iparam
        if self.rng.random() < 0.6:
            return n.Call(self.pick(("eq", "ne", "lt", "ge")), (k, p))
        lo, hi = int(kiv.lo + piv.lo), int(kiv.hi + piv.hi)
        c = int(self.rng.integers(lo + 1, hi)) if hi - lo > 1 else lo
        return n.Call(self.pick(("gt", "le")), (n.Call("add", (k, p)), _const(c, INT32)))

    def atom_mixed(self, mask):
        fl = self.pick([e for e, _ in self.gen.leaves if isinstance(e, n.Cast)])
        lhs = n.Call("mul", (fl, _const(float(self.pick((0.5, 0.25, 0.3, 1.5, -0.5))), self.ty)))
        return n.Call(self.pick(FLOAT_CMP), (lhs, self.pick(self.floats)))

    def condition(self, mask: np.ndarray, lo: float = 0.15, hi: float = 0.85) -> tuple[n.Expr, np.ndarray]:
        """A compound condition true on between ``lo`` and ``hi`` of the lanes in ``mask``, each of whose
        comparisons matters there (replacing it by True or by False changes the outcome on some lane)."""
        best = None
        for _ in range(8):
            atoms = [self.atom(mask) for _ in range(int(self.pick((1, 1, 2, 2, 2, 3))))]
            atoms = [n.Call("not", (a,)) if self.rng.random() < 0.12 and a.op != "and" else a for a in atoms]
            vals = [self.value(a) for a in atoms]
            ops = [self.pick(("and", "or")) for _ in atoms[1:]]
            negate = len(atoms) > 1 and self.rng.random() < 0.1
            v = _fold(vals, ops, negate)
            frac = float(v[mask].mean()) if mask.any() else 0.5
            useful = all(not np.array_equal(_fold(vals[:j] + [np.full(N, c)] + vals[j + 1:], ops, negate)[mask],
                                            v[mask]) for j in range(len(atoms)) for c in (True, False))
            score = abs(frac - 0.5) + (0 if useful or len(atoms) == 1 else 1)
            if best is None or score < best[0]:
                node = atoms[0]
                for op, a in zip(ops, atoms[1:]):
                    node = n.Call(op, (node, a))
                best = (score, n.Call("not", (node,)) if negate else node, v)
            if lo <= frac <= hi and (useful or len(atoms) == 1):
                break
        return best[1], best[2]

    # ---------------------------------------------------------------------------------------------- bodies
    def expr(self, depth: int, must: n.Expr | None = None) -> Leaf:
        e = self.gen.compound(self.ty, depth)
        if must is not None and must not in analysis.subexprs(e[0]):
            made = self.gen.checked(n.Call(self.pick(("add", "sub", "mul")), (e[0], must)),
                                    [e[1], dict(self.gen.leaves)[must]])
            e = made or e
        return e

    def leaf_body(self) -> list[n.Stmt]:
        body: list[n.Stmt] = []
        temps: list[n.Var] = []
        for _ in range(int(self.pick((0, 0, 1, 1, 2))) if self.lines < MAX_LINES - 8 else 0):
            t = n.Var(self.names.fresh(TEMP_NAMES, "t", len(self.names.used), suffix=True), self.ty)
            e, iv = self.expr(int(self.rng.integers(1, 3)))
            body.append(n.Let(t.name, e))
            self.gen.leaves.append((t, iv))
            temps.append(t)
            self.lines += 1
        for j, target in enumerate(self.targets):
            e, iv = self.expr(int(self.pick((1, 2, 2, 3))), temps[j % len(temps)] if temps else None)
            if j == len(self.targets) - 1:          # every temporary feeds some output
                for t in temps[len(self.targets):]:
                    if t not in analysis.subexprs(e):
                        e, iv = self.gen.checked(n.Call("add", (e, t)), [iv, dict(self.gen.leaves)[t]]) or (e, iv)
            body.append(self.update(target, e, iv))
            self.lines += 1
        self.gen.leaves = [leaf for leaf in self.gen.leaves if leaf[0] not in temps]
        return body

    def update(self, target: str, e: n.Expr, iv: Interval) -> n.Stmt:
        if self.mode == "direct":
            return n.Store(target, Array(self.ty), (I,), e)
        cur = n.Var(target, self.ty)
        roll = self.rng.random()
        if not self.assigned[target] or roll < 0.6:
            return n.Assign(target, e)
        cur_iv = self.result_iv[target]
        if roll >= 0.8:                               # r = r * c - e
            c = round(float(self.rng.uniform(0.25, 1.5)), 2)
            cur, cur_iv = self.gen.checked(n.Call("mul", (cur, _const(c, self.ty))),
                                           [cur_iv, Interval.point(c)]) or (cur, cur_iv)
        made = self.gen.checked(n.Call("add" if roll < 0.8 else "sub", (cur, e)), [cur_iv, iv])
        return n.Assign(target, made[0] if made else e)

    def branch(self, depth: int, mask: np.ndarray) -> list[n.Stmt]:
        nest = (0.0, 0.55, 0.45, 0.3)[depth] if depth < 4 else 0.0
        if self.rng.random() < nest and self.lines < MAX_LINES - 10 and mask.sum() >= 12:
            return [self.chain(depth + 1, mask, max_branches=3)]
        return self.leaf_body()

    def chain(self, depth: int, mask: np.ndarray, max_branches: int = 6) -> n.If:
        n_br = int(self.rng.integers(1, max_branches + 1))
        if depth == 1 and max_branches > 3:
            n_br = max(n_br, 2)
        has_else = self.mode == "direct" or self.rng.random() < 0.75
        remaining = mask.copy()
        arms: list[tuple[n.Expr, list[n.Stmt]]] = []
        for b in range(n_br):
            if remaining.sum() < 6 or (b > 0 and self.lines > MAX_LINES - 6):
                break
            last = b == n_br - 1
            cond, v = self.condition(remaining, 0.2 if not last else 0.3, 0.65 if not last or has_else else 0.9)
            self.lines += 1
            arms.append((cond, self.branch(depth, remaining & v)))
            remaining = remaining & ~v
        orelse: tuple[n.Stmt, ...] = ()
        if has_else or not arms:
            if not arms:
                cond, v = self.condition(remaining)
                arms.append((cond, self.branch(depth, remaining & v)))
                remaining = remaining & ~v
            self.lines += 1
            orelse = tuple(self.branch(depth, remaining))
        for target in self.targets:
            self.assigned[target] = True
        for cond, stmts in reversed(arms):
            orelse = (n.If(cond, tuple(stmts), orelse),)
        return orelse[0]

    # ---------------------------------------------------------------------------------------------- program
    def build(self) -> n.Kernel:
        self.setup()
        outs = [self.names.fresh(OUT_NAMES, "out", 0) for _ in range(int(self.pick((1, 1, 1, 2))))]
        self.mode = "direct" if self.rng.random() < 0.4 else "result"
        self.assigned: dict[str, bool] = {}
        self.result_iv: dict[str, Interval] = {}
        everything = np.ones(N, dtype=bool)
        stores: list[n.Stmt] = []
        if self.mode == "direct":
            self.targets = outs
            self.body.append(self.chain(1, everything))
        else:
            self.targets = [self.names.fresh(RESULT_NAMES, "r", 0) for _ in outs]
            for r in self.targets:
                if self.rng.random() < 0.5:
                    e, iv = _const(float(self.pick((0.0, 0.0, 1.0, -1.0))), self.ty), Interval(-1.0, 1.0)
                else:
                    e, iv = self.expr(1)
                self.body.append(n.Let(r, e))
                self.result_iv[r] = iv
                self.assigned[r] = False
                self.lines += 1
            for c in range(1 if self.rng.random() < 0.65 or self.lines > MAX_LINES - 16 else 2):
                if c and self.lines > MAX_LINES - 8:
                    break
                self.body.append(self.chain(1, everything, max_branches=6 if c == 0 else 3))
                self.refresh()
            for o, r in zip(outs, self.targets):
                e: n.Expr = n.Var(r, self.ty)
                if self.rng.random() < 0.3:
                    e = n.Call(self.pick(("add", "mul", "sub")), (e, self.pick(self.floats)))
                stores.append(n.Store(o, Array(self.ty), (I,), e))
        params = tuple(self.params) + tuple(n.Param(o, Array(self.ty)) for o in outs)
        kernel = n.Kernel(PLACEHOLDER, params, tuple(self.body + stores))
        return analysis.remove_dead(analysis.fold_unused(kernel))

    def refresh(self) -> None:
        """Bounds of the result variables after the chains so far (the interval engine)."""
        kernel = n.Kernel(PLACEHOLDER, tuple(self.params), tuple(self.body))
        env = intervals.analyze(kernel, self.ranges, (N,)).env
        self.result_iv = {r: env.get(r, iv) for r, iv in self.result_iv.items()}


def _fold(vals: list[np.ndarray], ops: list[str], negate: bool) -> np.ndarray:
    v = vals[0]
    for op, x in zip(ops, vals[1:]):
        v = (v & x) if op == "and" else (v | x)
    return ~v if negate else v


def draw(rng: np.random.Generator) -> Program:
    def build() -> tuple[n.Kernel, dict[str, Interval], Builder]:
        b = Builder(rng)
        return b.build(), b.ranges, b

    kernel, ranges, b = first_clean(build, N)
    return program(kernel, ranges, (N,), {**features(kernel), "mode": b.mode},
                   differentiable=adjoints_right(kernel))


FAMILY = ir_family("multi_condition", __doc__, draw, version=2,
                   covers=("if/elif/else chains", "nested conditionals", "compound conditions", "and/or/not",
                           "chained comparisons", "integer parity tests", "C remainder semantics",
                           "branch-local temporaries", "scalar thresholds", "math builtins", "float64"))
