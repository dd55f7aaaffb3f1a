"""random: Warp's PCG random numbers: per-thread streams, draws combined with inputs, Monte-Carlo loops.

Every kernel takes an int ``seed`` parameter (a new value in every input set) and builds one or two per-thread
states with ``wp.rand_init(seed, offset)`` / ``wp.rand_init(seed')`` from random integer expressions of the
thread index. Draws: ``randf`` (also with a range given by literals or input values), ``randn``, ``randi`` in a
range (used as indices: random gathers ``a[j]``), ``randi(state) % m`` (C remainder of a signed value),
``randu`` with a uint32 range, and the geometric samplers ``sample_unit_sphere`` / ``_surface`` /
``hemisphere`` / ``disk`` / ``ring`` / ``square`` / ``cube`` / ``triangle``. Draws feed random expression trees
(``kernels._expr``) with the input values, transforms like ``-log(1 - u)`` or ``cos(2 pi u)``, and dot
products with vec3 inputs. Monte-Carlo loops with a fixed or parameter-given sample count accumulate sums,
running max/min, exponential averages and hit counts, with draws under data-dependent ``if`` (the state
advances only in lanes that take the branch), int histograms by ``atomic_add`` at random bins, and helper
@wp.func that receive the state *by value* (their draws do not advance the caller's state).

The reference is a bit-exact NumPy port of Warp's PCG hash (``warp/native/rand.h``), vectorised over
threads, with masked state advances for draws under branches. Float transforms are computed in float64 from
the exact float32 draws; integer results (indices, bins, counts) are exact.
"""

from __future__ import annotations

import numpy as np

from harness.family import Arg, Family, KernelSpec, Program, Tolerance
from kernels import _expr as E
from kernels._common import ARRAY_NAMES, OUT_NAMES, kernel_text, pick
from kernels._funcs_lib import fold_in, sanitize

F32 = E.FLOAT32
RANDN_EPS = np.float32(5.96e-8)
TWO_PI_F = float(np.float32(2.0) * np.float32(np.pi))      # 2.f * M_PI_F, exact in float32
RANDN_MAG = 5.8                                             # |randn| <= sqrt(-2 log(5.96e-8)) = 5.77
EPS32 = float(np.finfo(np.float32).eps)
MAX_UNROLL = 16                                             # wp.config.max_unroll
STATE_NAMES = ("st", "rng", "state", "s0", "seed_state", "rs")
DRAW_NAMES = ("r", "u", "x", "g", "z", "w", "h", "e")
LOOP_VARS = ("s", "k", "t", "n", "smp")
ACC_NAMES = ("acc", "total", "sum_", "est", "mc", "running")

# --------------------------------------------------------------------------------------------------------
# NumPy port of warp/native/rand.h


def pcg(state: np.ndarray) -> np.ndarray:
    s = np.asarray(state, dtype=np.uint32)
    with np.errstate(over="ignore"):
        b = s * np.uint32(747796405) + np.uint32(2891336453)
        c = ((b >> ((b >> np.uint32(28)) + np.uint32(4))) ^ b) * np.uint32(277803737)
    return (c >> np.uint32(22)) ^ c


def _u32(x) -> np.ndarray:
    """int values (int32 semantics in the kernel) reinterpreted as uint32."""
    return (np.asarray(x, dtype=np.int64) % (1 << 32)).astype(np.uint32)


def rand_init(seed, offset=None) -> np.ndarray:
    if offset is None:
        return pcg(_u32(seed))
    with np.errstate(over="ignore"):
        return pcg(_u32(seed) + pcg(_u32(offset)))


def _unit(state: np.ndarray) -> np.ndarray:
    """randf's value for an already advanced state: (state >> 8) * 2^-24, exact in float64."""
    return (state >> np.uint32(8)).astype(np.float64) * (1.0 / 16777216.0)


class Stream:
    """Per-lane states of one ``wp.rand_init`` variable; draws advance only lanes in ``mask``."""

    def __init__(self, state: np.ndarray):
        self.state = state

    def next(self, mask) -> np.ndarray:
        new = pcg(self.state)
        self.state = new if mask is None else np.where(mask, new, self.state)
        return new

    def peek(self, count: int) -> list[np.ndarray]:
        """States a by-value copy would produce (the caller's state does not move)."""
        out, s = [], self.state
        for _ in range(count):
            s = pcg(s)
            out.append(s)
        return out


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def sample(kind: str, states: list[np.ndarray]) -> np.ndarray:
    """Warp's samplers (rand.h) from their consecutive advanced states; float64 math on float32 draws."""
    u = [_unit(s) for s in states]
    if kind == "randf":
        return u[0]
    if kind == "randn":
        x = (_f32(u[0]) + RANDN_EPS).astype(np.float64)       # randf(state) + RANDN_EPSILON in float32
        return np.sqrt(-2.0 * np.log(x)) * np.cos(TWO_PI_F * u[1])
    if kind == "sample_unit_ring":
        th = TWO_PI_F * u[0]
        return np.stack([np.cos(th), np.sin(th)], -1)
    if kind == "sample_unit_disk":
        r, th = np.sqrt(u[0]), TWO_PI_F * u[1]
        return np.stack([r * np.cos(th), r * np.sin(th)], -1)
    if kind in ("sample_unit_sphere_surface", "sample_unit_sphere", "sample_unit_hemisphere_surface",
                "sample_unit_hemisphere"):
        hemi = "hemisphere" in kind
        phi = np.arccos(1.0 - (u[0] if hemi else 2.0 * u[0]))
        th = TWO_PI_F * u[1]
        r = np.power(u[2], 1.0 / 3.0) if not kind.endswith("surface") else 1.0
        return np.stack([r * np.cos(th) * np.sin(phi), r * np.sin(th) * np.sin(phi), r * np.cos(phi)], -1)
    if kind == "sample_unit_square":
        return np.stack([u[0] - 0.5, u[1] - 0.5], -1)
    if kind == "sample_unit_cube":
        return np.stack([u[0] - 0.5, u[1] - 0.5, u[2] - 0.5], -1)
    if kind == "sample_triangle":
        r = np.sqrt(u[0])
        return np.stack([1.0 - r, u[1] * r], -1)
    raise ValueError(kind)


#: draws each sampler consumes, its vector width (0: scalar), and the interval of its components
SAMPLERS = {
    "randf": (1, 0, (0.0, 1.0)),
    "randn": (2, 0, (-RANDN_MAG, RANDN_MAG)),
    "sample_unit_ring": (1, 2, (-1.0, 1.0)),
    "sample_unit_disk": (2, 2, (-1.0, 1.0)),
    "sample_unit_sphere_surface": (2, 3, (-1.0, 1.0)),
    "sample_unit_sphere": (3, 3, (-1.0, 1.0)),
    "sample_unit_hemisphere_surface": (2, 3, (-1.0, 1.0)),
    "sample_unit_hemisphere": (3, 3, (-1.0, 1.0)),
    "sample_unit_square": (2, 2, (-0.5, 0.5)),
    "sample_unit_cube": (3, 3, (-0.5, 0.5)),
    "sample_triangle": (2, 2, (0.0, 1.0)),
}
VEC_SAMPLERS = tuple(k for k, v in SAMPLERS.items() if v[1])

# --------------------------------------------------------------------------------------------------------
# Statement AST. Each statement emits its source lines and runs itself on a lane-vectorised environment.


class Ctx:
    """Reference state: values by name (source text for derived leaves), streams, output arrays."""

    def __init__(self, inputs, n):
        self.env: dict[str, np.ndarray] = {}
        self.streams: dict[str, Stream] = {}
        self.inputs = inputs
        self.n = n
        self.outputs: dict[str, np.ndarray] = {}

    def assign(self, name, value, mask):
        value = np.asarray(value)
        if mask is None or name not in self.env:
            self.env[name] = value
        else:
            old = self.env[name]
            m = mask.reshape(mask.shape + (1,) * (value.ndim - 1)) if value.ndim > 1 else mask
            self.env[name] = np.where(m, value, old)


class Init:
    """``st = wp.rand_init(seed_text[, offset_text])``; seed/offset are (text, function of (seed, i))."""

    def __init__(self, name, seed, offset):
        self.name, self.seed, self.offset = name, seed, offset

    def lines(self):
        args = self.seed[0] if self.offset is None else f"{self.seed[0]}, {self.offset[0]}"
        return [f"{self.name} = wp.rand_init({args})"]

    def run(self, ctx, mask):
        seed = np.asarray(ctx.inputs["seed"], dtype=np.int64)
        i = np.arange(ctx.n, dtype=np.int64)
        s = self.seed[1](seed, i)
        off = None if self.offset is None else self.offset[1](seed, i)
        ctx.streams[self.name] = Stream(np.broadcast_to(rand_init(s, off), (ctx.n,)).copy())


class Draw:
    """``name = <draw>``. kind: a SAMPLERS key, ``range`` (randf(st, lo, hi)), ``randi`` (range ints),
    ``randi_mod`` (randi(st) % m), ``randu`` (int(randu(st, uint lo, uint hi))), ``bin`` (int(randf*M)).
    ``via`` names a helper @wp.func that draws from a by-value copy of the state."""

    def __init__(self, name, stream, kind, params=(), via=None):
        self.name, self.stream, self.kind, self.params, self.via = name, stream, kind, params, via

    def expr(self):
        st, p = self.stream, self.params
        if self.kind in SAMPLERS:
            return f"wp.{self.kind}({st})"
        if self.kind == "range":
            return f"wp.randf({st}, {E.emit(p[0], F32)}, {E.emit(p[1], F32)})"
        if self.kind == "randi":
            return f"wp.randi({st}, {p[0]}, {p[1]})"
        if self.kind == "randi_mod":
            return f"wp.randi({st}) % {p[0]}"
        if self.kind == "randu":
            return f"int(wp.randu({st}, wp.uint32({p[0]}), wp.uint32({p[1]})))"
        if self.kind == "bin":
            return f"int(wp.randf({st}) * {float(p[0])!r})"
        raise ValueError(self.kind)

    def lines(self):
        if self.via:
            return [f"{self.name} = {self.via}({self.stream})"]
        return [f"{self.name} = {self.expr()}"]

    def consumes(self):
        return SAMPLERS[self.kind][0] if self.kind in SAMPLERS else 1

    def run(self, ctx, mask):
        stream = ctx.streams[self.stream]
        if self.via:
            states = stream.peek(self.consumes())
        else:
            states = [stream.next(mask) for _ in range(self.consumes())]
        if self.kind in SAMPLERS:
            value = sample(self.kind, states)
        elif self.kind == "range":
            lo = E.evaluate(self.params[0], ctx.env, F32)
            hi = E.evaluate(self.params[1], ctx.env, F32)
            value = (hi - lo) * _unit(states[0]) + lo
        elif self.kind == "randi":
            lo, hi = self.params
            value = (states[0] % np.uint32(hi - lo)).astype(np.int64) + lo
        elif self.kind == "randi_mod":
            v = states[0].view(np.int32).astype(np.int64)         # int(state): two's complement
            value = np.fmod(v, self.params[0])
        elif self.kind == "randu":
            lo, hi = self.params
            value = (states[0] % np.uint32(hi - lo) + np.uint32(lo)).astype(np.int64)
        elif self.kind == "bin":
            prod = _f32(_unit(states[0])) * np.float32(self.params[0])   # float32 product, then truncation
            value = np.trunc(prod).astype(np.int64)
        ctx.assign(self.name, value, mask)


class Assign:
    """``name = expr`` (float32 expression tree) or a derived-leaf binding done by the reference only."""

    def __init__(self, name, node, decl=None):
        self.name, self.node, self.decl = name, node, decl

    def lines(self):
        if self.decl is not None:
            return [f"{self.name} = {self.decl}"]
        return [f"{self.name} = {E.emit(self.node, F32)}"]

    def run(self, ctx, mask):
        if self.node is not None:       # declarations are valued by a Derived statement
            ctx.assign(self.name, np.broadcast_to(E.evaluate(self.node, ctx.env, F32), (ctx.n,)), mask)


class Derived:
    """Registers the value of a leaf spelled inline (``a[j]``, ``r[1]``, ``wp.sqrt(u)``...): no source line."""

    def __init__(self, text, fn):
        self.text, self.fn = text, fn

    def lines(self):
        return []

    def run(self, ctx, mask):
        ctx.env[self.text] = self.fn(ctx)


class Accum:
    """Loop accumulator update: ``+=`` / ``-=`` / running max/min / exponential average / counter."""

    def __init__(self, name, op, node=None, coef=None):
        self.name, self.op, self.node, self.coef = name, op, node, coef

    def lines(self):
        n = self.name
        if self.op == "count":
            return [f"{n} += 1"]
        e = E.emit(self.node, F32)
        if self.op == "add":
            return [f"{n} += {e}"]
        if self.op == "sub":
            return [f"{n} -= {e}"]
        if self.op in ("max", "min"):
            return [f"{n} = wp.{self.op}({n}, {e})"]
        if self.op == "ema":
            return [f"{n} = {n} * {self.coef!r} + {e} * {round(1.0 - self.coef, 6)!r}"]
        raise ValueError(self.op)

    def run(self, ctx, mask):
        old = ctx.env[self.name]
        if self.op == "count":
            new = old + 1
        else:
            e = np.broadcast_to(E.evaluate(self.node, ctx.env, F32), old.shape)
            if self.op == "add":
                new = old + e
            elif self.op == "sub":
                new = old - e
            elif self.op == "max":
                new = np.maximum(old, e)
            elif self.op == "min":
                new = np.minimum(old, e)
            else:
                new = old * float(np.float32(self.coef)) + e * float(np.float32(round(1.0 - self.coef, 6)))
        ctx.assign(self.name, new, mask)


class If:
    def __init__(self, cond, body, orelse=None):
        self.cond, self.body, self.orelse = cond, body, orelse

    def lines(self):
        out = [f"if {E.emit_cond(self.cond, F32)}:"] + ["    " + x for s in self.body for x in s.lines()]
        if self.orelse:
            out += ["else:"] + ["    " + x for s in self.orelse for x in s.lines()]
        return out

    def run(self, ctx, mask):
        c = np.broadcast_to(E.evaluate_cond(self.cond, ctx.env, F32), (ctx.n,))
        base = np.ones(ctx.n, dtype=bool) if mask is None else mask
        for s in self.body:
            s.run(ctx, base & c)
        for s in self.orelse or ():
            s.run(ctx, base & ~c)


class Loop:
    """``for var in range(count)``: count is an int literal or the name of an int scalar parameter."""

    def __init__(self, var, count, body):
        self.var, self.count, self.body = var, count, body

    def lines(self):
        return [f"for {self.var} in range({self.count}):"] + ["    " + x for s in self.body for x in s.lines()]

    def run(self, ctx, mask):
        count = self.count if isinstance(self.count, int) else int(np.asarray(ctx.inputs[self.count]))
        for it in range(count):
            ctx.env[self.var] = np.full(ctx.n, it, dtype=np.int64)
            ctx.env[f"float({self.var})"] = np.full(ctx.n, float(it))
            for s in self.body:
                s.run(ctx, mask)


class Hist:
    """``wp.atomic_add(hist, bin, 1)``: int histogram (exact in any order)."""

    def __init__(self, out, index):
        self.out, self.index = out, index

    def lines(self):
        return [f"wp.atomic_add({self.out}, {self.index}, 1)"]

    def run(self, ctx, mask):
        idx = np.broadcast_to(ctx.env[self.index], (ctx.n,))
        if mask is not None:
            idx = idx[mask]
        np.add.at(ctx.outputs[self.out], idx, 1)


class Write:
    """``out[i] = expr``: kind float (expression tree), int (text, int function of env), vec (text, fn)."""

    def __init__(self, out, kind, node=None, text=None, fn=None):
        self.out, self.kind, self.node, self.text, self.fn = out, kind, node, text, fn

    def lines(self):
        if self.kind == "float":
            return [f"{self.out}[i] = {E.emit(self.node, F32)}"]
        return [f"{self.out}[i] = {self.text}"]

    def run(self, ctx, mask):
        if self.kind == "float":
            value = E.evaluate(self.node, ctx.env, F32)
        else:
            value = self.fn(ctx.env)
        ctx.outputs[self.out][...] = np.broadcast_to(value, ctx.outputs[self.out].shape)


# --------------------------------------------------------------------------------------------------------
# Generation


def _offset(rng, n):
    """A random int expression of i (and its NumPy value) for rand_init's offset or seed."""
    c, d = int(rng.integers(2, 97)), int(rng.integers(1, 1000))
    kind = int(rng.integers(6))
    if kind == 0:
        return "i", lambda s, i: i
    if kind == 1:
        return f"i + {d}", lambda s, i: i + d
    if kind == 2:
        return f"{c} * i + {d}", lambda s, i: c * i + d
    if kind == 3:
        return f"{n} - 1 - i", lambda s, i: n - 1 - i
    if kind == 4:
        return f"i * {c}", lambda s, i: i * c
    return f"(i + {d}) * {c}", lambda s, i: (i + d) * c


def _init(rng, name, n, second):
    """The init statement of one stream: ``rand_init(seed[+k], offset)`` or single-argument forms."""
    k = int(rng.integers(1, 50))
    roll = rng.random()
    if roll < 0.55:
        seed = ("seed", lambda s, i: s) if not second else (f"seed + {k}", lambda s, i: s + k)
        return Init(name, seed, _offset(rng, n))
    if roll < 0.75:
        text, fn = _offset(rng, n)
        return Init(name, (f"seed + {k}", lambda s, i: s + k), (text, fn))
    if roll < 0.9:
        c = int(rng.integers(3, 64))
        return Init(name, (f"seed * {c} + i", lambda s, i: s * c + i), None)
    text, fn = _offset(rng, n)
    return Init(name, (f"seed + {text}" if text == "i" else f"seed + ({text})",
                       lambda s, i, fn=fn: s + fn(s, i)), None)


class Gen:
    def __init__(self, rng):
        self.rng = rng
        self.n = int(pick(rng, (32, 48, 64)))
        self.args: list[Arg] = []
        self.stmts: list = []
        self.helpers: list[str] = []
        self.leaves: dict[str, E.Interval] = {}       # float leaves usable in expressions (current scope)
        self.inputs: list[str] = []                   # float input leaves (must reach an output)
        self.vec_inputs: list[str] = []               # vec3 input leaves
        self.names = set()
        self.counter = 0
        self.max_mag = 1.0                            # largest interval magnitude seen (for atol)
        self.features = {"draws": set(), "loop": None, "hist": False, "helper_draw": False,
                         "branch_draw": False, "range_from_inputs": False, "gather": False}
        self.differentiable = True
        self.streams: list[str] = []

    def fresh(self, base):
        self.counter += 1
        return f"{base}{self.counter}"

    def expr_gen(self, leaves=None):
        return E.ExprGen(self.rng, F32, dict(self.leaves if leaves is None else leaves),
                         binary=("add", "sub", "mul", "div", "min", "max"), p_const=0.2)

    def note(self, iv: E.Interval):
        self.max_mag = max(self.max_mag, iv.mag)

    # ---- inputs

    def add_inputs(self):
        rng = self.rng
        n_in = int(rng.integers(1, 4))
        names = pick(rng, ARRAY_NAMES, n_in + 1)
        inline = rng.random() < 0.35
        for nm in names[:n_in]:
            lo, hi = pick(rng, ((-2.0, 2.0), (0.0, 1.0), (0.5, 3.0), (-1.0, 1.0)))
            self.args.append(Arg(nm, "float32", "in", (self.n,), lo, hi))
            self.stmts.append(Derived(f"{nm}[i]", lambda ctx, nm=nm: ctx.inputs[nm].astype(np.float64)))
            if inline:
                leaf = f"{nm}[i]"
            else:
                leaf = f"{nm}_v" if rng.random() < 0.5 else f"x{nm}"
                self.stmts.append(Assign(leaf, E.var(f"{nm}[i]", E.Interval(lo, hi))))
            self.leaves[leaf] = E.Interval(lo, hi)
            self.inputs.append(leaf)
        self.array_names = names[:n_in]
        if rng.random() < 0.3:
            vn = names[n_in]
            self.args.append(Arg(vn, "vec3f", "in", (self.n,), -1.0, 1.0))
            leaf = f"{vn}_v"
            self.stmts.append(Assign(leaf, None, decl=f"{vn}[i]"))
            self.stmts.append(Derived(leaf, lambda ctx, vn=vn: ctx.inputs[vn].astype(np.float64)))
            self.vec_inputs.append(leaf)
            if rng.random() < 0.5:
                comp = f"{leaf}[{int(rng.integers(3))}]"
                self.stmts.append(Derived(comp, lambda ctx, t=comp, v=leaf: ctx.env[v][:, int(t[-2])]))
                self.leaves[comp] = E.Interval(-1.0, 1.0)
            else:
                comp = f"wp.length_sq({leaf})"
                self.stmts.append(Derived(comp, lambda ctx, v=leaf: np.sum(ctx.env[v] ** 2, -1)))
                self.leaves[comp] = E.Interval(0.0, 3.0)
            self.inputs.append(comp)
        if rng.random() < 0.3:
            sname = pick(rng, ("alpha", "scale", "gain", "sigma", "mu", "bias"))
            self.args.append(Arg(sname, "float32", "scalar", (), 0.5, 2.0))
            self.stmts.append(Derived(sname, lambda ctx, s=sname: np.asarray(ctx.inputs[s], dtype=np.float64)))
            self.leaves[sname] = E.Interval(0.5, 2.0)
            self.inputs.append(sname)

    # ---- draws

    def draw(self, body: list, scope: dict, stream=None, allow_vec=True, mask_note=False):
        """Append one draw (and the leaves it provides) to ``body``; returns the new leaf names."""
        rng = self.rng
        st = stream or pick(rng, self.streams)
        roll = rng.random()
        new = {}
        if roll < 0.28:
            kind = "randf"
        elif roll < 0.42:
            kind = "randn"
        elif roll < 0.54:
            kind = "range"
        elif roll < 0.70:
            kind = "randi"
        elif roll < 0.76:
            kind = "randi_mod"
        elif roll < 0.81:
            kind = "randu"
        elif allow_vec:
            kind = pick(rng, VEC_SAMPLERS)
        else:
            kind = "randf"
        self.features["draws"].add(kind)
        name = self.fresh(pick(rng, DRAW_NAMES))
        if kind == "randf":
            d = Draw(name, st, kind)
            body.append(d)
            new[name] = E.Interval(0.0, 1.0)
            t = rng.random()
            if t < 0.2:
                new.update(self.derive(body, f"wp.sqrt({name})", lambda c, n=name: np.sqrt(c.env[n]), 0.0, 1.0))
            elif t < 0.35:
                new.update(self.derive(body, f"(-wp.log(1.0 - {name}))",
                                       lambda c, n=name: -np.log(1.0 - c.env[n]), 0.0, 16.7))
                self.typical[f"(-wp.log(1.0 - {name}))"] = (0.0, 3.0)
            elif t < 0.5:
                fn = pick(rng, ("cos", "sin"))
                new.update(self.derive(body, f"wp.{fn}({TWO_PI_F!r} * {name})",
                                       lambda c, n=name, f=fn: getattr(np, f)(TWO_PI_F * c.env[n]), -1.0, 1.0))
        elif kind == "randn":
            body.append(Draw(name, st, kind))
            new[name] = E.Interval(-RANDN_MAG, RANDN_MAG)
            self.typical[name] = (-1.5, 1.5)
        elif kind == "range":
            leaves = [k for k in scope if k in self.inputs] if rng.random() < 0.5 else []
            if leaves:
                lo = E.var(pick(rng, leaves), scope[leaves[0]])
                lo = E.var(lo.value, scope[lo.value])
                c = round(float(rng.uniform(0.5, 3.0)), 2)
                hi = E.Node("add", (lo, E.const(c)), iv=E.Interval(lo.iv.lo + c, lo.iv.hi + c))
                if rng.random() < 0.5:
                    lo, hi = hi, lo
                self.features["range_from_inputs"] = True
                self.range_deps[name] = {lo.value}
                self.differentiable = False            # randf(state, low, high) has no adjoint
            else:
                a = round(float(rng.uniform(-3.0, 1.0)), 1)
                b = round(a + float(rng.uniform(0.5, 4.0)), 1)
                lo, hi = E.const(a), E.const(b)
            body.append(Draw(name, st, kind, (lo, hi)))
            new[name] = E.Interval(min(lo.iv.lo, hi.iv.lo), max(lo.iv.hi, hi.iv.hi))
        elif kind == "randi":
            if rng.random() < 0.5 and self.array_names:
                arr = pick(rng, self.array_names)
                if rng.random() < 0.5:
                    body.append(Draw(name, st, kind, (0, self.n)))
                    text = f"{arr}[{name}]"
                    fn = lambda c, a=arr, n=name: c.inputs[a].astype(np.float64)[c.env[n]]  # noqa: E731
                else:
                    w = int(rng.integers(2, 9))
                    body.append(Draw(name, st, kind, (0, w)))
                    text = f"{arr}[(i + {name}) % {self.n}]"
                    fn = lambda c, a=arr, n=name, N=self.n: c.inputs[a].astype(np.float64)[  # noqa: E731
                        (np.arange(N) + c.env[n]) % N]
                body.append(Derived(text, fn))
                lo_hi = next(a for a in self.args if a.name == arr)
                new[text] = E.Interval(lo_hi.low, lo_hi.high)
                self.features["gather"] = True
            else:
                lo = int(rng.integers(-8, 4))
                hi = lo + int(rng.integers(2, 12))
                body.append(Draw(name, st, kind, (lo, hi)))
                new.update(self.derive(body, f"float({name})", lambda c, n=name: c.env[n].astype(np.float64),
                                       lo, hi - 1))
        elif kind == "randi_mod":
            m = int(rng.integers(2, 20))
            body.append(Draw(name, st, kind, (m,)))
            new.update(self.derive(body, f"float({name})", lambda c, n=name: c.env[n].astype(np.float64),
                                   -(m - 1), m - 1))
        elif kind == "randu":
            lo = int(rng.integers(0, 5))
            hi = lo + int(rng.integers(2, 10))
            body.append(Draw(name, st, kind, (lo, hi)))
            new.update(self.derive(body, f"float({name})", lambda c, n=name: c.env[n].astype(np.float64),
                                   lo, hi - 1))
        else:
            body.append(Draw(name, st, kind))
            _, width, (clo, chi) = SAMPLERS[kind]
            comps = pick(rng, list(range(width)), int(rng.integers(1, width + 1)))
            for k in comps:
                new.update(self.derive(body, f"{name}[{k}]", lambda c, n=name, k=k: c.env[n][..., k], clo, chi))
            if width == 3 and self.vec_inputs and rng.random() < 0.7:
                v = pick(rng, self.vec_inputs)
                new.update(self.derive(body, f"wp.dot({name}, {v})",
                                       lambda c, n=name, v=v: np.sum(c.env[n] * c.env[v], -1),
                                       -np.sqrt(3.0), np.sqrt(3.0)))
            if rng.random() < 0.3:
                new.update(self.derive(body, f"wp.length_sq({name})",
                                       lambda c, n=name: np.sum(c.env[n] ** 2, -1), 0.0, float(width)))
            self.vec_draws.append((name, width))
        if body is self.stmts and any(k == f"float({name})" for k in new):
            self.int_leaves.append(name)
        for k, iv in new.items():
            scope[k] = iv
        return list(new)

    def derive(self, body, text, fn, lo, hi):
        body.append(Derived(text, fn))
        return {text: E.Interval(float(lo), float(hi))}

    # ---- expressions

    def expression(self, scope, depth, must=()):
        gen = self.expr_gen(scope)
        node = sanitize(gen.expr(depth))
        if node.op in ("var", "const"):
            node = sanitize(gen.apply_binary(pick(self.rng, ("add", "mul", "sub")), node,
                                             gen.expr(max(1, depth - 1))))
        node = fold_in(gen, self.rng, node, must, scope)
        self.note(node.iv)
        return node

    def condition(self, scope, rand_leaves):
        """A comparison of a random leaf (affinely mapped onto the other side's range when needed) with an
        input-dependent expression or a literal, so that both outcomes are likely."""
        rng = self.rng
        r = pick(rng, rand_leaves)
        tl, th = self.typical.get(r, (scope[r].lo, scope[r].hi))
        left = E.var(r, scope[r])
        ins = [k for k in scope if k in self.inputs and k not in self.range_deps.get(r, ())]
        if ins and rng.random() < 0.75:
            other = self.expr_gen({k: scope[k] for k in ins}).expr(int(rng.integers(0, 2)))
            if other.op == "const":
                other = E.var(ins[0], scope[ins[0]])
            ol, oh = other.iv.lo, other.iv.hi
            overlap = min(oh, th) - max(ol, tl)
            if oh - ol > 0 and th - tl > 0 and overlap < 0.5 * min(oh - ol, th - tl):
                a = round((oh - ol) / (th - tl), 2) or 0.5
                b = round(ol - a * tl, 2)
                left = E.Node("mul", (left, E.const(a)), iv=E.Interval(min(a * scope[r].lo, a * scope[r].hi),
                                                                        max(a * scope[r].lo, a * scope[r].hi)))
                if b:
                    left = E.Node("add", (left, E.const(b)), iv=E.Interval(left.iv.lo + b, left.iv.hi + b))
        else:
            other = E.const(round(float(tl + (th - tl) * rng.uniform(0.2, 0.8)), 2))
        cmp = pick(rng, ("lt", "le", "gt", "ge"))
        return E.Node(cmp, (left, other))

    # ---- program

    def build(self):
        rng = self.rng
        self.vec_draws: list = []
        self.int_leaves: list[str] = []
        self.typical: dict[str, tuple] = {}
        self.range_deps: dict[str, set] = {}
        self.post_loop: list = []
        self.add_inputs()
        self.args.append(Arg("seed", "int32", "scalar", (), 0, 1 << 20))
        n_streams = 1 if rng.random() < 0.75 else 2
        for k in range(n_streams):
            name = pick(rng, STATE_NAMES) + ("" if k == 0 else "2")
            while name in self.streams:
                name += "b"
            self.streams.append(name)
            self.stmts.append(_init(rng, name, self.n, k > 0))
        top_rand: list[str] = []
        # top-level draws and bindings
        for _ in range(int(rng.integers(1, 4))):
            top_rand += self.draw(self.stmts, self.leaves)
        if rng.random() < 0.25:
            top_rand += self.helper_draw()
        if rng.random() < 0.45:
            name = self.fresh(pick(rng, ("t", "m", "y", "v", "q")))
            node = self.expression(self.leaves, int(rng.integers(1, 4)))
            self.stmts.append(Assign(name, node))
            self.leaves[name] = node.iv
        loop_out = None
        if rng.random() < 0.7:
            loop_out = self.mc_loop()
        outputs = []
        outs = pick(rng, OUT_NAMES, 3)
        # float outputs: every input and every top-level draw family reaches some output
        n_float = 1 if loop_out and rng.random() < 0.5 else int(rng.integers(1, 3))
        pending_inputs = list(self.inputs)
        rand_pool = [k for k in top_rand if k in self.leaves]
        for k in range(n_float):
            must = []
            if k == n_float - 1:
                must = [x for x in pending_inputs]
            else:
                must = [pick(rng, pending_inputs)] if pending_inputs else []
            if loop_out and loop_out[0] == "float" and k == 0:
                must.append(loop_out[1])
            elif rand_pool:
                must.append(pick(rng, rand_pool))
            must = list(dict.fromkeys(must))
            node = self.expression(self.leaves, int(rng.integers(1, 4)), must)
            for u in E.uses(node):
                if u in pending_inputs:
                    pending_inputs.remove(u)
            name = outs[k]
            self.args.append(Arg(name, "float32", "out", (self.n,)))
            self.stmts.append(Write(name, "float", node=node))
            outputs.append(name)
        if loop_out and loop_out[0] == "int":
            name = outs[2]
            cnt = loop_out[1]
            if rng.random() < 0.5:
                extra = list(self.int_leaves)
                if extra:
                    e = pick(rng, extra)
                    text = f"{cnt} * {int(rng.integers(2, 5))} + {e}" if rng.random() < 0.5 else f"{cnt} - {e}"
                else:
                    text = cnt
            else:
                text = cnt
            self.args.append(Arg(name, "int32", "out", (self.n,)))
            self.stmts.append(Write(name, "int", text=text, fn=_int_fn(text)))
        if self.vec_draws and rng.random() < 0.35:
            self.vec_output(outs)
        return self.program()

    def helper_draw(self):
        """A @wp.func that draws from its by-value copy of the state (the caller's state does not move)."""
        rng = self.rng
        self.features["helper_draw"] = True
        hname = f"wkf_kernel_{pick(rng, ('jitter', 'sample', 'draw', 'noise', 'perturb'))}"
        kind = pick(rng, ("randf", "randn", "sample_unit_disk", "sample_unit_sphere"))
        a = round(float(rng.uniform(0.1, 2.0)), 2)
        b = round(float(rng.uniform(-1.0, 1.0)), 2)
        if kind in ("randf", "randn"):
            body = f"    return wp.{kind}(state) * {a!r} + {b!r}"
            ret = "float"
            fn = lambda v: v * float(np.float32(a)) + float(np.float32(b))  # noqa: E731
            iv = SAMPLERS[kind][2]
            lo, hi = sorted((iv[0] * a + b, iv[1] * a + b))
            comp = None
        else:
            comp = int(rng.integers(0, 2))
            body = f"    p = wp.{kind}(state)\n    return p[{comp}] * {a!r} + {b!r}"
            ret = "float"
            fn = lambda v, c=comp: v[..., c] * float(np.float32(a)) + float(np.float32(b))  # noqa: E731
            lo, hi = sorted((-a + b, a + b))
        self.helpers.append(f"@wp.func\ndef {hname}(state: wp.uint32) -> {ret}:\n{body}\n")
        name = self.fresh("hd")
        st = pick(rng, self.streams)
        self.stmts.append(_HelperDraw(Draw(name, st, kind, via=hname), fn))
        self.leaves[name] = E.Interval(lo, hi)
        return [name]

    def mc_loop(self):
        rng = self.rng
        var = pick(rng, LOOP_VARS)
        if rng.random() < 0.3:
            pname = pick(rng, ("nsamples", "count", "trials", "n_iter"))
            self.args.append(Arg(pname, "int32", "scalar", (), 3, 12))
            count, kmax = pname, 12
            self.features["loop"] = "param"
        else:
            count = int(rng.integers(3, 25))
            kmax = count
            self.features["loop"] = "const" if count <= MAX_UNROLL else "const_dynamic"
        if count not in range(MAX_UNROLL + 1):
            # Warp unrolls constant loops up to max_unroll (16); a dynamic loop's backward pass replays draws
            # from a state that keeps advancing, so its adjoint does not see the forward samples
            self.differentiable = False
        body: list = []
        scope = dict(self.leaves)
        loop_rand: list[str] = []
        stream = pick(rng, self.streams)
        for _ in range(int(rng.integers(1, 4))):
            loop_rand += self.draw(body, scope, stream=stream)
        if rng.random() < 0.3:
            scope[f"float({var})"] = E.Interval(0.0, float(kmax - 1))
        kind = rng.random()
        decls = []
        result = None
        float_rand = [k for k in loop_rand if k in scope]
        if kind < 0.22 and self.streams:
            # hit counting: int counter under a data-dependent condition
            cnt = self.fresh(pick(rng, ("hits", "cnt", "inside", "nacc")))
            decls.append(Assign(cnt, None, decl="int(0)"))
            self.stmts.append(Derived(cnt, lambda c: np.zeros(c.n, dtype=np.int64)))
            cond = self.condition(scope, float_rand)
            body.append(If(cond, [Accum(cnt, "count")]))
            result = ("int", cnt)
            self.features["accum"] = "count"
        else:
            acc = self.fresh(pick(rng, ACC_NAMES))
            op = pick(rng, ("add", "add", "sub", "max", "min", "ema"))
            init = {"add": 0.0, "sub": 0.0, "max": -1.0e6, "min": 1.0e6, "ema": 0.0}[op]
            decls.append(Assign(acc, None, decl=f"float({init!r})"))
            self.stmts.append(Derived(acc, lambda c, v=init: np.full(c.n, v)))
            must = [pick(rng, float_rand)] if float_rand else []
            node = self.expression(scope, int(rng.integers(1, 4)), must)
            coef = round(float(rng.uniform(0.5, 0.95)), 2) if op == "ema" else None
            upd = Accum(acc, op, node, coef)
            if rng.random() < 0.35 and float_rand:
                # a draw only in lanes whose condition holds: the state advances conditionally
                cond = self.condition(scope, float_rand)
                inner: list = []
                inner_scope = dict(scope)
                extra = self.draw(inner, inner_scope, stream=stream, allow_vec=False)
                fl = [k for k in extra if k in inner_scope]
                node2 = self.expression(inner_scope, int(rng.integers(1, 3)), fl[:1])
                inner.append(Accum(acc, op if op != "ema" else "add", node2, coef))
                self.note(E.Interval(node2.iv.lo * kmax, node2.iv.hi * kmax))
                body.append(If(cond, inner, [upd] if rng.random() < 0.5 else None))
                self.features["branch_draw"] = True
                self.differentiable = False   # branch on random draws: FD and adjoint see different branches
            else:
                body.append(upd)
            if op in ("add", "sub"):
                iv = E.Interval(-kmax * node.iv.mag * 2, kmax * node.iv.mag * 2)
            else:
                iv = E.Interval(min(node.iv.lo, 0.0) - node.iv.mag, max(node.iv.hi, 0.0) + node.iv.mag)
            self.note(iv)
            if rng.random() < 0.6 and op in ("add", "sub"):
                # the estimate: mean over samples, bound as a new leaf
                est = self.fresh(pick(rng, ("mean", "avg", "estimate", "m")))
                denom = f"float({count})"
                self.post_loop = [Assign(est, None, decl=f"{acc} / {denom}")]
                self.post_loop.append(Derived(est, lambda c, a=acc, cnt=count: c.env[a] / (
                    cnt if isinstance(cnt, int) else float(np.asarray(c.inputs[cnt])))))
                leaf = est
                self.leaves[leaf] = E.Interval(-2 * node.iv.mag, 2 * node.iv.mag)
            else:
                self.post_loop = []
                leaf = acc
                self.leaves[leaf] = iv
            result = ("float", leaf)
            self.features["accum"] = op
        if rng.random() < 0.25:
            hname = pick(rng, ("hist", "bins", "counts"))
            m = int(rng.integers(4, 17))
            bname = self.fresh("b")
            if rng.random() < 0.5:
                body.append(Draw(bname, stream, "randi", (0, m)))
            else:
                body.append(Draw(bname, stream, "bin", (m,)))
            body.append(Hist(hname, bname))
            self.args.append(Arg(hname, "int32", "out", (m,)))
            self.features["hist"] = True
        post = self.post_loop if result[0] == "float" else []
        self.stmts += decls + [Loop(var, count, body)] + post
        return result

    def vec_output(self, outs):
        rng = self.rng
        name, width = pick(rng, self.vec_draws)
        # a top-level vec draw can be written scaled by an input leaf
        if name not in {s.name for s in self.stmts if isinstance(s, Draw)}:
            return
        ins = [k for k in self.leaves if k in self.inputs]
        if not ins:
            return
        leaf = pick(rng, ins)
        vname = "out_v" if "out_v" not in outs else "vout"
        dt = {2: "vec2f", 3: "vec3f"}[width]
        if width == 3 and self.vec_inputs and rng.random() < 0.5:
            v = pick(rng, self.vec_inputs)
            text = f"{name} * {leaf} + {v}"
            fn = lambda env, n=name, s=leaf, v=v: env[n] * _col(env[s]) + env[v]  # noqa: E731
        else:
            text = f"{leaf} * {name}"
            fn = lambda env, n=name, s=leaf: _col(env[s]) * env[n]  # noqa: E731
        self.args.append(Arg(vname, dt, "out", (self.n,)))
        self.stmts.append(Write(vname, "vec", text=text, fn=fn))

    def program(self):
        sig = ", ".join(f"{a.name}: {_spell(a)}" for a in self.args)
        source = kernel_text(sig, [x for s in self.stmts for x in s.lines()], self.helpers)
        feats = {"dtype": "float32", "n": self.n, "streams": len(self.streams),
                 "draws": sorted(self.features["draws"]), "loop": self.features["loop"],
                 "accum": self.features.get("accum"), "hist": self.features["hist"],
                 "helper_draw": self.features["helper_draw"], "branch_draw": self.features["branch_draw"],
                 "gather": self.features["gather"], "range_from_inputs": self.features["range_from_inputs"]}
        meta = {"n": self.n, "stmts": self.stmts, "max_mag": self.max_mag,
                "outputs": [(a.name, a.dtype, a.shape) for a in self.args if a.role == "out"]}
        has_float_out = any(a.dtype == "float32" and a.role == "out" for a in self.args)
        return Program(source, tuple(self.args), (self.n,), meta, feats,
                       differentiable=self.differentiable and has_float_out)


class _HelperDraw:
    """A draw through a helper @wp.func: value from a by-value copy of the state, then the helper's affine map."""

    def __init__(self, draw, fn):
        self.draw, self.fn = draw, fn
        self.name = draw.name

    def lines(self):
        return self.draw.lines()

    def run(self, ctx, mask):
        states = ctx.streams[self.draw.stream].peek(SAMPLERS[self.draw.kind][0])
        ctx.assign(self.name, self.fn(sample(self.draw.kind, states)), mask)


def _col(x):
    x = np.asarray(x)
    return x[:, None] if x.ndim == 1 else x


def _int_fn(text):
    """NumPy function of the env for a small int output expression ``a * k + b`` / ``a - b`` / ``a``."""
    toks = text.split()
    if len(toks) == 1:
        return lambda env: env[toks[0]]
    if len(toks) == 3:
        return lambda env: env[toks[0]] - env[toks[2]]
    return lambda env: env[toks[0]] * int(toks[2]) + env[toks[4]]


def _spell(a: Arg) -> str:
    if a.role == "scalar":
        return {"float32": "float", "int32": "int"}[a.dtype]
    return {"float32": "wp.array(dtype=float)", "int32": "wp.array(dtype=int)",
            "vec3f": "wp.array(dtype=wp.vec3)", "vec2f": "wp.array(dtype=wp.vec2)"}[a.dtype]


def generate(rng: np.random.Generator) -> Program:
    return Gen(rng).build()


def sample_inputs(spec: KernelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    from harness.verify import default_inputs
    values = default_inputs(spec, rng)
    values["seed"] = np.asarray(rng.integers(0, 1 << 20), dtype=np.int32)
    return values


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    meta = spec.meta
    ctx = Ctx(inputs, meta["n"])
    for name, dt, shape in meta["outputs"]:
        width = {"float32": (), "int32": (), "vec3f": (3,), "vec2f": (2,)}[dt]
        ctx.outputs[name] = np.zeros(tuple(shape) + width, dtype=np.int64 if dt == "int32" else np.float64)
    for s in meta["stmts"]:
        s.run(ctx, None)
    return ctx.outputs


def tolerance(spec: KernelSpec) -> Tolerance:
    # Intermediates reach magnitude M (interval bound, e.g. a sum of K samples); float32 rounding of such a
    # computation leaves an absolute error of a few eps * M, so atol scales with M (never below 1e-5).
    return Tolerance(1e-4, max(1e-5, 8 * EPS32 * spec.meta["max_mag"]))


FAMILY = Family(
    name="random",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=reference,
    tolerance=tolerance,
    sample_inputs=sample_inputs,
    weight=1.0,
    covers=("rand_init", "randf", "randn", "randi", "randu", "sample_unit_*", "monte carlo", "random gather",
            "atomic histogram", "rng state by value"),
)
