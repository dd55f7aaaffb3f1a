"""half: float16 kernels: random expression trees over wp.float16 values with float32 sub-expressions.

Kernels read float16 arrays (and sometimes a float32 array, used as float32 or converted with
``wp.float16(a[i])``), float16/float32 scalar parameters, and compose + - * /, ``%``/``wp.mod``,
``//``/``wp.floordiv``, ``**``/``wp.pow``, min/max/abs/neg, selects (``wp.where``, ``a if c else b``), comparisons
and the math builtins (sin cos tan exp log log2 log10 sqrt cbrt tanh atan asin acos sinh cosh erf erfc erfinv
erfcinv atan2 floor ceil round rint trunc frac sign step nonzero copysign clamp lerp smoothstep degrees radians) in
half precision, with conversions ``wp.float32(h)``/``float(h)`` and ``wp.float16(f)`` between half and float32
sub-expressions, local bindings, an optional half-precision accumulation loop over a stencil
(``acc += term(a[(i + j) % 64])``, running max, decay), an optional ``if``/``else`` block, an optional
``@wp.func`` helper on halves and an optional half-vector block (a ``wp.vec2h``/``vec3h``/``vec4h`` input
array and a second one, another input or ``wp.vec3h(...)`` built from halves; ``length``, ``length_sq``, ``dot``
and components as half leaves; a vector output of sums, differences, ``cross``, ``normalize`` and scalings).
Outputs are float16, float32, int32 (``wp.int32(h)`` or ``int(h)``) or half-vector arrays.

Programs are built on the IR (``kernels/ir``): the printer writes them, the IR interpreter is the reference and
the interval engine keeps every operation in its domain. Warp's half semantics live in the operation table
(``kernels/ir/ops.py``, read in warp/native/builtin.h): every half operation converts its operands to float32,
computes in float32 (``::sinf``... for the math builtins) and rounds the result to half once (round to nearest
even); the interpreter computes in float64 and rounds float64 -> float32 -> float16, which is the same for
+ - * / and copies the float32 libm result for the math builtins. ``lerp`` and ``smoothstep`` round after every
half operation, half ``a // b`` is ``floor`` of the half-rounded quotient, ``%`` is ``fmod``, ``wp.float16(c)`` of
a literal rounds the float32 literal, ``wp.float32(h)`` is exact, ``wp.int32(h)`` truncates; vector ``dot`` is
``(a0*b0 + a1*b1) + a2*b2`` and ``cross``/``normalize`` round every component operation. Half arithmetic with a
float32 literal does not compile: every constant of a half expression is ``wp.float16(c)``. The interval of a
half result is widened by two half ulps, and never across zero, so ``log``/``sqrt`` of ``abs(x) + c`` stay in
their domain.

Tolerance: rtol 1e-2, atol 2e-3 on every output. On CPU the reference is bit-exact except for rare 1-ulp
differences of ``atan2``; on CUDA the float32 libm and FMA contraction of float32 sub-expressions may flip a half
rounding by one ulp (~1e-3 relative). The tolerance is 10 half ulps because the harness's conditioning test
perturbs float16 inputs by at least 2 half ulps and masks elements that move by more than half the tolerance
(measured over 150 kernels: rtol 2e-3 masks 42% of the elements, 5e-3 22%, 1e-2 10%). Gradients are not checked:
the reference rounds to half after every operation, so finite differences of it are a staircase.
"""

from __future__ import annotations

import math

import numpy as np

from harness.family import KernelSpec, Program, Tolerance
from kernels.ir import analysis, intervals
from kernels.ir import nodes as n
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import (ARRAY_NAMES, LOCAL_NAMES, OUT_NAMES, SCALAR_NAMES, ExprBuilder, Leaf, Names,
                            Vocabulary, first_clean, random_helper)
from kernels.ir.numeric import Interval
from kernels.ir.ops import OPS, Ctx
from kernels.ir.types import FLOAT16, FLOAT32, INT32, Array, Scalar, Vector

N = 64
LIMIT = 48.0                    # magnitude bound of intermediate values (half has ~3.3 digits; max 65504)
INPUT_RANGES = tuple(Interval(lo, hi) for lo, hi in ((-2.0, 2.0), (-1.0, 1.0), (0.5, 3.0), (-3.0, 1.0),
                                                      (0.1, 2.0), (-4.0, 4.0), (-8.0, 8.0)))
SCALAR_RANGE = Interval(0.5, 2.0)
VEC_RANGES = (Interval(-2.0, 2.0), Interval(-1.0, 1.0), Interval(0.5, 3.0), Interval(0.25, 2.0))
OTHER_VEC_RANGE = Interval(-1.5, 1.5)
VEC_SIZES = (2, 3, 3, 4)

SMOOTH = ("sin", "cos", "tan", "exp", "log", "log2", "log10", "sqrt", "cbrt", "tanh", "atan", "asin", "acos",
          "sinh", "cosh", "erf", "erfc", "erfinv", "abs", "neg", "degrees", "radians")
STEPS = ("floor", "ceil", "round", "rint", "trunc", "frac", "sign", "step", "nonzero", "erfcinv")
BINARY = ("min", "max", "atan2", "pow", "pow_op", "mod", "mod_fn", "floordiv", "floordiv_fn", "copysign", "clamp",
          "lerp", "smoothstep")
HALF_OPS = {**{k: 0.5 for k in SMOOTH}, **{k: 0.3 for k in STEPS}, "add": 3.0, "sub": 3.0, "mul": 3.0,
            "div": 2.5, **{k: 0.6 for k in BINARY}, "where": 1.5, "ifexp": 1.2}
#: float32 sub-expressions use a smaller set
FLOAT32_OPS = frozenset({"add", "sub", "mul", "div", "sin", "cos", "exp", "log", "sqrt", "tanh", "atan", "abs",
                         "neg", "floor", "where", "ifexp"})
#: other spellings of the same operation: the builder repairs their arguments like the original's
ALIASES = {"pow_op": "pow", "mod_fn": "mod", "floordiv_fn": "floordiv"}
HELPER_VOCAB = Vocabulary({k: w for k, w in HALF_OPS.items() if k not in ALIASES}, types=(FLOAT16,),
                          ranges={FLOAT16: Interval(-2.0, 2.0)}, limit=LIMIT, p_leaf=0.2)
HELPER_NAMES = ("wkf_kernel_hf", "wkf_kernel_g16", "wkf_kernel_mix", "wkf_kernel_op", "wkf_kernel_blend")
VEC_NAMES = ("vp", "vel", "dir3", "nrm", "pos3", "uvw")
I = n.Var("i", INT32)


def tolerance(spec: KernelSpec) -> Tolerance:
    return Tolerance(1e-2, 2e-3)


class HalfBuilder(ExprBuilder):
    """The IR's expression builder with conversions between half and float32 sub-expressions (chance
    ``p_conv`` at each operation) and float32 operations limited to :data:`FLOAT32_OPS`."""

    def __init__(self, rng: np.random.Generator, vocab: Vocabulary, leaves: list[Leaf], p_conv: float) -> None:
        super().__init__(rng, vocab, leaves)
        self.p_conv = p_conv
        self.candidates[FLOAT32] = [c for c in self.candidates.get(FLOAT32, []) if c[0] in FLOAT32_OPS]

    def expr(self, ty: Scalar, depth: int, top: bool = False) -> Leaf:
        if ty in (FLOAT16, FLOAT32) and depth > 0 and self.rng.random() < self.p_conv:
            made = self.converted(ty, depth - 1)
            if made is not None:
                return made
        return super().expr(ty, depth, top)

    def converted(self, ty: Scalar, depth: int) -> Leaf | None:
        """``wp.float16(e)`` of a float32 ``e`` or ``wp.float32(e)`` of a half ``e``."""
        e, iv = self.expr(FLOAT32 if ty == FLOAT16 else FLOAT16, depth)
        if isinstance(e, n.Cast) and e.value.type == ty:         # wp.float16(wp.float32(h)) is h
            return None
        return self.checked(n.Cast(e, ty, python=ty == FLOAT32 and self.rng.random() < 0.5), [iv])

    def repair(self, name: str, parts: list[Leaf]) -> list[Leaf]:
        """The IR builder's repairs (under the original's name for another spelling); ``smoothstep`` gets
        constant edges inside its argument's range (sometimes a decreasing ramp), ``degrees`` a small argument."""
        if name == "smoothstep" and not isinstance(parts[2][0], n.Const):
            x = parts[2][1]
            lo, hi = (_nice(x.lo + f * (x.hi - x.lo)) for f in (0.2, 0.8))
            if hi - lo < 0.1:
                lo, hi = lo - 0.5, lo + 0.5
            if self.rng.random() < 0.2:
                lo, hi = hi, lo
            return [(n.Const(lo, FLOAT16), Interval.point(lo)), (n.Const(hi, FLOAT16), Interval.point(hi)), parts[2]]
        if name == "degrees":
            return [self.tame(parts[0], 0.8)]
        return super().repair(ALIASES.get(name, name), parts)

    def checked(self, e: n.Expr, ivs: list[Interval]) -> Leaf | None:
        """Also refuses an operation whose exact result is one value (``sign(s)`` of a positive ``s``): the
        half rounding margin of the widened interval would hide that it is a constant."""
        made = super().checked(e, ivs)
        if made is not None and isinstance(e, n.Call):
            row = OPS[e.op]
            if row.interval(Ctx(tuple(a.type for a in e.args), e.type), *ivs).is_point:
                return None
        return made

    def tame(self, made: Leaf, limit: float) -> Leaf:
        """``made`` scaled by a power of two (exact in half) when its magnitude passes ``limit``."""
        e, iv = made
        if iv.mag <= limit:
            return made
        c = 2.0 ** math.floor(math.log2(limit / iv.mag))
        scaled = self.checked(n.Call("mul", (e, n.Const(c, e.type))), [iv, Interval.point(c)])
        return scaled if scaled is not None else made


def _nice(x: float) -> float:
    """``x`` with two significant digits (a short literal)."""
    return float(f"{x:.2g}")


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


class Draw:
    """One kernel being drawn: its parameters, body, input ranges and the builder over its leaves."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.names = Names(rng, named=True)
        self.params: list[n.Param] = []
        self.ranges: dict[str, Interval] = {}
        self.body: list[n.Stmt] = []
        self.blocks: list[str] = []
        self.vectors: list[Leaf] = []
        self.int_python = rng.random() < 0.5          # int outputs written int(h) rather than wp.int32(h)
        self.gen = HalfBuilder(rng, Vocabulary(HALF_OPS, types=(FLOAT16, FLOAT32), ranges={}, limit=LIMIT,
                                               p_leaf=0.2, p_call=0.3),
                               [], p_conv=float(_pick(rng, (0.05, 0.12, 0.2))))

    def array(self, pool, ty, iv: Interval, k: int) -> str:
        name = self.names.fresh(pool, f"in{k}", k)
        self.params.append(n.Param(name, Array(ty)))
        self.ranges[name] = iv
        return name

    def inputs(self) -> list[tuple[str, Interval]]:
        """1-3 half arrays (loaded into locals, or read inline), sometimes a float32 array; a scalar parameter."""
        rng, gen = self.rng, self.gen
        halves = []
        inline = rng.random() < 0.3
        n_half = int(rng.integers(1, 4))
        for k in range(n_half + int(rng.random() < 0.3)):
            iv = _pick(rng, INPUT_RANGES)
            ty = FLOAT16 if k < n_half else FLOAT32
            arr = self.array(ARRAY_NAMES, ty, iv, k)
            load = n.Load(arr, Array(ty), (I,))
            if ty == FLOAT16:
                halves.append((arr, iv))
                if inline:
                    gen.leaves.append((load, iv))
                    continue
                local = self.names.fresh((f"{arr}_h", f"h{arr}", f"{arr}16", f"x{arr}"), f"x{k}", k)
                self.body.append(n.Let(local, load))
                gen.leaves.append((n.Var(local, ty), iv))
            elif rng.random() < 0.6:                        # float32 input rounded to half in the kernel
                local = self.names.fresh((f"{arr}_h", f"h{arr}", f"{arr}16"), f"x{k}", k)
                made = gen.checked(n.Cast(load, FLOAT16), [iv])
                self.body.append(n.Let(local, made[0]))
                gen.leaves.append((n.Var(local, FLOAT16), made[1]))
            else:
                local = self.names.fresh((f"{arr}_f", f"f{arr}", f"{arr}32"), f"x{k}", k)
                self.body.append(n.Let(local, load))
                gen.leaves.append((n.Var(local, FLOAT32), iv))
        if rng.random() < 0.35:
            ty = FLOAT16 if rng.random() < 0.75 else FLOAT32
            name = self.names.fresh(SCALAR_NAMES, "s0", 0)
            self.params.append(n.Param(name, ty))
            self.ranges[name] = SCALAR_RANGE
            gen.leaves.append((n.Var(name, ty), SCALAR_RANGE))
        return halves

    def vector_block(self) -> None:
        """A half-vector input array and a second vector (another input, or built from half leaves); their
        lengths, dot products and components become half leaves."""
        rng, gen = self.rng, self.gen
        size = int(_pick(rng, VEC_SIZES))
        vt = Vector(FLOAT16, size)
        iv = _pick(rng, VEC_RANGES)
        arr = self.array(VEC_NAMES, vt, iv, 0)
        first = self.names.fresh((f"{arr}_v",), "v0", 0)
        self.body.append(n.Let(first, n.Load(arr, Array(vt), (I,))))
        self.vectors.append((n.Var(first, vt), iv))
        if rng.random() < 0.5:
            other = self.array(VEC_NAMES, vt, OTHER_VEC_RANGE, 1)
            second = self.names.fresh((f"{other}_v",), "v1", 1)
            self.body.append(n.Let(second, n.Load(other, Array(vt), (I,))))
            self.vectors.append((n.Var(second, vt), OTHER_VEC_RANGE))
        else:
            halves = [x for x in gen.leaves if x[0].type == FLOAT16]
            comps = [_pick(rng, halves) if rng.random() < 0.75 else gen.constant(FLOAT16) for _ in range(size)]
            if all(isinstance(e, n.Const) for e, _ in comps):
                comps[0] = _pick(rng, halves)
            second = self.names.fresh(("w3", "axis", "ref3", "dirv"), "v1", 1)
            built = n.Call(f"vec{size}", tuple(e for e, _ in comps))
            self.body.append(n.Let(second, built))
            self.vectors.append((n.Var(second, vt), Interval.hull([x for _, c in comps for x in (c.lo, c.hi)])))
        (a, ia), (b, ib) = self.vectors
        options = [("length", a), ("dot", a, b), ("comp", a), ("length_sq", b), ("length", b), ("comp", b)]
        chosen = [options[int(rng.integers(2))]] + [options[int(k)] for k in
                                                     rng.choice(len(options), size=int(rng.integers(1, 3)),
                                                                replace=False)]
        ivs = {a: ia, b: ib}
        for op, *args in chosen:
            if op == "comp":
                made = (n.Component(args[0], int(rng.integers(size))), ivs[args[0]])
            else:
                made = gen.checked(n.Call(op, tuple(args)), [ivs[x] for x in args])
            if made is not None and made[0] not in [e for e, _ in gen.leaves]:
                gen.leaves.append(made)
        self.blocks.append(vt.name)

    def helper(self) -> None:
        h = random_helper(self.rng, HELPER_VOCAB, FLOAT16, _pick(self.rng, HELPER_NAMES))
        self.gen.helpers.append(h)

    def lets(self) -> None:
        rng, gen = self.rng, self.gen
        for k in range(int(rng.integers(0, 4))):
            ty = FLOAT16 if rng.random() < 0.8 else FLOAT32
            e, iv = gen.compound(ty, int(rng.integers(1, 4)))
            local = self.names.fresh(LOCAL_NAMES, f"t{k}", k, suffix=True)
            self.body.append(n.Let(local, e))
            gen.leaves.append((n.Var(local, ty), iv))

    def loop_block(self, halves: list[tuple[str, Interval]]) -> None:
        """A half-precision accumulation over a stencil: ``acc = acc (op) term(a[(i + j) % N], j)``."""
        rng, gen = self.rng, self.gen
        src, src_iv = _pick(rng, halves)
        trips = int(rng.integers(2, 5))
        acc = self.names.fresh(("acc", "total", "run", "sm", "accum"), "acc", 0)
        j = self.names.fresh(("j", "k", "m"), "j", 0)
        jv = n.Var(j, INT32)
        shifted = n.Call("add", (I, jv)) if rng.random() < 0.5 else \
            n.Call("add", (n.Call("mul", (I, n.Const(trips, INT32))), jv))
        neighbour = self.names.fresh((f"{src}_n", f"{src}_nb"), "nb", 0)
        load = n.Load(src, Array(FLOAT16), (n.Call("mod", (shifted, n.Const(N, INT32))),))
        saved = list(gen.leaves)
        gen.leaves.append((n.Var(neighbour, FLOAT16), src_iv))
        if rng.random() < 0.4:
            gen.leaves.append((n.Cast(jv, FLOAT16), Interval(0.0, trips - 1.0)))
        term = gen.compound(FLOAT16, int(rng.integers(1, 3)))
        if analysis.reads([term[0]], neighbour) == 0:
            term = gen.checked(n.Call(_pick(rng, ("add", "mul", "sub")), (term[0], n.Var(neighbour, FLOAT16))),
                               [term[1], src_iv]) or (n.Var(neighbour, FLOAT16), src_iv)
        term = gen.tame(term, LIMIT / (2 * trips))
        gen.leaves = saved
        init = float(_pick(rng, (0.0, 0.0, 1.0, 0.5)))
        accv = n.Var(acc, FLOAT16)
        kind = _pick(rng, ("add", "add", "max", "decay"))
        if kind == "add":
            update = n.Assign(acc, n.Call("add", (accv, term[0])), augmented=rng.random() < 0.5)
        elif kind == "max":
            update = n.Assign(acc, n.Call("max", (accv, term[0])))
        else:
            update = n.Assign(acc, n.Call("add", (n.Call("mul", (accv, n.Const(0.5, FLOAT16))), term[0])))
        self.body += [n.Let(acc, n.Const(init, FLOAT16)),
                      n.For(j, n.Const(0, INT32), n.Const(trips, INT32), (n.Let(neighbour, load), update))]
        facts = intervals.analyze(self.kernel([]), self.ranges, (N,))
        gen.leaves.append((accv, facts.env[acc]))
        self.blocks.append("loop")

    def if_block(self) -> None:
        """``v = e0; if c: v = e1 [else: v = e2]`` over half values."""
        rng, gen = self.rng, self.gen
        name = self.names.fresh(("sel", "branch", "pick_v", "yv"), "v0", 0)
        e0, iv0 = gen.expr(FLOAT16, 2)
        cond, _ = gen.condition(2)
        e1, iv1 = gen.expr(FLOAT16, int(rng.integers(1, 3)))
        orelse: tuple[n.Stmt, ...] = ()
        iv = iv0.join(iv1)
        if rng.random() < 0.7:
            e2, iv2 = gen.expr(FLOAT16, int(rng.integers(1, 3)))
            orelse, iv = (n.Assign(name, e2),), iv1.join(iv2)
        self.body += [n.Let(name, e0), n.If(cond, (n.Assign(name, e1),), orelse)]
        gen.leaves.append((n.Var(name, FLOAT16), iv))
        self.blocks.append("if")

    def outputs(self) -> tuple[list[list], tuple[n.Param, n.Expr] | None]:
        """1-2 scalar outputs (half, float32 or int32 of a half value) and, with vectors, a vector output."""
        rng, gen = self.rng, self.gen
        outs = []
        for k in range(int(rng.integers(1, 3))):
            roll = rng.random()
            kind = "h" if roll < 0.65 else "f" if roll < 0.92 else "i"
            value = gen.compound(FLOAT32 if kind == "f" else FLOAT16, int(rng.integers(2, 5)))
            outs.append([self.names.fresh(OUT_NAMES, f"out{k}", k), kind, value])
        vout = None
        if self.vectors and rng.random() < 0.55:
            made = self.vector_expr()
            if made is not None:
                name = self.names.fresh(("vout", "vel_out", "dir_out", "vres"), "vout", 0)
                vout = (n.Param(name, Array(made[0].type)), made[0])
        return outs, vout

    def vector_expr(self) -> Leaf | None:
        """A small half-vector expression: sums, differences, cross products, normalisation, scaling."""
        rng, gen = self.rng, self.gen
        base = _pick(rng, self.vectors)
        (a, ia), (b, ib) = self.vectors
        roll = rng.random()
        made = None
        if roll < 0.3 and a.type.n == 3:
            made = gen.checked(n.Call("cross", (a, b)), [ia, ib])
        elif roll < 0.45:
            made = gen.checked(n.Call("normalize", (base[0],)), [base[1]])
        elif roll < 0.7:
            made = gen.checked(n.Call(_pick(rng, ("add", "sub")), (a, b)), [ia, ib])
        made = made or base
        s = gen.tame(gen.compound(FLOAT16, int(rng.integers(1, 3))), 4.0)
        args = (made[0], s[0]) if rng.random() < 0.5 else (s[0], made[0])
        scaled = gen.checked(n.Call("mul", args), [made[1], s[1]] if args[0] is made[0] else [s[1], made[1]])
        if scaled is not None and (made is base or rng.random() < 0.6):
            made = scaled
        if rng.random() < 0.4:
            other = _pick(rng, self.vectors)
            made = gen.checked(n.Call(_pick(rng, ("add", "sub")), (made[0], other[0])), [made[1], other[1]]) or made
        return None if made is base else made

    def kernel(self, stores: list[n.Stmt]) -> n.Kernel:
        outs = [n.Param(s.array, s.array_type) for s in stores]
        funcs = tuple(h.func for h in self.gen.helpers)
        return n.Kernel("wkf_kernel", tuple(self.params + outs), tuple(self.body + stores), funcs=funcs)

    def fold_missing(self, outs: list[list]) -> None:
        """Fold every input, local and scalar that reaches no output into the first half/float32 output."""
        gen = self.gen
        slot = next((o for o in outs if o[1] != "i"), outs[0])
        kernel = self.kernel(self._stores(outs))
        reached = analysis.reaching(kernel)
        terms: list[Leaf] = []
        for s in self.body:
            if isinstance(s, n.Let) and s.name not in reached and isinstance(s.value, (n.Load, n.Cast, n.Call)):
                var = n.Var(s.name, s.value.type)
                leaf = next(((e, iv) for e, iv in gen.leaves + self.vectors if e == var), None)
                if leaf is not None and isinstance(var.type, Vector):
                    leaf = (n.Component(var, 0), leaf[1])
                if leaf is not None:
                    terms.append(leaf)
        for p in self.params:
            if p.name not in reached and not any(isinstance(s, n.Let) and p.name in analysis.uses(s.value)
                                                 for s in self.body):
                terms += [(e, iv) for e, iv in gen.leaves if p.name in analysis.uses(e)][:1]
        for leaf in terms:
            e, iv = slot[2]
            term, tiv = leaf
            if term.type != e.type:
                term, tiv = gen.checked(n.Cast(term, e.type), [tiv]) or (n.Cast(term, e.type), tiv)
            made = gen.checked(n.Call(_pick(self.rng, ("add", "sub", "mul")), (e, term)), [iv, tiv])
            slot[2] = made or (n.Call("add", (e, term)), Interval(iv.lo + tiv.lo, iv.hi + tiv.hi))

    def _stores(self, outs: list[list]) -> list[n.Stmt]:
        stores = []
        for name, kind, (e, iv) in outs:
            if kind == "i":
                if iv.mag < 8.0:
                    e = n.Call("mul", (e, n.Const(2.0 ** math.ceil(math.log2(12.0 / max(iv.mag, 0.1))), FLOAT16)))
                stores.append(n.Store(name, Array(INT32), (I,), n.Cast(e, INT32, python=self.int_python)))
            else:
                stores.append(n.Store(name, Array(e.type), (I,), e))
        return stores


def draw(rng: np.random.Generator) -> Program:
    def build():
        d = Draw(rng)
        halves = d.inputs()
        if rng.random() < 0.3:
            d.vector_block()
        if rng.random() < 0.25:
            d.helper()
        d.lets()
        if rng.random() < 0.3:
            d.loop_block(halves)
        if rng.random() < 0.2:
            d.if_block()
        outs, vout = d.outputs()
        d.fold_missing(outs)
        stores = d._stores(outs)
        if vout is not None:
            stores.append(n.Store(vout[0].name, vout[0].type, (I,), vout[1]))
        kernel = analysis.remove_dead(analysis.fold_unused(d.kernel(stores)))
        return kernel, d.ranges, d.blocks

    with np.errstate(all="ignore"):
        kernel, ranges, blocks = first_clean(build, N)
    arrays = [p for p in kernel.params if isinstance(p.type, Array)]
    info = {"float32_inputs": sum(p.type.dtype == FLOAT32 and p.name in ranges for p in arrays),
            "helper": bool(kernel.funcs), "blocks": sorted(blocks),
            "output_dtypes": sorted({p.type.dtype.name for p in arrays if p.name not in ranges})}
    return program(kernel, ranges, (N,), {**features(kernel), **info}, differentiable=False)


FAMILY = ir_family("half", __doc__, draw, version=2, tol=tolerance,
                   covers=("float16", "wp.vec2h/vec3h/vec4h", "half rounding", "float16/float32 conversions",
                           "float16 to int32 casts", "math builtins in half", "half accumulation loops",
                           "wp.func on halves", "if/else on halves"))
