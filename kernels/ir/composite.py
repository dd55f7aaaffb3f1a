"""Random programs over vectors, matrices, quaternions and transforms (the ``vector``, ``matrix`` and ``quaternion``
families), built from the same pieces as the scalar builders of :mod:`kernels.ir.gen`.

:class:`CompositeBuilder` is an :class:`~kernels.ir.gen.ExprBuilder` whose vocabulary holds composite types: it
reads elements (``v[0]``, ``v.x``, ``m[1, 2]``, ``m[1][2]``, a row ``m[1]``, ``t.p``), writes composite
constants (``wp.vec3(0.5, -1.5, 2.0)``, ``2.5 * wp.identity(n=3, dtype=wp.float32)``), keeps ``wp.cw_div``
divisors away from zero (``wp.abs(b) + wp.vec3(0.5)``), and inverts only diagonal shifts ``A + c * I`` /
``A + wp.diag(d)`` whose dominance margin the operation table's refine rule for ``inverse`` accepts (so
``||M^-1||_inf <= 1 / margin``). :func:`composite_kernel` draws a kernel: loads of typed arrays (1-D or 2-D
launches, inline reads or locals), optional scalar parameters, ``let`` statements, ``+=``/``-=`` updates,
element assignments (``v[0] = x``, ``v.y = x``, ``m[i, j] = x``), an optional ``@wp.func`` helper and typed
outputs; values no output reads are folded into one of the same type or dropped, and the interval engine
checks the whole kernel (:func:`kernels.ir.gen.first_clean`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from kernels.ir import analysis, intervals
from kernels.ir.family import adjoints_right
from kernels.ir import nodes as n
from kernels.ir.gen import ARRAY_NAMES, LOCAL_NAMES, OUT_NAMES, ExprBuilder, Helper, Leaf, Names, Vocabulary
from kernels.ir.numeric import Interval
from kernels.ir.ops import OPS, INVERSE_MARGIN, inverse_margin
from kernels.ir.types import INT32, Array, Matrix, Quat, Scalar, SpatialVector, Transform, Type, Vector, scalar_of

#: operations of two equal arguments that give a constant or a copy (``cross(a, a) == 0``)
SELF_COMPOSITE = frozenset({"cross", "cw_div", "select", "matmul", "wp_mul", "qmul", "spatial_cross"})
#: products that an argument and its inverse turn into the identity (``q * wp.quat_inverse(q)``)
PRODUCTS = {"qmul": ("quat_inverse", "transform_inverse"), "wp_mul": ("quat_inverse", "transform_inverse", "inverse"),
            "matmul": ("inverse",), "transform_multiply": ("transform_inverse",)}
#: parts of a value built in place (``wp.transform_get_rotation(wp.transform(p, q))`` is ``q``)
PARTS = frozenset({"transform_get_rotation", "transform_get_translation", "spatial_top", "spatial_bottom"})


_CANDIDATES: dict = {}


class CompositeBuilder(ExprBuilder):
    """Expressions over scalar and composite types (see module docstring)."""

    p_element = 0.25
    p_inverse = 0.0

    def __init__(self, rng: np.random.Generator, vocab: Vocabulary, leaves: list[Leaf]) -> None:
        key = (tuple(vocab.ops), vocab.types)          # the operations' instances, once per vocabulary
        if key not in _CANDIDATES:
            super().__init__(rng, vocab, leaves)
            _CANDIDATES[key] = self.candidates
            return
        self.rng, self.vocab, self.leaves = rng, vocab, list(leaves)
        self.helpers = []
        self.candidates = _CANDIDATES[key]

    def constant(self, ty: Type) -> Leaf:
        if isinstance(ty, Scalar):
            return super().constant(ty)
        s = scalar_of(ty)
        if isinstance(ty, SpatialVector):
            raise LookupError(f"no constant of {ty}")
        if isinstance(ty, Vector) and ty.scalar.is_float:
            parts = [super(CompositeBuilder, self).constant(s) for _ in range(ty.n)]
            op = f"vec{ty.n}"
            return n.Call(op, tuple(p[0] for p in parts)), Interval.hull([p[1].lo for p in parts])
        if isinstance(ty, Vector):
            parts = [super(CompositeBuilder, self).constant(s) for _ in range(ty.n)]
            return n.Call(f"ivec{ty.n}", tuple(p[0] for p in parts)), Interval.hull([p[1].lo for p in parts])
        if isinstance(ty, Matrix):
            c, iv = super().constant(s)
            c, iv = n.Const(abs(c.value), s), Interval.point(abs(c.value))
            return n.Call("mscale", (c, n.Call(identity(ty), ()))), iv.join(Interval(0.0, 0.0))
        if isinstance(ty, Quat) and ty.scalar.name == "float32" and self.rng.random() < 0.15:
            return n.Call("quat_identity", ()), Interval(0.0, 1.0)
        if isinstance(ty, Quat):
            angles = [n.Const(float(self.pick([-1.2, -0.6, 0.3, 0.7, 1.1, 1.6])), s) for _ in range(3)]
            return n.Call("quat_rpy", tuple(angles)), Interval(-1.0, 1.0)
        raise LookupError(f"no constant of {ty}")

    def leaf(self, ty: Type) -> Leaf:
        typed = [x for x in self.leaves if x[0].type == ty]
        if typed and (self.rng.random() >= self.vocab.p_const or isinstance(ty, Transform)):
            if not hasattr(self, "picked"):
                self.picked: dict = {}
            fewest = min(self.picked.get(x[0], 0) for x in typed)
            if self.rng.random() < 0.7:               # mostly a value read least so far: every input gets used
                typed = [x for x in typed if self.picked.get(x[0], 0) == fewest]
            made = self.pick(typed)
            self.picked[made[0]] = self.picked.get(made[0], 0) + 1
            return made
        if isinstance(ty, Scalar) and not typed:
            made = self.element(ty, 1)
            if made is not None:
                return made
        try:
            return self.constant(ty)
        except LookupError:
            pass
        made = self.element(ty, 1)
        if made is not None:
            return made
        if isinstance(ty, Transform):
            p, q = self.leaf(Vector(ty.scalar, 3)), self.leaf(Quat(ty.scalar))
            return n.Call("transform", (p[0], q[0])), p[1].join(q[1])
        if isinstance(ty, SpatialVector):
            w, v = self.leaf(Vector(ty.scalar, 3)), self.leaf(Vector(ty.scalar, 3))
            return n.Call("spatial_vector", (w[0], v[0])), w[1].join(v[1])
        raise LookupError(f"no leaf of {ty}")

    def checked(self, e: n.Expr, ivs: list[Interval]) -> Leaf | None:
        if isinstance(e, n.Call):
            if e.op in SELF_COMPOSITE and len(set(e.args)) < len(e.args):
                return None
            if e.args and not any(analysis.uses(a) for a in e.args):
                return None                            # only constants (wp.pi * 0.5, dot of two constants)
            if e.op in PRODUCTS and any(isinstance(b, n.Call) and b.op in PRODUCTS[e.op] and b.args[0] == a
                                        for a, b in (e.args, e.args[::-1])):
                return None
            if e.op in PARTS and isinstance(e.args[0], n.Call) and OPS[e.args[0].op].form == "construct":
                return None
        return super().checked(e, ivs)

    def expr(self, ty: Type, depth: int, top: bool = False) -> Leaf:
        if isinstance(ty, Scalar) and ty.is_float and INT32 in self.vocab.types and depth > 0 and \
                self.rng.random() < 0.2:            # an integer value (a component of a vec3i...) as a float
            e, iv = self.expr(INT32, depth - 1)
            if not isinstance(e, n.Const):
                return n.Cast(e, ty), iv
        if depth > 0 and not top and self.rng.random() < self.p_element:
            made = self.element(ty, depth)
            if made is not None:
                return made
        if isinstance(ty, Matrix) and depth > 1 and self.rng.random() < self.p_inverse:
            made = self.inverse(ty, depth)
            if made is not None:
                return made
        return super().expr(ty, depth, top)

    def element(self, ty: Type, depth: int) -> Leaf | None:
        """An element of a composite value (a leaf, or an operation's result when ``depth > 1``)."""
        sources = [(src, idx) for src in self.vocab.types if not isinstance(src, Scalar)
                   for idx in _indices(src) if n.element_type(src, idx) == ty]
        if not sources:
            return None
        src, idx = self.pick(sources)
        try:
            value, iv = self.expr(src, depth - 1) if depth > 1 and self.rng.random() < 0.4 else self.leaf(src)
        except LookupError:
            return None
        if isinstance(value, n.Call) and (OPS[value.op].form in ("construct", "constant") or not value.args
                                          or value.op in ("mscale", "quat_rpy", "diag")):
            return None                                # wp.vec3(a, b, c)[0] is a
        styles = [s for s in n.STYLES if _style_ok(src, idx, s)]
        return n.Element(value, idx, self.pick(styles)), iv

    def inverse(self, ty: Matrix, depth: int) -> Leaf | None:
        """``wp.inverse(A + c * I)`` or ``wp.inverse(A + wp.diag(d))`` with a dominance margin >= 0.5."""
        a, a_iv = self.expr(ty, depth - 2)
        if a_iv.mag > 6.0 or isinstance(a, n.Const):
            return None
        need = (ty.rows - 1) * a_iv.mag - min(a_iv.lo, 0.0) + 0.5
        c = float(np.ceil(need * 2.0) / 2.0) + float(self.pick([0.0, 0.5, 1.0]))
        if self.rng.random() < 0.5:
            d = n.Call("mscale", (n.Const(c, ty.scalar), n.Call(identity(ty), ())))
            d_iv = Interval(c, c)
        else:
            parts = tuple(n.Const(c + float(self.pick([0.0, 0.5, 1.0])), ty.scalar) for _ in range(ty.rows))
            d = n.Call("diag", (n.Call(f"vec{ty.rows}", parts),))
            d_iv = Interval.hull([p.value for p in parts])
        margin = inverse_margin(ty.rows, a_iv, d_iv)
        if margin < max(INVERSE_MARGIN, 0.5):
            return None
        shifted = n.Call("add", (a, d)) if self.rng.random() < 0.7 else n.Call("add", (d, a))
        return n.Call("inverse", (shifted,)), Interval(-1.0 / margin, 1.0 / margin).widen(1e-6)

    def repair(self, name: str, parts: list[Leaf]) -> list[Leaf]:
        if name == "mdiv":
            return super().repair("div", parts)
        if name == "cw_div" and parts[1][1].contains_zero() and isinstance(parts[1][0].type, Vector):
            e, iv = parts[1]
            c = float(self.pick([0.5, 1.0, 1.5]))
            splat = n.Call(f"splat{e.type.n}", (n.Const(c, e.type.scalar),))
            lo = (0.0 if iv.contains_zero() else min(abs(iv.lo), abs(iv.hi))) + c
            return [parts[0], (n.Call("add", (n.Call("abs", (e,)), splat)), Interval(lo, iv.mag + c))]
        return super().repair(name, parts)

    def comparison(self, depth: int) -> Leaf:
        saved = self.vocab
        self.vocab = Vocabulary(saved.ops, tuple(t for t in saved.types if isinstance(t, Scalar)), saved.ranges,
                                saved.limit, saved.p_leaf, saved.p_const, saved.p_compound, saved.p_call)
        try:
            return super().comparison(depth)
        finally:
            self.vocab = saved


def identity(ty: Matrix) -> str:
    """The table row of ``wp.identity`` for square matrix type ``ty``."""
    return f"identity{ty.rows}" + ("d" if ty.scalar.name == "float64" else "")


def _indices(ty: Type) -> list[tuple[int, ...]]:
    if isinstance(ty, (Vector, Quat)):
        return [(k,) for k in range(ty.shape[0])]
    if isinstance(ty, Matrix):
        return [(r, c) for r in range(ty.rows) for c in range(ty.cols)] + [(r,) for r in range(ty.rows)]
    if isinstance(ty, Transform):
        return [(0,), (1,)]
    return []


def _style_ok(ty: Type, idx: tuple[int, ...], style: str) -> bool:
    try:
        n._check_element(ty, idx, style)
    except n.IRTypeError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------
# Kernels


@dataclass(frozen=True)
class Port:
    """A kernel input (array or scalar parameter) or output: its name pool, type and sampling range."""

    type: Type
    range: Interval = Interval(-2.0, 2.0)
    names: tuple[str, ...] = ARRAY_NAMES
    normalized: bool = False        # an input loaded as ``wp.normalize(a[i])`` (when its range keeps it off 0)


@dataclass(frozen=True)
class Shape:
    """What :func:`composite_kernel` draws besides the ports: statement counts and kinds, depths, helpers."""

    statements: tuple[int, int] = (1, 4)
    kinds: Mapping[str, float] = field(default_factory=lambda: {"let": 1.0, "update": 0.2, "set": 0.2})
    depth: tuple[int, int] = (1, 3)
    out_depth: tuple[int, int] = (1, 3)
    p_inline: float = 0.3
    p_helper: float = 0.2
    two_d: float = 0.2
    size: int = 64


def _span(rng, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def composite_kernel(rng: np.random.Generator, vocab: Vocabulary, inputs: list[Port], outputs: list[Port],
                     scalars: list[Port], stmt_types: Mapping[Type, float], shape: Shape,
                     builder: type[CompositeBuilder] = CompositeBuilder,
                     name: str = "wkf_kernel") -> tuple[n.Kernel, dict[str, Interval], tuple[int, ...]]:
    """One kernel drawn over the ports (see module docstring); returns it, its input intervals and launch dim."""
    two_d = rng.random() < shape.two_d
    dim = (8, 8) if two_d else (shape.size,)
    tids = ("i", "j") if two_d else ("i",)
    index = tuple(n.Var(t, INT32) for t in tids)
    names = Names(rng, True)
    names.used |= set(tids)
    params: list[n.Param] = []
    ranges: dict[str, Interval] = {}
    body: list[n.Stmt] = []
    leaves: list[Leaf] = []
    inline = rng.random() < shape.p_inline
    for k, port in enumerate(inputs):
        arr = names.fresh(port.names, f"in{k}", k)
        aty = Array(port.type, len(tids))
        params.append(n.Param(arr, aty))
        ranges[arr] = port.range
        load = n.Load(arr, aty, index)
        if inline:
            leaves.append((load, port.range))
            continue
        local = names.loaded(arr, k)
        value, iv = load, port.range
        if port.normalized and not port.range.contains_zero():
            value, iv = n.Call("normalize", (load,)), Interval(-1.0, 1.0)
        body.append(n.Let(local, value))
        leaves.append((n.Var(local, port.type), iv))
    for k, port in enumerate(scalars):
        s = names.fresh(port.names, f"s{k}", k)
        params.append(n.Param(s, port.type))
        ranges[s] = port.range
        leaves.append((n.Var(s, port.type), port.range))
    if INT32 in vocab.types:
        leaves += [(n.Var(t, INT32), Interval(0.0, size - 1.0)) for t, size in zip(tids, dim)]
    gen = builder(rng, vocab, leaves)
    if rng.random() < shape.p_helper:
        helper = _helper(rng, vocab, builder, stmt_types, f"{name}_{gen.pick(['f', 'g', 'fn', 'apply', 'op'])}")
        if helper is not None:
            gen.helpers.append(helper)
    types = list(stmt_types)
    weights = np.array([stmt_types[t] for t in types], dtype=float)
    kinds = list(shape.kinds)
    kw = np.array([shape.kinds[k] for k in kinds], dtype=float)
    for k in range(_span(rng, shape.statements)):
        ty = types[int(rng.choice(len(types), p=weights / weights.sum()))]
        kind = kinds[int(rng.choice(len(kinds), p=kw / kw.sum()))]
        if kind == "update" and _update(gen, body, ty, _span(rng, shape.depth)):
            continue
        if kind == "set" and _set(gen, body, _span(rng, shape.depth)):
            continue
        e, iv = gen.compound(ty, _span(rng, shape.depth))
        local = names.fresh(LOCAL_NAMES + _local_names(ty), f"t{k}", k, suffix=rng.random() < 0.3)
        body.append(n.Let(local, e))
        gen.leaves.append((n.Var(local, ty), iv))
    if gen.helpers and not any(isinstance(x, n.FuncCall) for x in analysis.expressions(tuple(body))):
        _call_helper(gen, body, names)
    values: list[Leaf] = []
    outs: list[n.Param] = []
    for k, port in enumerate(outputs):
        values.append(gen.compound(port.type, _span(rng, shape.out_depth)))
        outs.append(n.Param(names.fresh(port.names or OUT_NAMES, f"out{k}", k), Array(port.type, len(tids))))
    values = _fold(gen, body, values, params)
    body += [n.Store(p.name, p.type, index, e) for p, (e, _) in zip(outs, values)]
    funcs = tuple(h.func for h in gen.helpers)
    kernel = n.Kernel(name, tuple(params + outs), tuple(body), tids=tids, funcs=funcs)
    return analysis.remove_dead(kernel), ranges, dim


def _call_helper(gen: CompositeBuilder, body: list[n.Stmt], names: Names) -> None:
    """A local bound to a call of the kernel's helper on values of its parameter types (no call when none fit)."""
    h = gen.helpers[0]
    args = []
    for p, dom in zip(h.func.params, h.params):
        for _ in range(4):
            arg = gen.expr(p.type, 1)
            if dom.contains(arg[1]) and not isinstance(arg[0], n.Const) and analysis.uses(arg[0]):
                args.append(arg[0])
                break
        else:
            return
    local = names.fresh(LOCAL_NAMES + _local_names(h.func.ret), "h", 0)
    body.append(n.Let(local, n.FuncCall(h.func, tuple(args))))
    gen.leaves.append((n.Var(local, h.func.ret), h.ret))


def _local_names(ty: Type) -> tuple[str, ...]:
    if isinstance(ty, Matrix):
        return ("M", "A", "R", "J", "K", "S", "inv", "rot")
    if isinstance(ty, Quat):
        return ("q", "rot", "dq", "ori", "spin")
    if isinstance(ty, Transform):
        return ("xf", "pose", "X", "tf")
    if isinstance(ty, Vector):
        return ("v", "d", "n", "dir", "p", "w", "u", "axis", "r")
    return ()


def _update(gen: CompositeBuilder, body: list[n.Stmt], ty: Type, depth: int) -> bool:
    """``t += e`` / ``t -= e`` for a local ``t`` of type ``ty`` computed earlier."""
    computed = [s.name for s in body if isinstance(s, n.Let) and isinstance(s.value, n.Call) and s.value.type == ty]
    if not computed or OPS["add"].result((ty, ty)) is None:
        return False
    var = n.Var(gen.pick(computed), ty)
    k = next(j for j, (e, _) in enumerate(gen.leaves) if e == var)
    e, iv = gen.compound(ty, depth)
    made = gen.checked(n.Call(gen.pick(["add", "sub"]), (var, e)), [gen.leaves[k][1], iv])
    if made is None:
        return False
    body.append(n.Assign(var.name, made[0], augmented=True))
    gen.leaves[k] = (var, made[1])
    return True


def _set(gen: CompositeBuilder, body: list[n.Stmt], depth: int) -> bool:
    """``v[k] = e``, ``v.y = e`` or ``m[i, j] = e`` on a vector, quaternion or matrix local computed earlier."""
    computed = [s for s in body if isinstance(s, n.Let) and isinstance(s.value, n.Call)
                and isinstance(s.value.type, (Vector, Quat, Matrix))]
    if not computed:
        return False
    target = gen.pick(computed)
    ty = target.value.type
    idx = gen.pick([i for i in _indices(ty) if isinstance(n.element_type(ty, i), Scalar)])
    e, iv = gen.compound(scalar_of(ty), depth)
    style = gen.pick([s for s in ("index", "attr") if _style_ok(ty, idx, s)])
    body.append(n.SetElement(target.name, ty, idx, e, style))
    var = n.Var(target.name, ty)
    k = next(j for j, (x, _) in enumerate(gen.leaves) if x == var)
    gen.leaves[k] = (var, gen.leaves[k][1].join(iv))
    return True


def _as(leaf: n.Expr, ty: Type, rng) -> n.Expr | None:
    """An expression of type ``ty`` read from ``leaf``: itself, one of its parts (``t.p``, ``t.q``, a row
    ``m[k]``) or one of its scalar elements (``v[k]``, ``m[i, j]``, ``t.p[k]``); None if there is none."""
    if leaf.type == ty:
        return leaf
    direct = [i for i in _indices(leaf.type) if n.element_type(leaf.type, i) == ty]
    if direct:
        idx = direct[int(rng.integers(len(direct)))]
        return n.Element(leaf, idx, "attr" if isinstance(leaf.type, Transform) else "index")
    if isinstance(leaf.type, Transform) and isinstance(ty, Scalar) and ty == leaf.type.scalar:
        return n.Element(n.Element(leaf, (0,), "attr"), (int(rng.integers(3)),))
    return None


def _fold(gen: CompositeBuilder, body: list[n.Stmt], values: list[Leaf], params: list[n.Param]) -> list[Leaf]:
    """Locals and inputs no output reads are folded into an output: added when a part of them has the output's
    type (``out + t``, ``out + m[1]``, ``out + t.p``, ``out + v[2]``), else scaling it by one of their elements
    (``out * v[0]``); what cannot be folded stays unread (the draw is then refused)."""
    values = list(values)
    exprs = lambda: [x for s in body for x in n.stmt_exprs(s)] + [e for e, _ in values]  # noqa: E731
    for leaf, iv in list(gen.leaves):
        if not isinstance(leaf, (n.Var, n.Load)) or isinstance(leaf.type, Scalar) and leaf.type.is_int:
            continue
        name = leaf.name if isinstance(leaf, n.Var) else leaf.array
        if name in set().union(*(analysis.uses(e) for e in exprs())):
            continue
        order = [int(j) for j in gen.rng.permutation(len(values))]
        for j in order:
            e, e_iv = values[j]
            same = _as(leaf, e.type, gen.rng)
            made = None
            if same is not None and OPS["add"].result((e.type, e.type)) is not None:
                made = gen.checked(n.Call("add", (e, same)), [e_iv, iv])
            if made is None and not isinstance(e.type, Scalar):
                s = _as(leaf, scalar_of(e.type), gen.rng)
                op = "mul" if isinstance(e.type, Vector) else "mscale"
                if s is not None and OPS[op].result((e.type, s.type)) is not None:
                    made = gen.checked(n.Call(op, (e, s)), [e_iv, iv])
            if made is not None:
                values[j] = made
                break
    return values


HELPER_PARAMS = (("p", "q"), ("a", "b"), ("u", "v"), ("lhs", "rhs"), ("x", "y"))


def _helper(rng, vocab: Vocabulary, builder: type[CompositeBuilder], stmt_types: Mapping[Type, float],
            name: str) -> Helper | None:
    """A ``@wp.func`` of one or two parameters (drawn among the statement types) returning an expression that
    reads each of them."""
    types = list(stmt_types)
    count = int(rng.integers(1, 3))
    ptypes = [types[int(rng.integers(len(types)))] for _ in range(count)]
    pnames = HELPER_PARAMS[int(rng.integers(len(HELPER_PARAMS)))][:count]
    ivs = tuple(Interval(-10.0, 10.0) for _ in pnames)      # call sites pass arguments inside these
    gen = builder(rng, vocab, [(n.Var(p, t), iv) for p, t, iv in zip(pnames, ptypes, ivs)])
    gen.p_element = max(gen.p_element, 0.3)
    ret_ty = types[int(rng.integers(len(types)))]
    for _ in range(6):
        ret, riv = gen.compound(ret_ty, int(rng.integers(1, 3)))
        if all(analysis.reads([ret], p) for p in pnames):
            func = n.Func(name, tuple(n.Param(p, t) for p, t in zip(pnames, ptypes)), ret_ty, (n.Return(ret),))
            return Helper(func, ivs, riv)
    return None


def is_clean(kernel: n.Kernel, inputs: Mapping[str, Interval], dim: tuple[int, ...]) -> bool:
    """:func:`kernels.ir.gen.is_clean` for a launch of shape ``dim`` (arrays have the launch's shape)."""
    shapes = {p.name: tuple(dim) for p in kernel.params if isinstance(p.type, Array)}
    facts = intervals.analyze(kernel, inputs, tuple(dim), shapes)
    outputs = sorted({s.array for s in analysis.statements(kernel.body) if isinstance(s, (n.Store, n.Atomic))})
    return not any(analysis.hygiene(kernel).values()) and not facts.violations and \
        not facts.degenerate(outputs) and analysis.reaching(kernel) >= {p.name for p in kernel.params}


class NoCleanKernel(RuntimeError):
    """No draw over these ports was clean (the family draws new ports)."""


def first_clean(draw, tries: int = 25):
    """The first of ``tries`` draws of :func:`composite_kernel` that :func:`is_clean`."""
    for _ in range(tries):
        drawn = draw()
        if is_clean(*drawn):
            return drawn
    raise NoCleanKernel(f"no clean kernel in {tries} draws")


def with_new_ports(draw, tries: int = 8):
    """``draw`` (a family's ``rng -> Program``) retried with new ports when :func:`first_clean` gave up."""
    def drawn(rng):
        for _ in range(tries - 1):
            try:
                return draw(rng)
            except NoCleanKernel:
                continue
        return draw(rng)
    return drawn


def differentiable(kernel: n.Kernel) -> bool:
    """Float outputs, adjoints Warp gets right, and no element assignment: Warp 1.19's adjoint of ``v[k] = x`` on
    a local (``assign_inplace``) still sends the overwritten component's gradient to the old value."""
    body = kernel.body + tuple(s for f in kernel.funcs for s in f.body)
    floats = all(scalar_of(p.type.dtype).is_float for p in kernel.params if isinstance(p.type, Array))
    return floats and adjoints_right(kernel) and not any(isinstance(s, n.SetElement)
                                                          for s in analysis.statements(body))
