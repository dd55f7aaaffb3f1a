"""scalar_param: kernels driven by several scalar parameters of mixed types: coefficients, trip counts, thresholds, switches.

Float32 or float64 kernels whose behaviour is steered by scalar parameters of mixed types: ``wp.float32`` and
``wp.float64`` coefficients (converted with ``wp.float32(beta)`` where the kernel's type differs), ``int`` trip
counts, strides, offsets and modes (``for j in range(n)``, ``a[(i + j * stride) % 64]``, ``if mode == 0: ...
elif mode == 1: ...``), ``bool`` switches (``if flag:``, ``x if flag else y``, ``if use_bias and x > thr:``),
float thresholds (``if x > thr:``, ``wp.where(y < thr, ...)``) and clamp bounds (``wp.clamp(y, lo, hi)``), and
int parameters used as values (``wp.float32(n * 2 + 1)``). A program is a sequence of 2-5 such stages
transforming one or two running values; expressions are drawn by the IR's builders (math builtins kept inside
their domains by the operation table's guards) and must read the running value and the stage's parameter.

Thresholds and clamp bounds get parameter ranges inside the interval of what they compare (the IR's interval
engine bounds the running values, loops included); the input sampler gives the three verification input sets
different switch values (modes and flags cycle) and different trip counts. Bool parameters are declared
``bool``; the harness has no bool dtype, so their ``Arg`` is an int32 0/1 value that ``prepare`` passes as a
Python bool. The reference is the IR interpreter; a program the verifier would call degenerate on the
interpreter's outputs is drawn again.
"""

from __future__ import annotations

import numpy as np

from harness.family import PLACEHOLDER, KernelSpec, Program
from harness.seeds import derive_seed, rng_for
from harness.verify import default_inputs
from kernels.ir import analysis, intervals
from kernels.ir import nodes as n
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import ARRAY_NAMES, OUT_NAMES, ExprBuilder, Leaf, Names, Vocabulary, first_clean
from kernels.ir.numeric import Interval
from kernels.ir.types import BOOL, FLOAT32, FLOAT64, INT32, Array, Scalar

N = 64
I = n.Var("i", INT32)
INPUT_RANGES = ((-2.0, 2.0), (-1.0, 1.0), (0.5, 3.0), (-1.5, 2.5), (0.1, 2.0))
COEF_RANGES = ((0.5, 2.0), (-1.0, 1.0), (0.1, 1.5))
COEF_NAMES = ("alpha", "beta", "gain", "scale", "k0", "coef", "c1", "weight", "mix", "amp")
DECAY_NAMES = ("gamma", "decay", "damping", "rho_d", "keep")
THRESH_NAMES = ("thr", "cut", "limit", "level", "edge", "tau")
TRIP_NAMES = ("n", "steps", "iters", "count", "reps", "order")
MODE_NAMES = ("mode", "variant", "kind", "sel", "method")
FLAG_NAMES = ("flag", "use_bias", "enabled", "invert", "clip_on", "damped", "active")
VAR_NAMES = ("y", "v", "acc", "s", "f", "z", "state", "val")
OPS = {"add": 3, "sub": 3, "mul": 3, "div": 1, "neg": 0.3, "abs": 0.3, "min": 0.5, "max": 0.5, "sin": 1,
       "cos": 1, "tanh": 0.8, "atan": 0.6, "exp": 0.5, "sqrt": 0.6, "log": 0.5, "erf": 0.4}
STAGES = {"threshold": 1.0, "switch": 1.0, "flag": 1.0, "loop": 1.0, "power": 0.6, "clamp": 0.7, "offset": 0.6,
          "int_value": 0.5, "coef": 0.6}
LIMIT = 40.0            # running values beyond this magnitude are squashed back (atan)


def _short(x: float) -> float:
    return float(f"{x:.3g}")


class Builder:
    """One program: the running values ``ys``, the stages applied to them, the parameters they introduced."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.ty = FLOAT32 if rng.random() < 0.55 else FLOAT64
        self.names = Names(rng, named=True)
        self.params: list[n.Param] = []
        self.ranges: dict[str, Interval] = {}
        self.body: list[n.Stmt] = []
        self.data: list[Leaf] = []
        self.scalars: list[Leaf] = []
        self.cycled: list[str] = []
        self.stages: list[str] = []
        vocab = Vocabulary(OPS, types=(self.ty,), ranges={self.ty: Interval(-2.0, 2.0)}, limit=1e3)
        self.gen = ExprBuilder(rng, vocab, [])

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    # ---------------------------------------------------------------------------------------------- values
    def param(self, pool: tuple[str, ...], ty: Scalar, iv: Interval) -> n.Var:
        name = self.names.fresh(pool, pool[0], 0)
        self.params.append(n.Param(name, ty))
        self.ranges[name] = iv
        return n.Var(name, ty)

    def float_param(self, pool: tuple[str, ...], lo: float, hi: float) -> Leaf:
        """A float parameter as a value of the kernel's type (float64 kernels take float64 parameters only: the
        verifier perturbs a float32 parameter by float32 ulps, far beyond float64 tolerances)."""
        ptype = FLOAT32 if self.ty == FLOAT32 and self.rng.random() < 0.55 else FLOAT64
        lo, hi = _short(lo), _short(hi)
        iv = Interval(lo, hi if hi > lo else lo + 0.5)
        var = self.param(pool, ptype, iv)
        leaf = (var if ptype == self.ty else n.Cast(var, self.ty), iv)
        self.gen.leaves.append(leaf)
        self.scalars.append(leaf)
        return leaf

    def int_param(self, pool: tuple[str, ...], lo: int, hi: int, cycled: bool = False) -> n.Var:
        var = self.param(pool, INT32, Interval(lo, hi))
        if cycled:
            self.cycled.append(var.name)
        return var

    def var(self, y: str) -> Leaf:
        return next(leaf for leaf in self.gen.leaves if leaf[0] == n.Var(y, self.ty))

    def refresh(self) -> None:
        """Bounds of the running values after the statements so far (the interval engine)."""
        kernel = n.Kernel(PLACEHOLDER, tuple(self.params), tuple(self.body))
        env = intervals.analyze(kernel, self.ranges, (N,), {p.name: (N,) for p in self.params
                                                            if isinstance(p.type, Array)}).env
        self.gen.leaves = [(e, env.get(e.name, iv) if isinstance(e, n.Var) and e.name in env else iv)
                           for e, iv in self.gen.leaves]

    def combine(self, ops: tuple[str, ...], a: Leaf, b: Leaf) -> Leaf:
        """``a op b`` for the first of ``ops`` (in random order) that passes the guards; ``a`` otherwise."""
        for op in self.rng.permutation(ops):
            made = self.gen.checked(n.Call(str(op), (a[0], b[0])), [a[1], b[1]])
            if made is not None:
                return made
        return a

    def expr(self, depth: int, must: Leaf | None = None) -> Leaf:
        e = self.gen.compound(self.ty, depth)
        if must is not None and must[0] not in analysis.subexprs(e[0]):
            e = self.combine(("add", "sub", "mul"), e, must)
        return e

    def assign(self, y: str, e: Leaf) -> None:
        self.body.append(n.Assign(y, e[0]))
        self.refresh()

    def step(self, y: str) -> Leaf:
        """An expression of depth 1-2 reading the running value ``y``."""
        return self.expr(int(self.rng.integers(1, 3)), must=self.var(y))

    # ---------------------------------------------------------------------------------------------- stages
    def stage(self, kind: str, y: str) -> None:
        getattr(self, f"stage_{kind}")(y)
        self.stages.append(kind)
        e, iv = self.var(y)
        if iv.mag > LIMIT:
            self.assign(y, (n.Call("atan", (e,)), Interval(-1.6, 1.6)))

    def stage_coef(self, y: str) -> None:
        c = self.float_param(COEF_NAMES, *self.pick(COEF_RANGES))
        self.assign(y, self.combine(("add", "mul", "sub"), self.var(y), self.expr(int(self.rng.integers(1, 3)), c)))

    def stage_threshold(self, y: str) -> None:
        lhs = self.pick(self.data + [self.var(y)])
        lo, w = lhs[1].lo, lhs[1].hi - lhs[1].lo
        thr = self.float_param(THRESH_NAMES, lo + 0.25 * w, lo + 0.75 * w)
        cond = n.Call(self.pick(("lt", "le", "gt", "ge")), (lhs[0], thr[0]))
        e1, e2 = self.step(y), self.step(y)
        roll = self.rng.random()
        if roll < 0.5:
            orelse = (n.Assign(y, e2[0]),) if self.rng.random() < 0.7 else ()
            self.body.append(n.If(cond, (n.Assign(y, e1[0]),), orelse))
            self.refresh()
        else:
            self.assign(y, (n.Call("where" if roll < 0.75 else "ifexp", (cond, e1[0], e2[0])), e1[1].join(e2[1])))

    def stage_switch(self, y: str) -> None:
        k = int(self.pick((3, 3, 4)))
        mode = self.int_param(MODE_NAMES, 0, k - 1, cycled=True)
        order = self.rng.permutation(k)
        chain: tuple[n.Stmt, ...] = (n.Assign(y, self.step(y)[0]),)
        for b in reversed(range(k - 1)):
            cond = n.Call("eq", (mode, n.Const(int(order[b]), INT32)))
            if b == k - 2 and sorted(order[b:]) == [k - 2, k - 1] and self.rng.random() < 0.5:
                cond = n.Call("ge", (mode, n.Const(k - 2, INT32)))       # the two values left: a range
            chain = (n.If(cond, (n.Assign(y, self.step(y)[0]),), chain),)
        self.body += chain
        self.refresh()

    def stage_flag(self, y: str) -> None:
        flag = self.param(FLAG_NAMES, BOOL, Interval(0.0, 1.0))
        self.cycled.append(flag.name)
        e = self.step(y)
        roll = self.rng.random()
        cond: n.Expr = flag
        if roll < 0.3:
            x, iv = self.pick(self.data)
            t = float(f"{iv.lo + self.rng.uniform(0.3, 0.7) * (iv.hi - iv.lo):.2g}")
            cond = n.Call("and", (flag, n.Call(self.pick(("lt", "gt")), (x, n.Const(t, self.ty)))))
        elif roll < 0.45:
            cond = n.Call("not", (flag,))
        if roll >= 0.3 and self.rng.random() < 0.3:
            alt = self.expr(1, must=self.var(y))
            self.assign(y, (n.Call("ifexp", (cond, e[0], alt[0])), e[1].join(alt[1])))
        else:
            self.body.append(n.If(cond, (n.Assign(y, e[0]),)))
            self.refresh()

    def gather(self, index: n.Expr) -> Leaf:
        """``a[index % 64]`` of a random input array."""
        arr = self.pick([p for p in self.params if isinstance(p.type, Array)])
        load = n.Load(arr.name, arr.type, (n.Call("mod", (index, n.Const(N, INT32))),))
        return load, self.ranges[arr.name]

    def stage_loop(self, y: str) -> None:
        trips = self.int_param(TRIP_NAMES, int(self.rng.integers(0, 3)), int(self.rng.integers(4, 8)), cycled=True)
        j = n.Var(self.names.fresh(("j",), "j", 0), INT32)
        if self.rng.random() < 0.4:
            stride = self.int_param(("stride", "step_k", "skip"), 1, int(self.rng.integers(3, 6)))
            g = self.gather(n.Call("add", (I, n.Call("mul", (j, stride)))))
        else:
            g = self.gather(n.Call("add", (I, j)))
        yv = n.Var(y, self.ty)
        others = list(self.scalars)
        if self.rng.random() < 0.5:
            decay = self.float_param(DECAY_NAMES, *self.pick(((0.3, 0.8), (0.5, 0.95), (0.1, 0.6))))
            c = self.pick(others or [decay])
            value = n.Call("add", (n.Call("mul", (yv, decay[0])), n.Call("mul", (c[0], g[0]))))
        else:
            inner = n.Call("add", (n.Call("mul", (n.Cast(j, self.ty), n.Const(_short(self.rng.uniform(0.2, 0.9)),
                                                                                 self.ty))), g[0]))
            term: n.Expr = n.Call(self.pick(("sin", "cos", "tanh", "atan")), (inner,))
            if others:
                term = n.Call("mul", (self.pick(others)[0], term))
            value = n.Call("add", (yv, term))
        self.body.append(n.For(j.name, n.Const(0, INT32), trips, (n.Assign(y, value),)))
        self.refresh()

    def stage_power(self, y: str) -> None:
        k = self.int_param(("deg", "order", "power", "npow"), 0, int(self.rng.integers(3, 5)), cycled=True)
        e = self.expr(1)
        squashed = self.gen.checked(n.Call("tanh", (e[0],)), [e[1]]) or (n.Call("tanh", (e[0],)), Interval(-1, 1))
        base = n.Var(self.names.fresh(("base", "b", "z", "r"), "base", 0), self.ty)
        p = n.Var(self.names.fresh(("p", "pw", "prod", "mono"), "p", 0), self.ty)
        j = self.names.fresh(("j",), "j", 0)
        scale = n.Const(float(self.pick((0.9, 1.2, 1.5))), self.ty)
        self.body += [n.Let(base.name, n.Call("mul", (squashed[0], scale))), n.Let(p.name, n.Const(1.0, self.ty)),
                      n.For(j, n.Const(0, INT32), k, (n.Assign(p.name, n.Call("mul", (p, base))),))]
        self.refresh()
        c = self.float_param(COEF_NAMES, *self.pick(COEF_RANGES[:2]))
        env_p = Interval(-1.5 ** 4, 1.5 ** 4)
        term = self.gen.checked(n.Call("mul", (c[0], p)), [c[1], env_p]) or (n.Call("mul", (c[0], p)), env_p)
        self.assign(y, self.combine(("add", "sub"), self.var(y), term))

    def stage_clamp(self, y: str) -> None:
        yv, iv = self.var(y)
        lo, w = iv.lo, iv.hi - iv.lo
        a = self.float_param(("lo", "vmin", "lower", "floor_v"), lo + 0.1 * w, lo + 0.35 * w)
        b = self.float_param(("hi", "vmax", "upper", "cap"), lo + 0.65 * w, lo + 0.9 * w)
        self.assign(y, (n.Call("clamp", (yv, a[0], b[0])), Interval(min(a[1].lo, iv.lo), max(b[1].hi, iv.hi))))

    def stage_offset(self, y: str) -> None:
        off = self.int_param(("off", "shift", "lag", "delay"), 0, int(self.pick((7, 16, 63))))
        if self.rng.random() < 0.4:
            g = self.gather(n.Call("add", (n.Call("mul", (I, n.Const(int(self.pick((2, 3, 5))), INT32))), off)))
        else:
            g = self.gather(n.Call("add", (I, off)))
        nb = n.Var(self.names.fresh(("nb", "shifted", "other", "prev"), "nb", 0), self.ty)
        self.body.append(n.Let(nb.name, g[0]))
        leaf = (nb, g[1])
        self.gen.leaves.append(leaf)
        self.assign(y, self.combine(("add", "sub", "mul"), self.var(y), self.expr(int(self.rng.integers(1, 3)),
                                                                                   must=leaf)))

    def stage_int_value(self, y: str) -> None:
        m = self.int_param(("m", "deg", "k", "mult", "level_i"), int(self.rng.integers(0, 3)),
                           int(self.rng.integers(4, 9)))
        form = self.rng.random()
        if form < 0.4:
            value: n.Expr = n.Call("add", (n.Call("mul", (m, n.Const(2, INT32))), n.Const(1, INT32)))
        elif form < 0.7:
            value = n.Call("mod", (m, n.Const(3, INT32)))
        else:
            value = m
        facts = intervals.analyze(n.Kernel(PLACEHOLDER, tuple(self.params), (n.Let("_v", value),)), self.ranges, (N,))
        leaf = (n.Cast(value, self.ty), facts.env["_v"])
        self.gen.leaves.append(leaf)
        self.scalars.append(leaf)
        self.assign(y, self.combine(("add", "sub"), self.var(y), self.expr(int(self.rng.integers(1, 3)), leaf)))

    # ---------------------------------------------------------------------------------------------- program
    def build(self) -> n.Kernel:
        rng, ty = self.rng, self.ty
        inline = rng.random() < 0.35
        for k in range(int(self.pick((1, 1, 2, 2, 3)))):
            name = self.names.fresh(ARRAY_NAMES, f"in{k}", k)
            iv = Interval(*self.pick(INPUT_RANGES))
            self.params.append(n.Param(name, Array(ty)))
            self.ranges[name] = iv
            load = n.Load(name, Array(ty), (I,))
            if not inline:
                local = self.names.loaded(name, k)
                self.body.append(n.Let(local, load))
                load = n.Var(local, ty)
            self.data.append((load, iv))
        self.gen.leaves += self.data
        outs = [self.names.fresh(OUT_NAMES, "out", 0) for _ in range(int(self.pick((1, 1, 2))))]
        ys = [self.names.fresh(VAR_NAMES, "y", 0) for _ in outs]
        for y in ys:                                       # first stage: data scaled by a coefficient
            c = self.float_param(COEF_NAMES, *self.pick(COEF_RANGES))
            e = self.expr(int(rng.integers(1, 3)), must=self.pick(self.data))
            if c[0] not in analysis.subexprs(e[0]):
                e = self.combine(("add", "sub", "mul"), e, c)
            self.body.append(n.Let(y, e[0]))
            self.gen.leaves.append((n.Var(y, ty), e[1]))
        kinds, weights = list(STAGES), np.array(list(STAGES.values()))
        for _ in range(int(self.pick((2, 3, 3, 4, 5)))):
            kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
            for _ in range(10):
                if kind not in self.stages or (rng.random() < 0.2 and kind != "flag"):
                    break
                kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
            self.stage(kind, self.pick(ys))
        values = [self.var(y) for y in ys]
        if len(ys) > 1 and rng.random() < 0.5:
            values[0] = self.combine(("add", "sub", "mul"), values[0], values[1])
        stores = tuple(n.Store(o, Array(ty), (I,), e) for o, (e, _) in zip(outs, values))
        params = tuple(self.params) + tuple(n.Param(o, Array(ty)) for o in outs)
        kernel = n.Kernel(PLACEHOLDER, params, tuple(self.body) + stores)
        return analysis.remove_dead(analysis.fold_unused(kernel))


def draw(rng: np.random.Generator) -> Program:
    def build() -> tuple[n.Kernel, dict[str, Interval], Builder]:
        b = Builder(rng)
        return b.build(), b.ranges, b

    kernel, ranges, b = first_clean(build, N)
    feats = {**features(kernel), "stages": sorted(set(b.stages)), "cycled": list(b.cycled),
             "bool_params": [p.name for p in kernel.params if p.type == BOOL]}
    dynamic = any(isinstance(s, n.For) for s in kernel.body)
    return program(kernel, ranges, (N,), feats, differentiable=not dynamic)


# ------------------------------------------------------------------------------------------------------
# Inputs: the three verification sets take different switch values, flags and trip counts


def _set_index(spec: KernelSpec, rng: np.random.Generator) -> int | None:
    """Which verification input set ``rng`` was made for (the verifier seeds one generator per set)."""
    state = rng.bit_generator.state
    for k in range(8):
        if rng_for(derive_seed("wkf-inputs", spec.seed, k)).bit_generator.state == state:
            return k
    return None


def sample_inputs(spec: KernelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Default inputs, with modes, flags and trip counts cycling through their values across the sets (offset by
    the kernel's seed)."""
    k = _set_index(spec, rng)
    values = default_inputs(spec, rng)
    if k is None:
        return values
    order = rng_for(derive_seed("wkf-scalar-cycle", spec.seed))
    for a in spec.args:
        if a.name in spec.program.features["cycled"]:
            perm = order.permutation(int(a.high) - int(a.low) + 1)
            values[a.name] = np.asarray(int(a.low) + int(perm[k % perm.size]), dtype=np.int32)
    return values


FAMILY = ir_family("scalar_param", __doc__, draw, version=2, sample_inputs=sample_inputs,
                   covers=("scalar parameters", "mixed parameter types", "bool parameters",
                           "parameter-driven loop trip counts", "mode switches", "thresholds", "clamp bounds",
                           "strides and offsets", "type conversions", "float64"))
