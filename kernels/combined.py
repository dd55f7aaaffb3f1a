"""combined: programs mixing wp.vec3 values, loops, conditionals, math builtins and a @wp.func helper in one kernel.

Float32 kernels over ``wp.vec3`` arrays (or three float arrays assembled with ``wp.vec3(x[i], y[i], z[i])``),
optional float weight arrays and scalar parameters. A program is a random sequence of blocks over typed values
(scalars and vec3):

* vector values: ``wp.vec3(...)`` built from scalar expressions or permuted components, sums, differences,
  scalings, ``wp.cross``; scalar measures of them: ``wp.dot``, ``wp.length``, ``wp.length_sq``, components;
* scalar math (``math.MathGen``: builtins kept inside their domains) over those measures and the inputs;
* a neighbour loop (constant or parameter trip count) that gathers other elements
  (``pos[(i + j + 1) % 64]``, ``wp.vec3(x[k], y[k], z[k])``), relates them to this one (difference, cross
  product), measures the relation, filters it (``if r < h:``, ``if wp.dot(d, v) > 0.0 and ...``,
  ``if r > cut: continue``) and accumulates vector and scalar sums;
* conditionals on vector measures (reflection ``v - n * (2.0 * wp.dot(v, n))``, magnitude limiting,
  sign flips) with else branches;
* one or two ``@wp.func`` helpers (scalar -> scalar with an if/else inside, vec3 -> float, or
  (vec3, vec3) -> vec3) created where the program first calls them, their parameter domains the intervals of
  those first arguments.

Outputs are float or vec3 arrays. The reference interprets the same statements over all lanes at once (vectors
as (N, 3) arrays); a program whose outputs look degenerate on sample inputs is regenerated.
"""

from __future__ import annotations

import math as _math

import numpy as np

from harness.family import Arg, Family, Program
from kernels import _combined_lib as L
from kernels import _expr as E
from kernels import _math_lib as M
from kernels._common import OUT_NAMES, pick, type_tolerance
from kernels._numeric import nice

N = L.N
F32 = E.FLOAT32
Interval = E.Interval
Node = E.Node
VEC_ARRAYS = ("pos", "vel", "nrm", "pts", "dirs", "force", "xyz", "pa", "pb", "field")
SPLIT = (("x", "y", "z"), ("px", "py", "pz"), ("ax", "ay", "az"), ("u", "v", "w"))
WEIGHTS = ("mass", "wgt", "rho", "charge", "radius", "val")
VEC_LOCALS = ("p", "q", "d", "n", "a", "b", "g", "h", "dv", "dir", "rel", "t", "m", "c")
SCALAR_LOCALS = ("r", "s", "e", "k", "ln", "dd", "proj", "cosv", "mag", "wt", "f", "phi")
HELPER_NAMES = ("wkf_kernel_weight", "wkf_kernel_kern", "wkf_kernel_shape", "wkf_kernel_falloff",
                "wkf_kernel_pot", "wkf_kernel_proj", "wkf_kernel_blend", "wkf_kernel_fn")
VOUT_NAMES = ("vout", "fout", "dst_v", "res_v", "acc_v", "vec_out")
SCALAR_PARAMS = ("h", "radius", "strength", "cut", "kappa", "eps")
VMAX = 40.0            # component bound kept for vector values
SAMPLES = N
ATTEMPTS = 5


class Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.names: set[str] = {"i", "j", "wp"}
        self.features: dict[str, int] = {}
        self.helpers: dict[str, L.Helper] = {}
        self.helper_src: list[str] = []
        self.vecs: dict[str, Interval] = {}
        self.stmts: list = []
        self.binds: list = []
        self.dynamic = False
        self.has_break = False

    # ------------------------------------------------------------------------------------------ names
    def bump(self, key, n=1):
        self.features[key] = self.features.get(key, 0) + n

    def fresh(self, options) -> str:
        free = [o for o in options if o not in self.names]
        name = pick(self.rng, free) if free else None
        if name is None:
            k = 0
            base = pick(self.rng, options)
            while f"{base}{k}" in self.names:
                k += 1
            name = f"{base}{k}"
        self.names.add(name)
        return name

    # ------------------------------------------------------------------------------------------ setup
    def setup(self):
        rng = self.rng
        self.args: list[Arg] = []
        self.senv: dict = {"i": np.arange(N, dtype=np.int64)}
        self.gen = M.MathGen(rng, F32, {}, {}, {}, differentiable=True)
        self.vec_source = "array" if rng.random() < 0.6 else "split"
        i = L.var("i", Interval(0, N - 1))
        lo, hi = pick(rng, ((-2.0, 2.0), (-1.0, 1.0), (0.0, 3.0), (-3.0, 3.0)))
        self.pos_iv = Interval(lo, hi)
        if self.vec_source == "array":
            name = self.fresh(VEC_ARRAYS)
            self.pos_arrays = (name,)
            self.args.append(Arg(name, "vec3f", "in", (N,), lo, hi))
            self.senv["@" + name] = _f32(rng.uniform(lo, hi, (N, 3)))
            pnode = L.gather(name, i, self.pos_iv)
            self.bump("vec3_array")
        else:
            comps = pick(rng, [s for s in SPLIT if not set(s) & self.names])
            self.names.update(comps)
            self.pos_arrays = comps
            for c in comps:
                self.args.append(Arg(c, "float32", "in", (N,), lo, hi))
                self.senv["@" + c] = _f32(rng.uniform(lo, hi, N))
            pnode = Node("vec3", tuple(L.gather(c, i, self.pos_iv) for c in comps), None, self.pos_iv)
            self.bump("vec3_construct")
        p = self.fresh(("p", "pi", "xi", "pos_i", "pt"))
        self.let_vec(p, pnode)
        self.p = p
        self.second = None
        if rng.random() < 0.5:
            name = self.fresh(VEC_ARRAYS)
            vlo, vhi = pick(rng, ((-1.0, 1.0), (-2.0, 2.0), (0.0, 1.0)))
            self.args.append(Arg(name, "vec3f", "in", (N,), vlo, vhi))
            self.senv["@" + name] = _f32(rng.uniform(vlo, vhi, (N, 3)))
            v = self.fresh(("v", "vi", "ni", "dv", "u"))
            self.let_vec(v, L.gather(name, i, Interval(vlo, vhi)))
            self.second = (name, v)
        self.weight = None
        if rng.random() < 0.45 or (self.second is None and self.vec_source == "array"):
            name = self.fresh(WEIGHTS)
            wlo, whi = pick(rng, ((0.5, 2.0), (0.1, 1.0), (-1.0, 1.0)))
            self.args.append(Arg(name, "float32", "in", (N,), wlo, whi))
            self.senv["@" + name] = _f32(rng.uniform(wlo, whi, N))
            leaf = self.fresh((f"{name}_i", f"x{name}", f"{name}_v"))
            self.let_scalar(leaf, L.gather(name, i, Interval(wlo, whi)))
            self.weight = (name, leaf, Interval(wlo, whi))
        self.param = None
        if rng.random() < 0.45:
            name = self.fresh(SCALAR_PARAMS)
            plo, phi = pick(rng, ((0.5, 1.5), (0.2, 1.0), (1.0, 2.5)))
            self.args.append(Arg(name, "float32", "scalar", (), plo, phi))
            self.senv[name] = _f32(rng.uniform(plo, phi, N))
            self.gen.leaves[name] = Interval(plo, phi)
            self.gen.samples[name] = self.senv[name]
            self.gen.weights[name] = 1.0
            self.gen.scalars = frozenset([name])
            self.param = name
        self.n_param = None

    # ------------------------------------------------------------------------------------------ values
    def run(self, stmts, env=None):
        with np.errstate(all="ignore"):
            L.Machine(F32, self.senv if env is None else env, {}, self.helpers, n=N).block(
                stmts, np.ones(N, dtype=bool), None)

    def let_vec(self, name, node, emit=True) -> L.Let:
        s = L.Let(name, node, ety="vec3")
        self.run([s])
        self.vecs[name] = node.iv
        if emit:
            self.stmts.append(s)
        return s

    def let_scalar(self, name, node, emit=True, weight=2.0) -> L.Let:
        s = L.Let(name, node)
        self.run([s])
        self.gen.leaves[name] = node.iv
        self.gen.samples[name] = np.asarray(self.senv[name], dtype=np.float64)
        self.gen.weights[name] = weight
        if emit:
            self.stmts.append(s)
        return s

    def val(self, node):
        with np.errstate(all="ignore"):
            return np.asarray(L.evaluate(node, self.senv, F32, self.helpers), dtype=np.float64)

    # ------------------------------------------------------------------------------------------ vector exprs
    def vvar(self, name=None) -> Node:
        name = name or pick(self.rng, list(self.vecs))
        return L.var(name, self.vecs[name])

    def scal(self, depth=1) -> Node:
        """A scalar expression (MathGen) of the scalar values in scope."""
        if not self.gen.leaves:
            return self.measure()
        return self.gen.statement(depth) if depth > 0 else self.gen.var_leaf()

    def small_scalar(self) -> Node:
        rng = self.rng
        if rng.random() < 0.5 or not self.gen.leaves:
            return self.gen.c(round(float(rng.choice([0.5, 0.25, 2.0, 1.5, -0.5, 0.75, 0.1])), 2))
        return self.gen.fit(self.scal(int(rng.integers(0, 2))), -2.0, 2.0)

    def vexpr(self, depth: int) -> Node:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.25:
            return self.vvar()
        roll = rng.random()
        if roll < 0.3:
            a, b = self.vexpr(depth - 1), self.vexpr(depth - 1)
            if a == b:
                b = self.vscale(b, self.small_scalar())
            return self.vlimit(Node(pick(rng, ("add", "sub")), (a, b), None, _sym(a.iv.mag + b.iv.mag)))
        if roll < 0.55:
            return self.vscale(self.vexpr(depth - 1), self.small_scalar())
        if roll < 0.7 and len(self.vecs) > 1:
            a, b = pick(rng, list(self.vecs), 2)
            self.bump("cross")
            return self.vlimit(Node("cross", (self.vvar(a), self.vvar(b)), None,
                                    _sym(2 * self.vecs[a].mag * self.vecs[b].mag)))
        if roll < 0.85:
            return self.vctor()
        child = self.vexpr(depth - 1)
        return Node("neg", (child,), None, child.iv)

    def vscale(self, v: Node, s: Node) -> Node:
        return self.vlimit(Node("vmul", (v, s), None, _sym(v.iv.mag * s.iv.mag)))

    def vlimit(self, v: Node) -> Node:
        if v.iv.mag <= VMAX:
            return v
        c = nice(VMAX / 4 / v.iv.mag)
        return Node("vmul", (v, self.gen.c(c)), None, _sym(v.iv.mag * c))

    def vctor(self) -> Node:
        """``wp.vec3(...)`` from scalar expressions or permuted components."""
        rng = self.rng
        self.bump("vec3_construct")
        if rng.random() < 0.4 and self.vecs:
            v = self.vvar()
            perm = rng.permutation(3)
            parts = []
            for k in perm:
                c = Node("comp", (v,), int(k), _sym(v.iv.mag))
                if rng.random() < 0.3:
                    c = Node("neg", (c,), None, c.iv)
                parts.append(c)
            if rng.random() < 0.4:
                parts[int(rng.integers(3))] = self.gen.c(round(float(rng.uniform(-1, 1)), 2))
            return Node("vec3", tuple(parts), None, _sym(v.iv.mag))
        parts = []
        for _ in range(3):
            if rng.random() < 0.25:
                parts.append(self.gen.c(round(float(rng.uniform(-1.5, 1.5)), 2)))
            else:
                parts.append(self.gen.fit(self.scal(int(rng.integers(0, 3))), -VMAX / 4, VMAX / 4))
        if all(x.op == "const" for x in parts):
            parts[0] = self.gen.var_leaf() if self.gen.leaves else self.measure()
        return Node("vec3", tuple(parts), None, _sym(max(x.iv.mag for x in parts)))

    def measure(self, v: Node | None = None, w: Node | None = None) -> Node:
        """A scalar measure of vectors: dot, length, length_sq or a component."""
        rng = self.rng
        v = v if v is not None else self.vvar()
        roll = rng.random()
        if roll < 0.35:
            w = w if w is not None else self.vvar()
            self.bump("dot")
            return Node("dot", (v, w), None, _sym(3 * v.iv.mag * w.iv.mag))
        if roll < 0.7:
            self.bump("length")
            return Node("length", (v,), None, Interval(0.0, _math.sqrt(3) * v.iv.mag))
        if roll < 0.85:
            self.bump("length_sq")
            return Node("length_sq", (v,), None, Interval(0.0, 3 * v.iv.mag ** 2))
        self.bump("component")
        return Node("comp", (v,), int(rng.integers(3)), _sym(v.iv.mag))

    def threshold(self, node: Node, lo=0.25, hi=0.75) -> float:
        v = np.sort(np.atleast_1d(self.val(node)).ravel())
        t = float(v[int(round(self.rng.uniform(lo, hi) * (v.size - 1)))])
        return float(f"{t:.2g}") if abs(t) >= 1e-2 else 0.0

    # ------------------------------------------------------------------------------------------ helpers
    def scalar_helper(self, args: list[Node]) -> str:
        """A float helper whose parameters take the domains of ``args`` (their intervals and samples)."""
        rng = self.rng
        name = self.fresh(HELPER_NAMES)
        pnames = list(pick(rng, (("r", "h"), ("x", "s"), ("d2", "k"), ("t", "w"), ("q", "c"))))[:len(args)]
        leaves = {p: a.iv for p, a in zip(pnames, args)}
        samples = {p: np.broadcast_to(self.val(a), (N,)).astype(np.float64) for p, a in zip(pnames, args)}
        g = M.MathGen(rng, F32, leaves, samples, differentiable=True)
        body = []
        env = dict(samples)
        for k in range(int(pick(rng, (0, 1, 1, 2)))):
            loc = f"{pick(rng, ('u', 'z', 'm', 'g'))}{k}"
            node = g.statement(int(rng.integers(1, 3)))
            body.append(L.Let(loc, node))
            g.leaves[loc] = node.iv
            g.samples[loc] = env[loc] = np.broadcast_to(g.val(node), (N,))
            g.weights[loc] = 2.0
        if rng.random() < 0.6:                       # an if/else inside the helper
            lhs = g.var(pnames[0]) if rng.random() < 0.6 else g.statement(1)
            vals = np.sort(np.atleast_1d(g.val(lhs)))
            t = float(vals[int(round(rng.uniform(0.3, 0.7) * (vals.size - 1)))])
            t = float(f"{t:.2g}") if abs(t) >= 1e-2 else 0.0
            cond = L.cmp(pick(rng, ("lt", "gt", "le", "ge")), lhs, g.c(t))
            loc = "wv" if "wv" not in pnames else "wv0"
            e0 = g.statement(1)
            e1 = g.statement(int(rng.integers(1, 3)))
            e2 = g.statement(1) if rng.random() < 0.5 else None
            body.append(L.Let(loc, e0))
            body.append(L.If([(cond, [L.Let(loc, e1)])], [L.Let(loc, e2)] if e2 is not None else None))
            ivs = [e0.iv, e1.iv] + ([e2.iv] if e2 is not None else [])
            g.leaves[loc] = Interval(min(v.lo for v in ivs), max(v.hi for v in ivs))
            c = g.cond_val(cond) if hasattr(g, "cond_val") else L.CMP_NP[cond.op](g.val(lhs), t)
            g.samples[loc] = np.where(c, g.val(e1), g.val(e2) if e2 is not None else g.val(e0))
            g.weights[loc] = 3.0
            self.bump("helper_if")
        ret = g.statement(int(rng.integers(1, 3)))
        for v in pnames + [s.name for s in body if isinstance(s, L.Let)]:
            used = v in E.uses(ret) or any(v in L.node_uses(s.node) for s in L.walk(body) if isinstance(s, L.Let)
                                           and s.name != v) or any(v in L.cond_uses(c) for s in body
                                                                   if isinstance(s, L.If) for c, _ in s.branches)
            if not used:
                ret = g.tame(g.arith_raw(pick(rng, ("add", "sub", "mul")), ret, g.var(v)))
        ret = g.tame(ret, 8.0)
        h = L.Helper(name, [(p, "float32") for p in pnames], body, ret, "float32", F32)
        self.helpers[name] = h
        self.helper_src.append(h.source())
        self.helper_ret = ret.iv
        self.bump("helper_scalar")
        return name

    def vec_helper(self, args: list[Node], returns: str) -> tuple[str, Interval]:
        """A helper over vec3 parameters returning a float or a vec3."""
        rng = self.rng
        name = self.fresh(HELPER_NAMES)
        pnames = list(pick(rng, (("a", "b"), ("d", "n"), ("u", "v"), ("p0", "p1"))))[:len(args)]
        saved = (self.vecs, self.gen, self.senv)
        self.vecs = {p: a.iv for p, a in zip(pnames, args)}
        env = {p: np.broadcast_to(self.val(a), (N, 3)).astype(np.float64) for p, a in zip(pnames, args)}
        self.senv = env
        self.gen = M.MathGen(rng, F32, {}, {}, differentiable=True)
        body = []
        try:
            if rng.random() < 0.6:
                loc = "m0"
                node = self.measure(self.vvar(pnames[0]), self.vvar(pnames[-1]))
                body.append(L.Let(loc, node))
                self.run(body[-1:], env)
                self.gen.leaves[loc] = node.iv
                self.gen.samples[loc] = np.asarray(env[loc], dtype=np.float64)
                self.gen.weights[loc] = 3.0
            if returns == "float32":
                if not self.gen.leaves:
                    node = self.measure()
                    body.append(L.Let("m0", node))
                    self.run(body[-1:], env)
                    self.gen.leaves["m0"] = node.iv
                    self.gen.samples["m0"] = np.asarray(env["m0"], dtype=np.float64)
                ret = self.gen.tame(self.gen.statement(int(rng.integers(1, 3))), 8.0)
                ret_iv = ret.iv
                rty = "float32"
            else:
                ret = self.vexpr(2)
                if not (set(pnames) <= L.node_uses(ret) | {u for s in body for u in L.node_uses(s.node)}):
                    other = self.vvar(pnames[-1])
                    ret = self.vlimit(Node("add", (ret, self.vscale(other, self.small_scalar())), None,
                                           _sym(ret.iv.mag + 2 * other.iv.mag)))
                ret_iv = ret.iv
                rty = "vec3"
            for s in body:
                if s.name not in L.node_uses(ret):
                    if rty == "float32":
                        ret = self.gen.tame(self.gen.arith_raw("add", ret, self.gen.var(s.name)), 8.0)
                        ret_iv = ret.iv
                    else:
                        ret = self.vlimit(Node("vmul", (ret, self.gen.fit(self.gen.var(s.name), 0.5, 1.5)), None,
                                               _sym(ret.iv.mag * 1.5)))
                        ret_iv = ret.iv
        finally:
            self.vecs, self.gen, self.senv = saved
        h = L.Helper(name, [(p, "vec3") for p in pnames], body, ret, rty, F32)
        self.helpers[name] = h
        self.helper_src.append(h.source())
        self.bump(f"helper_vec_{'float' if rty == 'float32' else 'vec3'}")
        return name, ret_iv

    def call(self, name, args, iv) -> Node:
        self.bump("helper_call")
        return Node("call", tuple(args), name, iv)

    # ------------------------------------------------------------------------------------------ blocks
    def block_derive(self):
        rng = self.rng
        if rng.random() < 0.5:
            name = self.fresh(VEC_LOCALS)
            self.let_vec(name, self.vexpr(int(rng.integers(1, 3))))
            self.bump("block_vec")
        else:
            name = self.fresh(SCALAR_LOCALS)
            node = self.measure()
            if rng.random() < 0.5 and self.gen.leaves:
                self.let_scalar(self.fresh(SCALAR_LOCALS), node)
                node = self.gen.statement(int(rng.integers(1, 3)))
            self.let_scalar(name, node)
            self.bump("block_scalar")

    def block_cond(self):
        """A conditional on a vector measure that modifies a vector or a scalar."""
        rng = self.rng
        kind = pick(rng, ("reflect", "limit", "flip", "generic", "generic"))
        if kind == "reflect" and len(self.vecs) < 2:
            kind = "limit"
        vname = pick(rng, list(self.vecs))
        v = self.vvar(vname)
        self.bump(f"cond_{kind}")
        if kind == "reflect":
            n = self.vvar(pick(rng, [x for x in self.vecs if x != vname]))
            dn = Node("dot", (v, n), None, _sym(3 * v.iv.mag * n.iv.mag))
            two = Node("vmul", (n, Node("mul", (self.gen.c(2.0), dn), None, _sym(2 * dn.iv.mag))), None,
                       _sym(n.iv.mag * 2 * dn.iv.mag))
            new = self.vlimit(Node("sub", (v, two), None, _sym(v.iv.mag + two.iv.mag)))
            cond = L.cmp(pick(rng, ("lt", "gt")), dn, self.gen.c(0.0))
            self.stmts.append(L.If([(cond, [L.Let(vname, new, ety="vec3")])], None))
            self.run(self.stmts[-1:])
            self.vecs[vname] = _sym(max(v.iv.mag, new.iv.mag))
            self.bump("dot")
            return
        if kind == "limit":
            ln = Node("length", (v,), None, Interval(0.0, _math.sqrt(3) * v.iv.mag))
            c = max(0.1, self.threshold(ln, 0.4, 0.8))
            scale = Node("div", (self.gen.c(c), ln), None, Interval(0.0, 1.0))
            new = Node("vmul", (v, scale), None, v.iv)
            cond = L.cmp("gt", ln, self.gen.c(c))
            self.stmts.append(L.If([(cond, [L.Let(vname, new, ety="vec3")])], None))
            self.run(self.stmts[-1:])
            self.bump("length")
            return
        if kind == "flip":
            other = self.vvar()
            m = self.measure(v, other)
            cond = L.cmp(pick(rng, ("lt", "gt")), m, self.gen.c(self.threshold(m)))
            alt = self.vexpr(1)
            self.stmts.append(L.If([(cond, [L.Let(vname, Node("neg", (v,), None, v.iv), ety="vec3")])],
                                   [L.Let(vname, alt, ety="vec3")] if rng.random() < 0.5 else None))
            self.run(self.stmts[-1:])
            self.vecs[vname] = _sym(max(v.iv.mag, alt.iv.mag))
            return
        # generic: if <measure or scalar> <op> t: x = e1 elif ...: x = e2 else: x = e3 (x a scalar local)
        m = self.measure()
        mname = self.fresh(SCALAR_LOCALS)
        self.let_scalar(mname, m)
        target = self.fresh(SCALAR_LOCALS)
        init = self.scal(1)
        self.let_scalar(target, init, weight=3.0)
        branches = []
        ivs = [init.iv]
        for b in range(int(pick(rng, (1, 1, 2)))):
            cond = L.cmp(pick(rng, ("lt", "gt", "le", "ge")), self.gen.var(mname),
                         self.gen.c(self.threshold(self.gen.var(mname), 0.2 + 0.3 * b, 0.5 + 0.3 * b)))
            if rng.random() < 0.3 and len(self.vecs) > 1:
                a, b2 = pick(rng, list(self.vecs), 2)
                d = Node("dot", (self.vvar(a), self.vvar(b2)), None, _sym(3 * self.vecs[a].mag * self.vecs[b2].mag))
                cond = Node(pick(rng, ("and", "or")), (cond, L.cmp(pick(rng, ("lt", "gt")), d, self.gen.c(0.0))))
                self.bump("compound")
            e = self.gen.tame(self.gen.arith(pick(rng, ("add", "mul", "sub")), self.gen.var(target), self.scal(1)))
            branches.append((cond, [L.Let(target, e)]))
            ivs.append(e.iv)
        orelse = None
        if rng.random() < 0.6:
            e = self.scal(int(rng.integers(1, 3)))
            orelse = [L.Let(target, e)]
            ivs.append(e.iv)
        self.stmts.append(L.If(branches, orelse))
        self.run(self.stmts[-1:])
        self.gen.leaves[target] = Interval(min(v.lo for v in ivs), max(v.hi for v in ivs))
        self.gen.samples[target] = np.asarray(self.senv[target], dtype=np.float64)

    def block_loop(self):
        """Neighbour loop: gather, relate, measure, filter, weigh (helper), accumulate."""
        rng = self.rng
        if rng.random() < 0.3:
            self.dynamic = True
            self.n_param = self.fresh(("n", "nb", "count", "steps"))
            nlo, nhi = int(rng.integers(1, 3)), int(rng.integers(4, 8))
            self.args.append(Arg(self.n_param, "int32", "scalar", (), nlo, nhi))
            self.senv[self.n_param] = rng.integers(nlo, nhi + 1, N).astype(np.int64)
            K, stop = nhi, L.var(self.n_param, Interval(nlo, nhi))
            self.bump("loop_param")
        else:
            K = int(rng.integers(3, 9))
            stop = L.const(K, E.INT32)
            self.bump("loop_const")
        j = L.var("j", Interval(0, K - 1))
        i = L.var("i", Interval(0, N - 1))
        form = pick(rng, ("next", "next", "stride", "back"))
        if form == "next":
            idx = Node("add", (Node("add", (i, j), None, Interval(0, N + K)), L.const(1, E.INT32)), None,
                       Interval(1, N + K + 1))
        elif form == "stride":
            idx = Node("add", (i, Node("mul", (L.const(int(pick(rng, (2, 3, 5))), E.INT32), j), None,
                                       Interval(0, 5 * K))), None, Interval(0, N + 5 * K))
            idx = Node("add", (idx, L.const(1, E.INT32)), None, Interval(1, N + 5 * K + 1))
        else:
            idx = Node("sub", (Node("add", (i, L.const(N - 1, E.INT32)), None, Interval(N - 1, 2 * N)), j), None,
                       Interval(N - K, 2 * N))
        idx = Node("mod", (idx, L.const(N, E.INT32)), None, Interval(0, N - 1))
        # accumulators
        accs = []
        fvec = None
        if rng.random() < 0.7:
            fvec = self.fresh(("f", "acc", "force", "sumv", "total"))
            zero = Node("vec3", tuple(self.gen.c(0.0) for _ in range(3)), None, Interval(0.0, 0.0))
            self.let_vec(fvec, zero)
            accs.append(fvec)
        fsc = None
        if fvec is None or rng.random() < 0.5:
            fsc = self.fresh(("e", "energy", "cnt", "wsum", "dens"))
            self.let_scalar(fsc, self.gen.c(0.0))
            self.stmts[-1].decl = True
            accs.append(fsc)
        # accumulators are not values the body may read (their intervals grow with the loop)
        for acc in accs:
            self.vecs.pop(acc, None)
            self.gen.leaves.pop(acc, None)
        loop = L.Loop("j", L.const(0, E.INT32), stop, 1, K, Interval(0, K - 1), not self.dynamic)
        body = []
        # the loop body's values are sampled at one random iteration per lane
        lenv = dict(self.senv)
        lenv["j"] = rng.integers(0, K, N).astype(np.int64)
        outer_env = self.senv
        self.senv = lenv
        saved_vecs, saved_leaves = dict(self.vecs), dict(self.gen.leaves)
        saved_samples = dict(self.gen.samples)
        try:
            qname = self.fresh(("q", "pj", "xj", "other", "nb"))
            if self.vec_source == "array":
                qnode = L.gather(self.pos_arrays[0], idx, self.pos_iv)
            else:
                qnode = Node("vec3", tuple(L.gather(c, idx, self.pos_iv) for c in self.pos_arrays), None, self.pos_iv)
                self.bump("vec3_construct")
            body.append(self.let_vec(qname, qnode, emit=False))
            p, q = self.vvar(self.p), self.vvar(qname)
            rel = pick(rng, ("diff", "diff", "rdiff", "cross", "scaled"))
            dname = self.fresh(("d", "dx", "rij", "delta", "sep"))
            if rel == "diff":
                dnode = Node("sub", (p, q), None, _sym(2 * self.pos_iv.mag))
            elif rel == "rdiff":
                dnode = Node("sub", (q, p), None, _sym(2 * self.pos_iv.mag))
            elif rel == "cross":
                dnode = Node("cross", (p, q), None, _sym(2 * self.pos_iv.mag ** 2))
                self.bump("cross")
            else:
                s = self.small_scalar()
                dnode = self.vlimit(Node("sub", (p, Node("vmul", (q, s), None, _sym(q.iv.mag * s.iv.mag))), None,
                                         _sym(p.iv.mag + q.iv.mag * s.iv.mag)))
            body.append(self.let_vec(dname, dnode, emit=False))
            d = self.vvar(dname)
            rname = self.fresh(("r", "dist", "r2", "dd", "proj"))
            if self.second is not None and rng.random() < 0.35:
                rnode = Node("dot", (d, self.vvar(self.second[1])), None, _sym(3 * d.iv.mag * self.vecs[self.second[1]].mag))
                self.bump("dot")
            elif rng.random() < 0.6:
                rnode = Node("length", (d,), None, Interval(0.0, _math.sqrt(3) * d.iv.mag))
                self.bump("length")
            else:
                rnode = Node("length_sq", (d,), None, Interval(0.0, 3 * d.iv.mag ** 2))
                self.bump("length_sq")
            body.append(self.let_scalar(rname, rnode, emit=False, weight=3.0))
            mj = None
            if self.weight is not None and rng.random() < 0.6:      # the neighbour's weight
                mj = self.fresh(("mj", "wj", "qj"))
                body.append(self.let_scalar(mj, L.gather(self.weight[0], idx, self.weight[2]), emit=False))
            # weight from a helper
            helper_kind = pick(rng, ("scalar", "scalar", "vec_float", "vec_vec"))
            wname2 = self.fresh(("w", "wt", "kw", "phi"))
            if helper_kind == "scalar":
                args = [self.gen.var(rname)]
                if rng.random() < 0.6:
                    args.append(self.gen.var(self.param) if self.param else
                                self.gen.c(round(float(rng.uniform(0.5, 2.0)), 2)))
                h = self.scalar_helper(args)
                body.append(self.let_scalar(wname2, self.call(h, args, self.helper_ret), emit=False, weight=3.0))
                wvec = None
            elif helper_kind == "vec_float":
                args = [d] + ([self.vvar(self.second[1])] if self.second and rng.random() < 0.5 else [])
                h, iv = self.vec_helper(args, "float32")
                body.append(self.let_scalar(wname2, self.call(h, args, iv), emit=False, weight=3.0))
                wvec = None
            else:
                args = [d, self.vvar(self.second[1]) if self.second else p]
                h, iv = self.vec_helper(args, "vec3")
                body.append(self.let_vec(wname2, self.call(h, args, iv), emit=False))
                wvec = wname2
            # filter
            r = self.gen.var(rname)
            ftype = pick(rng, ("if", "if", "continue", "if_else", "none"))
            t = self.threshold(r, 0.3, 0.8)
            cond = L.cmp(pick(rng, ("lt", "le")) if ftype != "continue" else pick(rng, ("gt", "ge")), r, self.gen.c(t))
            if ftype != "continue" and rng.random() < 0.3:
                other = L.tcond(L.cmp("ne", L.var("j", Interval(0, K - 1)),
                                      L.const(int(rng.integers(0, K)), E.INT32)), "int32")
                cond = Node(pick(rng, ("and", "or")), (cond, other))
                self.bump("compound")
            # accumulate
            upd = []
            wv = self.gen.var(wname2) if wvec is None else None
            if wv is not None and mj is not None:
                wv = self.gen.mk("mul", (wv, self.gen.var(mj)), E._iv_binary("mul", wv.iv, self.gen.leaves[mj]))
            elif mj is not None:
                wvec_node = self.vscale(self.vvar(wvec), self.gen.var(mj))
            for acc in accs:
                if acc == fvec:
                    if wvec is not None:
                        term = wvec_node if mj is not None else self.vvar(wvec)
                    else:
                        term = Node("vmul", (d, wv), None, _sym(d.iv.mag * wv.iv.mag))
                        if rng.random() < 0.3 and self.second is not None:
                            term = Node("cross", (term, self.vvar(self.second[1])), None,
                                        _sym(2 * term.iv.mag * self.vecs[self.second[1]].mag))
                            self.bump("cross")
                    term = self.vlimit(term)
                    upd.append(L.Let(acc, Node("add", (L.var(acc, _sym(0)), term), None, _sym(K * term.iv.mag)),
                                     aug=rng.random() < 0.5, ety="vec3"))
                else:
                    if wvec is not None:
                        tm = Node("length", (self.vvar(wvec),), None, Interval(0, _math.sqrt(3) * self.vecs[wvec].mag))
                        self.bump("length")
                    else:
                        tm = wv
                    if rng.random() < 0.5:
                        tm = self.gen.tame(self.gen.arith("mul", tm, self.gen.var_leaf()))
                    upd.append(L.Let(acc, Node("add", (L.var(acc, Interval(0, 0)), tm), None, _sym(K * tm.iv.mag)),
                                     aug=rng.random() < 0.6))
            if ftype == "continue":
                body.append(L.Jump("continue", cond))
                body += upd
            elif ftype == "if":
                body.append(L.If([(cond, upd)], None))
            elif ftype == "if_else":
                alt = []
                for u in upd:
                    if u.ety == "vec3":
                        alt.append(L.Let(u.name, Node("sub", (L.var(u.name, _sym(0)), u.node.args[1]), None, u.node.iv),
                                         aug=u.aug, ety="vec3"))
                    else:
                        c = round(float(rng.uniform(0.3, 0.9)), 2)
                        alt.append(L.Let(u.name, Node("mul", (L.var(u.name, Interval(0, 0)), self.gen.c(c)),
                                                      None, u.node.iv), aug=rng.random() < 0.5))
                body.append(L.If([(cond, upd)], alt))
            else:
                body += upd
            self.bump(f"filter_{ftype}")
        finally:
            self.senv = outer_env
            self.vecs, self.gen.leaves, self.gen.samples = saved_vecs, saved_leaves, saved_samples
        loop.body = body
        self.stmts.append(loop)
        self.run([loop])
        for acc in accs:
            bound = None
            for s in L.walk(body):
                if isinstance(s, L.Let) and s.name == acc:
                    bound = s.node.iv.mag if bound is None else max(bound, s.node.iv.mag)
            if acc == fvec:
                self.vecs[acc] = _sym(bound)
            else:
                self.gen.leaves[acc] = _sym(bound)
                self.gen.samples[acc] = np.asarray(self.senv[acc], dtype=np.float64)
                self.gen.weights[acc] = 3.0
        self.accs = accs

    # ------------------------------------------------------------------------------------------ program
    def build(self) -> Program:
        rng = self.rng
        self.setup()
        self.accs = []
        plan = []
        if rng.random() < 0.85:
            plan.append("loop")
        plan += ["cond"] * int(pick(rng, (1, 1, 2)))
        plan += ["derive"] * int(pick(rng, (0, 1, 1, 2)))
        rng.shuffle(plan)
        if "loop" in plan and rng.random() < 0.6:             # derived values usually come first
            plan.remove("loop")
            plan.insert(min(len(plan), int(rng.integers(1, 3))), "loop")
        for b in plan:
            {"loop": self.block_loop, "cond": self.block_cond, "derive": self.block_derive}[b]()
        if not self.helpers:                                    # every program calls a helper
            if rng.random() < 0.5 or not self.gen.leaves:
                args = [self.vvar()] + ([self.vvar()] if len(self.vecs) > 1 and rng.random() < 0.5 else [])
                h, iv = self.vec_helper(args, "float32")
                self.let_scalar(self.fresh(SCALAR_LOCALS), self.call(h, args, iv), weight=3.0)
            else:
                args = [self.gen.var_leaf()]
                h = self.scalar_helper(args)
                self.let_scalar(self.fresh(SCALAR_LOCALS), self.call(h, args, self.helper_ret), weight=3.0)
        if not self.features.get("dot") and not self.features.get("length"):
            self.let_scalar(self.fresh(SCALAR_LOCALS), self.measure())
        self.outputs()
        params = L.signature_params(self.args)
        lines: list[str] = []
        L.emit_block(self.stmts, lines, "", F32)
        meta = {"ty": "float32", "arrays": [a.name for a in self.args if a.role == "in"],
                "scalars": [a.name for a in self.args if a.role == "scalar"], "binds": self.binds,
                "stmts": self.stmts, "outputs": self.out_types, "params": params, "helpers": self.helpers,
                "helper_src": self.helper_src}
        features = {"dtype": "float32", "lines": len(lines) + 1, "blocks": plan, "helpers": len(self.helpers),
                    "vector_outputs": sum(1 for _, t in self.out_types if t == "vec3"),
                    "constructs": sorted(self.features), **self.features}
        source = L.kernel_text(params, lines, self.helper_src)
        return Program(source, tuple(self.args), (N,), meta, features, differentiable=not self.dynamic)

    def outputs(self):
        rng = self.rng
        n_out = int(pick(rng, (1, 1, 2)))
        self.out_types = []
        if not self.gen.leaves:
            self.let_scalar(self.fresh(SCALAR_LOCALS), self.measure())
        live = set()
        for s in L.walk(self.stmts):
            if isinstance(s, L.Let):
                live |= L.node_uses(s.node)
        live = _readers(self.stmts)
        fresh_vecs = [v for v in self.vecs if v not in live] or list(self.vecs)
        fresh_sc = [v for v in self.gen.leaves if v not in live and v != self.param]
        for k in range(n_out):
            if rng.random() < 0.45:
                name = self.fresh(VOUT_NAMES)
                focus = pick(rng, [a for a in self.accs if a in self.vecs] or fresh_vecs)
                node = self.vvar(focus)
                extra = self.vexpr(1)
                if rng.random() < 0.7:
                    node = self.vlimit(Node(pick(rng, ("add", "sub")), (node, self.vscale(extra, self.small_scalar())),
                                            None, _sym(node.iv.mag + extra.iv.mag * 2)))
                self.args.append(Arg(name, "vec3f", "out", (N,)))
                self.stmts.append(L.Store(name, node, ety="vec3"))
                self.out_types.append((name, "vec3"))
            else:
                name = self.fresh([o for o in OUT_NAMES if o not in self.names] or ["out"])
                cands = [a for a in self.accs if a in self.gen.leaves] + fresh_sc
                if cands and rng.random() < 0.7:
                    node = self.gen.var(pick(rng, cands))
                    node = self.gen.tame(self.gen.arith(pick(rng, ("add", "sub", "mul")), node, self.scal(1)))
                else:
                    node = self.gen.tame(self.gen.arith("add", self.measure(), self.scal(1)))
                self.args.append(Arg(name, "float32", "out", (N,)))
                self.stmts.append(L.Store(name, node))
                self.out_types.append((name, "float32"))
        # fold values nothing reads into the first output
        used = _readers(self.stmts)
        first = self.stmts[-n_out]
        for v in list(self.vecs):
            if v not in used:
                if first.ety == "vec3":
                    first.node = self.vlimit(Node("add", (first.node, self.vscale(self.vvar(v), self.gen.c(0.5))), None,
                                                  _sym(first.node.iv.mag + self.vecs[v].mag)))
                else:
                    m = self.measure(self.vvar(v))
                    first.node = self.gen.tame(self.gen.arith("add", first.node, m))
        for v in list(self.gen.leaves):
            if v not in used:
                if first.ety == "vec3":
                    s = self.gen.fit(self.gen.var(v), -2.0, 2.0)
                    first.node = self.vlimit(Node("add", (first.node, Node("vmul", (self.vvar(), s), None,
                                                                            _sym(VMAX))), None, _sym(VMAX)))
                else:
                    first.node = self.gen.tame(self.gen.arith("add", first.node, self.gen.var(v)))


def _readers(stmts) -> set[str]:
    """Names read by some statement other than an update of the name itself (``m = m * 2`` alone does not
    make ``m`` live), by conditions and by stores."""
    out: set[str] = set()
    for s in L.walk(stmts):
        if isinstance(s, L.Let):
            out |= L.node_uses(s.node) - {s.name}
        elif isinstance(s, L.Store):
            out |= L.node_uses(s.node)
        elif isinstance(s, L.If):
            for c, _ in s.branches:
                out |= L.cond_uses(c)
        elif isinstance(s, L.Jump):
            out |= L.cond_uses(s.cond)
        elif isinstance(s, L.Loop):
            out |= L.node_uses(s.stop_node)
    return out


def _sym(m: float) -> Interval:
    m = float(abs(m))
    return Interval(-m, m)


def _f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def generate(rng: np.random.Generator) -> Program:
    return L.generate_healthy(rng, lambda r: Builder(r).build(), ATTEMPTS)


FAMILY = Family(
    name="combined",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=L.spec_reference,
    tolerance=type_tolerance,
    weight=1.0,
    covers=("wp.vec3", "vector construction", "dot/length/cross", "neighbour loops", "conditionals",
            "@wp.func helpers", "math builtins", "vector outputs", "continue", "accumulators"),
)
