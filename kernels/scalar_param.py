"""scalar_param: kernels driven by several scalar parameters of mixed types: coefficients, trip counts, thresholds, switches.

Float32 or float64 kernels whose behaviour is steered by 3-7 scalar parameters of mixed types: ``float`` and
``wp.float64`` coefficients (converted with ``float(beta)`` / ``wp.float64(alpha)`` where the kernel's type
differs), ``int`` trip counts, strides, offsets and modes (``for j in range(n)``, ``a[(i * stride + off) % 64]``,
``if mode == 0: ... elif mode == 1: ...``), ``bool`` switches (``if flag:``, ``x if flag else y``,
``if use_bias and x > thr:``), float thresholds (``if x > thr:``, ``wp.where(y < thr, ...)``) and clamp bounds
(``wp.clamp(y, lo, hi)``), and int parameters used as values (``float(n * 2 + 1)``). A program is a sequence
of 2-5 such stages transforming one or two running values, each expression drawn by ``math.MathGen`` (math
builtins kept inside their domains; parameters weighted up so that they take part).

Thresholds and clamp bounds get parameter ranges inside the sampled range of what they compare, so every
parameter moves the outputs; the input sampler gives the three verification input sets different switch values
(modes and flags cycle) and different trip counts. Bool parameters are declared ``bool`` in the kernel; the
harness has no bool dtype yet, so their ``Arg`` is an int32 0/1 value that ``prepare`` passes as a Python bool
(``features["bool_params"]`` lists them).
"""

from __future__ import annotations

import numpy as np

from harness.family import Arg, Family, KernelSpec, Program
from harness.seeds import derive_seed, rng_for
from kernels import _combined_lib as L
from kernels import _expr as E
from kernels import math as M
from kernels._common import ARRAY_NAMES, OUT_NAMES, pick, type_tolerance

N = L.N
Interval = E.Interval
Node = E.Node
INPUT_RANGES = ((-2.0, 2.0), (-1.0, 1.0), (0.5, 3.0), (-1.5, 2.5), (0.1, 2.0))
COEF_NAMES = ("alpha", "beta", "gain", "scale", "k0", "coef", "c1", "weight", "mix", "amp")
DECAY_NAMES = ("gamma", "decay", "damping", "rho_d", "keep")
THRESH_NAMES = ("thr", "cut", "limit", "level", "edge", "tau")
LO_HI = (("lo", "hi"), ("vmin", "vmax"), ("floor_v", "ceil_v"), ("lower", "upper"))
TRIP_NAMES = ("n", "steps", "iters", "count", "reps", "order")
STRIDE_NAMES = ("stride", "step_k", "skip")
OFFSET_NAMES = ("off", "shift", "lag", "delay")
MODE_NAMES = ("mode", "variant", "kind", "sel", "method")
FLAG_NAMES = ("flag", "use_bias", "enabled", "invert", "clip_on", "damped", "active")
INT_COEF_NAMES = ("m", "deg", "k", "mult", "level_i")
VAR_NAMES = ("y", "v", "acc", "s", "f", "z", "state", "val")
STAGES = ("threshold", "switch", "flag", "loop", "power", "clamp", "offset", "int_value", "coef")
STAGE_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 0.6, 0.7, 0.6, 0.5, 0.6)
ATTEMPTS = 5


class Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.ty = L.SCAL["float32" if rng.random() < 0.55 else "float64"]
        self.names: set[str] = {"i", "j"}
        self.features: dict[str, int] = {}
        self.dynamic = False
        self.bools: list[str] = []
        self.switches: dict[str, int] = {}       # int mode parameter -> number of modes
        self.trips: list[str] = []

    def bump(self, key, n=1):
        self.features[key] = self.features.get(key, 0) + n

    def name(self, options) -> str:
        free = [o for o in options if o not in self.names]
        base = pick(self.rng, free) if free else f"{pick(self.rng, options)}{len(self.names)}"
        self.names.add(base)
        return base

    # ------------------------------------------------------------------------------------------ setup
    def setup(self):
        rng, ty = self.rng, self.ty
        n_in = int(pick(rng, (1, 1, 2, 2, 3)))
        names = pick(rng, ARRAY_NAMES, n_in)
        self.names.update(names)
        self.args: list[Arg] = []
        self.binds = []
        self.stmts: list = []
        self.data = []
        self.senv: dict = {"i": np.arange(N, dtype=np.int64)}
        leaves, samples = {}, {}
        self.arrays = {}
        for n in names:
            lo, hi = pick(rng, INPUT_RANGES)
            self.args.append(Arg(n, ty.name, "in", (N,), lo, hi))
            iv = Interval(lo, hi)
            self.arrays[n] = iv
            vals = self.cast(rng.uniform(lo, hi, N))
            self.senv["@" + n] = vals
            node = L.gather(n, L.var("i", Interval(0, N - 1)), iv)
            if rng.random() < 0.35:
                leaf = f"{n}[i]"
                self.binds.append((leaf, node))
            else:
                leaf = f"{n}_v" if rng.random() < 0.5 else f"x{n}"
                self.names.add(leaf)
                self.stmts.append(L.Let(leaf, node))
            self.senv[leaf] = vals
            leaves[leaf] = iv
            samples[leaf] = vals
            self.data.append(leaf)
        self.gen = M.MathGen(rng, ty, leaves, samples, {}, differentiable=True)

    def cast(self, v):
        return v.astype(np.float32).astype(np.float64) if self.ty.name == "float32" else v

    # ------------------------------------------------------------------------------------------ parameters
    def float_param(self, options, lo, hi, weight=2.5) -> str:
        """A float parameter (``float`` or ``wp.float64``), as a leaf of the kernel's type."""
        rng, ty = self.rng, self.ty
        name = self.name(options)
        # float64 kernels take float64 parameters only: the verifier perturbs a float32 parameter by float32
        # ulps, which moves a float64 result far beyond float64 tolerances (every element would be masked)
        ptype = "float32" if ty.name == "float32" and rng.random() < 0.55 else "float64"
        lo, hi = float(f"{lo:.3g}"), float(f"{hi:.3g}")
        if hi <= lo:
            hi = lo + 0.5
        self.args.append(Arg(name, ptype, "scalar", (), lo, hi))
        vals = rng.uniform(lo, hi, N)
        vals = vals.astype(np.float32).astype(np.float64) if ptype == "float32" else vals
        self.senv[name] = vals
        if ptype == ty.name:
            leaf = name
        else:
            leaf = f"{L.CAST[ty.name]}({name})"
            self.binds.append((leaf, L.cast(L.var(name, Interval(lo, hi)), ptype, ty.name)))
            self.bump("param_conversion")
        self.senv[leaf] = self.cast(vals) if ptype != ty.name else vals
        self.gen.leaves[leaf] = Interval(lo, hi)
        self.gen.samples[leaf] = self.senv[leaf]
        self.gen.weights[leaf] = weight
        self.gen.scalars = self.gen.scalars | {leaf}
        self.bump(f"param_{ptype}")
        return leaf

    def int_param(self, options, lo, hi) -> str:
        name = self.name(options)
        self.args.append(Arg(name, "int32", "scalar", (), lo, hi))
        self.senv[name] = self.rng.integers(lo, hi + 1, N).astype(np.int64)
        self.bump("param_int32")
        return name

    def bool_param(self) -> str:
        name = self.name(FLAG_NAMES)
        self.args.append(Arg(name, "int32", "scalar", (), 0, 1))
        self.senv[name] = self.rng.integers(0, 2, N).astype(np.int64)
        self.bools.append(name)
        self.bump("param_bool")
        return name

    def int_as_float(self, text: str, node: Node, iv: Interval) -> str:
        leaf = f"{L.CAST[self.ty.name]}({text})"
        self.binds.append((leaf, L.cast(node, "int32", self.ty.name)))
        self.senv[leaf] = self.cast(np.asarray(L.evaluate(node, self.senv, E.INT32), dtype=np.float64))
        self.gen.leaves[leaf] = iv
        self.gen.samples[leaf] = self.senv[leaf]
        self.gen.weights[leaf] = 2.0
        self.gen.scalars = self.gen.scalars | {leaf}
        return leaf

    # ------------------------------------------------------------------------------------------ values
    def run(self, stmts):
        """Run new statements on the sample lanes; refresh the samples of the values they assign."""
        with np.errstate(all="ignore"):
            L.Machine(self.ty, self.senv, {}, n=N).block(stmts, np.ones(N, dtype=bool), None)
        for s in L.walk(stmts):
            if isinstance(s, L.Let) and s.name in self.gen.leaves:
                self.gen.samples[s.name] = np.asarray(self.senv[s.name], dtype=np.float64)
        self.stmts += stmts

    def set_var(self, name, iv: Interval):
        self.gen.leaves[name] = iv
        self.gen.weights[name] = 3.0

    def expr(self, depth, must=None, avoid_params=False) -> Node:
        node = self.gen.statement(depth)
        if must is not None and must not in E.uses(node):
            node = self.gen.arith(pick(self.rng, ("add", "sub", "mul")), node, self.gen.var(must))
        return node

    def quant(self, values, q) -> float:
        v = np.sort(np.asarray(values, dtype=np.float64).ravel())
        return float(v[int(round(q * (v.size - 1)))])

    # ------------------------------------------------------------------------------------------ stages
    def stage(self, kind: str, y: str):
        rng = self.rng
        gen = self.gen
        self.bump(f"stage_{kind}")
        if kind == "coef":
            c = self.float_param(COEF_NAMES, *pick(rng, ((0.5, 2.0), (-1.0, 1.0), (0.1, 1.5))))
            node = self.expr(int(rng.integers(1, 3)), must=c)
            if y not in E.uses(node):
                node = gen.arith(pick(rng, ("add", "mul", "sub")), gen.var(y), node)
            self.assign(y, node)
        elif kind == "threshold":
            lhs_name = pick(rng, self.data + [y])
            vals = self.senv[lhs_name]
            thr = self.float_param(THRESH_NAMES, self.quant(vals, 0.25), self.quant(vals, 0.75), weight=0.2)
            lhs = gen.var(lhs_name)
            cond = L.cmp(pick(rng, ("lt", "le", "gt", "ge")), lhs, gen.var(thr))
            e1 = self.expr(int(rng.integers(1, 3)), must=y)
            e2 = self.expr(int(rng.integers(1, 3)), must=y)
            roll = rng.random()
            if roll < 0.5:
                self.run([L.If([(cond, [self.let(y, e1)])], [self.let(y, e2)] if rng.random() < 0.7 else None)])
            else:
                kind_sel = "where" if roll < 0.75 else "ifexp"
                sel = Node(kind_sel, (cond, e1, e2), None, Interval(min(e1.iv.lo, e2.iv.lo), max(e1.iv.hi, e2.iv.hi)))
                self.assign(y, sel)
            self.set_var(y, _hull(self.gen.leaves[y], e1.iv, e2.iv))
        elif kind == "switch":
            k = int(pick(rng, (3, 3, 4)))
            mode = self.int_param(MODE_NAMES, 0, k - 1)
            self.switches[mode] = k
            mv = L.var(mode, Interval(0, k - 1))
            branches, ivs = [], []
            order = list(rng.permutation(k))
            for b in range(k - 1):
                e = self.expr(int(rng.integers(1, 3)), must=y)
                c = L.tcond(L.cmp("eq", mv, L.const(int(order[b]), E.INT32)), "int32")
                if b == k - 2 and k > 2 and rng.random() < 0.3:
                    c = L.tcond(L.cmp(pick(rng, ("ge", "gt")), mv, L.const(int(k - 2), E.INT32)), "int32")
                    self.features["switch_range"] = 1
                branches.append((c, [self.let(y, e)]))
                ivs.append(e.iv)
            e = self.expr(int(rng.integers(1, 3)), must=y)
            ivs.append(e.iv)
            self.run([L.If(branches, [self.let(y, e)])])
            self.set_var(y, _hull(*ivs))
        elif kind == "flag":
            flag = self.bool_param()
            e = self.expr(int(rng.integers(1, 3)), must=y)
            roll = rng.random()
            cond = L.truth(flag)
            if roll < 0.3:
                lhs_name = pick(rng, self.data)
                t = float(f"{self.quant(self.senv[lhs_name], rng.uniform(0.3, 0.7)):.2g}")
                cond = L.land(cond, L.cmp(pick(rng, ("lt", "gt")), gen.var(lhs_name), self.c(t)))
            elif roll < 0.45:
                cond = L.lnot(cond)
            if rng.random() < 0.3 and roll >= 0.3:
                alt = self.expr(1, must=y)
                sel = Node("ifexp", (cond, e, alt), None, _hull(e.iv, alt.iv))
                self.assign(y, sel)
                self.set_var(y, _hull(e.iv, alt.iv))
            else:
                self.run([L.If([(cond, [self.let(y, e)])], None)])
                self.set_var(y, _hull(self.gen.leaves[y], e.iv))
        elif kind == "loop":
            self.dynamic = True
            n = self.int_param(TRIP_NAMES, int(rng.integers(0, 3)), int(rng.integers(4, 8)))
            self.trips.append(n)
            arr = pick(rng, list(self.arrays))
            j = L.var("j", Interval(0, 7))
            idx = Node("add", (L.var("i", Interval(0, N - 1)), j), iv=Interval(0, N + 7))
            if rng.random() < 0.4:
                stride = self.int_param(STRIDE_NAMES, 1, int(rng.integers(3, 6)))
                idx = Node("add", (L.var("i", Interval(0, N - 1)),
                                   Node("mul", (j, L.var(stride, Interval(1, 5))), iv=Interval(0, 40))),
                           iv=Interval(0, N + 40))
                self.bump("stride_param")
            idx = Node("mod", (idx, L.const(N, E.INT32)), iv=Interval(0, N - 1))
            leaf = f"{arr}[{L.emit(idx, E.INT32)}]"
            loop = L.Loop("j", L.const(0, E.INT32), L.var(n, Interval(0, 7)), 1, 7, Interval(0, 6), False)
            loop.binds.append((leaf, L.gather(arr, idx, self.arrays[arr])))
            aiv = self.arrays[arr]
            if rng.random() < 0.5:
                g = self.float_param(DECAY_NAMES, *pick(rng, ((0.3, 0.8), (0.5, 0.95), (0.1, 0.6))), weight=0.1)
                c = pick(rng, [v for v in self.gen.leaves if v in self.gen.scalars and v != g] or [g])
                term = Node("mul", (E.var(c, self.gen.leaves[c]), E.var(leaf, aiv)), iv=E._iv_binary(
                    "mul", self.gen.leaves[c], aiv))
                yv = E.var(y, self.gen.leaves[y])
                node = Node("add", (Node("mul", (yv, E.var(g, self.gen.leaves[g])), iv=Interval(-1, 1)), term),
                            iv=Interval(-1, 1))
                gmax = self.gen.leaves[g].hi
                bound = max(self.gen.leaves[y].mag, term.iv.mag / max(1e-3, 1.0 - gmax))
                self.bump("decay")
            else:
                jf = f"{L.CAST[self.ty.name]}(j)"
                loop.binds.append((jf, L.cast(j, "int32", self.ty.name)))
                cands = [v for v in self.gen.leaves if v in self.gen.scalars]
                c = pick(rng, cands) if cands else None
                inner = Node("add", (Node("mul", (E.var(jf, Interval(0, 6)), E.const(round(float(rng.uniform(0.2, 0.9)), 2))),
                                          iv=Interval(0, 6)), E.var(leaf, aiv)), iv=Interval(aiv.lo, aiv.hi + 6))
                fn = pick(rng, ("sin", "cos", "tanh", "atan"))
                term = Node(fn, (inner,), None, Interval(-1.6, 1.6))
                if c is not None:
                    term = Node("mul", (E.var(c, self.gen.leaves[c]), term),
                                iv=E._iv_binary("mul", self.gen.leaves[c], Interval(-1.6, 1.6)))
                yv = E.var(y, self.gen.leaves[y])
                node = Node("add", (yv, term), iv=Interval(-1, 1))
                bound = self.gen.leaves[y].mag + 7 * term.iv.mag
                self.bump("accumulate")
            loop.body = [L.Let(y, node, aug=rng.random() < 0.5)]
            self.run([loop])
            self.set_var(y, Interval(-bound, bound))
        elif kind == "power":
            self.dynamic = True
            k = self.int_param(("deg", "order", "power", "npow"), 0, int(rng.integers(3, 5)))
            self.trips.append(k)
            p = self.name(("p", "pw", "prod", "mono"))
            base = self.gen.unit(self.expr(1), float(pick(rng, (0.9, 1.2, 1.5))))
            bname = self.name(("base", "b", "z", "r"))
            self.run([L.Let(bname, base)])
            self.gen.leaves[bname] = base.iv
            self.gen.samples[bname] = self.senv[bname]
            decl = L.Let(p, L.const(1.0, self.ty), decl=True)
            loop = L.Loop("j", L.const(0, E.INT32), L.var(k, Interval(0, 4)), 1, 4, Interval(0, 3), False)
            loop.body = [L.Let(p, Node("mul", (E.var(p, Interval(-8, 8)), E.var(bname, base.iv)), iv=Interval(-8, 8)),
                               aug=rng.random() < 0.5)]
            self.run([decl, loop])
            m = base.iv.mag ** 4 if base.iv.mag > 1 else 1.0
            self.gen.leaves[p] = Interval(-m, m)
            self.gen.samples[p] = self.senv[p]
            self.gen.weights[p] = 3.0
            c = self.float_param(COEF_NAMES, *pick(rng, ((0.5, 2.0), (-1.0, 1.0))))
            node = gen.arith(pick(rng, ("add", "sub")), gen.var(y),
                             gen.arith("mul", gen.var(c), gen.var(p)))
            self.assign(y, node)
        elif kind == "clamp":
            vals = self.senv[y]
            lo = self.float_param(LO_HI[0][:1] + ("lo", "vmin", "lower"), self.quant(vals, 0.1), self.quant(vals, 0.35),
                                  weight=0.1)
            hi = self.float_param(("hi", "vmax", "upper", "cap"), self.quant(vals, 0.65), self.quant(vals, 0.9),
                                  weight=0.1)
            node = Node("clamp", (gen.var(y), gen.var(lo), gen.var(hi)), None,
                        Interval(self.gen.leaves[lo].lo, self.gen.leaves[hi].hi))
            self.assign(y, node)
            self.set_var(y, Interval(min(self.gen.leaves[lo].lo, self.gen.leaves[y].lo),
                                     max(self.gen.leaves[hi].hi, self.gen.leaves[y].hi)))
        elif kind == "offset":
            off = self.int_param(OFFSET_NAMES, 0, int(pick(rng, (7, 16, 63))))
            arr = pick(rng, list(self.arrays))
            i = L.var("i", Interval(0, N - 1))
            if rng.random() < 0.4:
                s = int(pick(rng, (2, 3, 5)))
                idx = Node("add", (Node("mul", (i, L.const(s, E.INT32)), iv=Interval(0, s * N)),
                                   L.var(off, Interval(0, 63))), iv=Interval(0, (s + 1) * N))
            else:
                idx = Node("add", (i, L.var(off, Interval(0, 63))), iv=Interval(0, 2 * N))
            idx = Node("mod", (idx, L.const(N, E.INT32)), iv=Interval(0, N - 1))
            leaf = self.name(("nb", "shifted", "other", "prev"))
            self.run([L.Let(leaf, L.gather(arr, idx, self.arrays[arr]))])
            self.gen.leaves[leaf] = self.arrays[arr]
            self.gen.samples[leaf] = self.senv[leaf]
            self.gen.weights[leaf] = 3.0
            node = self.expr(int(rng.integers(1, 3)), must=leaf)
            node = gen.arith(pick(rng, ("add", "sub", "mul")), gen.var(y), node)
            self.assign(y, node)
        elif kind == "int_value":
            m = self.int_param(INT_COEF_NAMES, int(rng.integers(0, 3)), int(rng.integers(4, 9)))
            mv = L.var(m, Interval(0, 8))
            form = rng.random()
            if form < 0.4:
                node = Node("add", (Node("mul", (mv, L.const(2, E.INT32)), iv=Interval(0, 16)), L.const(1, E.INT32)),
                            iv=Interval(1, 17))
                text, iv = L.emit(node, E.INT32), Interval(1, 17)
            elif form < 0.7:
                node = Node("mod", (mv, L.const(3, E.INT32)), iv=Interval(0, 2))
                text, iv = L.emit(node, E.INT32), Interval(0, 2)
            else:
                node, text, iv = mv, m, Interval(0, 8)
            leaf = self.int_as_float(text, node, iv)
            e = self.expr(int(rng.integers(1, 3)), must=leaf)
            node = gen.arith(pick(rng, ("add", "sub")), gen.var(y), e)
            self.assign(y, node)

    def let(self, y, node) -> L.Let:
        return L.Let(y, node)

    def assign(self, y, node):
        if node.op in ("add", "sub", "mul") and node.args[0].op == "var" and node.args[0].value == y:
            s = L.Let(y, node, aug=self.rng.random() < 0.5)
        else:
            s = L.Let(y, node)
        self.run([s])
        self.set_var(y, node.iv)

    def c(self, value) -> Node:
        return self.gen.c(value)

    # ------------------------------------------------------------------------------------------ program
    def build(self) -> Program:
        rng, ty = self.rng, self.ty
        self.setup()
        outs = pick(rng, [o for o in OUT_NAMES if o not in self.names], int(pick(rng, (1, 1, 2))))
        self.names.update(outs)
        ys = [self.name(VAR_NAMES) for _ in outs]
        for y in ys:                                   # first stage: data scaled by a coefficient
            c = self.float_param(COEF_NAMES, *pick(rng, ((0.5, 2.0), (-1.0, 1.0), (0.1, 1.5))))
            node = self.expr(int(rng.integers(1, 3)), must=pick(rng, self.data))
            if c not in E.uses(node):
                node = self.gen.arith(pick(rng, ("add", "sub", "mul")), node, self.gen.var(c))
            self.run([L.Let(y, node)])
            self.set_var(y, node.iv)
            self.gen.samples[y] = np.asarray(self.senv[y], dtype=np.float64)
        n_stages = int(pick(rng, (2, 3, 3, 4, 5)))
        used = set()
        for _ in range(n_stages):
            for _ in range(10):
                kind = _weighted(rng, STAGES, STAGE_WEIGHTS)
                if kind not in used or (rng.random() < 0.2 and kind != "flag"):
                    break
            used.add(kind)
            y = pick(rng, ys)
            self.stage(kind, y)
            self.gen.samples[y] = np.asarray(self.senv[y], dtype=np.float64)
            if self.gen.leaves[y].mag > M.LIMIT:       # keep the running value moderate
                node = self.gen.tame(self.gen.var(y))
                if node.op != "var":
                    self.assign(y, node)
        for leaf in self.data:                         # every input array reaches an output
            if not any(leaf in L.node_uses(s.node) for s in L.walk(self.stmts) if isinstance(s, L.Let)) and \
                    not any(leaf in b for b, _ in self.binds if b != leaf):
                y = pick(rng, ys)
                self.assign(y, self.gen.arith(pick(rng, ("add", "sub")), self.gen.var(y),
                                              self.expr(1, must=leaf)))
        for k, (o, y) in enumerate(zip(outs, ys)):
            node = L.var(y, self.gen.leaves[y])
            if k == 0 and len(ys) > 1 and rng.random() < 0.5:
                node = Node(pick(rng, ("add", "sub", "mul")), (node, L.var(ys[1], self.gen.leaves[ys[1]])))
            self.stmts.append(L.Store(o, node))
            self.args.append(Arg(o, ty.name, "out", (N,)))
        params = L.signature_params(self.args)
        params = [(n, "bool" if n in self.bools else t) for n, t in params]
        lines: list[str] = []
        L.emit_block(self.stmts, lines, "", ty)
        meta = {"ty": ty.name, "arrays": list(self.arrays), "scalars": [a.name for a in self.args if a.role == "scalar"],
                "binds": self.binds, "stmts": self.stmts, "outputs": [(o, ty.name) for o in outs], "params": params,
                "bools": list(self.bools), "switches": dict(self.switches), "trips": list(self.trips)}
        n_params = sum(1 for a in self.args if a.role == "scalar")
        features = {"dtype": ty.name, "params": n_params, "bool_params": list(self.bools),
                    "param_types": sorted({("bool" if a.name in self.bools else a.dtype) for a in self.args
                                           if a.role == "scalar"}),
                    "stages": sorted(k[6:] for k in self.features if k.startswith("stage_")), "lines": len(lines) + 1,
                    **self.features}
        return Program(L.kernel_text(params, lines), tuple(self.args), (N,), meta, features,
                       differentiable=not self.dynamic)


def _hull(*ivs: Interval) -> Interval:
    return Interval(min(iv.lo for iv in ivs), max(iv.hi for iv in ivs))


def _weighted(rng, options, weights):
    w = np.asarray(weights, dtype=np.float64)
    return options[int(rng.choice(len(options), p=w / w.sum()))]


# ------------------------------------------------------------------------------------------------------
# Inputs: the three verification sets take different switch values and trip counts


def _set_index(spec: KernelSpec, rng: np.random.Generator) -> int | None:
    """Which verification input set ``rng`` was made for (the verifier seeds one generator per set)."""
    state = rng.bit_generator.state
    for k in range(8):
        if rng_for(derive_seed("wkf-inputs", spec.seed, k)).bit_generator.state == state:
            return k
    return None


def _draw(args, rng, n_sets, meta, set_index=None, spec_seed=0):
    values = L.dataset(args, rng, n_sets)
    if set_index is None:
        return values
    # cycle modes and flags through their values across the sets (offset by the kernel's seed), and give trip
    # counts distinct values where the range allows
    order = rng_for(derive_seed("wkf-scalar-cycle", spec_seed))
    for a in args:
        if a.role != "scalar" or a.dtype != "int32":
            continue
        lo, hi = int(a.low), int(a.high)
        span = hi - lo + 1
        if a.name in meta["bools"] or a.name in meta["switches"] or a.name in meta["trips"]:
            perm = order.permutation(span)
            v = lo + int(perm[set_index % span])
            values[a.name] = np.full(n_sets * N, v, dtype=np.int64)
    return values


def sample_inputs(spec: KernelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    k = _set_index(spec, rng)
    values = _draw(spec.args, rng, 1, spec.meta, k, spec.seed)
    out = {}
    for a in spec.args:
        if a.role == "out":
            out[a.name] = np.zeros(a.shape, dtype=np.float32 if a.dtype == "float32" else np.float64)
        elif a.role == "scalar":
            v = values[a.name][0]
            out[a.name] = np.asarray(v, dtype={"float32": np.float32, "float64": np.float64, "int32": np.int32}[a.dtype])
        else:
            out[a.name] = values[a.name].astype({"float32": np.float32, "float64": np.float64, "int32": np.int32}[a.dtype])
    return out


def prepare(spec: KernelSpec, inputs, device, namespace) -> dict:
    """Bool parameters: the sampled 0/1 value as a Python bool."""
    return {b: bool(int(inputs[b])) for b in spec.meta["bools"]}


def generate(rng: np.random.Generator) -> Program:
    return L.generate_healthy(rng, lambda r: Builder(r).build(), ATTEMPTS)


FAMILY = Family(
    name="scalar_param",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=L.spec_reference,
    tolerance=type_tolerance,
    sample_inputs=sample_inputs,
    prepare=prepare,
    weight=1.0,
    covers=("scalar parameters", "mixed parameter types", "bool parameters", "parameter-driven loop trip counts",
            "mode switches", "thresholds", "clamp bounds", "strides and offsets", "type conversions", "float64"),
)
