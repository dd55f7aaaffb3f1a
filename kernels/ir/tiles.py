"""The element-wise parts of tile programs on the IR, shared by the tile families (``tiles``, ``reduction``).

Tile operations themselves (loads, stores, layouts, matmul, scans...) are particular to those families and stay
there; what runs *per element* is IR: the ``@wp.func`` element functions given to ``wp.tile_map`` and
``wp.tile_reduce`` (drawn by :class:`kernels.ir.gen.ExprBuilder`, printed by the printer), the builtin operators
(``wp.tile_map(wp.sin, t)``, ``wp.tile_reduce(wp.max, t)``, ``a + b`` of tiles: rows of the operation table with
their NumPy semantics, interval rules and domain guards) and per-thread scalar expressions. The reference runs
them on whole tiles through the one interpreter (a tile is a batch of lanes).

Kernel text assembled by a tile family is re-printed by :func:`format_source` through the printer's renderer, so
tile kernels are wrapped and parenthesised like every other IR kernel.
"""

from __future__ import annotations

import ast
import math
from dataclasses import replace

import numpy as np

from harness.family import PLACEHOLDER
from kernels.ir import interp, printer
from kernels.ir import nodes as n
from kernels.ir.gen import ExprBuilder, Helper, Leaf, Vocabulary
from kernels.ir.numeric import Interval
from kernels.ir.ops import OPS, Ctx
from kernels.ir.types import FLOAT32, FLOAT64, INT32, Scalar, round_to

#: the scalar types tile programs use, by the dtype names their ``Arg``s carry
SCALAR_TYPES = {"float32": FLOAT32, "float64": FLOAT64, "int32": INT32}
#: math builtins an element function may wrap a value in (each only where its guard holds)
MATH_WRAP = ("sin", "cos", "tanh", "atan", "exp", "sqrt", "log")
FLOAT_BINARY = ("add", "sub", "mul", "div", "min", "max")
INT_BINARY = ("add", "sub", "mul", "min", "max", "mod", "floordiv")


# ---------------------------------------------------------------------------------------------------------
# Table operations on intervals and on arrays


def bound(op: str, ty: Scalar, *ivs: Interval) -> Interval:
    """Interval of table operation ``op`` over ``ty`` arguments in ``ivs`` (widened for rounding)."""
    return OPS[op].bound(Ctx((ty,) * len(ivs), ty), *ivs)


def guard(op: str, ty: Scalar, *ivs: Interval) -> str | None:
    """Why ``op`` may leave its domain on ``ivs`` (None when it cannot)."""
    return OPS[op].guard(Ctx((ty,) * len(ivs), ty), *ivs)


def apply_op(op: str, ty: Scalar, *args: np.ndarray) -> np.ndarray:
    """Table operation ``op`` element-wise on broadcast arrays (``exact=False``: float32 kept in float64)."""
    arrays = [np.asarray(a) for a in args]
    shape = np.broadcast_shapes(*(a.shape for a in arrays))
    flat = [np.broadcast_to(a, shape).astype(ty.carrier).reshape(-1) for a in arrays]
    with np.errstate(all="ignore"):
        out = OPS[op].eval(Ctx((ty,) * len(flat), ty, exact=False), *flat)
    return out.reshape(shape)


def fold(reduce_pair, arr: np.ndarray, axis: int = -1) -> np.ndarray:
    """Reduce ``arr`` along ``axis`` by pairs, a tree as a block reduces (``reduce_pair(a, b)`` is element-wise)."""
    a = np.moveaxis(np.asarray(arr), axis, -1)
    while a.shape[-1] > 1:
        half = a.shape[-1] // 2
        a = np.concatenate([reduce_pair(a[..., :half], a[..., half:2 * half]), a[..., 2 * half:]], axis=-1)
    return a[..., 0]


def fold_op(op: str, ty: Scalar, arr: np.ndarray, axis: int = -1) -> np.ndarray:
    """``wp.tile_reduce(wp.<op>, t)`` along ``axis``."""
    return fold(lambda a, b: apply_op(op, ty, a, b), arr, axis)


def fold_func(func: n.Func, arr: np.ndarray, axis: int = -1) -> np.ndarray:
    """``wp.tile_reduce(f, t)`` along ``axis`` with a two-parameter helper ``f``."""
    return fold(lambda a, b: call(func, a, b), arr, axis)


# ---------------------------------------------------------------------------------------------------------
# IR expressions and helpers evaluated on tiles


def evaluate(e: n.Expr, env: dict[str, np.ndarray]) -> np.ndarray:
    """Value of ``e`` with its variables bound to broadcast arrays (one lane per element)."""
    arrays = {k: np.asarray(v) for k, v in env.items()}
    shape = np.broadcast_shapes(*(a.shape for a in arrays.values())) if arrays else ()
    lanes = math.prod(shape)
    types = {x.name: x.type for x in _vars(e)}
    flat = {k: np.broadcast_to(a, shape).astype(types[k].carrier).reshape(-1) for k, a in arrays.items()
            if k in types}
    return interp.evaluate(e, flat, {}, lanes, exact=False).reshape(shape)


def call(func: n.Func, *args: np.ndarray) -> np.ndarray:
    """``func`` applied element-wise to broadcast arrays (``wp.tile_map(func, ...)``)."""
    names = [f"_arg{k}" for k in range(len(args))]
    e = n.FuncCall(func, tuple(n.Var(name, p.type) for name, p in zip(names, func.params)))
    return evaluate(e, dict(zip(names, args)))


def _vars(e: n.Expr):
    if isinstance(e, n.Var):
        yield e
    for c in n.children(e):
        yield from _vars(c)


def text(e: n.Expr) -> str:
    """Warp source of one expression (the printer's spelling)."""
    return ast.unparse(printer.expr(e))


def literal(value: float | int, ty: Scalar) -> str:
    """A literal as Warp reads it in a ``ty`` program (``1.5``, ``wp.float64(1.5)``, ``3``)."""
    return ast.unparse(printer.literal(value, ty))


def rounded(value: float, ty: Scalar) -> float:
    """``value`` as a ``ty`` literal holds it (float32 literals round)."""
    return float(round_to(ty, np.float64(value)))


def helper_source(func: n.Func) -> str:
    return "\n".join(printer.render(printer.func_def(func), 0)) + "\n"


def _vocab(ty: Scalar, binary: tuple[str, ...], limit: float) -> Vocabulary:
    return Vocabulary({**{op: 1.0 for op in binary}, "where": 0.4}, types=(ty,), ranges={ty: Interval(-2.0, 2.0)},
                      limit=limit, p_leaf=0.3, p_const=0.25)


_CANDIDATES: dict[tuple, dict] = {}


def _builder(rng: np.random.Generator, ty: Scalar, binary: tuple[str, ...], limit: float,
             leaves: list[Leaf]) -> ExprBuilder:
    """An :class:`ExprBuilder` over ``_vocab(ty, binary, limit)``; the table's candidate operations per result type
    are computed once per vocabulary (a tile program draws several element functions: this was 15 ms each)."""
    vocab = _vocab(ty, binary, limit)
    key = (ty, binary)
    if key not in _CANDIDATES:
        _CANDIDATES[key] = ExprBuilder(rng, vocab, leaves).candidates
    gen = ExprBuilder(rng, replace(vocab, ops={}), leaves)
    gen.vocab, gen.candidates = vocab, _CANDIDATES[key]
    return gen


def wrap_math(gen: ExprBuilder, part: Leaf, allowed: tuple[str, ...] = MATH_WRAP) -> Leaf:
    """``part`` inside one math builtin whose guard holds on its interval (``part`` itself when none does)."""
    e, iv = part
    options = [op for op in allowed if not (op == "exp" and iv.hi > 2.5)]
    for _ in range(4):
        if not options:
            break
        op = gen.pick(options)
        made = gen.checked(n.Call(op, (e,)), [iv])
        if made is not None:
            return made
        options.remove(op)
    return part


def _finish(gen: ExprBuilder, ret: Leaf, limit: float, ty: Scalar) -> Leaf:
    """Keep ``ret`` under ``limit``: ``tanh`` (floats) or ``% m`` (integers) when its interval passes it."""
    if ret[1].mag <= limit:
        return ret
    if ty.is_int:
        m = 9973 if limit > 20000 else 97
        return n.Call("mod", (ret[0], n.Const(m, ty))), Interval(-(m - 1.0), m - 1.0)
    return n.Call("tanh", (ret[0],)), Interval(-1.0, 1.0)


def elem_func(rng: np.random.Generator, name: str, ty: Scalar, ivs: list[Interval], limit: float = 1e3,
              math_p: float = 0.5) -> Helper:
    """A ``@wp.func`` of ``len(ivs)`` parameters of type ``ty`` for arguments in ``ivs``: 0-2 locals, then a
    returned expression that reads every parameter and local, bounded by ``limit``, every operation inside its
    domain (table guards)."""
    binary = INT_BINARY if ty.is_int else FLOAT_BINARY
    params = ("x", "y", "z")[:len(ivs)] if rng.random() < 0.6 else ("a", "b", "c")[:len(ivs)]
    gen = _builder(rng, ty, binary, limit, [(n.Var(p, ty), iv) for p, iv in zip(params, ivs)])
    body: list[n.Stmt] = []
    for k in range(int(rng.integers(0, 3))):
        part = gen.compound(ty, int(rng.integers(1, 3)))
        if not ty.is_int and rng.random() < math_p:
            part = wrap_math(gen, part)
        local = f"{('s', 'r', 'q', 'h')[k % 4]}{k}"
        body.append(n.Let(local, part[0]))
        gen.leaves.append((n.Var(local, ty), part[1]))
    ret = gen.compound(ty, int(rng.integers(1, 4)))
    if not ty.is_int and rng.random() < math_p * 0.6:
        ret = wrap_math(gen, ret)
    ret = _read_all(gen, body, ret)
    ret = _finish(gen, ret, limit, ty)
    func = n.Func(name, tuple(n.Param(p, ty) for p in params), ty, (*body, n.Return(ret[0])))
    return Helper(func, tuple(ivs), ret[1])


def _read_all(gen: ExprBuilder, body: list[n.Stmt], ret: Leaf) -> Leaf:
    """``ret`` with every leaf of ``gen`` it does not reach (through the locals of ``body``) folded in."""
    from kernels.ir.analysis import uses

    for var, iv in list(gen.leaves):
        reached = set()
        frontier = uses(ret[0])
        deps = {s.name: uses(s.value) for s in body if isinstance(s, n.Let)}
        while frontier:
            v = frontier.pop()
            if v not in reached:
                reached.add(v)
                frontier |= deps.get(v, set())
        if var.name in reached:
            continue
        op = gen.pick(["add", "sub", "mul"])
        ret = gen.checked(n.Call(op, (ret[0], var)), [ret[1], iv]) or \
            (n.Call("add", (ret[0], var)), bound("add", var.type, ret[1], iv))
    return ret


def scalar_expr(rng: np.random.Generator, ty: Scalar, leaves: list[Leaf], depth: int, limit: float,
                math_ok: bool = True) -> Leaf:
    """A per-thread expression over ``leaves`` (variables with intervals) reading each of them, bounded by
    ``limit``; floats are sometimes wrapped in a math builtin."""
    binary = ("add", "sub", "mul", "min", "max") + (("mod",) if ty.is_int else ("div",))
    gen = _builder(rng, ty, binary, limit, list(leaves))
    ret = gen.compound(ty, depth)
    ret = _read_all(gen, [], ret)
    if math_ok and not ty.is_int and rng.random() < 0.35:
        ret = wrap_math(gen, ret, ("sin", "cos", "tanh", "atan", "exp", "sqrt"))
    return _finish(gen, ret, limit, ty)


def reducer(name: str, ty: Scalar, kind: str, c: float | int | None = None) -> n.Func:
    """An associative, commutative ``@wp.func`` of two ``ty`` values for ``wp.tile_reduce``: ``sum`` (a + b),
    ``sumc`` (a + b + c), ``abs`` (|a| + |b|), ``maxabs`` (max(|a|, |b|)), ``max`` (where(a > b, a, b)) or
    ``min`` (a if a < b else b)."""
    a, b = n.Var("a", ty), n.Var("b", ty)
    ret = {
        "sum": lambda: n.Call("add", (a, b)),
        "sumc": lambda: n.Call("add" if c >= 0 else "sub", (n.Call("add", (a, b)), n.Const(abs(c), ty))),
        "abs": lambda: n.Call("add", (n.Call("abs", (a,)), n.Call("abs", (b,)))),
        "maxabs": lambda: n.Call("max", (n.Call("abs", (a,)), n.Call("abs", (b,)))),
        "max": lambda: n.Call("where", (n.Call("gt", (a, b)), a, b)),
        "min": lambda: n.Call("ifexp", (n.Call("lt", (a, b)), a, b)),
    }[kind]()
    return n.Func(name, (n.Param("a", ty), n.Param("b", ty)), ty, (n.Return(ret),))


# ---------------------------------------------------------------------------------------------------------
# Kernel source


def array_type(dtype: str, ndim: int) -> str:
    """``wp.array(dtype=...)``, ``wp.array2d(...)``, ``wp.array3d(...)`` of the scalar type named ``dtype``."""
    return f"wp.array{'' if ndim == 1 else f'{ndim}d'}(dtype={SCALAR_TYPES[dtype].warp})"


def kernel_source(params: list[str], body: list[str], helpers: list[n.Func] = (), tid: str | None = "i = wp.tid()",
                  constants: list[str] = ()) -> str:
    """Source of a tile kernel: module ``constants``, the ``helpers``, then ``@wp.kernel`` with ``params`` (texts
    ``name: type``), a first line ``tid`` (none for kernels that read no thread index) and ``body`` lines, all
    re-printed by the printer (parentheses, wrapping, spacing)."""
    lines = [*constants]
    lines += ["@wp.kernel", f"def {PLACEHOLDER}({', '.join(params)}):"]
    lines += [f"    {line}" for line in ([tid] if tid else []) + list(body)]
    return format_source("\n".join(lines) + "\n", helpers)


def format_source(source: str, helpers: list[n.Func] = ()) -> str:
    """``import warp as wp``, the module's constants, helpers and definitions, rendered by the printer."""
    tree = ast.parse(source)
    parts = ["import warp as wp"]
    consts = [s for s in tree.body if not isinstance(s, ast.FunctionDef)]
    if consts:
        parts.append("\n".join(line for s in consts for line in printer.render(s, 0)))
    parts += [helper_source(f).rstrip("\n") for f in helpers]
    parts += ["\n".join(printer.render(s, 0)) for s in tree.body if isinstance(s, ast.FunctionDef)]
    return "\n\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Screening


def screened(name: str, draw, reference, tolerance, sample_inputs=None, tries: int = 6):
    """A generator that draws with ``draw(rng)`` until the verifier's own checks (:func:`harness.verify.screen`:
    finite, well-conditioned, not constant, no dead inputs) pass with the family's reference standing in for the
    compiled kernel, at most ``tries`` times (the last draw otherwise). Tile families keep a reference of their
    own (tile semantics), so this is :func:`kernels.ir.family.screened` for them."""
    from harness.errors import KernelRejected
    from harness.family import Family, KernelSpec
    from harness.verify import screen

    def generate(rng: np.random.Generator):
        prog = draw(rng)
        for _ in range(tries - 1):
            family = Family(name, "", generate=lambda r: prog, reference=reference, tolerance=tolerance,
                            sample_inputs=sample_inputs)
            spec = KernelSpec(name, 0, int(rng.integers(2**62)), PLACEHOLDER, prog)
            try:
                screen(family, spec, lambda inputs, spec=spec: reference(spec, inputs))
                break
            except KernelRejected:
                prog = draw(rng)
        return prog

    return generate
