"""tiles: block-level tile programs (CUDA shared-memory / block-configuration patterns) with Warp tiles.

Each block loads 1D or 2D tiles (``wp.tile_load`` with shape and offset, ``x[i]`` batches, shared weight tiles,
ragged last tiles), runs a random sequence of tile operations - elementwise arithmetic with tiles and scalars,
``wp.tile_map`` with builtins or generated ``@wp.func``, ``tile_transpose``, ``tile_broadcast``, ``tile_matmul``
(plain, accumulating with alpha/beta, and K-loop tiled GEMM), ``tile_ones/full/zeros/arange`` constants, rows,
slices, views, reshapes and element extraction - and stores 1-2 result tiles. float32 or float64, 1D or 2D grids.

Element-wise parts are IR (``kernels/ir/tiles.py``): generated ``@wp.func`` element functions are drawn by the
IR's expression builder, printed by its printer and run by its interpreter on whole tiles; builtin operators of
``tile_map`` and of tile arithmetic are rows of the operation table (semantics, intervals, domain guards). The
reference here covers only the tile operations (layouts, broadcast, transpose, matmul, views...). Named tile
sizes (``TILE_M = wp.constant(8)``) also appear in ``wp.static(TILE_M * 2)`` compile-time shape expressions.
"""


from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from harness.family import PLACEHOLDER, Arg, Family, KernelSpec, Program
from kernels._common import ARRAY_NAMES, OUT_NAMES, SCALAR_NAMES, pick, type_tolerance
from kernels.ir.numeric import Interval
from kernels.ir.tiles import (SCALAR_TYPES, apply_op, array_type, bound, call, elem_func, guard, kernel_source, literal,
                              rounded, screened)

LIMIT = 2e3                     # magnitude bound on every intermediate value (by interval arithmetic)
#: tile block widths and their weights: few distinct widths per chunk keep the number of modules (one per width)
#: small, since tile code is expensive to compile (~1.2 s/kernel CPU, ~2.6 s/kernel NVRTC measured)
BLOCK_DIMS = (16, 32, 64, 128)
BLOCK_WEIGHTS = (0.15, 0.35, 0.35, 0.15)
MAP1 = ("sin", "cos", "tanh", "atan", "abs", "exp", "sqrt", "log")
INFIX = {"add": "+", "sub": "-", "mul": "*"}


def _near_zero(iv: Interval, margin: float) -> bool:
    return iv.lo <= margin and iv.hi >= -margin


def dim_text(size: int, consts: dict[int, str] | None) -> str:
    """A tile extent: its named constant (``TILE_M``), a compile-time expression of one
    (``wp.static(TILE_M * 2)``, ``wp.static(TILE_N // 2)``), or the number."""
    if consts:
        if size in consts:
            return consts[size]
        if size % 2 == 0 and size // 2 in consts:
            return f"wp.static({consts[size // 2]} * 2)"
        if size * 2 in consts:
            return f"wp.static({consts[size * 2]} // 2)"
    return str(size)


def shape_text(ts: tuple[int, ...], consts: dict[int, str] | None = None) -> str:
    """``8`` for 1D tiles, ``(4, 8)`` for 2D."""
    parts = [dim_text(n, consts) for n in ts]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


# ------------------------------------------------------------------------------------------------------------
# Layouts: how the tiles of one array lie over the launch grid. ``access`` is the kernel's spelling of tile
# ``(i[, j])`` (``wp.tile_load(x, shape=..., offset=...)`` or ``x[i]``); ``to_tiles`` / ``from_tiles`` are the
# reference's view of the array as a batch of tiles ``grid + tile_shape``. A *ragged* layout's array is shorter
# than the grid covers along one axis: the last tile reads zeros past the end (``tile_load`` bounds checks) and
# ``tile_store`` skips those elements (measured on Warp 1.19, CPU and CUDA codegen); the reference pads with
# zeros and crops, which copies that behaviour exactly.

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
        shapes = {"shared": lambda: ts, "rows": lambda: (g[0] * ts[0], ts[1]), "cols": lambda: (ts[0], g[0] * ts[1]),
                  "batch": lambda: (g[0],) + ts, "flat": lambda: (g[0] * ts[0],),
                  "block2": lambda: (g[0] * ts[0], g[1] * ts[1]), "batch2": lambda: (g[0], ts[0], g[1] * ts[1]),
                  "row2": lambda: (g[0], g[1] * ts[0])}
        return shapes[k]()

    @property
    def shape(self) -> tuple[int, ...]:
        full = list(self.full_shape)
        if self.short:
            full[RAGGED_AXIS[self.kind]] -= self.short
        return tuple(full)

    def access(self, name: str, idx: tuple[str, ...], consts: dict[int, str] | None = None) -> tuple[str, str | None]:
        """(array expression, offset text or None) for tile ``idx`` of array ``name``."""
        def c(size: int) -> str:
            return dim_text(size, consts)
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
# Emission and evaluation of tile expressions (tuples)


class _Ctx:
    """What emission needs: the scalar type, grid index names, layouts of arguments, named constants."""

    def __init__(self, ty: str, idx: tuple[str, ...], consts: dict[int, str]):
        self.ty = ty
        self.sty = SCALAR_TYPES[ty]
        self.D = self.sty.warp
        self.idx = idx
        self.consts = consts
        self.layouts: dict[str, Layout] = {}
        self.load_opts: dict[str, str] = {}

    def lit(self, value: float) -> str:
        text = literal(value, self.sty)
        return f"({text})" if text.startswith("-") else text

    def shp(self, ts) -> str:
        return shape_text(tuple(ts), self.consts)


def _access(c: _Ctx, name: str) -> tuple[str, str]:
    """The array expression and the ``, offset=...`` argument (or nothing) of a tile load/store of ``name``."""
    arr, off = c.layouts[name].access(name, c.idx, c.consts)
    return arr, f", offset={off}" if off is not None else ""


def emit(n, c: _Ctx) -> str:
    k = n[0]
    if k == "v":
        return n[1]
    if k == "lit":
        text = c.lit(n[1])
        return f"({text})" if text.startswith("-") else text
    if k == "load":
        lay = c.layouts[n[1]]
        arr, off_text = _access(c, n[1])
        return f"wp.tile_load({arr}, shape={c.shp(lay.ts)}{off_text}{c.load_opts.get(n[1], '')})"
    if k == "bin":
        _, op, a, b, style = n
        if style == "infix":
            return f"({emit(a, c)} {INFIX[op]} {emit(b, c)})"
        return f"wp.tile_map(wp.{op}, {emit(a, c)}, {emit(b, c)})"
    if k == "scale":
        _, a, s, style = n
        if style == "left":
            return f"({emit(s, c)} * {emit(a, c)})"
        if style == "div":
            return f"({emit(a, c)} / {emit(s, c)})"
        return f"({emit(a, c)} * {emit(s, c)})"
    if k == "rdiv":
        return f"({emit(n[1], c)} / {emit(n[2], c)})"
    if k == "neg":
        return f"(-{emit(n[1], c)})"
    if k == "map1":
        return f"wp.tile_map(wp.{n[1]}, {emit(n[2], c)})"
    if k == "mapf":
        return f"wp.tile_map({n[1].name}, {', '.join(emit(a, c) for a in n[2])})"
    if k == "bcast":
        return f"wp.tile_broadcast({emit(n[1], c)}, shape={c.shp(n[2])})"
    if k == "transpose":
        return f"wp.tile_transpose({emit(n[1], c)})"
    if k == "matmul":
        return f"wp.tile_matmul({emit(n[1], c)}, {emit(n[2], c)})"
    if k == "row":
        return f"{emit(n[1], c)}[{n[2]}]"
    if k == "extract":
        _, a, idx, style = n
        if style == "fn":
            return f"wp.tile_extract({emit(a, c)}, {', '.join(map(str, idx))})"
        return f"{emit(a, c)}[{', '.join(map(str, idx))}]"
    if k == "ones":
        return f"wp.tile_ones(shape={c.shp(n[1])}, dtype={c.D})"
    if k == "full":
        return f"wp.tile_full(shape={c.shp(n[1])}, value={c.lit(n[2])}, dtype={c.D})"
    if k == "zeros":
        return f"wp.tile_zeros(shape={c.shp(n[1])}, dtype={c.D})"
    if k == "arange":
        _, start, step, count = n
        if start == 0 and step == 1:
            return f"wp.tile_arange({count}, dtype={c.D})"
        stop = start + step * count
        return f"wp.tile_arange({_num(start)}, {_num(stop)}, {_num(step)}, dtype={c.D})"
    if k == "reshape":
        return f"wp.tile_reshape({emit(n[1], c)}, shape={c.shp(n[2])})"
    if k == "slice":
        _, a, r0, r1, rank = n
        return f"{emit(a, c)}[{r0}:{r1}{', :' if rank == 2 else ''}]"
    if k == "view":
        _, a, off, shape = n
        off_text = f"({off[0]},)" if len(off) == 1 else f"({', '.join(map(str, off))})"
        return f"wp.tile_view({emit(a, c)}, offset={off_text}, shape={c.shp(shape)})"
    raise ValueError(k)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def evaluate(n, env: dict, nb: int, batch: tuple[int, ...]):
    k = n[0]
    ev = lambda x: evaluate(x, env, nb, batch)  # noqa: E731
    if k == "v":
        return env[n[1]]
    if k == "lit":
        return np.float64(n[2]) if len(n) > 2 else np.float64(n[1])
    if k == "load":
        return env["@tiles"][n[1]]
    ty = env["@ty"]
    if k == "bin":
        return apply_op(n[1], ty, ev(n[2]), ev(n[3]))
    if k == "scale":
        a, s = ev(n[1]), ev(n[2])
        return apply_op("div" if n[3] == "div" else "mul", ty, a, _scalar_to(s, a, nb))
    if k == "rdiv":
        a = ev(n[2])
        return apply_op("div", ty, _scalar_to(ev(n[1]), a, nb), a)
    if k == "neg":
        return apply_op("neg", ty, ev(n[1]))
    if k == "map1":
        return apply_op(n[1], ty, ev(n[2]))
    if k == "mapf":
        return call(n[1], *[ev(a) for a in n[2]])
    if k == "bcast":
        a = ev(n[1])
        ts = a.shape[nb:]
        shape = tuple(n[2])
        a = a.reshape(batch + (1,) * (len(shape) - len(ts)) + ts)
        return np.broadcast_to(a, batch + shape)
    if k == "transpose":
        return np.swapaxes(ev(n[1]), -1, -2)
    if k == "matmul":
        return np.matmul(ev(n[1]), ev(n[2]))
    if k == "row":
        return ev(n[1])[..., n[2], :]
    if k == "extract":
        a = ev(n[1])
        return a[(Ellipsis,) + tuple(n[2])]
    if k in ("ones", "full", "zeros"):
        value = {"ones": 1.0, "zeros": 0.0}.get(k)
        if value is None:
            value = n[3]
        return np.full(batch + tuple(n[1]), value, dtype=np.float64)
    if k == "arange":
        _, start, step, count = n
        return np.broadcast_to(start + step * np.arange(count, dtype=np.float64), batch + (count,))
    if k == "reshape":
        return ev(n[1]).reshape(batch + tuple(n[2]))
    if k == "slice":
        _, a, r0, r1, rank = n
        v = ev(a)
        return v[..., r0:r1, :] if rank == 2 else v[..., r0:r1]
    if k == "view":
        _, a, off, shape = n
        v = ev(a)
        return v[(Ellipsis,) + tuple(slice(o, o + s) for o, s in zip(off, shape))]
    raise ValueError(k)


def _scalar_to(s, a, nb: int):
    """A per-block scalar (shape ``batch``) or a plain scalar, shaped to combine with tile batch ``a``."""
    s = np.asarray(s, dtype=np.float64)
    if s.ndim == 0:
        return s
    return s.reshape(s.shape + (1,) * (a.ndim - s.ndim))


# ------------------------------------------------------------------------------------------------------------
# Generation


class _Val:
    __slots__ = ("name", "shape", "iv", "deps", "loaded")

    def __init__(self, name, shape, iv, deps, loaded=False):
        self.name, self.shape, self.iv, self.deps, self.loaded = name, tuple(shape), iv, frozenset(deps), loaded


class _Gen:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        r = rng
        self.ty = pick(r, ("float32", "float32", "float64"))
        self.sty = SCALAR_TYPES[self.ty]
        two_d = r.random() < 0.8
        if two_d:
            self.M = int(pick(r, (4, 8, 8, 16)))
            self.N = int(pick(r, (4, 8, 8, 16)))
            self.ts = (self.M, self.N)
        else:
            self.N = int(pick(r, (8, 16, 32, 64)))
            self.M = None
            self.ts = (self.N,)
        if two_d and r.random() < 0.4:
            self.grid = (int(r.integers(2, 4)), int(r.integers(2, 4)))
            self.idx = ("i", "j")
        else:
            self.grid = (int(r.integers(2, 7)),)
            self.idx = ("i",)
        self.block_dim = int(r.choice(BLOCK_DIMS, p=BLOCK_WEIGHTS))
        consts: dict[int, str] = {}
        self.const_lines: list[str] = []
        if r.random() < 0.3:
            for n, nm in ((self.M, "TILE_M"), (self.N, "TILE_N")):
                if n is not None and n not in consts:
                    consts[n] = nm
                    self.const_lines.append(f"{nm} = wp.constant({n})")
        self.c = _Ctx(self.ty, self.idx, consts)
        self.lo, self.hi = pick(r, ((-2.0, 2.0), (-1.0, 1.0), (0.5, 2.0), (-1.0, 3.0), (0.25, 1.5)))
        self.args: list[Arg] = []
        self.stmts: list[tuple] = []
        self.helpers = []
        self.funcs = 0
        self.pool: list[_Val] = []
        self.names_used: set[str] = set()
        self.counter = 0
        self.ops: set[str] = set()
        self.scalar_arg: _Val | None = None
        self.in_names = list(pick(r, ARRAY_NAMES, len(ARRAY_NAMES)))
        self.out_names = list(pick(r, OUT_NAMES, len(OUT_NAMES)))
        self.ragged = False
        self.iv_of: dict[str, Interval] = {}

    # --- helpers ------------------------------------------------------------------------------------------
    def _iv(self, op: str, a: Interval, b: Interval) -> Interval:
        """Interval of table operation ``op`` (the same rule the interval engine uses)."""
        return bound(op, self.sty, a, b)

    def fresh(self, prefix="t") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def in_iv(self, name: str) -> Interval:
        return self.iv_of[name]

    def new_input(self, ts, lay: Layout | None = None, ragged_p=0.25, lo=None, hi=None) -> tuple[str, Layout]:
        lay = lay or random_layout(self.rng, self.grid, tuple(ts), ragged_p)
        name = self.in_names.pop()
        self.c.layouts[name] = lay
        lo = self.lo if lo is None else lo
        hi = self.hi if hi is None else hi
        self.args.append(Arg(name, self.ty, "in", lay.shape, lo, hi))
        self.iv_of[name] = Interval(min(lo, 0.0), max(hi, 0.0)) if lay.short else Interval(lo, hi)
        opts = ""
        if self.rng.random() < 0.25:
            opts += ', storage="shared"'           # stage the tile in shared memory explicitly
            self.ops.add("shared_storage")
        if not lay.short and self.rng.random() < 0.1:
            opts += ", bounds_check=False"         # in bounds by construction
            self.ops.add("no_bounds_check")
        if opts:
            self.c.load_opts[name] = opts
        self.ragged |= bool(lay.short)
        self.ops.add(f"layout_{lay.kind}")
        return name, lay

    def assign(self, node, shape, iv, deps, prefix="t", loaded=False) -> _Val:
        name = self.fresh(prefix)
        self.stmts.append(("assign", name, node))
        v = _Val(name, shape, iv, deps, loaded)
        return v

    def load_main(self) -> _Val:
        name, lay = self.new_input(self.ts)
        v = self.assign(("load", name), self.ts, self.in_iv(name), {name}, loaded=True)
        self.pool.append(v)
        self.ops.add("tile_load")
        return v

    def pick_pool(self, k=1, shape=None, pred=None) -> list[_Val]:
        cands = [v for v in self.pool if (shape is None or v.shape == shape) and (pred is None or pred(v))]
        if len(cands) < k:
            return []
        # prefer recent values
        w = np.arange(1, len(cands) + 1, dtype=np.float64) ** 1.5
        idx = self.rng.choice(len(cands), size=k, replace=False, p=w / w.sum())
        return [cands[int(i)] for i in idx]

    def literal(self, lo=0.25, hi=2.5, allow_neg=True) -> tuple:
        digits = int(self.rng.integers(1, 3))
        mag = round(float(self.rng.uniform(lo, hi)), digits)
        if abs(mag - 1.0) < 1e-9:
            mag = 1.5
        value = -mag if allow_neg and self.rng.random() < 0.3 else mag
        return ("lit", value, rounded(value, self.sty))

    def scalar_param(self) -> _Val:
        if self.scalar_arg is None:
            name = pick(self.rng, SCALAR_NAMES)
            lo, hi = pick(self.rng, ((0.5, 2.0), (-1.5, -0.5), (0.25, 1.25)))
            self.args.append(Arg(name, self.ty, "scalar", (), lo, hi))
            self.scalar_arg = _Val(name, (), Interval(lo, hi), {name})
        return self.scalar_arg

    def push(self, node, iv, deps, shape=None, prefix="t") -> bool:
        if iv.mag > LIMIT or not np.isfinite(iv.lo) or not np.isfinite(iv.hi):
            return False
        v = self.assign(node, shape or self.ts, iv, deps, prefix)
        self.pool.append(v)
        return True

    # --- operations producing a main-shape tile ------------------------------------------------------------
    def op_binary(self) -> bool:
        vals = self.pick_pool(2) if len(self.pool) >= 2 and self.rng.random() < 0.85 else self.pick_pool(1) * 2
        if not vals:
            return False
        a, b = vals
        op = pick(self.rng, ("add", "sub", "mul", "add", "mul", "min", "max", "div"))
        if a is b and op in ("sub", "min", "max", "div"):
            op = "mul"
        if op in ("min", "max") and (a.iv.hi <= b.iv.lo or b.iv.hi <= a.iv.lo):
            op = "add"
        if op == "div" and _near_zero(b.iv, 0.25):
            op = "mul"
        style = "infix" if op in INFIX and self.rng.random() < 0.7 else "map"
        iv = self._iv(op, a.iv, b.iv)
        self.ops.add(f"{'map_' if style == 'map' else ''}{op}")
        return self.push(("bin", op, ("v", a.name), ("v", b.name), style), iv, a.deps | b.deps)

    def op_scale(self) -> bool:
        vals = self.pick_pool(1)
        if not vals:
            return False
        a = vals[0]
        if self.rng.random() < 0.3:
            s = self.scalar_param()
            snode, siv, sdeps = ("v", s.name), s.iv, s.deps
        else:
            snode = self.literal()
            siv, sdeps = Interval(snode[2], snode[2]), frozenset()
        style = pick(self.rng, ("right", "left", "div"))
        if style == "div" and _near_zero(siv, 0.25):
            style = "right"
        iv = self._iv("div" if style == "div" else "mul", a.iv, siv)
        self.ops.add("scale_div" if style == "div" else "scale")
        return self.push(("scale", ("v", a.name), snode, style), iv, a.deps | sdeps)

    def op_rdiv(self) -> bool:
        vals = self.pick_pool(1, pred=lambda v: not _near_zero(v.iv, 0.25))
        if not vals:
            return False
        a = vals[0]
        s = self.literal(0.5, 3.0)
        iv = self._iv("div", Interval(s[2], s[2]), a.iv)
        self.ops.add("scalar_div_tile")
        return self.push(("rdiv", s, ("v", a.name)), iv, a.deps)

    def op_neg(self) -> bool:
        vals = self.pick_pool(1)
        if not vals:
            return False
        a = vals[0]
        self.ops.add("neg")
        return self.push(("neg", ("v", a.name)), Interval(-a.iv.hi, -a.iv.lo), a.deps)

    def op_map1(self) -> bool:
        vals = self.pick_pool(1)
        if not vals:
            return False
        a = vals[0]
        iv = a.iv
        # the table's guards keep each builtin inside its domain; a margin keeps sqrt/log away from their kinks,
        # exp small, and abs only where it changes something
        margins = {"abs": iv.lo < 0 < iv.hi, "exp": iv.hi <= 2.5 and iv.lo >= -8, "sqrt": iv.lo >= 0.05,
                   "log": iv.lo >= 0.1}
        options = tuple(fn for fn in MAP1 if margins.get(fn, True) and guard(fn, self.sty, iv) is None)
        fn = pick(self.rng, options)
        self.ops.add(f"map_{fn}")
        return self.push(("map1", fn, ("v", a.name)), bound(fn, self.sty, iv), a.deps)

    def op_mapf(self) -> bool:
        k = int(pick(self.rng, (1, 2, 2, 3)))
        vals = self.pick_pool(k) if len(self.pool) >= k else []
        if not vals:
            return False
        name = f"{PLACEHOLDER}_f{self.funcs}"
        self.funcs += 1
        fn = elem_func(self.rng, name, self.sty, [v.iv for v in vals], limit=LIMIT / 4)
        self.helpers.append(fn.func)
        deps = frozenset().union(*[v.deps for v in vals])
        self.ops.add(f"map_func{k}")
        return self.push(("mapf", fn.func, [("v", v.name) for v in vals]), fn.ret, deps)

    def op_bcast(self) -> bool:
        if len(self.ts) != 2:
            return False
        M, N = self.ts
        vals = self.pick_pool(1)
        if not vals:
            return False
        a = vals[0]
        roll = self.rng.random()
        if roll < 0.4:                                    # broadcast a row vector input
            name, lay = self.new_input((N,), ragged_p=0.0)
            src = ("load", name)
            src_iv, deps = self.in_iv(name), {name}
            self.ops.add("broadcast_row")
        elif roll < 0.7:                                  # broadcast a column: (M, 1) tile
            if self.rng.random() < 0.5:
                name, lay = self.new_input((M, 1), ragged_p=0.0)
                src = ("load", name)
            else:
                name, lay = self.new_input((M,), ragged_p=0.0)
                src = ("reshape", ("load", name), (M, 1))
                self.ops.add("reshape")
            src_iv, deps = self.in_iv(name), {name}
            self.ops.add("broadcast_col")
        else:                                             # broadcast a row of an existing tile
            b = self.pick_pool(1)[0]
            r = int(self.rng.integers(-1, M))
            src = ("row", ("v", b.name), r)
            src_iv, deps = b.iv, b.deps
            self.ops.add("broadcast_tile_row")
        bnode = ("bcast", src, (M, N))
        if self.rng.random() < 0.4:
            bv = self.assign(bnode, (M, N), src_iv, deps, prefix="b")
            bnode = ("v", bv.name)
        op = pick(self.rng, ("add", "sub", "mul"))
        style = "infix" if self.rng.random() < 0.7 else "map"
        iv = self._iv(op, a.iv, src_iv)
        return self.push(("bin", op, ("v", a.name), bnode, style), iv, a.deps | deps)

    def op_transpose(self) -> bool:
        if len(self.ts) != 2:
            return False
        M, N = self.ts
        if M == N and self.pool and self.rng.random() < 0.5:
            a = self.pick_pool(1)[0]
            src, iv, deps = ("v", a.name), a.iv, a.deps
        else:
            name, lay = self.new_input((N, M))
            src, iv, deps = ("load", name), self.in_iv(name), {name}
        self.ops.add("transpose")
        node = ("transpose", src)
        if self.pool and self.rng.random() < 0.6:
            b = self.pick_pool(1)[0]
            op = pick(self.rng, ("add", "sub", "mul"))
            return self.push(("bin", op, ("v", b.name), node, "infix"), self._iv(op, b.iv, iv), deps | b.deps)
        return self.push(node, iv, deps)

    def _mm_iv(self, a: Interval, b: Interval, k: int) -> Interval:
        m = k * a.mag * b.mag
        return Interval(-m, m)

    def op_matmul(self) -> bool:
        if len(self.ts) != 2:
            return False
        M, N = self.ts
        roll = self.rng.random()
        a_node = b_node = None
        deps: set = set()
        if roll < 0.35 and self.pool:                     # p @ W, W (N, N): shared or per tile
            p = self.pick_pool(1)[0]
            lay = Layout("shared", self.grid, (N, N)) if self.rng.random() < 0.5 else None
            name, lay = self.new_input((N, N), lay, ragged_p=0.0, lo=-1.0, hi=1.0)
            a_node, a_iv, b_node, b_iv, K = ("v", p.name), p.iv, ("load", name), self.in_iv(name), N
            deps = set(p.deps) | {name}
            self.ops.add("matmul_weight_right")
        elif roll < 0.55 and self.pool:                   # A @ p, A (M, M)
            p = self.pick_pool(1)[0]
            lay = Layout("shared", self.grid, (M, M)) if self.rng.random() < 0.5 else None
            name, lay = self.new_input((M, M), lay, ragged_p=0.0, lo=-1.0, hi=1.0)
            a_node, a_iv, b_node, b_iv, K = ("load", name), self.in_iv(name), ("v", p.name), p.iv, M
            deps = set(p.deps) | {name}
            self.ops.add("matmul_weight_left")
        elif roll < 0.7 and M == N and len(self.pool) >= 1:   # p @ q^T
            p, q = (self.pick_pool(2) or self.pick_pool(1) * 2)
            a_node, a_iv, b_node, b_iv, K = ("v", p.name), p.iv, ("transpose", ("v", q.name)), q.iv, N
            deps = set(p.deps | q.deps)
            self.ops.add("matmul_transposed")
        else:                                             # two fresh operands (M, K) @ (K, N)
            K = int(pick(self.rng, (4, 8, 16)))
            na, la = self.new_input((M, K))
            nb_, lb = self.new_input((K, N), Layout("shared", self.grid, (K, N)) if self.rng.random() < 0.3
                                     else None, ragged_p=0.0)
            a_node, a_iv, b_node, b_iv = ("load", na), self.in_iv(na), ("load", nb_), self.in_iv(nb_)
            if self.rng.random() < 0.5:
                av = self.assign(a_node, (M, K), a_iv, {na}, prefix="a", loaded=True)
                bv = self.assign(b_node, (K, N), b_iv, {nb_}, prefix="w", loaded=True)
                a_node, b_node = ("v", av.name), ("v", bv.name)
            deps = {na, nb_}
            self.ops.add("matmul")
        iv = self._mm_iv(a_iv, b_iv, K)
        if iv.mag > LIMIT:
            return False
        if self.rng.random() < 0.35:                      # accumulate into an existing or constant tile
            kind = pick(self.rng, ("zeros", "ones", "full", "pool"))
            alpha = beta = None
            if self.rng.random() < 0.4:
                alpha = self.literal(0.25, 1.5)
                beta = self.literal(0.25, 1.5) if kind != "zeros" else None
            if kind == "pool" and self.pool:
                p = self.pick_pool(1)[0]
                init = ("scale", ("v", p.name), self.literal(0.25, 2.0), "right")
                init_iv = self._iv("mul", p.iv, Interval(-2.0, 2.0))
                deps |= p.deps
            elif kind == "full":
                lit = self.literal()
                init, init_iv = ("full", (M, N), lit[1], lit[2]), Interval(lit[2], lit[2])
            elif kind == "ones":
                init, init_iv = ("ones", (M, N)), Interval(1.0, 1.0)
            else:
                init, init_iv = ("zeros", (M, N)), Interval(0.0, 0.0)
            acc = self.assign(init, (M, N), init_iv, set(), prefix="acc")
            ma = 1.0 if alpha is None else abs(alpha[2])
            mb = 1.0 if beta is None else abs(beta[2])
            iv = Interval(-(ma * iv.mag + mb * init_iv.mag), ma * iv.mag + mb * init_iv.mag)
            self.stmts.append(("mm_acc", acc.name, a_node, b_node, alpha, beta))
            self.ops.add("matmul_accumulate")
            acc.iv, acc.deps = iv, frozenset(deps)
            self.pool.append(acc)
            return True
        return self.push(("matmul", a_node, b_node), iv, deps)

    def op_gemm_loop(self) -> bool:
        """Classic tiled GEMM: loop over K tiles, load an A tile and a B tile, accumulate with tile_matmul."""
        if len(self.ts) != 2 or any(s[0] == "gemm" for s in self.stmts):
            return False
        M, N = self.ts
        TK = int(pick(self.rng, (4, 8)))
        KT = int(self.rng.integers(2, 5))
        na, nb_ = self.in_names.pop(), self.in_names.pop()
        # A: (grid rows * M, KT * TK), B: (KT * TK, N [* grid cols])
        g0 = self.grid[0]
        a_shape = (g0 * M, KT * TK)
        b_shape = (KT * TK, N * (self.grid[1] if len(self.grid) == 2 else 1))
        self.args.append(Arg(na, self.ty, "in", a_shape, -1.0, 1.0))
        self.args.append(Arg(nb_, self.ty, "in", b_shape, -1.0, 1.0))
        self.c.layouts[na] = Layout("gemmA", self.grid, (M, TK))
        self.c.layouts[nb_] = Layout("gemmB", self.grid, (TK, N))
        acc = self.fresh("acc")
        kv = pick(self.rng, ("k", "kk", "kt"))
        self.stmts.append(("gemm", acc, na, nb_, kv, KT, (M, N, TK)))
        iv = Interval(-KT * TK * 1.0, KT * TK * 1.0)
        self.pool.append(_Val(acc, (M, N), iv, {na, nb_}))
        self.ops.add("gemm_k_loop")
        return True

    def op_extract(self) -> bool:
        vals = self.pick_pool(1)
        if not vals:
            return False
        a = vals[0]
        idx = tuple(int(self.rng.integers(0, n)) for n in a.shape)
        style = "fn" if self.rng.random() < 0.5 else "sub"
        s = self.assign(("extract", ("v", a.name), idx, style), (), a.iv, a.deps, prefix="s")
        self.ops.add("tile_extract" if style == "fn" else "tile_index")
        b = self.pick_pool(1)[0]
        op = pick(self.rng, ("right", "left"))
        return self.push(("scale", ("v", b.name), ("v", s.name), op), self._iv("mul", b.iv, a.iv),
                         a.deps | b.deps)

    def op_const(self) -> bool:
        vals = self.pick_pool(1)
        if not vals:
            return False
        a = vals[0]
        roll = self.rng.random()
        ts = self.ts
        if roll < 0.3:
            node, iv = ("ones", ts), Interval(1.0, 1.0)
            self.ops.add("tile_ones")
        elif roll < 0.6:
            lit = self.literal()
            node, iv = ("full", ts, lit[1], lit[2]), Interval(lit[2], lit[2])
            self.ops.add("tile_full")
        else:
            n = ts[-1]
            start = float(pick(self.rng, (0.0, 0.0, 1.0, -2.0, 0.5)))
            step = float(pick(self.rng, (1.0, 1.0, 0.5, 0.25, 2.0)))
            if start + step * n > 40:
                step = 0.25
            node = ("arange", start, step, n)
            iv = Interval(min(start, start + step * (n - 1)), max(start, start + step * (n - 1)))
            if len(ts) == 2:
                node = ("bcast", node, ts)
            self.ops.add("tile_arange")
        op = pick(self.rng, ("add", "sub", "mul"))
        if op == "mul" and node[0] == "ones":
            op = "add"
        style = "infix" if self.rng.random() < 0.75 else "map"
        first = self.rng.random() < 0.5
        pair = (("v", a.name), node) if first else (node, ("v", a.name))
        iv = self._iv(op, a.iv, iv) if first else self._iv(op, iv, a.iv)
        return self.push(("bin", op, pair[0], pair[1], style), iv, a.deps)

    def op_accumulate(self) -> bool:
        """``acc = wp.tile_zeros(...)`` then ``acc += x`` / ``acc -= y`` statements."""
        if len(self.pool) < 2:
            return False
        vals = self.pick_pool(int(self.rng.integers(2, min(4, len(self.pool)) + 1)))
        acc = self.fresh("acc")
        kind = "zeros" if self.rng.random() < 0.7 else "ones"
        self.stmts.append(("assign", acc, (kind, self.ts)))
        lo = hi = 0.0 if kind == "zeros" else 1.0
        deps = set()
        for v in vals:
            op = "add" if self.rng.random() < 0.7 else "sub"
            if self.rng.random() < 0.3:
                lit = self.literal(0.25, 2.0)
                node, viv = ("scale", ("v", v.name), lit, "right"), self._iv("mul", v.iv, Interval(lit[2], lit[2]))
            else:
                node, viv = ("v", v.name), v.iv
            self.stmts.append(("iop", acc, op, node))
            iv = self._iv(op, Interval(lo, hi), viv)
            lo, hi = iv.lo, iv.hi
            deps |= v.deps
        self.ops.add("inplace_accumulate")
        self.pool.append(_Val(acc, self.ts, Interval(lo, hi), deps))
        return True

    # --- outputs ----------------------------------------------------------------------------------------------
    def store(self, node, ts, deps_ok=True, prefer_ragged=0.2):
        name = self.out_names.pop()
        lay = random_layout(self.rng, self.grid, tuple(ts), prefer_ragged)
        self.c.layouts[name] = lay
        self.args.append(Arg(name, self.ty, "out", lay.shape))
        self.stmts.append(("store", name, node))
        self.ops.add("tile_store")

    def finish(self):
        res = self.pool[-1]
        if res.loaded:
            self.op_map1()
            res = self.pool[-1]
        extra = None
        if self.rng.random() < 0.5:
            others = [v for v in self.pool if v is not res and not v.loaded]
            if others:
                extra = others[int(self.rng.integers(len(others)))]
        # fold up to two values nothing consumed into the result, and every input that reaches no output
        consumed = set()
        for st in self.stmts:
            consumed |= _stmt_refs(st)
        leaves = [v for v in self.pool if v is not res and v is not extra and v.name not in consumed
                  and v.shape == self.ts and not v.loaded]
        fold = [leaves[int(i)] for i in self.rng.permutation(len(leaves))[:2]]
        all_inputs = {a.name for a in self.args if a.role in ("in", "scalar")}
        covered = set(res.deps) | (set(extra.deps) if extra else set())
        for m in sorted(all_inputs - covered - set().union(*[v.deps for v in fold] or [set()])):
            if any(m in v.deps for v in fold):
                continue
            holder = next((v for v in reversed(self.pool) if m in v.deps and v is not res), None)
            if holder is not None and holder not in fold:
                fold.append(holder)
        for holder in fold:
            op = pick(self.rng, ("add", "sub", "add", "mul"))
            if op == "mul" and self._iv("mul", res.iv, holder.iv).mag > LIMIT:
                op = "add"
            style = "infix" if self.rng.random() < 0.8 else "map"
            node = ("bin", op, ("v", res.name), ("v", holder.name), style)
            res = self.assign(node, self.ts, self._iv(op, res.iv, holder.iv), res.deps | holder.deps)
            self.pool.append(res)
        self.store(("v", res.name), self.ts)
        if extra is not None:
            self.store_derived(extra)
        self.prune()

    def prune(self):
        """Drop statements whose values reach no store (and the helper functions only they used)."""
        live: set[str] = set()
        keep = []
        for st in reversed(self.stmts):
            k = st[0]
            if k == "store":
                keep.append(st)
                live |= _stmt_refs(st)
            elif k in ("assign", "gemm"):
                if st[1] in live:
                    keep.append(st)
                    live.discard(st[1])
                    live |= _stmt_refs(st)
            elif st[1] in live:            # iop / mm_acc: mutate a live value
                keep.append(st)
                live |= _stmt_refs(st)
        self.stmts = keep[::-1]
        used_funcs = set()
        for st in self.stmts:
            used_funcs |= _stmt_funcs(st)
        self.helpers = [h for h in self.helpers if h.name in used_funcs]
        live_args = set()
        for st in self.stmts:
            live_args |= _stmt_args(st)
        self.args = [a for a in self.args if a.role == "out" or a.name in live_args]

    def store_derived(self, v: _Val):
        ts = v.shape
        roll = self.rng.random()
        if len(ts) == 2:
            M, N = ts
            if roll < 0.3:
                self.ops.add("transpose_store")
                return self.store(("transpose", ("v", v.name)), (N, M))
            if roll < 0.5:
                self.ops.add("row_store")
                return self.store(("row", ("v", v.name), int(self.rng.integers(0, M))), (N,))
            if roll < 0.65 and M >= 4:
                r0 = int(self.rng.integers(0, M // 2))
                r1 = int(self.rng.integers(r0 + 1, M + 1))
                self.ops.add("slice_store")
                return self.store(("slice", ("v", v.name), r0, r1, 2), (r1 - r0, N))
            if roll < 0.8 and M >= 4 and N >= 4:
                shape = (M // 2, N // 2)
                off = (int(self.rng.integers(0, M - shape[0] + 1)), int(self.rng.integers(0, N - shape[1] + 1)))
                self.ops.add("tile_view")
                return self.store(("view", ("v", v.name), off, shape), shape)
            if roll < 0.9:
                self.ops.add("reshape")
                shape = (N, M) if M != N else (M * 2, N // 2)
                return self.store(("reshape", ("v", v.name), shape), shape)
        else:
            n = ts[0]
            if roll < 0.35:
                self.ops.add("reshape")
                shape = (n // 4, 4)
                return self.store(("reshape", ("v", v.name), shape), shape)
            if roll < 0.6:
                r0 = int(self.rng.integers(0, n // 2))
                r1 = int(self.rng.integers(r0 + 1, n + 1))
                self.ops.add("slice_store")
                return self.store(("slice", ("v", v.name), r0, r1, 1), (r1 - r0,))
        return self.store(("v", v.name), ts)

    # --- main ----------------------------------------------------------------------------------------------
    def build(self) -> Program:
        r = self.rng
        for _ in range(int(pick(r, (1, 1, 2, 2, 3)))):
            self.load_main()
        table = [(self.op_binary, 4), (self.op_scale, 2), (self.op_rdiv, 0.5), (self.op_neg, 0.5),
                 (self.op_map1, 2), (self.op_mapf, 2.5), (self.op_bcast, 1.5), (self.op_transpose, 1.2),
                 (self.op_matmul, 1.5), (self.op_gemm_loop, 0.4), (self.op_extract, 0.8), (self.op_const, 1.0),
                 (self.op_accumulate, 0.6)]
        funcs = [f for f, _ in table]
        w = np.array([x for _, x in table], dtype=np.float64)
        w /= w.sum()
        n_ops = int(r.integers(2, 7))
        done = 0
        tries = 0
        while done < n_ops and tries < 40:
            tries += 1
            if funcs[int(r.choice(len(funcs), p=w))]():
                done += 1
        self.finish()
        return self.program()

    def program(self) -> Program:
        sig = []
        for a in self.args:
            if a.role == "scalar":
                sig.append(f"{a.name}: {SCALAR_TYPES[a.dtype].warp}")
            else:
                sig.append(f"{a.name}: {array_type(a.dtype, len(a.shape))}")
        body = [self.emit_stmt(s) for s in self.stmts]
        body = [line for block in body for line in block.split("\n")]
        tid = f"{', '.join(self.idx)} = wp.tid()"
        source = kernel_source(sig, body, self.helpers, tid, self.const_lines)
        differentiable, blocked = _gradient_ok(self.stmts)
        meta = {"ty": self.ty, "grid": self.grid, "layouts": dict(self.c.layouts), "stmts": list(self.stmts)}
        ops = set(re.findall(r"wp\.(tile_\w+|untile)\(", source))
        ops |= {f"layout_{self.c.layouts[a.name].kind}" for a in self.args if a.name in self.c.layouts}
        if 'storage="shared"' in source:
            ops.add("shared_storage")
        if "bounds_check=False" in source:
            ops.add("no_bounds_check")
        if "+=" in source or "-=" in source:
            ops.add("inplace_accumulate")
        if "for " in source:
            ops.add("gemm_k_loop")
        if "wp.tile_map(" in source:
            ops |= {f"map_{f}" for f in re.findall(r"wp\.tile_map\(wp\.(\w+)", source)}
        features = {"dtype": self.ty, "tile_shape": list(self.ts), "grid": list(self.grid),
                    "block_dim": self.block_dim, "ops": sorted(ops), "statements": len(self.stmts),
                    "ragged": any(lay.short for lay in self.c.layouts.values())}
        if blocked:
            features["no_gradient"] = blocked
        return Program(source, tuple(self.args), tuple(self.grid), meta, features, differentiable=differentiable,
                       block_dim=self.block_dim, tiled=True)

    def emit_stmt(self, s) -> str:
        c = self.c
        k = s[0]
        if k == "assign":
            return f"{s[1]} = {emit(s[2], c)}"
        if k == "iop":
            return f"{s[1]} {'+=' if s[2] == 'add' else '-='} {emit(s[3], c)}"
        if k == "mm_acc":
            _, dst, a, b, alpha, beta = s
            extra = ""
            if alpha is not None:
                extra += f", alpha={c.lit(alpha[1])}"
            if beta is not None:
                extra += f", beta={c.lit(beta[1])}"
            return f"wp.tile_matmul({emit(a, c)}, {emit(b, c)}, {dst}{extra})"
        if k == "store":
            arr, off_text = _access(c, s[1])
            return f"wp.tile_store({arr}, {emit(s[2], c)}{off_text})"
        if k == "gemm":
            _, acc, na, nb_, kv, KT, (M, N, TK) = s
            i = self.idx[0]
            j = self.idx[1] if len(self.idx) == 2 else None
            col = f"{j} * {c.consts.get(N, N)}" if j else "0"
            return "\n".join([
                f"{acc} = wp.tile_zeros(shape={c.shp((M, N))}, dtype={c.D})",
                f"for {kv} in range({KT}):",
                f"    ta = wp.tile_load({na}, shape={c.shp((M, TK))}, offset=({i} * {c.consts.get(M, M)}, {kv} * {TK}))",
                f"    tb = wp.tile_load({nb_}, shape={c.shp((TK, N))}, offset=({kv} * {TK}, {col}))",
                f"    wp.tile_matmul(ta, tb, {acc})",
            ])
        raise ValueError(k)


def _subtrees(n):
    """``n`` and the nodes below it, depth first (a node's children are nodes or lists of nodes)."""
    if not isinstance(n, tuple) or not n:
        return
    yield n
    for x in n[1:]:
        if isinstance(x, tuple):
            yield from _subtrees(x)
        elif isinstance(x, list):
            for y in x:
                yield from _subtrees(y)


def _transposed_names(n) -> list[str]:
    return [x[1][1] for x in _subtrees(n) if x[0] == "transpose" and x[1][0] == "v"]


def _count_refs(n, counts: dict) -> None:
    for x in _subtrees(n):
        if x[0] == "v":
            counts[x[1]] = counts.get(x[1], 0) + 1


def _gradient_ok(stmts) -> tuple[bool, str | None]:
    """Warp 1.19's ``adj_tile_transpose`` adds the transposed adjoint into the *primal* data of its source tile
    (``adj_t.assign(tile_add(transpose(adj_ret), adj_t))`` where ``adj_t`` aliases the shared source tile), so
    the source's values are doubled for every adjoint computed after it in the reverse pass. Gradients are then
    wrong whenever that source tile is used elsewhere (measured: ``u = sin(t)`` stored and ``transpose(t)``
    stored gives ``cos(2t)`` instead of ``cos(t)``). A transpose of a single-use tile is fine."""
    counts: dict = {}
    for st in stmts:
        for n in _stmt_nodes(st):
            _count_refs(n, counts)
    for st in stmts:
        for n in _stmt_nodes(st):
            for name in _transposed_names(n):
                if counts.get(name, 0) > 1:
                    return False, "tile_transpose of a multiply-used tile (Warp 1.19 adjoint corrupts its source)"
    return True, None


def _refs(n) -> set[str]:
    return {x[1] for x in _subtrees(n) if x[0] == "v"}


def _funcs(n) -> set[str]:
    return {x[1].name for x in _subtrees(n) if x[0] == "mapf"}


def _loads(n) -> set[str]:
    return {x[1] for x in _subtrees(n) if x[0] == "load"}


def _stmt_nodes(st) -> list:
    k = st[0]
    if k == "assign":
        return [st[2]]
    if k == "iop":
        return [st[3]]
    if k == "mm_acc":
        return [st[2], st[3]]
    if k == "store":
        return [st[2]]
    return []


def _stmt_refs(st) -> set[str]:
    out: set[str] = set()
    for n in _stmt_nodes(st):
        out |= _refs(n)
    return out


def _stmt_funcs(st) -> set[str]:
    out: set[str] = set()
    for n in _stmt_nodes(st):
        out |= _funcs(n)
    return out


def _stmt_args(st) -> set[str]:
    if st[0] == "gemm":
        return {st[2], st[3]}
    out: set[str] = set()
    for n in _stmt_nodes(st):
        out |= _loads(n)
        out |= {r for r in _refs(n)}          # scalar parameters appear as variables
    return out


def generate(rng: np.random.Generator) -> Program:
    return _Gen(rng).build()


# ------------------------------------------------------------------------------------------------------------
# Reference


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    meta = spec.meta
    grid = tuple(meta["grid"])
    nb = len(grid)
    layouts = meta["layouts"]
    env: dict = {"@tiles": {}, "@ty": SCALAR_TYPES[meta["ty"]]}
    for a in spec.args:
        if a.role == "in" and layouts[a.name].kind not in ("gemmA", "gemmB"):
            env["@tiles"][a.name] = layouts[a.name].to_tiles(np.asarray(inputs[a.name], dtype=np.float64))
        elif a.role == "scalar":
            env[a.name] = np.float64(np.asarray(inputs[a.name], dtype=np.float64))
    outs = {}
    for s in meta["stmts"]:
        k = s[0]
        if k == "assign":
            env[s[1]] = np.array(evaluate(s[2], env, nb, grid), dtype=np.float64)
        elif k == "iop":
            v = evaluate(s[3], env, nb, grid)
            env[s[1]] = env[s[1]] + v if s[2] == "add" else env[s[1]] - v
        elif k == "mm_acc":
            _, dst, a, b, alpha, beta = s
            al = 1.0 if alpha is None else alpha[2]
            be = 1.0 if beta is None else beta[2]
            env[dst] = al * np.matmul(evaluate(a, env, nb, grid), evaluate(b, env, nb, grid)) + be * env[dst]
        elif k == "gemm":
            _, acc, na, nb_, kv, KT, (M, N, TK) = s
            A = np.asarray(inputs[na], dtype=np.float64)            # (g0*M, KT*TK)
            B = np.asarray(inputs[nb_], dtype=np.float64)           # (KT*TK, N*g1)
            Ab = A.reshape(grid[0], M, KT * TK)
            if nb == 1:
                env[acc] = np.matmul(Ab, B)
            else:
                Bb = B.reshape(KT * TK, grid[1], N).transpose(1, 0, 2)   # (g1, K, N)
                env[acc] = np.matmul(Ab[:, None], Bb[None, :])
        elif k == "store":
            lay = layouts[s[1]]
            outs[s[1]] = lay.from_tiles(np.broadcast_to(evaluate(s[2], env, nb, grid), grid + lay.ts))
    return outs


FAMILY = Family(
    name="tiles",
    description=__doc__.strip().splitlines()[0],
    generate=screened("tiles", generate, reference, type_tolerance),
    reference=reference,
    tolerance=type_tolerance,
    version=2,
    weight=1.0,
    covers=("tiles", "tile_load", "tile_store", "tile_map", "tile_matmul", "tile_transpose", "tile_broadcast",
            "shared memory", "block_dim", "tile views", "ragged tiles", "float64"),
)
