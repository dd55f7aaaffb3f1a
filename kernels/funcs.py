"""funcs: @wp.func helpers calling each other: overloads, generic (Any) helpers, tuple and vector returns.

Kernels in float32, float64 or int32 (C semantics) call 2-5 helpers. Helper bodies hold local bindings,
conditional updates, early returns under a condition, constant-trip accumulation loops and calls of earlier
helpers (a DAG: Warp has no recursion). Variants: overload sets (one name; another arity, int32 parameters or
``wp.vec3`` parameters), generic helpers with ``typing.Any`` parameters instantiated with several types
(float32, float64, int32, vec3), helpers returning tuples that callers unpack, helpers taking or returning
``wp.vec3``, helpers made by a Python factory function that captures constants (closures), and ``wp.static``
expressions over module constants. Calls appear as statements and inside expressions.

Helpers are drawn for the intervals of the arguments of their first call (later calls clamp into them). The
program is IR (``kernels/ir``): the printer writes it, the interpreter is the reference, the interval engine
keeps every operation in its domain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import copy
import math

import numpy as np

from harness.family import Program
from kernels.ir import analysis
from kernels.ir import nodes as n
from kernels.ir.family import features, ir_family, program
from kernels.ir.flow import unrolled
from kernels.ir.gen import ARRAY_NAMES, OUT_NAMES, ExprBuilder, Helper, Leaf, Vocabulary, first_clean
from kernels.ir.gen import _if_block, _loop
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, FLOAT64, INT32, Array, Scalar, TupleOf, Vector

N = 64
VEC3 = Vector(FLOAT32, 3)
TYPES = (FLOAT32, FLOAT32, FLOAT32, FLOAT64, INT32)
FLOAT_RANGES = (Interval(-2.0, 2.0), Interval(-1.0, 3.0), Interval(0.5, 4.0))
OPS = {"add": 3, "sub": 3, "mul": 3, "div": 1.2, "min": 1, "max": 1, "abs": 0.7, "neg": 0.5, "where": 0.4}
INT_OPS = {**OPS, "mod": 0.8, "floordiv": 0.8}
HELPER_WORDS = ("smooth", "blend", "energy", "poly", "ramp", "mix", "term", "shape", "weight", "damp", "lerp2",
                "bump", "kernel_fn", "flux", "pot", "score", "gate", "soft", "fold", "spread", "response",
                "falloff", "trans", "combine", "accum", "evaluate", "step_fn")
PARAM_NAMES = ("x", "y", "z", "a", "b", "c", "t", "s", "p", "q", "h", "r")
VEC_PARAMS = ("v", "w", "d", "nrm", "u", "e")
CONST_NAMES = ("GAIN", "SCALE", "OFFSET", "BIAS", "RATE", "WEIGHT", "SHIFT", "LIMIT")
MAX_DEPTH = 2                    # helper nesting (kernel -> helper -> helper)


@dataclass
class _Ctx:
    """What one program's generation has drawn so far."""

    rng: np.random.Generator
    ty: Scalar
    vocab: Vocabulary
    helpers: list[Helper]
    names: set[str]
    feats: dict[str, int]

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def name(self) -> str:
        for _ in range(50):
            word = f"wkf_kernel_{self.pick(HELPER_WORDS)}"
            if word not in self.names:
                self.names.add(word)
                return word
        word = f"wkf_kernel_h{len(self.names)}"
        self.names.add(word)
        return word


_VOCABS: dict[Scalar, Vocabulary] = {}
_PROTOS: dict[int, ExprBuilder] = {}


def _vocab(ty: Scalar) -> Vocabulary:
    if ty not in _VOCABS:
        iv = Interval(-20.0, 20.0) if ty.is_int else Interval(-2.0, 2.0)
        _VOCABS[ty] = Vocabulary(INT_OPS if ty.is_int else OPS, types=(ty,), ranges={ty: iv},
                                 limit=1e4 if ty.is_int else 1e3, p_leaf=0.3, p_call=0.25)
    return _VOCABS[ty]


def _builder(rng: np.random.Generator, vocab: Vocabulary, leaves: list[Leaf]) -> ExprBuilder:
    """An :class:`ExprBuilder` over ``leaves`` (its table of candidate operations built once per vocabulary)."""
    proto = _PROTOS.get(id(vocab))
    if proto is None:
        proto = _PROTOS[id(vocab)] = ExprBuilder(rng, vocab, [])
    made = copy.copy(proto)
    made.rng, made.leaves, made.helpers = rng, list(leaves), []
    return made


def _fit(gen: ExprBuilder, part: Leaf, dom: Interval) -> Leaf:
    """``part`` clamped into ``dom`` when its interval may leave it."""
    e, iv = part
    if dom.contains(iv):
        return part
    if e.type.is_int:
        lo, hi = math.ceil(dom.lo), math.floor(dom.hi)
    else:                                     # short literals inside the domain
        lo, hi = math.ceil(dom.lo * 100) / 100, math.floor(dom.hi * 100) / 100
        if lo >= hi:
            lo, hi = dom.lo, dom.hi
    return n.Call("clamp", (e, n.Const(lo, e.type), n.Const(hi, e.type))), Interval(
        min(max(iv.lo, lo), hi), min(max(iv.hi, lo), hi))


def _augment(body) -> tuple[n.Stmt, ...]:
    """``acc = acc + e`` written ``acc += e`` (also ``-=``, ``*=``), in nested blocks too."""
    out = []
    for s in body:
        if isinstance(s, n.Assign) and not s.augmented and isinstance(s.value, n.Call) and \
                s.value.op in n.AUGMENTED and s.value.args[0] == n.Var(s.name, s.value.type):
            s = n.Assign(s.name, s.value, augmented=True)
        elif isinstance(s, n.If):
            s = n.If(s.cond, _augment(s.then), _augment(s.orelse))
        elif isinstance(s, n.For):
            s = replace(s, body=_augment(s.body))
        out.append(s)
    return tuple(out)


def _fold_dead(gen: ExprBuilder, body: list[n.Stmt], ret: Leaf, ty: Scalar) -> tuple[list[n.Stmt], Leaf]:
    """``ret`` made to read (once) each helper local whose value would otherwise be computed for nothing; then
    bindings that are still dead (overwritten on every path) are dropped."""
    folded: set[str] = set()
    for _ in range(4):
        probe = n.Kernel("helper", (), (*body, n.Return(ret[0])))
        dead = [x for x in dict.fromkeys(analysis.dead_locals(probe)) if x not in folded]
        if not dead:
            break
        for name in dead:
            var = n.Var(name, ty)
            iv = next((v for e, v in gen.leaves if e == var), Interval(-1e3, 1e3))
            ret = gen.checked(n.Call(gen.pick(["add", "sub"]), (ret[0], var)), [ret[1], iv]) or \
                (n.Call("add", (ret[0], var)), Interval(ret[1].lo + iv.lo, ret[1].hi + iv.hi))
        folded |= set(dead)
    live = analysis.remove_dead(n.Kernel("helper", (), (*body, n.Return(ret[0])))).body
    return list(live[:-1]), ret


def _reads_all(gen: ExprBuilder, ret: Leaf, body: list[n.Stmt], names: list[tuple[str, Interval]],
               ty: Scalar) -> Leaf:
    """``ret`` made to read every name of ``names`` that the body and ``ret`` do not (``ret + x``)."""
    for name, iv in names:
        exprs = [x for s in analysis.statements(tuple(body)) for x in n.stmt_exprs(s)] + [ret[0]]
        if analysis.reads(exprs, name) == 0:
            var = n.Var(name, ty)
            ret = gen.checked(n.Call(gen.pick(["add", "sub"]), (ret[0], var)), [ret[1], iv]) or \
                (n.Call("add", (ret[0], var)), Interval(ret[1].lo + iv.lo, ret[1].hi + iv.hi))
    return ret


# ---------------------------------------------------------------------------------------------------------
# Helpers


def scalar_helper(c: _Ctx, name: str, types: tuple[Scalar, ...], ivs: tuple[Interval, ...], depth: int,
                  results: int = 1) -> Helper:
    """A helper over scalar parameters returning ``c.ty`` (or a tuple of ``results`` values): locals, maybe a
    call of an earlier helper, an accumulation loop, a conditional update, an early return."""
    rng, ty = c.rng, c.ty
    pnames = [str(x) for x in rng.permutation(PARAM_NAMES)[:len(types)]]
    leaves: list[Leaf] = []
    for p, t, iv in zip(pnames, types, ivs):
        iv = iv if iv.hi - iv.lo > 1e-6 else Interval(iv.lo - 1.0, iv.hi + 1.0)
        leaves.append((n.Var(p, t) if t == ty else n.Cast(n.Var(p, t), ty), iv))
    gen = _builder(rng, c.vocab, leaves)
    gen.helpers = [h for h in c.helpers if h.func.ret == ty and not h.func.generic and depth < MAX_DEPTH
                   and all(p.type == ty for p in h.func.params)]
    body: list[n.Stmt] = []
    for k in range(int(rng.integers(0, 3))):
        e, iv = gen.compound(ty, int(rng.integers(1, 3)))
        local = f"{c.pick(['t', 'm', 'g', 'f', 'val', 'part'])}{k}"
        body.append(n.Let(local, e))
        gen.leaves.append((n.Var(local, ty), iv))
    if rng.random() < 0.3:
        c.feats["loop"] += 1
        body += _loop(gen, ty, c.pick(["acc", "total", "run"]), c.pick(["j", "k", "jj"]), rng)
    if rng.random() < 0.3:
        c.feats["if"] += 1
        body += _if_block(gen, ty, c.pick(["v", "sel", "w"]))
    if results == 1 and rng.random() < 0.25:
        c.feats["early_return"] += 1
        cond, _ = gen.condition(2)
        early = gen.compound(ty, int(rng.integers(1, 3)))
        body.append(n.If(cond, (n.Return(early[0]),)))
    else:
        early = None
    rets = [gen.compound(ty, int(rng.integers(1, 3))) for _ in range(results)]
    locals_ = [(s.name, iv) for s in body if isinstance(s, n.Let)
               for e, iv in gen.leaves if e == n.Var(s.name, ty)]
    params = [(p, iv) for p, t, iv in zip(pnames, types, ivs) if t == ty]
    body, rets[-1] = _fold_dead(gen, body, rets[-1], ty)
    rets[-1] = _reads_all(gen, rets[-1], body, params + locals_, ty)
    for p, t, iv in zip(pnames, types, ivs):          # int parameters reach the result through a cast
        exprs = [x for s in analysis.statements(tuple(body)) for x in n.stmt_exprs(s)] + [r[0] for r in rets]
        if t != ty and analysis.reads(exprs, p) == 0:
            rets[-1] = (n.Call("add", (rets[-1][0], n.Cast(n.Var(p, t), ty))),
                        Interval(rets[-1][1].lo + iv.lo, rets[-1][1].hi + iv.hi))
    if results == 1:
        value, ret_type, ret_iv = rets[0][0], ty, rets[0][1]
        if early is not None:
            ret_iv = ret_iv.join(early[1])
    else:
        c.feats["tuple"] += 1
        value = n.MakeTuple(tuple(r[0] for r in rets))
        ret_type, ret_iv = TupleOf((ty,) * results), tuple(r[1] for r in rets)
    func = n.Func(name, tuple(n.Param(p, t) for p, t in zip(pnames, types)), ret_type,
                  _augment((*body, n.Return(value))))
    if any(isinstance(x, n.FuncCall) for x in analysis.expressions(func.body)):
        c.feats["nested_calls"] += 1
    return Helper(func, tuple(ivs), ret_iv)


def vec_helper(c: _Ctx, name: str, types: tuple, ivs: tuple[Interval, ...], returns_vec: bool) -> Helper:
    """float32 helper over ``wp.vec3`` (and float) parameters returning a float or a ``wp.vec3``."""
    rng = c.rng
    c.feats["vec"] += 1
    vnames = [str(x) for x in rng.permutation(VEC_PARAMS)]
    snames = [str(x) for x in rng.permutation(PARAM_NAMES)]
    params = [n.Param(vnames[k] if t == VEC3 else snames[k], t) for k, t in enumerate(types)]
    vecs = [(n.Var(p.name, VEC3), iv) for p, iv in zip(params, ivs) if p.type == VEC3]
    leaves: list[Leaf] = [(n.Var(p.name, FLOAT32), iv) for p, iv in zip(params, ivs) if p.type == FLOAT32]
    for v, iv in vecs:
        k = int(rng.integers(3))
        leaves.append((n.Component(v, k), iv))
        roll = rng.random()
        others = [w for w in vecs if w[0] != v]
        if others and roll < 0.5:
            w, wiv = c.pick(others)
            leaves.append((n.Call("dot", (v, w)), Interval(-3 * iv.mag * wiv.mag, 3 * iv.mag * wiv.mag)))
        elif roll < 0.75:
            leaves.append((n.Call("length_sq", (v,)), Interval(0.0, 3 * iv.mag ** 2)))
        else:
            leaves.append((n.Call("length", (v,)), Interval(0.0, 1.8 * iv.mag)))
    gen = _builder(rng, _vocab(FLOAT32), leaves)
    body: list[n.Stmt] = []
    for k in range(int(rng.integers(0, 2))):
        e, iv = gen.compound(FLOAT32, int(rng.integers(1, 3)))
        body.append(n.Let(f"{c.pick(['t', 'm', 'g'])}{k}", e))
        gen.leaves.append((n.Var(body[-1].name, FLOAT32), iv))
    locals_ = [(s.name, iv) for s in body for e, iv in gen.leaves if e == n.Var(s.name, FLOAT32)]
    if returns_vec:
        comps = [gen.compound(FLOAT32, int(rng.integers(1, 3))) for _ in range(3)]
        comps[0] = _reads_all(gen, comps[0], body + [n.Return(comps[1][0]), n.Return(comps[2][0])],
                              [(p.name, iv) for p, iv in zip(params, ivs) if p.type == FLOAT32] + locals_, FLOAT32)
        value: n.Expr = n.Call("vec3", tuple(x[0] for x in comps))
        mag = max(x[1].mag for x in comps)
        unread = [v for v, _ in vecs if analysis.reads([value] + [x for s in body for x in n.stmt_exprs(s)],
                                                        v.name) == 0]
        if vecs and (unread or rng.random() < 0.5):
            v, viv = next(((w, i) for w, i in vecs if w in unread), c.pick(vecs))
            if rng.random() < 0.5:
                value, mag = n.Call("cross", (v, value)), 2 * viv.mag * mag
            else:
                value, mag = n.Call("add", (n.Call("mul", (v, comps[0][0])), value)), viv.mag * comps[0][1].mag + mag
        for v, viv in vecs:
            if analysis.reads([value] + [x for s in body for x in n.stmt_exprs(s)], v.name) == 0:
                value, mag = n.Call("add", (value, v)), mag + viv.mag
        ret, ret_iv = VEC3, Interval(-mag, mag)
    else:
        e, iv = gen.compound(FLOAT32, int(rng.integers(1, 4)))
        all_names = [(p.name, i) for p, i in zip(params, ivs) if p.type == FLOAT32] + locals_
        e, iv = _reads_all(gen, (e, iv), body, all_names, FLOAT32)
        for v, viv in vecs:
            if analysis.reads([e] + [x for s in body for x in n.stmt_exprs(s)], v.name) == 0:
                e, iv = n.Call("add", (e, n.Component(v, 0))), Interval(iv.lo - viv.mag, iv.hi + viv.mag)
        value, ret, ret_iv = e, FLOAT32, iv
    func = n.Func(name, tuple(params), ret, (*body, n.Return(value)))
    return Helper(func, tuple(ivs), ret_iv)


GEN_OPS = ("add", "sub", "neg", "min", "max", "abs", "scale")


def generic_helper(c: _Ctx, name: str, instance: Scalar | Vector, scaled: bool, shape: tuple) -> Helper:
    """``def f(a: Any, b: Any[, s: Any])``: a tree over ``a``, ``b`` (type T) and ``s`` (T's component type)
    without literals, so one definition compiles for every T. ``shape`` is the drawn tree (the same for
    every instance of the name)."""
    scalar = instance.scalar if isinstance(instance, Vector) else instance
    env = {"a": n.Var("a", instance), "b": n.Var("b", instance), "s": n.Var("s", scalar)}

    def build(t) -> n.Expr:
        if t[0] == "p":
            return env[t[1]]
        if t[0] == "scale":
            return n.Call("mul", (build(t[1]), env["s"]))
        if t[0] in ("neg", "abs"):
            return n.Call(t[0], (build(t[1]),))
        return n.Call(t[0], (build(t[1]), build(t[2])))

    local, tree = shape
    body: list[n.Stmt] = []
    if local is not None:
        env[local[0]] = n.Var(local[0], instance)
        body.append(n.Let(local[0], build(local[1])))
    params = [n.Param("a", instance), n.Param("b", instance)] + ([n.Param("s", scalar)] if scaled else [])
    func = n.Func(name, tuple(params), instance, (*body, n.Return(build(tree))), generic=True)
    return Helper(func, (), Interval(0.0, 0.0))


def generic_shape(rng: np.random.Generator, scaled: bool) -> tuple:
    ops = GEN_OPS if scaled else GEN_OPS[:-1]

    def tree(depth: int):
        if depth == 0 or rng.random() < 0.25:
            return ("p", "a" if rng.random() < 0.5 else "b")
        op = ops[int(rng.integers(len(ops)))]
        if op in ("neg", "abs", "scale"):
            inner = tree(depth - 1)
            if op == "neg" and inner[0] == "neg" or op == "abs" and inner[0] in ("neg", "abs"):
                return inner
            return (op, inner)
        x, y = tree(depth - 1), tree(depth - 1)
        if x == y:
            y = ("p", "b" if x != ("p", "b") else "a")
        if x == y:
            return x
        return (op, x, y)

    local = None
    t = tree(int(rng.integers(2, 4)))
    if rng.random() < 0.4:
        local = ("m" if rng.random() < 0.5 else "d", t)
        t = (("add", "sub", "max", "min")[int(rng.integers(4))], ("p", local[0]), ("p", "b"))

    def uses(x) -> set:
        return {x[1]} if x[0] == "p" else set().union(*(uses(y) for y in x[1:]))

    used = uses(t) | (uses(local[1]) if local else set())
    for p in ("a", "b"):
        if p not in used:
            t = ("add", t, ("p", p))
    if scaled and "scale" not in repr((t, local)):
        t = ("scale", t)
    return local, t


def generic_bound(shape: tuple, a: float, b: float, s: float) -> float:
    """Magnitude bound of a generic helper's result given magnitude bounds of its arguments."""
    def bound(t, env):
        if t[0] == "p":
            return env[t[1]]
        x = bound(t[1], env)
        if t[0] in ("neg", "abs"):
            return x
        if t[0] == "scale":
            return x * env["s"]
        y = bound(t[2], env)
        return max(x, y) if t[0] in ("min", "max") else x + y

    local, tree = shape
    env = {"a": a, "b": b, "s": s}
    if local is not None:
        env[local[0]] = bound(local[1], env)
    return bound(tree, env)


def closure_helper(c: _Ctx, name: str, iv: Interval) -> Helper:
    """``def make_<word>(k: float): @wp.func def <word>(x: float) -> float: return ...`` and the module's
    ``<name> = make_<word>(c)``: the helper reads the captured ``k`` (directly or through ``wp.static``)."""
    rng, ty = c.rng, c.ty
    c.feats["closure"] += 1
    word = name[len("wkf_kernel_"):]
    value = int(rng.integers(2, 6)) if ty.is_int else float(c.pick([0.25, 0.5, 1.5, 2.0, 0.75, 3.0]))
    cap = c.pick(["k", "scale", "gain", "coef"])
    captured = n.Static(cap, n.Const(value, ty), bare=rng.random() < 0.5)
    x = n.Var("x", ty)
    gen = _builder(rng, c.vocab, [(x, iv), (captured, Interval.point(value))])
    e, e_iv = gen.compound(ty, int(rng.integers(1, 3)))
    for term, t_iv in ((x, iv), (captured, Interval.point(value))):
        if term not in analysis.subexprs(e) and not any(s == term for s in analysis.subexprs(e)):
            made = gen.checked(n.Call(c.pick(["add", "mul"]), (e, term)), [e_iv, t_iv])
            e, e_iv = made or (n.Call("add", (e, term)), Interval(e_iv.lo + t_iv.lo, e_iv.hi + t_iv.hi))
    factory = n.Factory(f"wkf_kernel_make_{word}", word, ((cap, n.Const(value, ty)),))
    func = n.Func(name, (n.Param("x", ty),), ty, (n.Return(e),), factory=factory)
    return Helper(func, (iv,), e_iv)


# ---------------------------------------------------------------------------------------------------------
# Kernel


class _Kernel:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.ty = TYPES[int(rng.integers(len(TYPES)))]
        self.c = _Ctx(rng, self.ty, _vocab(self.ty), [], set(),
                      {k: 0 for k in ("overloads", "generic", "tuple", "vec", "closure", "static", "early_return",
                                      "loop", "if", "nested_calls", "inline_calls")})
        self.body: list[n.Stmt] = []
        self.params: list[n.Param] = []
        self.ranges: dict[str, Interval] = {}
        self.ints: list[Leaf] = []            # int32 leaves of float kernels (lane index, int input)
        self.vecs: list[Leaf] = []
        self.k = 0

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def local(self, base: str) -> str:
        self.k += 1
        return f"{base}{self.k}"

    def inputs(self) -> ExprBuilder:
        rng, ty = self.rng, self.ty
        i = n.Var("i", INT32)
        names = [str(x) for x in rng.permutation(ARRAY_NAMES)]
        iv = Interval(-20.0, 20.0) if ty.is_int else self.pick(FLOAT_RANGES)
        inline = rng.random() < 0.35
        leaves: list[Leaf] = []
        for nm in names[:int(rng.integers(1, 4))]:
            self.params.append(n.Param(nm, Array(ty)))
            self.ranges[nm] = iv
            load = n.Load(nm, Array(ty), (i,))
            if inline:
                leaves.append((load, iv))
            else:
                local = f"{nm}_v" if rng.random() < 0.5 else f"x{nm}"
                self.body.append(n.Let(local, load))
                leaves.append((n.Var(local, ty), iv))
        if not ty.is_int:
            m = int(rng.integers(3, 9))
            lane = self.pick(["lane", "slot", "phase", "kk", "sub", "bucket"])
            self.body.append(n.Let(lane, n.Call("mod", (i, n.Const(m, INT32)))))
            self.ints.append((n.Var(lane, INT32), Interval(0.0, m - 1.0)))
        if ty == FLOAT32 and rng.random() < 0.6:
            nm = names[4]
            self.params.append(n.Param(nm, Array(VEC3)))
            self.ranges[nm] = Interval(-1.0, 1.0)
            self.body.append(n.Let(f"{nm}_v", n.Load(nm, Array(VEC3), (i,))))
            self.vecs.append((n.Var(f"{nm}_v", VEC3), Interval(-1.0, 1.0)))
        gen = _builder(rng, self.c.vocab, leaves)
        return gen

    def arg(self, gen: ExprBuilder, ty: Scalar, avoid: set) -> Leaf:
        """An argument of type ``ty``: an expression over the kernel's values (int32: an int leaf)."""
        if ty == INT32 and self.ty != INT32:
            e, iv = self.pick(self.ints)
            return e, iv
        fresh = [x for x in gen.leaves if x[0] not in avoid and x[0].type == ty]
        sub = _builder(self.rng, gen.vocab, fresh or gen.leaves)
        sub.helpers = gen.helpers
        part = sub.expr(ty, int(self.rng.integers(0, 3)))
        for _ in range(4):
            if not isinstance(part[0], n.Const) and part[0] not in avoid:
                break
            part = sub.expr(ty, 2, top=True)
        return part

    def args_for(self, gen: ExprBuilder, h: Helper) -> list[n.Expr]:
        """Arguments for another call of ``h``, clamped into the intervals its body was drawn for."""
        args: list[n.Expr] = []
        vecs = [v for v in self.vecs]
        for p, dom in zip(h.func.params, h.params):
            if p.type == VEC3:
                fits = [v for v in vecs if dom.contains(v[1]) and v[0] not in args]
                v = self.pick(fits) if fits else None
                if v is None:
                    scale = float(f"{0.9 * dom.mag / max(x[1].mag for x in vecs):.2g}")
                    v = (n.Call("mul", (vecs[0][0], n.Const(scale, FLOAT32))), dom)
                args.append(v[0])
                continue
            part = self.arg(gen, p.type, set(args))
            args.append(_fit(gen, part, dom)[0])
        return args

    def call(self, gen: ExprBuilder, h: Helper, args: list[n.Expr]) -> list[Leaf]:
        """Bind the results of ``h(args)``: ``t = h(...)`` or ``t0, t1 = h(...)``; vector results give scalar
        leaves (components, length)."""
        ty = self.ty
        call = n.FuncCall(h.func, tuple(args))
        ret = h.func.ret
        if isinstance(ret, TupleOf):
            names = tuple(self.local(self.pick(["t", "m", "g", "f", "val"])) for _ in ret.items)
            self.body.append(n.Unpack(names, call))
            out = [(n.Var(nm, ty), iv) for nm, iv in zip(names, h.ret)]
        elif ret == ty and self.rng.random() < 0.35:
            self.c.feats["inline_calls"] += 1            # the call inside a bigger expression
            other = gen.expr(ty, 1)
            made = gen.checked(n.Call(self.pick(["add", "sub", "mul"]), (call, other[0])), [h.ret, other[1]])
            name = self.local(self.pick(["t", "m", "g", "val"]))
            self.body.append(n.Let(name, made[0] if made else call))
            out = [(n.Var(name, ty), made[1] if made else h.ret)]
        else:
            name = self.local(self.pick(["t", "m", "g", "val", "res"]))
            self.body.append(n.Let(name, call))
            out = [(n.Var(name, ret), h.ret)]
        leaves = []
        for e, iv in out:
            if e.type == ty:
                leaves.append((e, iv))
            elif e.type == VEC3:
                self.vecs.append((e, iv))
                k = int(self.rng.integers(3))
                leaves.append((n.Component(e, k), iv))
                if self.rng.random() < 0.5:
                    leaves.append((n.Call("length", (e,)), Interval(0.0, 1.8 * iv.mag)))
            else:
                leaves.append((n.Cast(e, ty), iv))
        return leaves

    def draw_call(self, gen: ExprBuilder, depth: int) -> list[Leaf]:
        """One call of a new or existing helper, overload, generic, vector helper or closure."""
        rng, c, ty = self.rng, self.c, self.ty
        concrete = [h for h in c.helpers if not h.func.generic and h.func.factory is None
                    and all(isinstance(p.type, Scalar) for p in h.func.params)]
        options = {"new": 0.4, "generic": 0.2, "vec": 0.35 if ty == FLOAT32 and self.vecs else 0.0,
                   "closure": 0.12 if ty in (FLOAT32, INT32) else 0.0,
                   "overload": 0.3 if concrete else 0.0, "existing": 0.2 if c.helpers else 0.0}
        keys = [k for k, w in options.items() if w > 0]
        weights = np.array([options[k] for k in keys])
        choice = keys[int(rng.choice(len(keys), p=weights / weights.sum()))]
        if choice == "existing":
            h = self.pick(c.helpers)
            if h.func.generic:
                return self.generic_call(gen, h.func.name)
            return self.call(gen, h, self.args_for(gen, h))
        if choice == "generic":
            return self.generic_call(gen, None)
        if choice == "closure":
            x = self.arg(gen, ty, set())
            h = closure_helper(c, c.name(), x[1])
            c.helpers.append(h)
            return self.call(gen, h, [x[0]])
        if choice == "vec":
            return self.vec_call(gen, c.name())
        if choice == "overload":
            made = self.overload(gen, self.pick(concrete))
            if made is not None:
                return made
        types = [ty] * int(rng.integers(1, 4))
        if not ty.is_int and self.ints and rng.random() < 0.25:
            types[-1] = INT32
        results = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
        return self.new_scalar(gen, c.name(), tuple(types), results, depth)

    def new_scalar(self, gen: ExprBuilder, name: str, types: tuple, results: int, depth: int) -> list[Leaf]:
        args, avoid = [], set()
        for t in types:
            args.append(self.arg(gen, t, avoid))
            avoid |= {args[-1][0]}
        h = scalar_helper(self.c, name, types, tuple(a[1] for a in args), depth, results)
        self.c.helpers.append(h)
        return self.call(gen, h, [a[0] for a in args])

    def vec_call(self, gen: ExprBuilder, name: str, types: tuple | None = None, returns_vec: bool | None = None):
        rng = self.rng
        if types is None:
            nv = 1 if len(self.vecs) == 1 or rng.random() < 0.5 else 2
            types = (VEC3,) * nv + ((FLOAT32,) if rng.random() < 0.4 else ())
        args: list[Leaf] = []
        vecs = list(self.vecs)
        for t in types:
            if t == VEC3:
                v = vecs.pop(int(rng.integers(len(vecs)))) if vecs else self.pick(self.vecs)
                args.append(v)
            else:
                args.append(self.arg(gen, FLOAT32, {a[0] for a in args}))
        if len(set(a[0] for a in args)) < len(args):
            return []
        if returns_vec is None:
            returns_vec = rng.random() < 0.4
        h = vec_helper(self.c, name, types, tuple(a[1] for a in args), returns_vec)
        self.c.helpers.append(h)
        return self.call(gen, h, [a[0] for a in args])

    def overload(self, gen: ExprBuilder, base: Helper) -> list[Leaf] | None:
        """Another signature for an existing helper name: another arity, int32 or vec3 parameters."""
        ty, c = self.ty, self.c
        taken = {tuple(p.type for p in h.func.params) for h in c.helpers if h.func.name == base.func.name}
        if len(taken) >= 3 or isinstance(base.func.ret, TupleOf):
            return None
        options = [(ty,) * k for k in (1, 2, 3)]
        if self.ints and not ty.is_int:
            options += [(INT32,), (INT32, INT32)]
        if ty == FLOAT32 and self.vecs:
            options += [(VEC3,), (VEC3, FLOAT32)]
        options = [o for o in options if o not in taken]
        if not options:
            return None
        sig = self.pick(options)
        c.feats["overloads"] += 1
        if VEC3 in sig:
            return self.vec_call(gen, base.func.name, sig, returns_vec=False)
        if sig[0] == INT32 and ty != INT32:
            args = [self.pick(self.ints) for _ in sig]
            if len(args) == 2 and args[0] == args[1]:
                return None
            saved = c.ty, c.vocab
            c.ty, c.vocab = INT32, _vocab(INT32)
            try:
                h = scalar_helper(c, base.func.name, sig, tuple(a[1] for a in args), MAX_DEPTH)
            finally:
                c.ty, c.vocab = saved
            c.helpers.append(h)
            return self.call(gen, h, [a[0] for a in args])
        return self.new_scalar(gen, base.func.name, sig, 1, 1)

    def generic_call(self, gen: ExprBuilder, name: str | None) -> list[Leaf]:
        """A call of a generic helper instantiated with the kernel's type, float64 (from float32), int32 or
        vec3."""
        rng, c, ty = self.rng, self.c, self.ty
        if name is None:
            existing = next((h for h in c.helpers if h.func.generic), None)
            if existing is not None:
                name = existing.func.name
        if name is None:
            name = c.name()
            scaled = rng.random() < 0.6
            self.shapes[name] = (generic_shape(rng, scaled), scaled)
        shape, scaled = self.shapes[name]
        kinds = [ty]
        componentwise = not any(op in repr(shape) for op in ("'min'", "'max'", "'abs'"))
        if ty == FLOAT32:
            kinds += [FLOAT64] + ([VEC3] if self.vecs and componentwise else [])
        if not ty.is_int and len(self.ints) > 1:
            kinds.append(INT32)
        inst = self.pick(kinds)
        c.feats["generic"] += 1
        args: list[Leaf] = []
        if inst == VEC3:
            vecs = list(self.vecs)
            a = vecs.pop(int(rng.integers(len(vecs))))
            b = self.pick(vecs) if vecs else (n.Call("mul", (a[0], n.Const(-1.5, FLOAT32))), a[1])
            args = [a, b]
        elif inst == INT32 and ty != INT32:
            args = list(self.ints[:2])
        else:
            avoid: set = set()
            for _ in range(2):
                part = self.arg(gen, ty, avoid)
                avoid.add(part[0])
                args.append((n.Cast(part[0], inst), part[1]) if inst != ty else part)
        if args[0][0] == args[1][0]:
            return []
        if scaled:
            scalar = FLOAT32 if inst == VEC3 else inst
            value = int(self.pick([-3, -2, 2, 3])) if scalar.is_int else float(self.pick([-1.5, -0.5, 0.5, 1.25, 2.0]))
            args.append((n.Const(value, scalar), Interval.point(value)))
        h = generic_helper(c, name, inst, scaled, shape)
        bound = generic_bound(shape, args[0][1].mag, args[1][1].mag, args[2][1].mag if scaled else 1.0)
        h = Helper(h.func, tuple(a[1] for a in args), Interval(-bound, bound))
        if not any(x.func == h.func for x in c.helpers):
            c.helpers.append(h)
        return self.call(gen, h, [a[0] for a in args])

    def build(self) -> tuple[n.Kernel, dict[str, Interval], dict]:
        rng, ty, c = self.rng, self.ty, self.c
        self.shapes: dict[str, tuple] = {}
        gen = self.inputs()
        if ty in (FLOAT32, INT32) and rng.random() < 0.3:
            self.static_leaf(gen)
        for _ in range(int(rng.integers(2, 5))):
            gen.helpers = [h for h in c.helpers if h.func.ret == ty and not h.func.generic
                           and h.func.factory is None and all(p.type == ty for p in h.func.params)]
            gen.leaves += self.draw_call(gen, 1)
        gen.helpers = []
        outs = [str(x) for x in rng.permutation(OUT_NAMES)[:2]]
        i = n.Var("i", INT32)
        for k in range(1 if rng.random() < 0.6 else 2):
            e, _ = gen.compound(ty, int(rng.integers(1, 3)))
            self.params.append(n.Param(outs[k], Array(ty)))
            self.body.append(n.Store(outs[k], Array(ty), (i,), e))
        vec_locals = [v for v, _ in self.vecs if isinstance(v, n.Var) and not v.name.endswith("_v")]
        if vec_locals and rng.random() < 0.5:
            v = self.pick(vec_locals)
            s = self.pick([e for e, _ in gen.leaves if e.type == FLOAT32])
            self.params.append(n.Param("out_v", Array(VEC3)))
            self.body.append(n.Store("out_v", Array(VEC3), (i,), n.Call("mul", (v, s))))
        funcs = _callees_first(c.helpers)
        kernel = n.Kernel("wkf_kernel", tuple(self.params), tuple(self.body), funcs=funcs)
        kernel = _fold_rest(analysis.fold_unused(kernel), ty)
        kernel = analysis.remove_dead(kernel)
        kernel = replace(kernel, funcs=_used_funcs(kernel))
        return kernel, dict(self.ranges), dict(c.feats)

    def static_leaf(self, gen: ExprBuilder) -> None:
        """A module constant read through ``wp.static`` (a compile-time expression) bound to a local."""
        rng, ty = self.rng, self.ty
        name = self.pick(CONST_NAMES)
        value = int(rng.integers(2, 7)) if ty.is_int else float(self.pick([0.5, 1.5, 0.25, 2.0, 0.75]))
        factor = int(self.pick([2, 3])) if ty.is_int else float(self.pick([2.0, 0.5, 3.0]))
        text = f"{name} * {factor}" if rng.random() < 0.6 else name
        folded = value * factor if "*" in text else value
        static = n.Static(text, n.Const(folded, ty), consts=((name, value),))
        base = gen.expr(ty, 1, top=True)
        made = gen.checked(n.Call(self.pick(["add", "mul", "sub"]), (base[0], static)), [base[1], Interval.point(folded)])
        if made is None:
            return
        local = self.pick(["w0", "sc", "gain_v", "base"])
        self.body.append(n.Let(local, made[0]))
        gen.leaves.append((n.Var(local, ty), made[1]))
        self.c.feats["static"] += 1


def _callees_first(helpers: list[Helper]) -> tuple[n.Func, ...]:
    out: list[n.Func] = []

    def visit(f: n.Func) -> None:
        if f in out:
            return
        for x in analysis.expressions(f.body):
            if isinstance(x, n.FuncCall):
                visit(x.func)
        out.append(f)

    for h in helpers:
        visit(h.func)
    return tuple(out)


def _used_funcs(kernel: n.Kernel) -> tuple[n.Func, ...]:
    """The kernel's helpers that it calls, directly or through other helpers, callees first."""
    reached: set = set()
    frontier = [x.func for x in analysis.expressions(kernel.body) if isinstance(x, n.FuncCall)]
    while frontier:
        f = frontier.pop()
        if f not in reached:
            reached.add(f)
            frontier += [x.func for x in analysis.expressions(f.body) if isinstance(x, n.FuncCall)]
    return tuple(f for f in kernel.funcs if f in reached)


def _fold_rest(kernel: n.Kernel, ty: Scalar) -> n.Kernel:
    """Fold locals that reach no output and that :func:`analysis.fold_unused` cannot fold (tuple results,
    vectors) into the last scalar store."""
    stores = [k for k, s in enumerate(kernel.body) if isinstance(s, n.Store) and s.value.type == ty]
    if not stores:
        return kernel
    last = stores[-1]
    store = kernel.body[last]
    value = store.value
    for s in kernel.body:
        names = s.names if isinstance(s, n.Unpack) else (s.name,) if isinstance(s, n.Let) else ()
        for name in names:
            probe = replace(kernel, body=kernel.body[:last] + (replace(store, value=value),) + kernel.body[last + 1:])
            if name in analysis.reaching(probe):
                continue
            t = s.value.type.items[s.names.index(name)] if isinstance(s, n.Unpack) else s.value.type
            term: n.Expr = n.Var(name, t)
            if isinstance(t, Vector):
                term = n.Component(term, 0)
            if term.type != ty:
                term = n.Cast(term, ty)
            value = n.Call("add", (value, term))
    return replace(kernel, body=kernel.body[:last] + (replace(store, value=value),) + kernel.body[last + 1:])


def draw(rng: np.random.Generator) -> Program:
    def build():
        k = _Kernel(rng)
        kernel, ranges, feats = k.build()
        return kernel, ranges, feats

    kernel, ranges, feats = first_clean(build, N, tries=30)
    names = {f.name for f in kernel.funcs}
    feats["helpers"] = len(kernel.funcs)
    feats["overload_sets"] = sum(1 for x in names if sum(f.name == x and not f.generic for f in kernel.funcs) > 1)
    # Warp's adjoint of a loop it does not unroll (a ``break`` inside) is not checked: helpers count too
    unrolled_helpers = all(unrolled(n.Kernel("helper", (), f.body)) for f in kernel.funcs)
    return program(kernel, ranges, (N,), {**features(kernel), **feats},
                   differentiable=None if unrolled_helpers else False)


FAMILY = ir_family("funcs", __doc__, draw, version=2,
                   covers=("wp.func", "overloads", "generic Any", "tuple returns", "vec3 returns",
                           "nested helper calls", "early return", "helper loops", "closures", "wp.static"))
