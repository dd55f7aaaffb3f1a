"""Shared pieces of the tile families (``tiles``, ``reduction``): array layouts of tiles over a launch grid,
type spellings, and random ``@wp.func`` element functions for ``wp.tile_map`` / ``wp.tile_reduce``.

A *layout* says how the tiles of one array are laid out over the launch grid: which array shape holds them,
how kernel source reaches tile ``(i[, j])`` (``wp.tile_load(x, shape=..., offset=...)`` or ``x[i]``), and how the
NumPy reference turns the array into a batch of tiles of shape ``grid + tile_shape`` and back. Layouts can be
*ragged*: the array is shorter than the grid covers along one axis, so the last tile reads zeros past the end
(``tile_load`` bounds checking) and ``tile_store`` skips those elements (measured on Warp 1.19, CPU and CUDA
codegen). The reference pads with zeros and crops, which copies that behaviour exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kernels import _common as C
from kernels import _expr as E

TY_SPELL = {"float32": "float", "float64": "wp.float64", "int32": "int"}
_ARRAY_SPELL = {1: "wp.array(dtype={})", 2: "wp.array2d(dtype={})", 3: "wp.array3d(dtype={})"}


def array_type(dtype: str, ndim: int) -> str:
    return _ARRAY_SPELL[ndim].format(TY_SPELL[dtype])


def shape_text(ts: tuple[int, ...], consts: dict[int, str] | None = None) -> str:
    """``8`` / ``(8,)`` for 1D tiles (both spellings are accepted), ``(4, 8)`` for 2D."""
    parts = [consts.get(n, str(n)) if consts else str(n) for n in ts]
    if len(parts) == 1:
        return parts[0]
    return "(" + ", ".join(parts) + ")"


# ------------------------------------------------------------------------------------------------------------
# Layouts

#: layout kinds by (grid rank, tile rank)
LAYOUT_KINDS = {
    (1, 1): ("flat", "batch"),
    (1, 2): ("rows", "cols", "batch"),
    (2, 1): ("row2",),
    (2, 2): ("block2", "batch2"),
}
RAGGED_AXIS = {"rows": 0, "cols": 1, "flat": 0, "block2": 1, "row2": 1}


@dataclass(frozen=True, slots=True)
class Layout:
    kind: str                       # see LAYOUT_KINDS, plus "shared" (one tile, no offset, same for all blocks)
    grid: tuple[int, ...]
    ts: tuple[int, ...]             # tile shape
    short: int = 0                  # ragged: the array is this much shorter than the grid covers

    @property
    def full_shape(self) -> tuple[int, ...]:
        g, ts, k = self.grid, self.ts, self.kind
        if k == "shared":
            return ts
        if k == "rows":
            return (g[0] * ts[0], ts[1])
        if k == "cols":
            return (ts[0], g[0] * ts[1])
        if k == "batch":
            return (g[0],) + ts
        if k == "flat":
            return (g[0] * ts[0],)
        if k == "block2":
            return (g[0] * ts[0], g[1] * ts[1])
        if k == "batch2":
            return (g[0], ts[0], g[1] * ts[1])
        if k == "row2":
            return (g[0], g[1] * ts[0])
        raise ValueError(k)

    @property
    def shape(self) -> tuple[int, ...]:
        full = list(self.full_shape)
        if self.short:
            full[RAGGED_AXIS[self.kind]] -= self.short
        return tuple(full)

    @property
    def ndim(self) -> int:
        return len(self.full_shape)

    def access(self, name: str, idx: tuple[str, ...], consts: dict[int, str] | None = None) -> tuple[str, str | None]:
        """(array expression, offset text or None) for tile ``idx`` of array ``name``."""
        c = (lambda n: consts.get(n, str(n))) if consts else str
        i = idx[0] if idx else None
        j = idx[1] if len(idx) > 1 else None
        k, ts = self.kind, self.ts
        if k == "shared":
            return name, None
        if k == "rows":
            return name, (f"({i}, 0)" if ts[0] == 1 else f"({i} * {c(ts[0])}, 0)")
        if k == "cols":
            return name, f"(0, {i} * {c(ts[1])})"
        if k == "batch":
            return f"{name}[{i}]", None
        if k == "flat":
            return name, f"{i} * {c(ts[0])}"
        if k == "block2":
            return name, f"({i} * {c(ts[0])}, {j} * {c(ts[1])})"
        if k == "batch2":
            return f"{name}[{i}]", f"(0, {j} * {c(ts[1])})"
        if k == "row2":
            return f"{name}[{i}]", f"{j} * {c(ts[0])}"
        raise ValueError(k)

    def to_tiles(self, arr: np.ndarray) -> np.ndarray:
        """Array (of ``self.shape``) -> batch of tiles ``grid + ts``, zero padded where ragged."""
        a = np.asarray(arr)
        if self.short:
            pad = [(0, 0)] * a.ndim
            pad[RAGGED_AXIS[self.kind]] = (0, self.short)
            a = np.pad(a, pad)
        g, ts, k = self.grid, self.ts, self.kind
        if k == "shared":
            return np.broadcast_to(a, g + ts)
        if k == "rows":
            return a.reshape(g[0], ts[0], ts[1])
        if k == "cols":
            return a.reshape(ts[0], g[0], ts[1]).transpose(1, 0, 2)
        if k == "batch":
            return a
        if k == "flat":
            return a.reshape(g[0], ts[0])
        if k in ("block2", "batch2"):
            return a.reshape(g[0], ts[0], g[1], ts[1]).transpose(0, 2, 1, 3)
        if k == "row2":
            return a.reshape(g[0], g[1], ts[0])
        raise ValueError(k)

    def from_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """Batch of tiles -> array of ``self.shape`` (elements past a ragged end are dropped, like the store)."""
        g, ts, k = self.grid, self.ts, self.kind
        t = np.asarray(tiles)
        if k == "rows":
            a = t.reshape(g[0] * ts[0], ts[1])
        elif k == "cols":
            a = t.transpose(1, 0, 2).reshape(ts[0], g[0] * ts[1])
        elif k == "batch":
            a = t
        elif k == "flat":
            a = t.reshape(g[0] * ts[0])
        elif k == "block2":
            a = t.transpose(0, 2, 1, 3).reshape(g[0] * ts[0], g[1] * ts[1])
        elif k == "batch2":
            a = t.transpose(0, 2, 1, 3).reshape(g[0], ts[0], g[1] * ts[1])
        elif k == "row2":
            a = t.reshape(g[0], g[1] * ts[0])
        else:
            raise ValueError(k)
        return a[tuple(slice(0, n) for n in self.shape)].copy()


def random_layout(rng: np.random.Generator, grid: tuple[int, ...], ts: tuple[int, ...],
                  ragged_p: float = 0.0) -> Layout:
    kinds = LAYOUT_KINDS[(len(grid), len(ts))]
    kind = kinds[int(rng.integers(len(kinds)))]
    short = 0
    if kind in RAGGED_AXIS and rng.random() < ragged_p:
        axis_len = Layout(kind, grid, ts).full_shape[RAGGED_AXIS[kind]]
        tile_len = ts[0] if kind in ("rows", "flat", "row2") else ts[-1]
        short = int(rng.integers(1, tile_len)) if tile_len > 1 and axis_len > tile_len else 0
    return Layout(kind, grid, ts, short)


# ------------------------------------------------------------------------------------------------------------
# Random element functions (@wp.func) over scalars, with intervals

MATH_WRAP = ("sin", "cos", "tanh", "atan", "exp", "sqrt", "log")


def wrap_math(rng: np.random.Generator, node: E.Node, allowed=MATH_WRAP) -> E.Node:
    """Apply one math builtin that is defined on ``node``'s interval (or return ``node`` unchanged)."""
    iv = node.iv
    options = []
    for op in allowed:
        if op in ("sin", "cos"):
            options.append((op, E.Interval(-1.0, 1.0)))
        elif op == "tanh":
            options.append((op, E.Interval(math.tanh(iv.lo), math.tanh(iv.hi))))
        elif op == "atan":
            options.append((op, E.Interval(math.atan(iv.lo), math.atan(iv.hi))))
        elif op == "exp" and iv.hi <= 2.5 and iv.lo >= -8:
            options.append((op, E.Interval(math.exp(iv.lo), math.exp(iv.hi))))
        elif op == "sqrt" and iv.lo >= 0.05:
            options.append((op, E.Interval(math.sqrt(iv.lo), math.sqrt(iv.hi))))
        elif op == "log" and iv.lo >= 0.1:
            options.append((op, E.Interval(math.log(iv.lo), math.log(iv.hi))))
    if not options:
        return node
    op, out_iv = options[int(rng.integers(len(options)))]
    if out_iv.lo > out_iv.hi:
        out_iv = E.Interval(out_iv.hi, out_iv.lo)
    return E.Node(op, (node,), iv=out_iv)


@dataclass(frozen=True, slots=True)
class ElemFunc:
    """A generated ``@wp.func`` of 1-3 scalar parameters: local bindings then a return expression."""

    name: str
    params: tuple[str, ...]
    statements: tuple[tuple[str, E.Node], ...]
    ret: E.Node
    ty: str

    def source(self) -> str:
        ty = E.SCALARS[self.ty]
        spelled = TY_SPELL[self.ty]
        lines = ["@wp.func", f"def {self.name}({', '.join(f'{p}: {spelled}' for p in self.params)}) -> {spelled}:"]
        for name, node in self.statements:
            lines.append(f"    {name} = {E.emit(node, ty)}")
        lines.append(f"    return {E.emit(self.ret, ty)}")
        return "\n".join(lines) + "\n"

    def evaluate(self, *args: np.ndarray) -> np.ndarray:
        ty = E.SCALARS[self.ty]
        env = dict(zip(self.params, args))
        for name, node in self.statements:
            env[name] = E.evaluate(node, env, ty)
        out = E.evaluate(self.ret, env, ty)
        return np.broadcast_to(out, np.broadcast_shapes(*[np.shape(a) for a in args])).astype(ty.np_ref)


class ExprGen(E.ExprGen):
    """``_expr.ExprGen`` without comparisons of an expression with itself (``x <= x`` makes dead branches)."""

    def condition(self, depth: int) -> E.Node:
        node = super().condition(depth)
        return self._fix(node)

    def _fix(self, node: E.Node) -> E.Node:
        if node.op in ("and", "or"):
            return E.Node(node.op, tuple(self._fix(a) for a in node.args))
        a, b = node.args
        if a == b:
            b = self.constant()
        return E.Node(node.op, (a, b))


def make_elem_func(rng: np.random.Generator, name: str, ty: str, ivs: list[E.Interval],
                   limit: float = 1e3, math_p: float = 0.5, binary=("add", "sub", "mul", "div", "min", "max")
                   ) -> ElemFunc:
    """A random function of ``len(ivs)`` parameters that uses every parameter and stays within ``limit``."""
    scalar = E.SCALARS[ty]
    params = ("x", "y", "z")[: len(ivs)] if rng.random() < 0.6 else ("a", "b", "c")[: len(ivs)]
    leaves = {p: iv for p, iv in zip(params, ivs)}
    gen = ExprGen(rng, scalar, dict(leaves), binary=binary)
    statements = []
    for k in range(int(rng.integers(0, 3))):
        node = gen.expr(int(rng.integers(1, 3)))
        if node.op in ("var", "const"):
            node = gen.apply_binary(binary[int(rng.integers(len(binary)))], node, gen.var_leaf())
        if not scalar.is_int and rng.random() < math_p:
            node = wrap_math(rng, node)
        if node.iv.mag > limit:
            continue
        local = f"{('s', 'r', 'q', 'h')[k % 4]}{k}"
        statements.append((local, node))
        gen.leaves[local] = node.iv
    ret = gen.expr(int(rng.integers(1, 4)))
    if ret.op in ("var", "const"):
        ret = gen.apply_binary(binary[int(rng.integers(len(binary)))], ret, gen.var_leaf())
    if not scalar.is_int and rng.random() < math_p * 0.6:
        ret = wrap_math(rng, ret)
    # every parameter and local must reach the return value
    used = _reach(statements, ret)
    for v in list(gen.leaves):
        if v not in used:
            ret = gen.apply_binary(("add", "sub", "mul")[int(rng.integers(3))], ret, E.var(v, gen.leaves[v]))
            used = _reach(statements, ret)
    if ret.iv.mag > limit:                    # squash: keeps the function bounded whatever the tree did
        if scalar.is_int:
            m = 9973 if limit > 20000 else 97
            ret = E.Node("mod", (ret, E.const(m)), iv=E.Interval(-(m - 1), m - 1))
        else:
            ret = E.Node("tanh", (ret,), iv=E.Interval(-1.0, 1.0))
    return ElemFunc(name, params, tuple(statements), ret, ty)


def _reach(statements, ret: E.Node) -> set[str]:
    return E.reachable({name: E.uses(node) for name, node in statements}, E.uses(ret))


def kernel_text(args_sig: list[str], body: list[str], helpers: list[str], tid: str,
                constants: list[str] = ()) -> str:
    return C.kernel_text(", ".join(args_sig), body, helpers, tid, constants=constants)
