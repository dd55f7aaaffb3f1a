"""expression_tree: single deep expression trees (depth 5-8) of arithmetic, selects and math builtins, or DAGs of shared subexpressions.

Float32/float64 kernels over 1-4 input arrays and optional scalar parameters. Two shapes:

* ``tree``: each output is one expression of depth 5 to 8 (a few hundred characters) mixing + - * /,
  the math builtins of ``math.MathGen`` (kept inside their domains by construction) and selects
  (``wp.where(c, a, b)`` and ``a if c else b``, whose conditions compare a subexpression with a threshold inside
  its sampled range, or two subexpressions, sometimes under and/or);
* ``dag``: 2-5 shared subexpressions bound to locals (later ones built on earlier ones), then output
  expressions of depth 4-7 in which every local is read at least twice (common subexpression reuse), the
  shape a compiler's CSE pass produces or consumes.

A program whose outputs look degenerate or ill-conditioned on sample inputs is regenerated.
"""

from __future__ import annotations

import numpy as np

from harness.family import Arg, Family, Program
from kernels import _combined_lib as L
from kernels import _expr as E
from kernels import math as M
from kernels._common import ARRAY_NAMES, OUT_NAMES, SCALAR_NAMES, pick, type_tolerance

N = L.N
Interval = E.Interval
Node = E.Node
INPUT_RANGES = ((-2.0, 2.0), (-1.0, 1.0), (0.5, 3.0), (-3.0, 1.0), (0.1, 2.0), (-1.5, 2.5))
SCALAR_RANGES = ((0.5, 2.0), (-1.0, 1.0), (0.2, 1.5))
LOCAL_NAMES = ("s", "c", "u", "w", "z", "h", "p", "q", "e", "r", "k", "cse", "sub", "com")
SAMPLES = 64
ATTEMPTS = 6
MIN_DEPTH, MAX_DEPTH = 5, 8
MAX_OPS = 48


class TreeGen(M.MathGen):
    """math.MathGen with selects: ``where``/``ifexp`` nodes over comparisons with sampled thresholds."""

    p_select = 0.14

    def val(self, node: Node) -> np.ndarray:
        if node.op in ("where", "ifexp"):
            hit = self._vals.get(id(node))
            if hit is not None and hit[0] is node:
                return hit[1]
            v = np.where(self.cond_val(node.args[0]), self.val(node.args[1]), self.val(node.args[2]))
            self._vals[id(node)] = (node, v)
            return v
        return super().val(node)

    def cond_val(self, c: Node) -> np.ndarray:
        if c.op in L.CMP:
            return L.CMP_NP[c.op](self.val(c.args[0]), self.val(c.args[1]))
        if c.op == "and":
            return self.cond_val(c.args[0]) & self.cond_val(c.args[1])
        if c.op == "or":
            return self.cond_val(c.args[0]) | self.cond_val(c.args[1])
        if c.op == "not":
            return ~self.cond_val(c.args[0])
        raise ValueError(c.op)

    def expr(self, depth: int, p_leaf: float = 0.2) -> Node:
        if depth >= 2 and self.rng.random() < self.p_select:
            return self.select(depth)
        return super().expr(depth, p_leaf)

    def comparison(self, depth: int) -> Node:
        rng = self.rng
        a = self.expr(max(0, depth), p_leaf=0.3)
        if not self.lively(a):
            a = self.var_leaf()
        if rng.random() < 0.3:
            b = self.expr(max(0, depth - 1), p_leaf=0.5)
            d = np.atleast_1d(self.val(a) - self.val(b))
            frac = float(np.mean(d > 0))
            if 0.15 <= frac <= 0.85 and not np.allclose(d, 0):
                return L.cmp(pick(rng, ("lt", "le", "gt", "ge")), a, b)
        v = np.sort(np.atleast_1d(self.val(a)))
        t = float(v[int(round(rng.uniform(0.2, 0.8) * (v.size - 1)))])
        t = float(f"{t:.2g}") if abs(t) >= 1e-2 else 0.0
        return L.cmp(pick(rng, ("lt", "le", "gt", "ge")), a, self.c(t))

    def select(self, depth: int) -> Node:
        rng = self.rng
        cond = self.comparison(int(rng.integers(0, max(1, depth - 2)) + 1) - 1)
        if rng.random() < 0.2:
            cond = Node(pick(rng, ("and", "or")), (cond, self.comparison(0)))
        x = self.expr(depth - 1)
        y = self.expr(depth - 1, p_leaf=0.3)
        for _ in range(3):
            if y != x:
                break
            y = self.expr(depth - 1)
        kind = "where" if rng.random() < 0.55 else "ifexp"
        node = Node(kind, (cond, x, y), None, Interval(min(x.iv.lo, y.iv.lo), max(x.iv.hi, y.iv.hi)))
        c = self.cond_val(cond)
        if np.ndim(c) == 0 or c.all() or not c.any():      # a select that always picks one side
            return x
        return node


class Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.ty = L.SCAL["float32" if rng.random() < 0.6 else "float64"]
        self.features: dict[str, int] = {}

    def setup(self):
        rng, ty = self.rng, self.ty
        n_in = int(pick(rng, (1, 2, 2, 3, 3, 4)))
        names = pick(rng, ARRAY_NAMES, n_in)
        self.args: list[Arg] = []
        self.binds = []
        self.loads = []
        leaves, samples, weights = {}, {}, {}
        self.data_leaves = []
        inline = rng.random() < 0.35
        cast = (lambda v: v.astype(np.float32).astype(np.float64)) if ty.name == "float32" else (lambda v: v)
        for n in names:
            lo, hi = pick(rng, INPUT_RANGES)
            self.args.append(Arg(n, ty.name, "in", (N,), lo, hi))
            node = L.gather(n, L.var("i", Interval(0, N - 1)), Interval(lo, hi))
            if inline:
                leaf = f"{n}[i]"
                self.binds.append((leaf, node))
            else:
                leaf = f"{n}_v" if rng.random() < 0.5 else f"x{n}"
                self.loads.append(L.Let(leaf, node))
            leaves[leaf] = Interval(lo, hi)
            samples[leaf] = cast(rng.uniform(lo, hi, SAMPLES))
            self.data_leaves.append(leaf)
        self.scalars = []
        if rng.random() < 0.35:
            for s in pick(rng, [x for x in SCALAR_NAMES if x not in names], int(pick(rng, (1, 1, 2)))):
                lo, hi = pick(rng, SCALAR_RANGES)
                self.args.append(Arg(s, ty.name, "scalar", (), lo, hi))
                leaves[s] = Interval(lo, hi)
                samples[s] = cast(rng.uniform(lo, hi, SAMPLES))
                weights[s] = 0.4
                self.scalars.append(s)
        self.gen = TreeGen(rng, ty, leaves, samples, weights, differentiable=True)
        self.gen.scalars = frozenset(self.scalars)

    def deep(self, lo: int, hi: int, p_leaf: float) -> Node:
        """An expression whose depth lies in [lo, hi] (retrying the generator's depth argument)."""
        rng = self.rng
        best = None
        target = int(rng.integers(lo, hi + 1))
        arg = max(2, target - 2)
        for _ in range(10):
            node = self.gen.expr(arg, p_leaf=p_leaf)
            d, ops = L.depth_of(node), M.size(node)
            if lo <= d <= hi and ops <= MAX_OPS and self.gen.lively(node) and not M.is_piecewise(node):
                return node
            if best is None or abs(d - target) < abs(L.depth_of(best) - target):
                if ops <= MAX_OPS:
                    best = node
            arg = max(1, arg + (1 if d < lo else -1 if d > hi else 0))
        return best if best is not None else self.gen.statement(3)

    def build(self) -> Program:
        rng, ty = self.rng, self.ty
        self.setup()
        gen = self.gen
        stmts = list(self.loads)
        outs = pick(rng, OUT_NAMES, int(pick(rng, (1, 1, 1, 2))))
        shape = "tree" if rng.random() < 0.5 else "dag"
        locals_: list[str] = []
        if shape == "tree":
            finals = [self.deep(MIN_DEPTH, MAX_DEPTH, float(rng.uniform(0.03, 0.12))) for _ in outs]
        else:
            used_names = set(self.data_leaves) | set(self.scalars)
            for k in range(int(rng.integers(2, 6))):
                name = next(n for n in (f"{pick(rng, LOCAL_NAMES)}{k}" for _ in range(50)) if n not in used_names)
                used_names.add(name)
                node = gen.statement(int(rng.integers(2, 4)))
                stmts.append(L.Let(name, node))
                gen.leaves[name] = node.iv
                gen.samples[name] = np.broadcast_to(gen.val(node), (SAMPLES,))
                gen.weights[name] = 3.0
                locals_.append(name)
            finals = [self.deep(4, 7, float(rng.uniform(0.1, 0.25))) for _ in outs]
            # every local read at least twice (by later locals and the outputs together)
            for name in locals_:
                count = sum(_count(s.node, name) for s in stmts if isinstance(s, L.Let)) + \
                    sum(_count(f, name) for f in finals)
                j = int(rng.integers(len(finals)))
                while count < 2:
                    term = gen.var(name)
                    if rng.random() < 0.6:
                        term = gen.unary(pick(rng, ("sin", "cos", "tanh", "atan", "exp", "sqrt", "erf")), term)
                    finals[j] = gen.tame(gen.arith_raw(pick(rng, ("add", "sub", "mul")), finals[j], term))
                    count += _count(term, name)
                    j = (j + 1) % len(finals)
            self.features["shared_locals"] = len(locals_)
        # every input and scalar reaches an output
        for v in self.data_leaves + self.scalars:
            if not any(v in E.uses(f) for f in finals) and not any(
                    v in E.uses(s.node) for s in stmts if isinstance(s, L.Let) and s.name in locals_):
                j = int(rng.integers(len(finals)))
                finals[j] = gen.tame(gen.arith_raw(pick(rng, ("add", "sub")), finals[j], gen.var(v)))
        for o, f in zip(outs, finals):
            stmts.append(L.Store(o, f))
            self.args.append(Arg(o, ty.name, "out", (N,)))
        params = L.signature_params(self.args)
        lines: list[str] = []
        L.emit_block(stmts, lines, "", ty)
        meta = {"ty": ty.name, "arrays": [a.name for a in self.args if a.role == "in"],
                "scalars": list(self.scalars), "binds": self.binds, "stmts": stmts,
                "outputs": [(o, ty.name) for o in outs], "params": params}
        ops: set[str] = set()
        for s in stmts:
            if isinstance(s, (L.Let, L.Store)):
                ops |= M.builtins_of(s.node) | ({"select"} if L.ops_in(s.node) & {"where", "ifexp"} else set())
        depths = [L.depth_of(f) for f in finals]
        features = {"dtype": ty.name, "shape": shape, "depth": max(depths), "operations": sum(M.size(f) for f in finals),
                    "chars": max(len(L.emit(f, ty)) for f in finals), "builtins": sorted(ops),
                    "selects": sum(_count_ops(f, ("where", "ifexp")) for f in finals), **self.features}
        return Program(L.kernel_text(params, lines), tuple(self.args), (N,), meta, features, differentiable=True)


def _count(node: Node, name: str) -> int:
    if node.op == "var":
        return int(node.value == name)
    return sum(_count(c, name) for c in node.args)


def _count_ops(node: Node, ops) -> int:
    return int(node.op in ops) + sum(_count_ops(c, ops) for c in node.args)


def generate(rng: np.random.Generator) -> Program:
    return L.generate_healthy(rng, lambda r: Builder(r).build(), ATTEMPTS)


FAMILY = Family(
    name="expression_tree",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=L.spec_reference,
    tolerance=type_tolerance,
    weight=1.0,
    covers=("deep expression trees", "selects", "wp.where", "conditional expressions", "math builtins",
            "common subexpressions", "expression DAGs", "float64"),
)
