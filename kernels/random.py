"""random: Warp's PCG random numbers: per-thread streams, draws combined with inputs, Monte-Carlo loops.

Every kernel takes an int ``seed`` parameter (a new value in every input set) and builds one or two per-thread
states with ``wp.rand_init(seed, offset)`` / ``wp.rand_init(seed')`` from integer expressions of the thread
index. Draws: ``randf`` (also with a range given by literals or input values), ``randn``, ``randi`` in a range
(used as indices: random gathers ``a[j]``), ``randi(state) % m`` (C remainder of a signed value), ``randu``
with a uint32 range, ``int(randf(state) * M)`` bins, and the samplers ``sample_unit_sphere`` / ``_surface`` /
``hemisphere`` / ``disk`` / ``ring`` / ``square`` / ``cube`` / ``triangle``. Draws feed random expressions with
the input values, transforms like ``-log(1 - u)`` or ``cos(2 pi u)``, and dot products with vec3 inputs.
Monte-Carlo loops with a fixed or parameter-given sample count accumulate sums, running max/min, exponential
averages and hit counts, with draws under data-dependent ``if`` (the state advances only in lanes that take
the branch), int histograms by ``atomic_add`` at random bins, and helper ``@wp.func`` that receive the state
*by value* (their draws do not advance the caller's state).

Programs are IR (``kernels/ir``). The random builtins are rows of the operation table whose NumPy
implementation is a bit-exact port of Warp's PCG hash (``warp/native/rand.h``, in ``kernels/ir/numeric.py``);
the interpreter advances a state local in the lanes that draw, so it is the reference.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.family import Arg, KernelSpec, Program, Tolerance
from kernels.ir import analysis, intervals
from kernels.ir import nodes as n
from kernels.ir.family import features, ir_family, program
from kernels.ir.flow import unrolled
from kernels.ir.gen import ARRAY_NAMES, OUT_NAMES, ExprBuilder, Leaf, Vocabulary, first_clean
from kernels.ir.numeric import TWO_PI_F, Interval
from kernels.ir.ops import OPS
from kernels.ir.types import FLOAT32, INT32, UINT32, Array, Vector, scalar_of

EPS32 = float(np.finfo(np.float32).eps)
VEC3 = Vector(FLOAT32, 3)
STATE_NAMES = ("st", "rng", "state", "s0", "seed_state", "rs")
DRAW_NAMES = ("r", "u", "x", "g", "z", "w", "h", "e")
ACC_NAMES = ("acc", "total", "sum_", "est", "mc", "running")
SAMPLERS = ("sample_unit_ring", "sample_unit_disk", "sample_unit_sphere_surface", "sample_unit_sphere",
            "sample_unit_hemisphere_surface", "sample_unit_hemisphere", "sample_unit_square", "sample_unit_cube",
            "sample_triangle")
VOCAB = Vocabulary({"add": 3, "sub": 3, "mul": 3, "div": 1, "min": 1, "max": 1, "where": 0.5}, types=(FLOAT32,),
                   ranges={FLOAT32: Interval(-2.0, 2.0)}, limit=1e4, p_leaf=0.35)
I = n.Var("i", INT32)


def c32(v) -> n.Const:
    return n.Const(v, FLOAT32)


def ci(v) -> n.Const:
    return n.Const(int(v), INT32)


class _Gen:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.size = int(self.pick([32, 48, 64]))
        self.params: list[n.Param] = []
        self.ranges: dict[str, Interval] = {"seed": Interval(0.0, float(1 << 20))}
        self.body: list[n.Stmt] = []
        self.funcs: list[n.Func] = []
        self.leaves: list[Leaf] = []
        self.inputs: list[n.Expr] = []
        self.arrays: list[str] = []
        self.vec_inputs: list[Leaf] = []
        self.streams: list[str] = []
        self.hist: dict[str, int] = {}
        self.k = 0
        self.feats = {"draws": set(), "loop": None, "accum": None, "hist": False, "helper_draw": False,
                      "branch_draw": False, "gather": False, "range_from_inputs": False}

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def fresh(self, base: str) -> str:
        self.k += 1
        return f"{base}{self.k}"

    # ---- inputs and streams

    def add_inputs(self) -> None:
        rng = self.rng
        names = [str(x) for x in rng.permutation(ARRAY_NAMES)]
        inline = rng.random() < 0.35
        for nm in names[:int(rng.integers(1, 4))]:
            iv = self.pick([Interval(-2.0, 2.0), Interval(0.0, 1.0), Interval(0.5, 3.0), Interval(-1.0, 1.0)])
            self.params.append(n.Param(nm, Array(FLOAT32)))
            self.ranges[nm] = iv
            self.arrays.append(nm)
            load = n.Load(nm, Array(FLOAT32), (I,))
            if inline:
                leaf: Leaf = (load, iv)
            else:
                local = f"{nm}_v" if rng.random() < 0.5 else f"x{nm}"
                self.body.append(n.Let(local, load))
                leaf = (n.Var(local, FLOAT32), iv)
            self.leaves.append(leaf)
            self.inputs.append(leaf[0])
        if rng.random() < 0.3:
            vn = names[4]
            self.params.append(n.Param(vn, Array(VEC3)))
            self.ranges[vn] = Interval(-1.0, 1.0)
            self.body.append(n.Let(f"{vn}_v", n.Load(vn, Array(VEC3), (I,))))
            v = n.Var(f"{vn}_v", VEC3)
            self.vec_inputs.append((v, Interval(-1.0, 1.0)))
            leaf = (n.Component(v, int(rng.integers(3))), Interval(-1.0, 1.0)) if rng.random() < 0.5 else \
                (n.Call("length_sq", (v,)), Interval(0.0, 3.0))
            self.leaves.append(leaf)
            self.inputs.append(leaf[0])
        if rng.random() < 0.3:
            s = self.pick(["alpha", "scale", "gain", "sigma", "mu", "bias"])
            self.params.append(n.Param(s, FLOAT32))
            self.ranges[s] = Interval(0.5, 2.0)
            self.leaves.append((n.Var(s, FLOAT32), Interval(0.5, 2.0)))
            self.inputs.append(n.Var(s, FLOAT32))

    def offset(self) -> n.Expr:
        """An int expression of the thread index for ``rand_init``'s offset."""
        c, d = int(self.rng.integers(2, 97)), int(self.rng.integers(1, 1000))
        return self.pick([I, n.Call("add", (I, ci(d))), n.Call("add", (n.Call("mul", (ci(c), I)), ci(d))),
                          n.Call("sub", (ci(self.size - 1), I)), n.Call("mul", (I, ci(c))),
                          n.Call("mul", (n.Call("add", (I, ci(d))), ci(c)))])

    def stream(self, second: bool) -> None:
        rng = self.rng
        name = self.pick(STATE_NAMES) + ("2" if second else "")
        seed: n.Expr = n.Var("seed", INT32)
        k = int(rng.integers(1, 50))
        roll = rng.random()
        if roll < 0.55:
            args = (n.Call("add", (seed, ci(k))) if second else seed, self.offset())
        elif roll < 0.75:
            args = (n.Call("add", (seed, ci(k))), self.offset())
        elif roll < 0.9:
            args = (n.Call("add", (n.Call("mul", (seed, ci(int(rng.integers(3, 64))))), I)),)
        else:
            args = (n.Call("add", (seed, self.offset())),)
        self.body.append(n.Let(name, n.Call("rand_init", args)))
        self.streams.append(name)

    # ---- draws

    def draw(self, body: list[n.Stmt], st: str, allow_vec: bool = True) -> list[Leaf]:
        """Append one draw from stream ``st`` (and what derives from it) to ``body``; returns new float leaves."""
        rng = self.rng
        state = n.Var(st, UINT32)
        roll = rng.random()
        kind = ("randf" if roll < 0.28 else "randn" if roll < 0.42 else "range" if roll < 0.54 else
                "randi" if roll < 0.70 else "randi_mod" if roll < 0.76 else "randu" if roll < 0.81 else
                "vec" if allow_vec else "randf")
        name = self.fresh(self.pick(DRAW_NAMES))
        out: list[Leaf] = []
        if kind == "randf":
            self.feats["draws"].add("randf")
            body.append(n.Let(name, n.Call("randf", (state,))))
            r = n.Var(name, FLOAT32)
            out.append((r, Interval(0.0, 1.0)))
            t = rng.random()
            if t < 0.2:
                out.append((n.Call("sqrt", (r,)), Interval(0.0, 1.0)))
            elif t < 0.35:
                out.append((n.Call("neg", (n.Call("log", (n.Call("sub", (c32(1.0001), r)),)),)), Interval(-1e-4, 9.3)))
            elif t < 0.5:
                out.append((n.Call(self.pick(["cos", "sin"]), (n.Call("mul", (c32(TWO_PI_F), r)),)),
                            Interval(-1.0, 1.0)))
        elif kind == "randn":
            self.feats["draws"].add("randn")
            body.append(n.Let(name, n.Call("randn", (state,))))
            out.append((n.Var(name, FLOAT32), Interval(-5.8, 5.8)))
        elif kind == "range":
            self.feats["draws"].add("randf_range")
            ins = [x for x in self.leaves if x[0] in self.inputs and isinstance(x[0], n.Var)]
            if ins and rng.random() < 0.5:
                lo_e, lo_iv = self.pick(ins)
                c = float(self.pick([0.5, 1.0, 1.5, 2.5]))
                hi_e, hi_iv = n.Call("add", (lo_e, c32(c))), Interval(lo_iv.lo + c, lo_iv.hi + c)
                self.feats["range_from_inputs"] = True
            else:
                a = round(float(rng.uniform(-3.0, 1.0)), 1)
                b = round(a + float(rng.uniform(0.5, 4.0)), 1)
                lo_e, lo_iv, hi_e, hi_iv = c32(a), Interval.point(a), c32(b), Interval.point(b)
            body.append(n.Let(name, n.Call("randf_range", (state, lo_e, hi_e))))
            out.append((n.Var(name, FLOAT32), lo_iv.join(hi_iv)))
        elif kind == "randi":
            self.feats["draws"].add("randi")
            if rng.random() < 0.5 and self.arrays:
                arr = self.pick(self.arrays)
                self.feats["gather"] = True
                j = n.Var(name, INT32)
                if rng.random() < 0.5:
                    body.append(n.Let(name, n.Call("randi_range", (state, ci(0), ci(self.size)))))
                    index: n.Expr = j
                else:
                    body.append(n.Let(name, n.Call("randi_range", (state, ci(0), ci(int(rng.integers(2, 9)))))))
                    index = n.Call("mod", (n.Call("add", (I, j)), ci(self.size)))
                out.append((n.Load(arr, Array(FLOAT32), (index,)), self.ranges[arr]))
            else:
                lo = int(rng.integers(-8, 4))
                hi = lo + int(rng.integers(2, 12))
                body.append(n.Let(name, n.Call("randi_range", (state, ci(lo), ci(hi)))))
                out.append((n.Cast(n.Var(name, INT32), FLOAT32), Interval(lo, hi - 1)))
        elif kind == "randi_mod":
            self.feats["draws"].add("randi_mod")
            m = int(rng.integers(2, 20))
            body.append(n.Let(name, n.Call("mod", (n.Call("randi", (state,)), ci(m)))))
            out.append((n.Cast(n.Var(name, INT32), FLOAT32), Interval(-(m - 1), m - 1)))
        elif kind == "randu":
            self.feats["draws"].add("randu")
            lo = int(rng.integers(0, 5))
            hi = lo + int(rng.integers(2, 10))
            u = n.Call("randu_range", (state, n.Const(lo, UINT32), n.Const(hi, UINT32)))
            body.append(n.Let(name, n.Cast(u, INT32)))
            out.append((n.Cast(n.Var(name, INT32), FLOAT32), Interval(lo, hi - 1)))
        else:
            sampler = self.pick(SAMPLERS)
            self.feats["draws"].add(sampler)
            call = n.Call(sampler, (state,))
            body.append(n.Let(name, call))
            v = n.Var(name, call.type)
            comp_iv = OPS[sampler].interval(None, None)
            width = call.type.n
            for k in sorted({int(x) for x in rng.permutation(width)[:int(rng.integers(1, width + 1))]}):
                out.append((n.Component(v, k), comp_iv))
            if width == 3 and self.vec_inputs and rng.random() < 0.7:
                w = self.pick(self.vec_inputs)[0]
                out.append((n.Call("dot", (v, w)), Interval(-1.8, 1.8)))
            if rng.random() < 0.3:
                out.append((n.Call("length_sq", (v,)), Interval(0.0, float(width))))
        return out

    def helper_draw(self) -> list[Leaf]:
        """A ``@wp.func`` that draws from its by-value copy of the state (the caller's state does not move)."""
        rng = self.rng
        self.feats["helper_draw"] = True
        kind = self.pick(["randf", "randn", "sample_unit_disk", "sample_unit_sphere"])
        a = round(float(rng.uniform(0.1, 2.0)), 2)
        b = round(float(rng.uniform(-1.0, 1.0)), 2) or 0.25
        state = n.Var("state", UINT32)
        if kind in ("randf", "randn"):
            body: tuple[n.Stmt, ...] = (n.Return(n.Call("add", (n.Call("mul", (n.Call(kind, (state,)), c32(a))),
                                                                c32(b)))),)
            lo, hi = (0.0, 1.0) if kind == "randf" else (-5.8, 5.8)
        else:
            comp = int(rng.integers(0, 2))
            p = n.Var("p", n.Call(kind, (state,)).type)
            body = (n.Let("p", n.Call(kind, (state,))),
                    n.Return(n.Call("add", (n.Call("mul", (n.Component(p, comp), c32(a))), c32(b)))))
            lo, hi = -1.0, 1.0
        name = f"wkf_kernel_{self.pick(['jitter', 'sample', 'draw', 'noise', 'perturb'])}"
        func = n.Func(name, (n.Param("state", UINT32),), FLOAT32, body)
        self.funcs.append(func)
        local = self.fresh("hd")
        self.body.append(n.Let(local, n.FuncCall(func, (n.Var(self.pick(self.streams), UINT32),))))
        lo, hi = sorted((lo * a + b, hi * a + b))
        return [(n.Var(local, FLOAT32), Interval(lo, hi))]

    # ---- Monte-Carlo loop

    def condition(self, gen: ExprBuilder, rand: list[Leaf]) -> n.Expr:
        """A random leaf compared with a value inside its range (both outcomes likely)."""
        e, iv = self.pick(rand)
        lo, hi = (max(iv.lo, -1.5), min(iv.hi, 1.5))
        mid = round(lo + (hi - lo) * float(self.rng.uniform(0.3, 0.7)), 2)
        ins = [x for x in gen.leaves if x[0] in self.inputs]
        if ins and self.rng.random() < 0.5:
            other, oiv = self.pick(ins)
            if oiv.lo < hi and lo < oiv.hi:
                return n.Call(self.pick(["lt", "ge"]), (e, other))
        return n.Call(self.pick(["lt", "le", "gt", "ge"]), (e, c32(mid)))

    def mc_loop(self) -> Leaf | None:
        rng = self.rng
        var = self.pick(["s", "k", "t", "smp"])
        if rng.random() < 0.3:
            pname = self.pick(["nsamples", "count", "trials", "n_iter"])
            self.params.append(n.Param(pname, INT32))
            self.ranges[pname] = Interval(3.0, 12.0)
            stop, kmax = n.Var(pname, INT32), 12
            self.feats["loop"] = "param"
        else:
            kmax = int(rng.integers(3, 25))
            stop = ci(kmax)
            self.feats["loop"] = "const" if kmax <= 16 else "const_dynamic"
        st = self.pick(self.streams)
        body: list[n.Stmt] = []
        rand: list[Leaf] = []
        for _ in range(int(rng.integers(1, 4))):
            rand += self.draw(body, st)
        gen = ExprBuilder(rng, VOCAB, self.leaves + rand)
        if rng.random() < 0.3:
            gen.leaves.append((n.Cast(n.Var(var, INT32), FLOAT32), Interval(0.0, kmax - 1.0)))
        decls: list[n.Stmt] = []
        post: list[n.Stmt] = []
        result: Leaf | None = None
        if rng.random() < 0.22:
            cnt = self.fresh(self.pick(["hits", "cnt", "inside", "nacc"]))
            decls.append(n.Let(cnt, ci(0)))
            one = n.Call("add", (n.Var(cnt, INT32), ci(1)))
            body.append(n.If(self.condition(gen, rand), (n.Assign(cnt, one, augmented=True),)))
            result = (n.Cast(n.Var(cnt, INT32), FLOAT32), Interval(0.0, float(kmax)))
            self.feats["accum"] = "count"
        else:
            acc = self.fresh(self.pick(ACC_NAMES))
            op = self.pick(["add", "add", "sub", "max", "min", "ema"])
            init = {"add": 0.0, "sub": 0.0, "max": -1.0e6, "min": 1.0e6, "ema": 0.0}[op]
            decls.append(n.Let(acc, c32(init)))
            e, e_iv = gen.compound(FLOAT32, int(rng.integers(1, 3)))
            if not any(x in analysis.subexprs(e) for x, _ in rand):
                e = n.Call("add", (e, rand[0][0]))
                e_iv = Interval(e_iv.lo + rand[0][1].lo, e_iv.hi + rand[0][1].hi)
            a = n.Var(acc, FLOAT32)
            coef = round(float(rng.uniform(0.5, 0.95)), 2)

            def update(x: n.Expr, kind: str) -> n.Stmt:
                if kind in ("add", "sub"):
                    return n.Assign(acc, n.Call(kind, (a, x)), augmented=True)
                if kind in ("max", "min"):
                    return n.Assign(acc, n.Call(kind, (a, x)))
                return n.Assign(acc, n.Call("add", (n.Call("mul", (a, c32(coef))),
                                                    n.Call("mul", (x, c32(round(1.0 - coef, 6)))))))

            if rng.random() < 0.35:
                inner: list[n.Stmt] = []
                extra = self.draw(inner, st, allow_vec=False)
                inner.append(update(extra[0][0], op if op != "ema" else "add"))
                orelse = (update(e, op),) if rng.random() < 0.5 else ()
                body.append(n.If(self.condition(gen, rand), tuple(inner), orelse))
                self.feats["branch_draw"] = True
            else:
                body.append(update(e, op))
            self.feats["accum"] = op
            mag = max(e_iv.mag, 6.0)
            result = (a, Interval(-2 * kmax * mag, 2 * kmax * mag)) if op in ("add", "sub", "ema") else \
                (a, Interval(min(e_iv.lo, 0.0) - mag, max(e_iv.hi, 0.0) + mag))
            if op in ("add", "sub") and rng.random() < 0.6:
                mean = self.fresh(self.pick(["mean", "avg", "estimate", "m"]))
                denom = c32(float(kmax)) if isinstance(stop, n.Const) else n.Cast(stop, FLOAT32)
                post.append(n.Let(mean, n.Call("div", (a, denom))))
                result = (n.Var(mean, FLOAT32), Interval(-2 * mag, 2 * mag))
        if rng.random() < 0.25:
            hname = self.pick(["hist", "bins", "counts"])
            m = int(rng.integers(4, 17))
            b = self.fresh("b")
            st_v = n.Var(st, UINT32)
            if rng.random() < 0.5:
                body.append(n.Let(b, n.Call("randi_range", (st_v, ci(0), ci(m)))))
            else:
                body.append(n.Let(b, n.Cast(n.Call("mul", (n.Call("randf", (st_v,)), c32(float(m)))), INT32)))
            body.append(n.Atomic("add", hname, Array(INT32), (n.Var(b, INT32),), ci(1)))
            self.params.append(n.Param(hname, Array(INT32)))
            self.hist[hname] = m
            self.feats["hist"] = True
        later = [x for s in analysis.statements(tuple(body)) for x in n.stmt_exprs(s)]
        body = [s for s in body if not (isinstance(s, n.Let) and analysis.reads(later, s.name) == 0)]
        self.body += decls + [n.For(var, ci(0), stop, tuple(body))] + post
        return result

    # ---- program

    def build(self) -> n.Kernel:
        rng = self.rng
        self.add_inputs()
        self.params.append(n.Param("seed", INT32))
        for k in range(1 if rng.random() < 0.75 else 2):
            self.stream(k > 0)
        rand: list[Leaf] = []
        for _ in range(int(rng.integers(1, 4))):
            rand += self.draw(self.body, self.pick(self.streams))
        if rng.random() < 0.25:
            rand += self.helper_draw()
        gen = ExprBuilder(rng, VOCAB, self.leaves + rand)
        if rng.random() < 0.45:
            e, iv = gen.compound(FLOAT32, int(rng.integers(1, 4)))
            name = self.fresh(self.pick(["t", "m", "y", "v", "q"]))
            self.body.append(n.Let(name, e))
            gen.leaves.append((n.Var(name, FLOAT32), iv))
        loop = self.mc_loop() if rng.random() < 0.7 else None
        if loop is not None:
            gen.leaves.append(loop)
        outs = [str(x) for x in rng.permutation(OUT_NAMES)[:2]]
        for k in range(int(rng.integers(1, 3))):
            e, _ = gen.compound(FLOAT32, int(rng.integers(1, 4)))
            if k == 0 and loop is not None and loop[0] not in analysis.subexprs(e):
                e = n.Call("add", (e, loop[0]))
            self.params.append(n.Param(outs[k], Array(FLOAT32)))
            self.body.append(n.Store(outs[k], Array(FLOAT32), (I,), e))
        if rng.random() < 0.35:
            vecs = [s for s in self.body if isinstance(s, n.Let) and isinstance(s.value.type, Vector)
                    and isinstance(s.value, n.Call) and s.value.op in SAMPLERS]
            ins = [x for x in self.leaves if x[0] in self.inputs and x[0].type == FLOAT32]
            if vecs and ins:
                s = self.pick(vecs)
                v = n.Var(s.name, s.value.type)
                value: n.Expr = n.Call("mul", (self.pick(ins)[0], v))
                if v.type == VEC3 and self.vec_inputs and rng.random() < 0.5:
                    value = n.Call("add", (value, self.vec_inputs[0][0]))
                self.params.append(n.Param("out_v", Array(v.type)))
                self.body.append(n.Store("out_v", Array(v.type), (I,), value))
        kernel = n.Kernel("wkf_kernel", tuple(self.params), tuple(self.body), funcs=tuple(self.funcs))
        return analysis.remove_dead(analysis.fold_unused(_fold_rest(kernel)))


def _fold_rest(kernel: n.Kernel) -> n.Kernel:
    """Fold top-level draws and vectors that reach no output into the last float32 store, before
    :func:`analysis.fold_unused` folds the rest (so that it sees the states the draws read reach an output)."""
    stores = [k for k, s in enumerate(kernel.body) if isinstance(s, n.Store) and s.value.type == FLOAT32]
    if not stores:
        return kernel
    last = stores[-1]
    store = kernel.body[last]
    value = store.value
    exprs = list(analysis.expressions(kernel.body)) + list(x for f in kernel.funcs for x in analysis.expressions(f.body))
    unread = {s for s in kernel.body if isinstance(s, n.Let) and s.value.type == UINT32
              and analysis.reads(exprs, s.name) == 0}
    kernel = replace(kernel, body=tuple(s for s in kernel.body if s not in unread))
    stores = [k for k, s in enumerate(kernel.body) if isinstance(s, n.Store) and s.value.type == FLOAT32]
    last = stores[-1]
    for s in kernel.body:
        if not isinstance(s, n.Let) or s.value.type == UINT32 or not (
                isinstance(s.value.type, Vector) or any(isinstance(x, n.Var) and x.type == UINT32
                                                         for x in analysis.subexprs(s.value))):
            continue
        probe = replace(kernel, body=kernel.body[:last] + (replace(store, value=value),) + kernel.body[last + 1:])
        if s.name not in analysis.reaching(probe):
            term: n.Expr = n.Var(s.name, s.value.type)
            term = n.Component(term, 0) if isinstance(term.type, Vector) else term
            value = n.Call("add", (value, term if term.type == FLOAT32 else n.Cast(term, FLOAT32)))
    return replace(kernel, body=kernel.body[:last] + (replace(store, value=value),) + kernel.body[last + 1:])


def draw(rng: np.random.Generator) -> Program:
    holder: dict = {}

    def build():
        g = _Gen(rng)
        kernel = g.build()
        holder["gen"] = g
        return kernel, dict(g.ranges)

    kernel, ranges = first_clean(build, 64, tries=30)
    g = holder["gen"]
    size = g.size
    feats = {**features(kernel), **g.feats, "draws": sorted(g.feats["draws"]), "streams": len(g.streams), "n": size}
    differentiable = unrolled(kernel) and not g.feats["branch_draw"] and not g.hist
    prog = program(kernel, ranges, (size,), feats, differentiable=None if differentiable else False)
    args = tuple(Arg(a.name, a.dtype, a.role, (g.hist[a.name],), a.low, a.high) if a.name in g.hist else a
                 for a in prog.args)
    return replace(prog, args=args)


def _exact_names(kernel: n.Kernel) -> set[str]:
    """Parameters and locals of integer or bool type (seeds, rng states, counters, bins): exact values, whose
    magnitude says nothing about float rounding (a uint32 state reaches 2**32)."""
    def exact(t) -> bool:
        try:
            return not scalar_of(t.dtype if isinstance(t, Array) else t).is_float
        except TypeError:                        # no component type (structs, tuples, none)
            return False
    names = {p.name for p in kernel.params if exact(p.type)}
    for s in analysis.statements(kernel.body):
        if isinstance(s, (n.Let, n.Assign)) and exact(getattr(s.value, "type", None)):
            names.add(s.name)
    return names


#: cap of the magnitude M that atol scales with: the interval bound of a loop-carried min/max accumulator
#: includes its sentinel start (1e6), and products of such bounds reach 1e12, while the lanes that do keep a large
#: value are held to rtol; atol stays <= 8 eps 2**10 ~ 1e-3
MAGNITUDE_CAP = 1024.0


def tolerance(spec: KernelSpec) -> Tolerance:
    """Float intermediates reach magnitude M (e.g. a sum of K samples); float32 rounding of such a computation
    leaves an absolute error of a few eps * M, so atol scales with M over the float values, capped at
    :data:`MAGNITUDE_CAP` (never below 1e-5). Integer values (rng states, seeds, counters) do not count: a uint32
    state reaches 2**32 and made atol 4096, a check that no wrong output could fail. Integer outputs are exact."""
    kernel: n.Kernel = spec.meta.kernel
    if all(p.type.dtype == INT32 for p in kernel.params if isinstance(p.type, Array)
           and any(isinstance(s, (n.Store, n.Atomic)) and s.array == p.name for s in analysis.statements(kernel.body))):
        return Tolerance(0.0, 0.0)
    ranges = {a.name: Interval(a.low, a.high) for a in spec.args}
    facts = intervals.analyze(kernel, ranges, spec.meta.dim)
    exact = _exact_names(kernel)
    values = [iv for name, iv in list(facts.env.items()) + list(facts.arrays.items()) if name not in exact]
    mags = [iv.mag for iv in values if np.isfinite(iv.mag)]
    return Tolerance(1e-4, max(1e-5, 8 * EPS32 * min(MAGNITUDE_CAP, max(mags + [1.0]))))


# version 3: the tolerance counts float values only (version 2 let a uint32 rng state set atol to 4096); the
# programs are version 2's
FAMILY = ir_family("random", __doc__, draw, version=3, tol=tolerance, same_programs_as=(2,),
                   covers=("rand_init", "randf", "randn", "randi", "randu", "sample_unit_*", "monte carlo",
                           "random gather", "atomic histogram", "rng state by value"))
