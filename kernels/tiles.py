"""tiles: block-level tile programs (CUDA shared-memory / block-configuration patterns) with Warp tiles.

Each block loads 1D or 2D tiles (``wp.tile_load`` with shape and offset, ``x[i]`` batches, shared weight tiles,
ragged last tiles), runs a random sequence of tile operations - elementwise arithmetic with tiles and scalars,
``wp.tile_map`` with builtins or generated ``@wp.func``, ``tile_transpose``, ``tile_broadcast``, ``tile_matmul``
(plain, accumulating with alpha/beta, and K-loop tiled GEMM), ``tile_ones/full/zeros/arange`` constants, rows,
slices, views, reshapes and element extraction - and stores 1-2 result tiles. float32 or float64, 1D or 2D grids.
"""

from __future__ import annotations

import re

import numpy as np

from harness.family import PLACEHOLDER, Arg, Family, KernelSpec, Program
from kernels import _expr as E
from kernels._common import ARRAY_NAMES, OUT_NAMES, SCALAR_NAMES, pick, strip_parens, type_tolerance
from kernels._tiles_lib import (TY_SPELL, Layout, array_type, kernel_text, make_elem_func, random_layout,
                                shape_text)

LIMIT = 2e3                     # magnitude bound on every intermediate value (by interval arithmetic)
#: tile block widths and their weights: few distinct widths per chunk keep the number of modules (one per width)
#: small, since tile code is expensive to compile (~1.2 s/kernel CPU, ~2.6 s/kernel NVRTC measured)
BLOCK_DIMS = (16, 32, 64, 128)
BLOCK_WEIGHTS = (0.15, 0.35, 0.35, 0.15)
MAP1 = {"sin": np.sin, "cos": np.cos, "tanh": np.tanh, "atan": np.arctan, "abs": np.abs, "exp": np.exp,
        "sqrt": np.sqrt, "log": np.log}
BIN_NP = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "min": np.minimum,
          "max": np.maximum}
INFIX = {"add": "+", "sub": "-", "mul": "*"}


# ------------------------------------------------------------------------------------------------------------
# Emission and evaluation of tile expressions (tuples)


class _Ctx:
    """What emission needs: type spellings, grid index names, layouts of arguments, named constants."""

    def __init__(self, ty: str, idx: tuple[str, ...], consts: dict[int, str]):
        self.ty = ty
        self.scalar = E.SCALARS[ty]
        self.D = TY_SPELL[ty]
        self.idx = idx
        self.consts = consts
        self.layouts: dict[str, Layout] = {}
        self.load_opts: dict[str, str] = {}

    def lit(self, value: float) -> str:
        return self.scalar.literal(value)

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
    if k == "bin":
        with np.errstate(all="ignore"):
            return BIN_NP[n[1]](ev(n[2]), ev(n[3]))
    if k == "scale":
        a, s = ev(n[1]), ev(n[2])
        s = _scalar_to(s, a, nb)
        with np.errstate(all="ignore"):
            return a / s if n[3] == "div" else a * s
    if k == "rdiv":
        a = ev(n[2])
        s = _scalar_to(ev(n[1]), a, nb)
        with np.errstate(all="ignore"):
            return s / a
    if k == "neg":
        return -ev(n[1])
    if k == "map1":
        with np.errstate(all="ignore"):
            return MAP1[n[1]](ev(n[2]))
    if k == "mapf":
        return n[1].evaluate(*[ev(a) for a in n[2]])
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
        self.scalar = E.SCALARS[self.ty]
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
        self.iv_of: dict[str, E.Interval] = {}

    # --- helpers ------------------------------------------------------------------------------------------
    def fresh(self, prefix="t") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def in_iv(self, name: str) -> E.Interval:
        return self.iv_of[name]

    def new_input(self, ts, lay: Layout | None = None, ragged_p=0.25, lo=None, hi=None) -> tuple[str, Layout]:
        lay = lay or random_layout(self.rng, self.grid, tuple(ts), ragged_p)
        name = self.in_names.pop()
        self.c.layouts[name] = lay
        lo = self.lo if lo is None else lo
        hi = self.hi if hi is None else hi
        self.args.append(Arg(name, self.ty, "in", lay.shape, lo, hi))
        self.iv_of[name] = E.Interval(min(lo, 0.0), max(hi, 0.0)) if lay.short else E.Interval(lo, hi)
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
        return ("lit", value, self.scalar.const_value(value))

    def scalar_param(self) -> _Val:
        if self.scalar_arg is None:
            name = pick(self.rng, SCALAR_NAMES)
            lo, hi = pick(self.rng, ((0.5, 2.0), (-1.5, -0.5), (0.25, 1.25)))
            self.args.append(Arg(name, self.ty, "scalar", (), lo, hi))
            self.scalar_arg = _Val(name, (), E.Interval(lo, hi), {name})
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
        if op == "div" and b.iv.contains_zero(0.25):
            op = "mul"
        style = "infix" if op in INFIX and self.rng.random() < 0.7 else "map"
        iv = E._iv_binary(op, a.iv, b.iv)
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
            siv, sdeps = E.Interval(snode[2], snode[2]), frozenset()
        style = pick(self.rng, ("right", "left", "div"))
        if style == "div" and siv.contains_zero(0.25):
            style = "right"
        iv = E._iv_binary("div" if style == "div" else "mul", a.iv, siv)
        self.ops.add("scale_div" if style == "div" else "scale")
        return self.push(("scale", ("v", a.name), snode, style), iv, a.deps | sdeps)

    def op_rdiv(self) -> bool:
        vals = self.pick_pool(1, pred=lambda v: not v.iv.contains_zero(0.25))
        if not vals:
            return False
        a = vals[0]
        s = self.literal(0.5, 3.0)
        iv = E._iv_binary("div", E.Interval(s[2], s[2]), a.iv)
        self.ops.add("scalar_div_tile")
        return self.push(("rdiv", s, ("v", a.name)), iv, a.deps)

    def op_neg(self) -> bool:
        vals = self.pick_pool(1)
        if not vals:
            return False
        a = vals[0]
        self.ops.add("neg")
        return self.push(("neg", ("v", a.name)), E.Interval(-a.iv.hi, -a.iv.lo), a.deps)

    def op_map1(self) -> bool:
        vals = self.pick_pool(1)
        if not vals:
            return False
        a = vals[0]
        iv = a.iv
        options = ["sin", "cos", "tanh", "atan"]
        if iv.contains_zero() and not (iv.lo >= 0):
            options.append("abs")
        if iv.hi <= 2.5 and iv.lo >= -8:
            options.append("exp")
        if iv.lo >= 0.05:
            options.append("sqrt")
        if iv.lo >= 0.1:
            options.append("log")
        fn = pick(self.rng, tuple(options))
        lo_hi = {"sin": lambda: (-1.0, 1.0), "cos": lambda: (-1.0, 1.0),
                 "tanh": lambda: (np.tanh(iv.lo), np.tanh(iv.hi)),
                 "atan": lambda: (np.arctan(iv.lo), np.arctan(iv.hi)), "abs": lambda: (0.0, iv.mag),
                 "exp": lambda: (np.exp(iv.lo), np.exp(iv.hi)), "sqrt": lambda: (np.sqrt(iv.lo), np.sqrt(iv.hi)),
                 "log": lambda: (np.log(iv.lo), np.log(iv.hi))}[fn]()
        self.ops.add(f"map_{fn}")
        return self.push(("map1", fn, ("v", a.name)), E.Interval(float(lo_hi[0]), float(lo_hi[1])), a.deps)

    def op_mapf(self) -> bool:
        k = int(pick(self.rng, (1, 2, 2, 3)))
        vals = self.pick_pool(k) if len(self.pool) >= k else []
        if not vals:
            return False
        name = f"{PLACEHOLDER}_f{self.funcs}"
        self.funcs += 1
        fn = make_elem_func(self.rng, name, self.ty, [v.iv for v in vals], limit=LIMIT / 4)
        self.helpers.append(fn.source())
        deps = frozenset().union(*[v.deps for v in vals])
        self.ops.add(f"map_func{k}")
        return self.push(("mapf", fn, [("v", v.name) for v in vals]), fn.ret.iv, deps)

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
        iv = E._iv_binary(op, a.iv, src_iv)
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
            return self.push(("bin", op, ("v", b.name), node, "infix"), E._iv_binary(op, b.iv, iv), deps | b.deps)
        return self.push(node, iv, deps)

    def _mm_iv(self, a: E.Interval, b: E.Interval, k: int) -> E.Interval:
        m = k * a.mag * b.mag
        return E.Interval(-m, m)

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
                init_iv = E._iv_binary("mul", p.iv, E.Interval(-2.0, 2.0))
                deps |= p.deps
            elif kind == "full":
                lit = self.literal()
                init, init_iv = ("full", (M, N), lit[1], lit[2]), E.Interval(lit[2], lit[2])
            elif kind == "ones":
                init, init_iv = ("ones", (M, N)), E.Interval(1.0, 1.0)
            else:
                init, init_iv = ("zeros", (M, N)), E.Interval(0.0, 0.0)
            acc = self.assign(init, (M, N), init_iv, set(), prefix="acc")
            ma = 1.0 if alpha is None else abs(alpha[2])
            mb = 1.0 if beta is None else abs(beta[2])
            iv = E.Interval(-(ma * iv.mag + mb * init_iv.mag), ma * iv.mag + mb * init_iv.mag)
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
        iv = E.Interval(-KT * TK * 1.0, KT * TK * 1.0)
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
        return self.push(("scale", ("v", b.name), ("v", s.name), op), E._iv_binary("mul", b.iv, a.iv),
                         a.deps | b.deps)

    def op_const(self) -> bool:
        vals = self.pick_pool(1)
        if not vals:
            return False
        a = vals[0]
        roll = self.rng.random()
        ts = self.ts
        if roll < 0.3:
            node, iv = ("ones", ts), E.Interval(1.0, 1.0)
            self.ops.add("tile_ones")
        elif roll < 0.6:
            lit = self.literal()
            node, iv = ("full", ts, lit[1], lit[2]), E.Interval(lit[2], lit[2])
            self.ops.add("tile_full")
        else:
            n = ts[-1]
            start = float(pick(self.rng, (0.0, 0.0, 1.0, -2.0, 0.5)))
            step = float(pick(self.rng, (1.0, 1.0, 0.5, 0.25, 2.0)))
            if start + step * n > 40:
                step = 0.25
            node = ("arange", start, step, n)
            iv = E.Interval(min(start, start + step * (n - 1)), max(start, start + step * (n - 1)))
            if len(ts) == 2:
                node = ("bcast", node, ts)
            self.ops.add("tile_arange")
        op = pick(self.rng, ("add", "sub", "mul"))
        if op == "mul" and node[0] == "ones":
            op = "add"
        style = "infix" if self.rng.random() < 0.75 else "map"
        first = self.rng.random() < 0.5
        pair = (("v", a.name), node) if first else (node, ("v", a.name))
        iv = E._iv_binary(op, a.iv, iv) if first else E._iv_binary(op, iv, a.iv)
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
                node, viv = ("scale", ("v", v.name), lit, "right"), E._iv_binary("mul", v.iv, E.Interval(lit[2], lit[2]))
            else:
                node, viv = ("v", v.name), v.iv
            self.stmts.append(("iop", acc, op, node))
            iv = E._iv_binary(op, E.Interval(lo, hi), viv)
            lo, hi = iv.lo, iv.hi
            deps |= v.deps
        self.ops.add("inplace_accumulate")
        self.pool.append(_Val(acc, self.ts, E.Interval(lo, hi), deps))
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
            if op == "mul" and E._iv_binary("mul", res.iv, holder.iv).mag > LIMIT:
                op = "add"
            style = "infix" if self.rng.random() < 0.8 else "map"
            node = ("bin", op, ("v", res.name), ("v", holder.name), style)
            res = self.assign(node, self.ts, E._iv_binary(op, res.iv, holder.iv), res.deps | holder.deps)
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
        self.helpers = [h for h in self.helpers if h.split("def ", 1)[1].split("(", 1)[0] in used_funcs]
        # renumber helpers in order of use so that names do not depend on pruned functions
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
                sig.append(f"{a.name}: {TY_SPELL[a.dtype]}")
            else:
                sig.append(f"{a.name}: {array_type(a.dtype, len(a.shape))}")
        body = [self.emit_stmt(s) for s in self.stmts]
        body = [line for block in body for line in block.split("\n")]
        tid = f"{', '.join(self.idx)} = wp.tid()"
        source = kernel_text(sig, body, self.helpers, tid, self.const_lines)
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
            return f"{s[1]} = {strip_parens(emit(s[2], c))}"
        if k == "iop":
            return f"{s[1]} {'+=' if s[2] == 'add' else '-='} {strip_parens(emit(s[3], c))}"
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
            return f"wp.tile_store({arr}, {strip_parens(emit(s[2], c))}{off_text})"
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
    env: dict = {"@tiles": {}}
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
    generate=generate,
    reference=reference,
    tolerance=type_tolerance,
    weight=1.0,
    covers=("tiles", "tile_load", "tile_store", "tile_map", "tile_matmul", "tile_transpose", "tile_broadcast",
            "shared memory", "block_dim", "tile views", "ragged tiles", "float64"),
)
