"""multi_condition: long if/elif/else chains and deeply nested conditionals over compound conditions.

Float32/float64 kernels over 1-3 float arrays, 0-2 small-integer arrays (labels, kinds, buckets), float
threshold parameters and an int mode parameter. Control: if/elif chains of 2-6 branches, conditionals nested up
to four deep, and sequences of chains (a later chain refining a result computed by an earlier one). Conditions
are and/or/not combinations of comparisons of inputs with constants, with scalar parameters and with each
other, of small math expressions (``wp.abs(x - y) < 0.4``), integer tests with C semantics (parity
``k % 2 == 1`` is false for negative odd ``k``; ranges as chained comparisons ``-2 <= k < 3``; ``k == mode``),
lane-index tests (``i % 4 == 0``) and mixed ones (``float(k) * 0.5 < x``). Each branch computes its own random
expression (``math.MathGen``: math builtins kept inside their domains), often through branch-local
temporaries, and either stores the outputs directly or assigns a result variable used after the chain.

Thresholds are quantiles of sample values of their left-hand sides over the samples that reach the condition,
so that every branch of a chain is taken by some lanes; a program whose outputs look degenerate on sample
inputs is regenerated.
"""

from __future__ import annotations

import numpy as np

from harness.family import Arg, Family, Program
from kernels import _combined_lib as L
from kernels import _expr as E
from kernels import _math_lib as M
from kernels._common import ARRAY_NAMES, OUT_NAMES, pick, type_tolerance

N = L.N
Interval = E.Interval
Node = E.Node
FLOAT_RANGES = ((-2.0, 2.0), (-1.0, 1.0), (0.5, 3.0), (-3.0, 1.0), (-1.5, 2.5), (0.0, 4.0))
INT_ARRAYS = ("kind", "label", "tag", "cls", "bucket", "code", "state", "group")
INT_RANGES = ((-5, 5), (0, 7), (-3, 8), (0, 3), (-8, 8), (1, 6))
FLOAT_PARAMS = ("thr", "cut", "lo", "limit", "level", "bias", "edge")
INT_PARAMS = ("mode", "sel", "which", "variant", "phase")
RESULT_NAMES = ("res", "r", "val", "y", "outv", "acc", "f")
TEMP_NAMES = ("t", "u", "h", "g", "tmp", "w", "d", "q")
SAMPLES = 128
MAX_LINES = 30
ATTEMPTS = 5


class Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.ty = L.SCAL["float32" if rng.random() < 0.6 else "float64"]
        self.lines = 0
        self.names: set[str] = {"i"}
        self.features: dict[str, int] = {}
        self.max_depth_seen = 0

    def bump(self, key, n=1):
        self.features[key] = self.features.get(key, 0) + n

    def fresh(self, base):
        k = 0
        while f"{base}{k}" in self.names:
            k += 1
        self.names.add(f"{base}{k}")
        return f"{base}{k}"

    # ------------------------------------------------------------------------------------------ setup
    def setup(self):
        rng, ty = self.rng, self.ty
        n_f = int(pick(rng, (1, 2, 2, 3)))
        n_i = int(pick(rng, (0, 1, 1, 1, 2)))
        fnames = pick(rng, ARRAY_NAMES, n_f)
        inames = pick(rng, INT_ARRAYS, n_i)
        self.names.update(fnames + inames)
        self.args: list[Arg] = []
        self.binds = []
        self.loads: list = []
        self.float_leaves: list[str] = []
        self.int_leaves: list[str] = []
        leaves: dict[str, Interval] = {}
        samples: dict[str, np.ndarray] = {}
        self.env: dict[str, np.ndarray] = {"i": rng.integers(0, N, SAMPLES).astype(np.int64),
                                           }
        self.ivs: dict[str, Interval] = {"i": Interval(0, N - 1)}
        inline = rng.random() < 0.3
        cast = (lambda v: v.astype(np.float32).astype(np.float64)) if ty.name == "float32" else (lambda v: v)
        for n in fnames:
            lo, hi = pick(rng, FLOAT_RANGES)
            self.args.append(Arg(n, ty.name, "in", (N,), lo, hi))
            iv = Interval(lo, hi)
            leaf = self.load(n, iv, inline, ty.name)
            leaves[leaf] = iv
            samples[leaf] = cast(rng.uniform(lo, hi, SAMPLES))
            self.env[leaf] = samples[leaf]
            self.float_leaves.append(leaf)
        for n in inames:
            lo, hi = pick(rng, INT_RANGES)
            self.args.append(Arg(n, "int32", "in", (N,), lo, hi))
            iv = Interval(lo, hi)
            leaf = self.load(n, iv, inline, "int32")
            self.env[leaf] = rng.integers(lo, hi + 1, SAMPLES).astype(np.int64)
            self.ivs[leaf] = iv
            self.int_leaves.append(leaf)
            if rng.random() < 0.5:                 # the label as a float value too
                fl = f"float({leaf})" if ty.name == "float32" else f"wp.float64({leaf})"
                self.binds.append((fl, L.cast(L.gather(n, L.var("i", Interval(0, N - 1)), iv), "int32", ty.name)))
                leaves[fl] = iv
                samples[fl] = self.env[leaf].astype(np.float64)
                self.env[fl] = samples[fl]
        self.fparams: list[str] = []
        self.iparam = None
        weights = {}
        for p in pick(rng, FLOAT_PARAMS, int(pick(rng, (0, 0, 1, 1, 2)))):
            ref = self.args[int(rng.integers(n_f))]
            w = ref.high - ref.low
            lo, hi = round(ref.low + 0.25 * w, 2), round(ref.high - 0.25 * w, 2)
            self.args.append(Arg(p, ty.name, "scalar", (), lo, hi))
            leaves[p] = Interval(lo, hi)
            samples[p] = cast(rng.uniform(lo, hi, SAMPLES))
            self.env[p] = samples[p]
            self.fparams.append(p)
            weights[p] = 0.3
        if self.int_leaves and rng.random() < 0.45:
            self.iparam = pick(rng, INT_PARAMS)
            ref = next(a for a in self.args if a.dtype == "int32")
            self.args.append(Arg(self.iparam, "int32", "scalar", (), ref.low, ref.high))
            self.env[self.iparam] = rng.integers(int(ref.low), int(ref.high) + 1, SAMPLES).astype(np.int64)
            self.ivs[self.iparam] = Interval(ref.low, ref.high)
        self.names.update(a.name for a in self.args)
        self.gen = M.MathGen(rng, ty, leaves, samples, weights, differentiable=True)
        self.gen.scalars = frozenset(self.fparams)

    def load(self, name, iv, inline, tyname) -> str:
        node = L.gather(name, L.var("i", Interval(0, N - 1)), iv)
        if inline:
            leaf = f"{name}[i]"
            self.binds.append((leaf, node))
        else:
            leaf = self.fresh(f"{name[0]}v") if self.rng.random() < 0.3 else (
                f"{name}_v" if self.rng.random() < 0.5 else f"x{name}")
            self.names.add(leaf)
            self.loads.append(L.Let(leaf, node, ety=tyname))
            self.lines += 1
        return leaf

    # ------------------------------------------------------------------------------------------ conditions
    def quantile(self, values, mask, q) -> float:
        v = np.asarray(values, dtype=np.float64)
        v = v[mask] if v.ndim and mask.any() else np.atleast_1d(v)
        if not v.size:
            return 0.0
        v = np.sort(v)
        return float(v[int(round(q * (v.size - 1)))])

    def nice(self, t: float) -> float:
        if abs(t) < 1e-3:
            return 0.0
        return float(f"{t:.2g}") if self.rng.random() < 0.6 else float(f"{t:.3g}")

    def fconst(self, value) -> Node:
        return L.const(value, self.ty)

    def fvar(self, name) -> Node:
        return self.gen.var(name)

    def atom(self, mask) -> Node:
        rng = self.rng
        kinds = ["fconst"] * 3 + ["fexpr"] * 2
        if self.fparams:
            kinds += ["fparam"] * 2
        if len(self.float_leaves) > 1:
            kinds += ["fpair"] * 2
        if self.int_leaves:
            kinds += ["parity"] * 2 + ["irange"] * 2 + ["ieq"]
            if self.iparam:
                kinds += ["iparam"] * 2
            if any(k.startswith(("float(", "wp.float64(")) for k in self.gen.leaves):
                kinds.append("mixed")
        kinds.append("lane")
        kind = pick(rng, kinds)
        node = self.atom_of(kind, mask)
        return node, kind, self.cval(node)

    def atom_of(self, kind, mask) -> Node:
        rng = self.rng
        fops = ("lt", "le", "gt", "ge")
        if kind == "fconst":
            x = self.fvar(pick(rng, self.float_leaves))
            return L.cmp(pick(rng, fops), x, self.fconst(self.nice(self.quantile(self.gen.val(x), mask,
                                                                                   rng.uniform(0.2, 0.8)))))
        if kind == "fparam":
            x = self.fvar(pick(rng, self.float_leaves))
            p = self.fvar(pick(rng, self.fparams))
            return L.cmp(pick(rng, fops), x, p) if rng.random() < 0.7 else L.cmp(pick(rng, fops), p, x)
        if kind == "fpair":
            a, b = pick(rng, self.float_leaves, 2)
            y = self.fvar(b)
            if rng.random() < 0.4:
                c = round(float(rng.choice([0.5, 2.0, -1.0, 1.5, 0.25])), 2)
                y = self.gen.mk("mul", (y, self.fconst(c)), E._iv_binary("mul", y.iv, Interval(c, c)))
            return L.cmp(pick(rng, fops), self.fvar(a), y)
        if kind == "fexpr":
            x = self.fvar(pick(rng, self.float_leaves))
            roll = rng.random()
            if roll < 0.3 and len(self.float_leaves) > 1:
                y = self.fvar(pick(rng, [v for v in self.float_leaves if v != x.value]))
                d = self.gen.arith_raw("sub", x, y)
                e = self.gen.mk("abs", (d,), M.unary_iv("abs", d.iv))
            elif roll < 0.55 and len(self.float_leaves) > 1:
                y = self.fvar(pick(rng, [v for v in self.float_leaves if v != x.value]))
                e = self.gen.arith_raw(pick(rng, ("mul", "add", "sub")), x, y)
            else:
                e = self.gen.expr(int(rng.integers(1, 3)), p_leaf=0.0)
            t = self.quantile(self.gen.val(e), mask, rng.uniform(0.2, 0.8))
            return L.cmp(pick(rng, fops), e, self.fconst(self.nice(t)))
        # integer tests (exact, in int32 inside a float kernel)
        ity = E.INT32
        if kind == "lane":
            i = L.var("i", Interval(0, N - 1))
            if rng.random() < 0.5 or not self.int_leaves:
                m = int(pick(rng, (2, 3, 4)))
                c = L.cmp(pick(rng, ("eq", "ne")), Node("mod", (i, L.const(m, ity)), iv=Interval(0, m - 1)),
                          L.const(int(rng.integers(0, m)), ity))
            else:
                kname = pick(rng, self.int_leaves)
                k = L.var(kname, self.ivs[kname])
                m = int(pick(rng, (2, 3)))
                s = Node("add", (i, k), iv=Interval(k.iv.lo, k.iv.hi + N))
                c = L.cmp("eq", Node("mod", (s, L.const(m, ity)), iv=Interval(-m + 1, m - 1)),
                          L.const(int(rng.integers(0, m)), ity))
            return L.tcond(c, "int32")
        kname = pick(rng, self.int_leaves)
        kiv = self.ivs[kname]
        k = L.var(kname, kiv)
        lo, hi = int(kiv.lo), int(kiv.hi)
        if kind == "parity":
            m = int(pick(rng, (2, 2, 3, 4)))
            r = int(rng.integers(0, m))
            if lo < 0 and rng.random() < 0.25:
                r = -int(rng.integers(1, m))           # C remainder of negative labels
            c = L.cmp(pick(rng, ("eq", "eq", "ne")), Node("mod", (k, L.const(m, ity)), iv=Interval(-m + 1, m - 1)),
                      L.const(r, ity))
        elif kind == "irange":
            if hi - lo >= 3 and rng.random() < 0.6:
                a = int(rng.integers(lo, hi - 1))
                b = int(rng.integers(a + 2, hi + 1))
                c = L.chain(L.const(a, ity), pick(rng, ("le", "lt")), k, pick(rng, ("lt", "le")), L.const(b, ity))
                self.bump("chained_comparison")
            else:
                c = L.cmp(pick(rng, ("lt", "le", "gt", "ge")), k, L.const(int(rng.integers(lo + 1, hi + 1)), ity))
        elif kind == "ieq":
            c = L.cmp(pick(rng, ("eq", "ne")), k, L.const(int(rng.integers(lo, hi + 1)), ity))
        elif kind == "iparam":
            p = L.var(self.iparam, self.ivs[self.iparam])
            if rng.random() < 0.6:
                c = L.cmp(pick(rng, ("eq", "ne", "lt", "ge")), k, p)
            else:
                s = Node("add", (k, p), iv=Interval(kiv.lo + p.iv.lo, kiv.hi + p.iv.hi))
                c = L.cmp(pick(rng, ("gt", "le")), s, L.const(int(rng.integers(int(s.iv.lo) + 1, int(s.iv.hi))), ity))
        else:                                      # mixed: float(k) * c < x
            fl = next(v for v in self.gen.leaves if v.startswith(("float(", "wp.float64(")))
            x = self.fvar(pick(rng, self.float_leaves))
            c0 = round(float(rng.choice([0.5, 0.25, 0.3, 1.5, -0.5])), 2)
            lhs = self.gen.mk("mul", (self.fvar(fl), self.fconst(c0)), E._iv_binary("mul", self.gen.leaves[fl],
                                                                                   Interval(c0, c0)))
            return L.cmp(pick(rng, fops), lhs, x)
        return L.tcond(c, "int32")

    def cval(self, c) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.broadcast_to(L.evaluate_cond(c, self.env, self.ty), (SAMPLES,))

    def condition(self, mask, lo=0.15, hi=0.85) -> tuple[Node, np.ndarray]:
        """A compound condition true on between ``lo`` and ``hi`` of the samples in ``mask``, each of whose
        comparisons matters there (replacing it by True or by False changes the outcome somewhere)."""
        rng = self.rng
        best, best_score = None, None
        for _ in range(8):
            n_atoms = int(pick(rng, (1, 1, 2, 2, 2, 3)))
            atoms = [self.atom(mask) for _ in range(n_atoms)]
            negate = [rng.random() < 0.12 and a[0].op != "tcond" for a in atoms]
            ops = [pick(rng, ("and", "or")) for _ in atoms[1:]]
            outer_not = n_atoms > 1 and rng.random() < 0.1
            vals = [a[2] for a in atoms]
            v = _fold(vals, negate, ops, outer_not)
            frac = float(v[mask].mean()) if mask.any() else 0.5
            useful = n_atoms == 1 or all(
                not (_fold(vals[:j] + [np.full(SAMPLES, c)] + vals[j + 1:], negate, ops, outer_not) == v)[mask].all()
                for j in range(n_atoms) for c in (True, False))
            score = abs(frac - 0.5) + (0 if useful else 1)
            if best is None or score < best_score:
                nodes = [L.lnot(a[0]) if ng else a[0] for a, ng in zip(atoms, negate)]
                node = nodes[0]
                for op, a in zip(ops, nodes[1:]):
                    node = Node(op, (node, a))
                if outer_not:
                    node = L.lnot(node)
                best, best_score = (node, v, [a[1] for a in atoms]), score
            if lo <= frac <= hi and useful:
                break
        node, v, kinds = best
        for k in kinds:
            self.bump(f"cond_{k}")
        if node.op in ("and", "or", "not"):
            self.bump("compound")
        return node, v

    # ------------------------------------------------------------------------------------------ bodies
    def branch_expr(self, depth, must=None) -> Node:
        node = self.gen.statement(depth)
        if must is not None and must not in E.uses(node):
            node = self.gen.arith(pick(self.rng, ("add", "sub", "mul")), node, self.gen.var(must))
        return node

    def leaf_body(self, mask) -> list:
        rng = self.rng
        body = []
        temps = []
        n_t = int(pick(rng, (0, 0, 1, 1, 2))) if self.lines < MAX_LINES - 8 else 0
        for _ in range(n_t):
            name = self.fresh(pick(rng, TEMP_NAMES))
            node = self.branch_expr(int(rng.integers(1, 3)))
            body.append(L.Let(name, node))
            self.gen.leaves[name] = node.iv
            self.gen.samples[name] = np.broadcast_to(self.gen.val(node), (SAMPLES,))
            self.gen.weights[name] = 2.0
            temps.append(name)
            self.lines += 1
            self.bump("branch_temp")
        for j, o in enumerate(self.targets):
            must = temps[j % len(temps)] if temps else None
            node = self.branch_expr(int(pick(rng, (1, 2, 2, 3))), must)
            if j == len(self.targets) - 1:             # every temporary feeds some output
                for t in temps[len(self.targets):]:
                    if t not in E.uses(node):
                        node = self.gen.arith(pick(rng, ("add", "sub", "mul")), node, self.gen.var(t))
            if self.mode == "direct":
                body.append(L.Store(o, node))
            else:
                body.append(self.result_update(o, node))
            self.lines += 1
        for t in temps:
            self.gen.leaves.pop(t, None)
            self.gen.samples.pop(t, None)
        return body

    def result_update(self, name, node) -> L.Let:
        rng = self.rng
        if not self.assigned.get(name) or rng.random() < 0.6:
            return L.Let(name, node)
        roll = rng.random()
        cur = L.var(name, self.result_iv[name])
        if roll < 0.5:
            self.bump("accumulate")
            return L.Let(name, self.gen.mk("add", (cur, node), E._iv_binary("add", cur.iv, node.iv)), aug=True)
        c = round(float(rng.uniform(0.25, 1.5)), 2)
        scaled = self.gen.mk("mul", (cur, self.fconst(c)), E._iv_binary("mul", cur.iv, Interval(c, c)))
        return L.Let(name, self.gen.mk("sub", (scaled, node), E._iv_binary("sub", scaled.iv, node.iv)))

    def body(self, depth, mask) -> list:
        rng = self.rng
        self.max_depth_seen = max(self.max_depth_seen, depth)
        nest_p = (0.0, 0.55, 0.45, 0.3)[depth] if depth < 4 else 0.0
        if rng.random() < nest_p and self.lines < MAX_LINES - 10 and mask.sum() >= 12:
            pre = []
            if rng.random() < 0.25:
                name = self.fresh(pick(rng, TEMP_NAMES))
                node = self.branch_expr(1)
                pre.append(L.Let(name, node))
                self.gen.leaves[name] = node.iv
                self.gen.samples[name] = self.env[name] = np.broadcast_to(self.gen.val(node), (SAMPLES,))
                self.gen.weights[name] = 2.0
                self.lines += 1
                inner = self.chain(depth + 1, mask, max_branches=3)
                self.gen.leaves.pop(name)
                self.gen.samples.pop(name)
                self.env.pop(name)
                if not any(name in _uses_stmt(s) for s in L.walk([inner])):
                    return [inner]                 # the chain never read it: no dead temporary
                self.bump("branch_temp")
                return pre + [inner]
            return [self.chain(depth + 1, mask, max_branches=3)]
        return self.leaf_body(mask)

    def chain(self, depth, mask, max_branches=6) -> L.If:
        rng = self.rng
        n_br = int(rng.integers(1, max_branches + 1))
        if depth == 1 and max_branches > 3:
            n_br = max(n_br, 2)
        has_else = self.mode == "direct" or rng.random() < 0.75
        remaining = mask.copy()
        branches = []
        for b in range(n_br):
            if remaining.sum() < 6 or (b > 0 and self.lines > MAX_LINES - 6):
                break
            last = b == n_br - 1
            cond, v = self.condition(remaining, 0.2 if not last else 0.3, 0.65 if not last or has_else else 0.9)
            self.lines += 1
            taken = remaining & v
            branches.append((cond, self.body(depth, taken)))
            remaining = remaining & ~v
        orelse = None
        if has_else or not branches:
            if not branches:
                cond, v = self.condition(remaining)
                branches.append((cond, self.body(depth, remaining & v)))
                remaining = remaining & ~v
            self.lines += 1
            orelse = self.body(depth, remaining)
        self.bump("if")
        self.bump("elif", len(branches) - 1)
        self.bump("else", int(orelse is not None))
        for o in self.targets:
            self.assigned[o] = True
        return L.If(branches, orelse)

    # ------------------------------------------------------------------------------------------ program
    def build(self) -> Program:
        rng, ty = self.rng, self.ty
        self.setup()
        stmts = list(self.loads)
        outs = pick(rng, OUT_NAMES, int(pick(rng, (1, 1, 1, 2))))
        self.mode = "direct" if rng.random() < 0.4 else "result"
        self.assigned: dict[str, bool] = {}
        self.result_iv: dict[str, Interval] = {}
        all_mask = np.ones(SAMPLES, dtype=bool)
        if self.mode == "direct":
            self.targets = outs
            stmts.append(self.chain(1, all_mask))
            final = []
        else:
            results = [self.fresh(pick(rng, RESULT_NAMES)) for _ in outs]
            for r in results:
                if rng.random() < 0.5:
                    init = self.fconst(float(pick(rng, (0.0, 0.0, 1.0, -1.0))))
                    stmts.append(L.Let(r, init, decl=True))
                else:
                    init = self.branch_expr(1)
                    stmts.append(L.Let(r, init))
                self.result_iv[r] = Interval(-M.LIMIT * 4, M.LIMIT * 4)
                self.assigned[r] = False
                self.lines += 1
            self.targets = results
            n_chains = 1 if rng.random() < 0.65 or self.lines > MAX_LINES - 16 else 2
            for c in range(n_chains):
                if c and self.lines > MAX_LINES - 8:
                    break
                stmts.append(self.chain(1, all_mask, max_branches=6 if c == 0 else 3))
            self.bump("chains", n_chains)
            final = []
            for o, r in zip(outs, results):
                node = L.var(r, self.result_iv[r])
                if rng.random() < 0.3:
                    other = self.gen.var(pick(rng, self.float_leaves))
                    node = Node(pick(rng, ("add", "mul", "sub")), (node, other))
                final.append(L.Store(o, node))
        stmts += final
        for o in outs:
            self.args.append(Arg(o, ty.name, "out", (N,)))
        params = L.signature_params(self.args)
        lines: list[str] = []
        L.emit_block(stmts, lines, "", ty)
        meta = {"ty": ty.name, "arrays": [a.name for a in self.args if a.role == "in"],
                "scalars": [a.name for a in self.args if a.role == "scalar"], "binds": self.binds,
                "stmts": stmts, "outputs": [(o, ty.name) for o in outs], "params": params}
        features = {"dtype": ty.name, "mode": self.mode, "max_depth": self.max_depth_seen, "lines": len(lines) + 1,
                    "int_inputs": len(self.int_leaves), "constructs": sorted(self.features), **self.features}
        return Program(L.kernel_text(params, lines), tuple(self.args), (N,), meta, features, differentiable=True)


def _fold(vals, negate, ops, outer_not):
    v = ~vals[0] if negate[0] else vals[0]
    for op, x, ng in zip(ops, vals[1:], negate[1:]):
        x = ~x if ng else x
        v = (v & x) if op == "and" else (v | x)
    return ~v if outer_not else v


def _uses_stmt(s) -> set[str]:
    if isinstance(s, (L.Let, L.Store)):
        return L.node_uses(s.node)
    if isinstance(s, L.If):
        out = set()
        for c, _ in s.branches:
            out |= L.cond_uses(c)
        return out
    return set()


def generate(rng: np.random.Generator) -> Program:
    return L.generate_healthy(rng, lambda r: Builder(r).build(), ATTEMPTS)


FAMILY = Family(
    name="multi_condition",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=L.spec_reference,
    tolerance=type_tolerance,
    weight=1.0,
    covers=("if/elif/else chains", "nested conditionals", "compound conditions", "and/or/not",
            "chained comparisons", "integer parity tests", "C remainder semantics", "branch-local temporaries",
            "scalar thresholds", "math builtins", "float64"),
)
