"""reduction: parallel reductions - block-level tile reductions, scans, grid-stride loops and atomics.

Patterns (one per kernel, each with random element transforms, types and output sinks):
  row     one tile per block (``x[i]``, ``(1, N)`` rows, flat offsets, ragged last tile); 1-3 of tile_sum / max /
          min / argmax / argmin / dot / tile_reduce (builtin or generated associative ``@wp.func``) combined
          into per-block results, optionally a normalised row (softmax, centring, layer-norm, L2, max-abs)
  axis    2D tiles reduced along one axis (tile_sum / tile_reduce with ``axis=``), optional column centring
  loop    chunked loops over many tiles per block (contiguous, grid-stride, ``x[i]`` rows, runtime bounds)
          with tile accumulators
  simt    per-thread values (optionally thread-coarsened loops) -> ``wp.tile`` -> block reduction, optional
          ``wp.untile`` block scan or per-thread use of the block result
  scan    tile_scan_inclusive / exclusive / max / min of transformed tiles
  thread  no tiles: per-thread partial sums (contiguous, strided or grid-stride loops) + wp.atomic_add /
          atomic_max / atomic_min into one or several bins
Per-block results go to ``out[i]`` (store or element write), or are combined across blocks with
``wp.tile_atomic_add`` or a lane-0 ``wp.atomic_add`` / ``atomic_max``.

Tolerances: integers exact; float sums use ``atol = depth * eps * S`` where ``S`` bounds ``sum |terms|`` (from
value intervals) and ``depth`` bounds the number of sequential additions any term goes through (per-thread
chunk + cross-thread combine + loop chunks + atomics across blocks): the classic worst-case rounding bound of
recursive summation, order-independent, so it also covers the nondeterministic atomic order.
"""

from __future__ import annotations

import numpy as np

from harness.family import PLACEHOLDER, Arg, Family, KernelSpec, Program, Tolerance
from kernels._common import ARRAY_NAMES, OUT_NAMES, pick
from kernels.ir import nodes as ir
from kernels.ir.numeric import Interval
from kernels.ir.tiles import (SCALAR_TYPES, apply_op, array_type, bound, call, elem_func, evaluate, fold_func, fold_op,
                              kernel_source, literal, reducer, rounded, scalar_expr, screened)
from kernels.ir.tiles import text as expr_text

BLOCK_DIMS = (16, 32, 64, 128)
BLOCK_WEIGHTS = (0.15, 0.35, 0.35, 0.15)
EPS = {"float32": float(np.finfo(np.float32).eps), "float64": float(np.finfo(np.float64).eps)}
VALUE_LIMIT = {"float32": 20.0, "float64": 20.0, "int32": 200000}
MAX_REDS = ("max", "r_max", "fmax", "fmaxabs")
MIN_REDS = ("min", "r_min", "fmin")
MAX_MIN_REDS = MAX_REDS + MIN_REDS
NEG_INIT = {"float32": -1.0e6, "float64": -1.0e6, "int32": -1000000}
POS_INIT = {"float32": 1.0e6, "float64": 1.0e6, "int32": 1000000}

#: whole-tile reductions: Warp spelling template, NumPy reduction over the last axis, gradient supported
#: (Warp 1.19 has adjoints for tile_sum and tile_dot only; tile_max/min/reduce/scans are MISSINGADJOINT)
RED = {
    "sum": ("wp.tile_sum({t})", lambda a: a.sum(-1), True),
    "max": ("wp.tile_max({t})", lambda a: a.max(-1), False),
    "min": ("wp.tile_min({t})", lambda a: a.min(-1), False),
    **{r: (f"wp.tile_reduce(wp.{op}, {{t}})", None, False) for r, op in (
        ("r_add", "add"), ("r_max", "max"), ("r_min", "min"), ("r_mul", "mul"), ("r_xor", "bit_xor"),
        ("r_or", "bit_or"), ("r_and", "bit_and"))},
    "argmax": ("wp.tile_argmax({t})", lambda a: a.argmax(-1), False),
    "argmin": ("wp.tile_argmin({t})", lambda a: a.argmin(-1), False),
}
#: ``wp.tile_reduce`` with a builtin operator: the operation table's row it folds with
RED_OPS = {"r_add": "add", "r_max": "max", "r_min": "min", "r_mul": "mul", "r_xor": "bit_xor", "r_or": "bit_or",
           "r_and": "bit_and"}
#: generated associative + commutative reduction operators (``@wp.func`` built on the IR by
#: :func:`kernels.ir.tiles.reducer`): a + b, a + b + c, |a| + |b|, max(|a|, |b|), where(a > b, a, b), a if a < b else b
FUNC_OPS = {"fsum": "sum", "fsumc": "sumc", "fabs": "abs", "fmaxabs": "maxabs", "fmax": "max", "fmin": "min"}
FUNC_USE = ("fsum", "fsumc", "fabs", "fmaxabs", "fmax", "fmin")
SCANS = {"inclusive": "wp.tile_scan_inclusive", "exclusive": "wp.tile_scan_exclusive",
         "max": "wp.tile_scan_max_inclusive", "min": "wp.tile_scan_min_inclusive"}


# ------------------------------------------------------------------------------------------------------------
# Element transforms (tile pre-maps and per-thread scalar expressions)


class _Map:
    """An element transform of 1-2 input tiles/values: source text and NumPy evaluation."""

    def __init__(self, kind, text, iv, fn=None, func=None, lit=None, builtin=None, arity=1, sty=None):
        self.kind, self.text, self.iv, self.fn_name, self.func, self.lit, self.builtin = kind, text, iv, fn, func, lit, builtin
        self.arity, self.sty = arity, sty

    def evaluate(self, *vals):
        vals = vals[: self.arity]
        k = self.kind
        with np.errstate(all="ignore"):
            if k == "none":
                return vals[0]
            if k == "builtin":
                return apply_op(self.builtin, self.sty, vals[0])
            if k == "func":
                return call(self.func, *vals)
            if k == "scale":
                return apply_op("mul", self.sty, vals[0], np.asarray(self.lit, dtype=self.sty.carrier))
            if k in ("mul2", "add2", "sub2"):
                return apply_op(k[:3], self.sty, vals[0], vals[1])
        raise ValueError(k)


# ------------------------------------------------------------------------------------------------------------
# Generator


class _Gen:
    def __init__(self, rng: np.random.Generator, pattern: str):
        self.rng = rng
        self.pattern = pattern
        allowed = {"scan": ("float32", "int32"), "thread": ("float32", "float64", "int32")}.get(
            pattern, ("float32", "float32", "float64", "int32"))
        self.ty = pick(rng, allowed)
        self.sty = SCALAR_TYPES[self.ty]
        self.is_int = self.ty == "int32"
        self.D = self.sty.warp
        self.args: list[Arg] = []
        self.body: list[str] = []
        self.helpers: list[ir.Func] = []
        self.ops: set[str] = set()
        self.funcs = 0
        ins = tuple(n for n in ARRAY_NAMES if n not in LOCALS)
        outs = tuple(n for n in OUT_NAMES if n not in LOCALS)
        self.in_names = list(pick(rng, ins, len(ins)))
        self.out_names = list(pick(rng, outs, len(outs)))
        self.meta: dict = {"pattern": pattern, "ty": self.ty}
        self.grad = not self.is_int
        self.block_dim = int(rng.choice(BLOCK_DIMS, p=BLOCK_WEIGHTS))
        if self.is_int:
            # wide ranges: the max/min of many integers from a narrow range is nearly always the same value
            self.lo, self.hi = pick(rng, ((-100000, 100000), (0, 50000), (-3000, 3000), (-1000, 1000)))
        else:
            self.lo, self.hi = pick(rng, ((-2.0, 2.0), (-1.0, 1.0), (0.5, 2.0), (-1.0, 3.0)))
        self.depth = 1          # sequential additions a term goes through (for the float tolerance)
        self.sum_bound = 0.0    # bound of sum |terms| of the largest float sum
        self.err_bound = 0.0    # max over sums of depth * sum|terms| * (scale to the output), in units of eps

    # --- small helpers ------------------------------------------------------------------------------------
    def lit_text(self, value) -> str:
        t = literal(value, self.sty)
        return f"({t})" if t.startswith("-") else t

    def cast(self, value) -> str:
        """A typed constant usable anywhere (``wp.float32(0.0)``, ``wp.float64(0.0)``, ``wp.int32(0)``)."""
        return f"{self.D}({int(value) if self.is_int else float(value)!r})"

    def new_in(self, shape, lo=None, hi=None, dtype=None) -> str:
        name = self.in_names.pop()
        self.args.append(Arg(name, dtype or self.ty, "in", tuple(shape), self.lo if lo is None else lo,
                             self.hi if hi is None else hi))
        return name

    def new_out(self, shape, dtype=None) -> str:
        name = self.out_names.pop()
        self.args.append(Arg(name, dtype or self.ty, "out", tuple(shape)))
        return name

    def new_inout(self, shape, init) -> str:
        """An accumulator the caller initialises with ``init`` (sampled as exactly that value)."""
        name = self.out_names.pop()
        self.args.append(Arg(name, self.ty, "inout", tuple(shape), float(init), float(init)))
        self.ops.add("sentinel_init")
        return name

    def in_iv(self) -> Interval:
        return Interval(float(self.lo), float(self.hi))

    def elem_func(self, ivs, limit=None) -> tuple:
        name = f"{PLACEHOLDER}_f{self.funcs}"
        self.funcs += 1
        lim = limit or VALUE_LIMIT[self.ty]
        fn = elem_func(self.rng, name, self.sty, ivs, limit=lim, math_p=0.5)
        self.helpers.append(fn.func)
        return name, fn

    def premap(self, names: list[str], ivs: list[Interval], allow=("none", "builtin", "func", "scale")) -> _Map:
        """A transform of the tiles ``names`` (1 or 2) into one tile; all of them are used."""
        r = self.rng
        if len(names) == 2:
            kind = pick(r, ("func", "func", "mul2", "add2", "sub2"))
            if kind == "func":
                fname, fn = self.elem_func(ivs)
                self.ops.add("tile_map_func")
                return _Map("func", f"wp.tile_map({fname}, {names[0]}, {names[1]})", fn.ret, fname, fn.func, arity=2)
            op = {"mul2": "mul", "add2": "add", "sub2": "sub"}[kind]
            iv = bound(op, self.sty, ivs[0], ivs[1])
            if iv.mag > VALUE_LIMIT[self.ty] * 4 and op == "mul":
                kind, op, iv = "add2", "add", bound("add", self.sty, ivs[0], ivs[1])
            self.ops.add(f"tile_{op}")
            return _Map(kind, f"{names[0]} {dict(add='+', sub='-', mul='*')[op]} {names[1]}", iv, arity=2, sty=self.sty)
        kind = pick(r, allow)
        iv = ivs[0]
        if kind == "builtin" and self.is_int and iv.lo >= 0:
            kind = "scale"                        # abs, the one integer builtin, would return its argument
        if kind == "builtin":
            opts = ["abs"] if self.is_int else ["sin", "cos", "tanh", "atan"]
            if not self.is_int:
                if iv.hi <= 2.5:
                    opts.append("exp")
                if iv.lo >= 0.05:
                    opts.append("sqrt")
                if iv.contains_zero():
                    opts.append("abs")
            fn = pick(r, tuple(opts))
            self.ops.add(f"tile_map_{fn}")
            return _Map("builtin", f"wp.tile_map(wp.{fn}, {names[0]})", bound(fn, self.sty, iv), builtin=fn,
                        sty=self.sty)
        if kind == "func":
            fname, fn = self.elem_func(ivs)
            self.ops.add("tile_map_func")
            return _Map("func", f"wp.tile_map({fname}, {names[0]})", fn.ret, fname, fn.func)
        if kind == "scale":
            if self.is_int:
                c = int(pick(r, (2, 3, -1, -2, 5)))
                if iv.mag * abs(c) > VALUE_LIMIT[self.ty]:
                    c = -1                        # keep integer sums far from int32 overflow
                cv = c
                text = f"{names[0]} * {c}"
            else:
                c = round(float(r.uniform(0.25, 2.5)), 2) * (1 if r.random() < 0.7 else -1)
                cv = rounded(c, self.sty)
                text = f"{names[0]} * {self.lit_text(c)}" if r.random() < 0.5 else f"{self.lit_text(c)} * {names[0]}"
            self.ops.add("tile_scale")
            return _Map("scale", text, bound("mul", self.sty, iv, Interval(cv, cv)), lit=cv, sty=self.sty)
        return _Map("none", names[0], iv)

    def transform(self, names: list[str], ivs: list[Interval], prefix: str = "e", chain_p: float = 0.35,
                  bare: bool = True) -> _Xf:
        """Bind a random chain of tile transforms of ``names`` (all used) to ``prefix``, ``prefix2``..."""
        m = self.premap(names, ivs, allow=("none", "builtin", "func", "func", "scale")[0 if bare else 1:])
        if m.kind == "none":
            return _Xf([], names[0], ivs[0], [m])
        lines = [f"{prefix} = {m.text}"]
        maps = [m]
        cur, iv = prefix, m.iv
        k = 2
        while k <= 3 and self.rng.random() < chain_p:
            m2 = self.premap([cur], [iv], allow=("builtin", "func", "scale"))
            nxt = f"{prefix}{k}"
            lines.append(f"{nxt} = {m2.text}")
            maps.append(m2)
            cur, iv = nxt, m2.iv
            k += 1
        return _Xf(lines, cur, iv, maps)

    def scalar_expr(self, leaves: dict[str, Interval], depth=2, limit=None, math_ok=True):
        """A per-thread IR expression over ``leaves`` (locals with intervals) that reads all of them and stays
        bounded, and its interval."""
        vars_ = [(ir.Var(name, self.sty), iv) for name, iv in leaves.items()]
        return scalar_expr(self.rng, self.sty, vars_, depth, limit or VALUE_LIMIT[self.ty], math_ok)

    def add_sum_error(self, n_terms: int, mag: float, depth: int, scale: float = 1.0) -> None:
        """Record a float sum of ``n_terms`` terms bounded by ``mag`` whose result reaches an output multiplied by
        ``scale``: its absolute rounding error is at most ``depth * eps * n_terms * mag * scale``."""
        self.err_bound = max(self.err_bound, depth * n_terms * mag * scale)
        self.sum_bound = max(self.sum_bound, n_terms * mag)
        self.depth = max(self.depth, depth)

    # --- reductions of one tile --------------------------------------------------------------------------
    def pick_reductions(self, k: int, two_inputs: bool, iv: Interval, n: int) -> list[str]:
        r = self.rng
        if self.is_int:
            pool = ["sum", "max", "min", "r_add", "r_max", "r_min", "r_xor", "r_or", "r_and", "argmax", "argmin",
                    "func"]
        else:
            pool = ["sum", "sum", "max", "min", "r_add", "r_max", "r_min", "argmax", "argmin", "func", "func"]
            if two_inputs:
                pool += ["dot", "dot"]
        if self.is_int and iv.lo < 0:
            pool = [p for p in pool if p not in ("r_xor", "r_or", "r_and")]
        classes = {"sum": "sum", "r_add": "sum", "max": "max", "r_max": "max", "min": "min", "r_min": "min"}
        out, seen = [], set()
        for _ in range(4 * k):
            red = pick(r, tuple(pool))
            cls = classes.get(red, red if red != "func" else f"func{len(out)}")
            if cls in seen:
                continue
            seen.add(cls)
            out.append(red)
            if len(out) == k:
                break
        return out

    def safe_args(self, reds: list[str], injective: bool, ragged: bool) -> list[str]:
        """argmax/argmin only where ties cannot happen: distinct inputs (see ``sample_inputs``), a transform that
        keeps integers distinct, and no zero padding (padded elements tie with each other)."""
        if not injective or ragged:
            reds = [{"argmax": "max", "argmin": "min"}.get(x, x) for x in reds]
        if any(x in ("argmax", "argmin") for x in reds):
            self.meta["distinct"] = True
            self.ops.add("distinct_inputs")
        return reds

    def reduction_text(self, red: str, t: str, u: str | None, n: int, iv: Interval) -> tuple[str, dict]:
        """Source of one whole-tile reduction of tile ``t`` (and ``u`` for dot) and what the reference needs."""
        if red not in ("sum", "dot", "argmax", "argmin"):
            self.grad = False          # Warp 1.19: no adjoint for tile_max/min/reduce (MISSINGADJOINT)
        if red == "dot":
            self.ops.add("tile_dot")
            return f"wp.tile_dot({t}, {u})", {"red": "dot"}
        if red == "func":
            fop = pick(self.rng, FUNC_USE if not self.is_int else ("fsum", "fsumc", "fabs", "fmaxabs", "fmax", "fmin"))
            name = f"{PLACEHOLDER}_op{self.funcs}"
            self.funcs += 1
            c = None
            if fop == "fsumc":
                c = int(pick(self.rng, (1, 2, -1, 3))) if self.is_int else round(float(self.rng.uniform(-1, 1)), 2)
            func = reducer(name, self.sty, FUNC_OPS[fop], c)
            self.helpers.append(func)
            self.ops.add(f"tile_reduce_func_{fop}")
            return f"wp.tile_reduce({name}, {t})", {"red": fop, "c": c, "func": func}
        self.ops.add(RED[red][0].split("(")[0].replace("wp.", "") + ("" if not red.startswith("r_") else "_" + red))
        return RED[red][0].format(t=t), {"red": red}

    # --- patterns ------------------------------------------------------------------------------------------
    def build(self) -> Program:
        getattr(self, f"p_{self.pattern}")()
        return self.program()

    def grid_index(self, lane: bool) -> str:
        self.meta["lane"] = lane
        return "i, lane = wp.tid()" if lane else "i = wp.tid()"

    def p_row(self):
        r = self.rng
        N = int(pick(r, (16, 32, 64, 128, 256)))
        two = r.random() < 0.35
        # "whole": one block reduces the whole array; the kernel reads no thread index
        form = pick(r, ("batch", "row1", "flat", "flat", "whole"))
        G = 1 if form == "whole" else int(r.integers(2, 9))
        short = int(r.integers(1, N)) if form == "flat" and r.random() < 0.3 else 0
        names = [self.new_in({"batch": (G, N), "row1": (G, N), "flat": (G * N - short,), "whole": (N,)}[form])
                 for _ in range(2 if two else 1)]
        tnames = []
        for k, nm in enumerate(names):
            tv = ("t", "u")[k]
            if form == "batch":
                self.body.append(f"{tv} = wp.tile_load({nm}[i], shape={N})")
            elif form == "row1":
                self.body.append(f"{tv} = wp.tile_load({nm}, shape=(1, {N}), offset=(i, 0))")
            elif form == "whole":
                self.body.append(f"{tv} = wp.tile_load({nm}, shape={N})")
            else:
                self.body.append(f"{tv} = wp.tile_load({nm}, shape={N}, offset=i * {N})")
            tnames.append(tv)
        self.ops.add(f"load_{form}")
        iv0 = self.in_iv() if not short else Interval(min(self.lo, 0), max(self.hi, 0))
        self.meta.update(G=G, N=N, form=form, short=short, inputs=names, grid=(G,))
        # element transform(s)
        normalize = (not self.is_int) and not two and r.random() < 0.3
        if normalize:
            m = self.transform(["t"], [iv0], prefix="e", chain_p=0.2)
            self.body += m.lines
            self.meta["premap"] = m
            return self.row_normalize(G, N, m.name, m.iv)
        use = tnames if two and r.random() < 0.6 else tnames[:1]
        m = self.transform(use, [iv0] * len(use))
        self.body += m.lines
        used_both = two and m.arity == 2
        e = m.name
        reds = self.pick_reductions(int(r.integers(1, 4)), two and not used_both, m.iv, N)
        reds = self.safe_args(reds, injective=m.injective_int or not self.is_int, ragged=bool(short))
        if two and not used_both and "dot" not in reds:
            reds[0] = "dot" if not self.is_int else "sum"
            if self.is_int:                       # fold the second tile in with a tile add
                self.body.append(f"g = {e} + {tnames[1]}")
                e = "g"
                m = _Xf(m.lines, "g", bound("add", self.sty, m.iv, iv0), [_MapChain(_XfMap(m), iv0)])
                used_both = True
        red_meta = []
        for k, red in enumerate(reds):
            text, info = self.reduction_text(red, e, tnames[1] if red == "dot" else None, N, m.iv)
            var = f"r{k}"
            self.body.append(f"{var} = {text}")
            red_meta.append((var, info))
            if info["red"] in ("sum", "r_add", "fsum", "fsumc", "fabs", "dot"):
                mag = m.iv.mag * (iv0.mag if info["red"] == "dot" else 1.0)
                self.add_sum_error(N, mag, N // self.block_dim + self.block_dim + 2)
        self.meta.update(premap=m, reds=red_meta, two=two, used_both=used_both)
        self.finish_block(red_meta, G, m.iv, N)

    def row_normalize(self, G, N, name, iv):
        """softmax / centring / layer-norm / L2 / max-abs normalisation of each row."""
        r = self.rng
        kind = pick(r, ("softmax", "center", "layernorm", "l2", "maxabs"))
        form = self.meta["form"]
        t = name
        b = self.body
        bshape = f"({N},)" if form != "row1" else f"(1, {N})"
        ninv = self.lit_text(1.0 / N)
        if self.ty == "float32" and r.random() < 0.7:      # folded at compile time (a Python float: float32)
            ninv = f"wp.static(1.0 / {N})"
            self.ops.add("static_constant")
        if kind == "softmax":
            b.append(f"m = wp.tile_max({t})")
            b.append(f"z = wp.tile_map(wp.exp, {t} - wp.tile_broadcast(m, shape={bshape}))")
            b.append("s = wp.tile_sum(z)")
            b.append("y = z / s[0]" if r.random() < 0.5 else f"y = z * ({self.cast(1.0)} / s[0])")
            # y = z / sum(z): only the relative error of the sum reaches y, and rtol covers it
        elif kind == "center":
            b.append(f"mean = wp.tile_sum({t}) * {ninv}")
            b.append(f"y = {t} - wp.tile_broadcast(mean, shape={bshape})")
            self.add_sum_error(N, iv.mag, N // self.block_dim + self.block_dim + 2, scale=1.0 / N)   # the mean
        elif kind == "layernorm":
            b.append(f"mean = wp.tile_sum({t}) * {ninv}")
            b.append(f"c = {t} - wp.tile_broadcast(mean, shape={bshape})")
            b.append(f"var = wp.tile_sum(c * c) * {ninv}")
            b.append(f"y = c / wp.sqrt(var[0] + {self.lit_text(1e-5)})")
            # mean error / std plus half the relative error of var: a few units of depth * eps
            self.add_sum_error(1, 4.0, N // self.block_dim + self.block_dim + 2)
        elif kind == "l2":
            b.append(f"nrm = wp.sqrt(wp.tile_dot({t}, {t})[0])")
            b.append(f"y = {t} * ({self.cast(1.0)} / nrm)" if r.random() < 0.5 else f"y = {t} / nrm")
            # y = t / |t|: relative error only (rtol)
        else:
            b.append(f"hi = wp.tile_max({t})")
            b.append(f"lo = wp.tile_min({t})")
            b.append("amax = wp.max(hi[0], -lo[0])")
            b.append(f"y = {t} / amax")
            self.grad = False
        self.ops.add(f"normalize_{kind}")
        y_out = self.new_out({"flat": (G * N - self.meta["short"],), "whole": (N,)}.get(form, (G, N)))
        if form == "batch":
            b.append(f"wp.tile_store({y_out}[i], y)")
        elif form == "whole":
            b.append(f"wp.tile_store({y_out}, y)")
        elif form == "row1":
            b.append(f"wp.tile_store({y_out}, y, offset=(i, 0))")
        else:
            b.append(f"wp.tile_store({y_out}, y, offset=i * {N})")
        self.meta.update(normalize=kind, y_out=y_out)
        self.tid = None if form == "whole" else self.grid_index(False)

    def p_axis(self):
        r = self.rng
        G = int(r.integers(2, 7))
        M = int(pick(r, (4, 8, 16, 32)))
        N = int(pick(r, (4, 8, 16, 32)))
        form = pick(r, ("batch", "rows"))
        two = r.random() < 0.3
        xs = [self.new_in((G, M, N) if form == "batch" else (G * M, N)) for _ in range(2 if two else 1)]
        tn = ["t", "u"][: len(xs)]
        for nm, x in zip(tn, xs):
            if form == "batch":
                self.body.append(f"{nm} = wp.tile_load({x}[i], shape=({M}, {N}))")
            else:
                self.body.append(f"{nm} = wp.tile_load({x}, shape=({M}, {N}), offset=(i * {M}, 0))")
        m = self.transform(tn, [self.in_iv()] * len(tn), chain_p=0.5, bare=False)
        if m.arity < len(tn):                       # fold the unused second tile in
            self.body += m.lines
            op = pick(r, ("+", "-", "*"))
            self.body.append(f"g = {m.name} {op} u")
            iv = bound({"+": "add", "-": "sub", "*": "mul"}[op], self.sty, m.iv, self.in_iv())
            m = _Xf(m.lines, "g", iv, [_Fold(_XfMap(m), op, iv)])
        else:
            self.body += m.lines
        e = m.name
        reds = []
        axes = [int(r.integers(0, 2))]
        if r.random() < 0.35:
            axes.append(1 - axes[0])
        for k, axis in enumerate(axes):
            L = N if axis == 0 else M
            n_red = M if axis == 0 else N
            ops = ["sum", "sum", "r_add", "r_max", "r_min"] + ([] if self.is_int or k > 0 else ["r_mul"])
            red = pick(r, tuple(ops))
            src = e
            if red == "r_mul":
                # products stay near one: rescale the transformed values into [0.8, 1.25]
                lo, hi = m.iv.lo, m.iv.hi
                span = max(hi - lo, 1e-3)
                a = 0.45 / span
                self.body.append(f"p = wp.tile_map({self._affine_func(a, 0.8 - a * lo)}, {e})")
                src = "p"
            opname = {"sum": None, "r_add": "wp.add", "r_max": "wp.max", "r_min": "wp.min", "r_mul": "wp.mul"}[red]
            sv = f"s{k}"
            if opname is None:
                self.body.append(f"{sv} = wp.tile_sum({src}, axis={axis})")
                self.ops.add("tile_sum_axis")
            else:
                self.body.append(f"{sv} = wp.tile_reduce({opname}, {src}, axis={axis})")
                self.ops.add(f"tile_reduce_axis_{red}")
                self.grad = False
            if red in ("sum", "r_add"):
                self.add_sum_error(n_red, m.iv.mag, n_red + 2)
            out = self.new_out((G, L))
            if r.random() < 0.7:
                self.body.append(f"wp.tile_store({out}[i], {sv})")
            else:
                self.body.append(f"wp.tile_store({out}, wp.tile_reshape({sv}, shape=(1, {L})), offset=(i, 0))")
                self.ops.add("tile_reshape")
            reds.append((sv, axis, red, out))
        extra = None
        sv, axis, red, _ = reds[0]
        n_red = M if axis == 0 else N
        L = N if axis == 0 else M
        if r.random() < 0.4 and red in ("sum", "r_add") and not self.is_int:
            extra = pick(r, ("center", "total"))
            if extra == "center":
                ninv = self.lit_text(1.0 / n_red)
                if self.ty == "float32" and r.random() < 0.6:
                    ninv = f"wp.static(1.0 / {n_red})"
                    self.ops.add("static_constant")
                bshape = f"({M}, {N})"
                src = sv if axis == 0 else f"wp.tile_reshape({sv}, shape=({M}, 1))"
                self.body.append(f"c = {e} - wp.tile_broadcast({src}, shape={bshape}) * {ninv}")
                out2 = self.new_out((G, M, N))
                self.body.append(f"wp.tile_store({out2}[i], c)")
                self.ops.add("broadcast_center")
            else:
                self.body.append(f"tot = wp.tile_sum({sv})")
                out2 = self.new_out((G,))
                self.body.append(f"wp.tile_store({out2}, tot, offset=i)")
                self.add_sum_error(M * N, m.iv.mag, n_red + L + 2)
            self.meta["out2"] = out2
        self.meta.update(G=G, M=M, N=N, form=form, xs=xs, premap=m, reds=reds, extra=extra, grid=(G,))
        self.tid = self.grid_index(False)

    def _affine_func(self, a: float, b: float) -> str:
        name = f"{PLACEHOLDER}_aff{self.funcs}"
        self.funcs += 1
        v = ir.Var("v", self.sty)
        ret = ir.Call("add", (ir.Call("mul", (v, ir.Const(round(a, 4), self.sty))), ir.Const(round(b, 4), self.sty)))
        self.helpers.append(ir.Func(name, (ir.Param("v", self.sty),), self.sty, (ir.Return(ret),)))
        self.meta["affine"] = self.helpers[-1]
        return name

    def p_loop(self):
        r = self.rng
        G = int(r.integers(2, 6))
        B = int(pick(r, (16, 32, 64, 128)))
        C = int(r.integers(2, 6))
        form = pick(r, ("contig", "stride", "row", "dyn"))
        x = self.new_in((G, C * B) if form == "row" else (G * C * B,))
        kv = pick(r, ("k", "c", "j", "chunk"))
        b = self.body
        b.append(f"acc = wp.tile_zeros(shape=1, dtype={self.D})")
        track_max = r.random() < 0.35
        if track_max:
            b.append(f"mx = wp.tile_full(shape=1, value={self.cast(NEG_INIT[self.ty])}, dtype={self.D})"
                     if r.random() < 0.5 else f"mx = wp.tile_ones(shape=1, dtype={self.D}) * {self.lit_text(NEG_INIT[self.ty])}")
        if form == "contig":
            b.append(f"for {kv} in range({C}):")
            off = f"(i * {C} + {kv}) * {B}"
            load = f"wp.tile_load({x}, shape={B}, offset={off})"
        elif form == "stride":
            b.append(f"for {kv} in range({C}):")
            load = f"wp.tile_load({x}, shape={B}, offset=({kv} * {G} + i) * {B})"
        elif form == "row":
            b.append(f"for {kv} in range({C}):")
            load = f"wp.tile_load({x}[i], shape={B}, offset={kv} * {B})"
        else:
            b.append(f"n = {x}.shape[0] // {B}")
            # Warp 1.19: the adjoint of a tile accumulated in a loop with run-time bounds came out 0 (measured:
            # quick seed q030, |diff| 2.47e3 against finite differences of the reference): no gradient claimed
            self.grad = False
            b.append(f"for {kv} in range(i, n, {G}):")
            load = f"wp.tile_load({x}, shape={B}, offset={kv} * {B})"
        b.append(f"    t = {load}")
        m = self.transform(["t"], [self.in_iv()])
        b += [f"    {line}" for line in m.lines]
        e = m.name
        b.append(f"    acc += wp.tile_sum({e})")
        if track_max:
            b.append(f"    mx = wp.tile_map(wp.max, mx, wp.tile_max({e}))")
            self.grad = False
        self.ops.update({f"loop_{form}", "tile_accumulate"})
        per_block = C
        self.add_sum_error(per_block * B, m.iv.mag, B // self.block_dim + self.block_dim + per_block + G + 2)
        reds = [("acc", {"red": "sum"})] + ([("mx", {"red": "max"})] if track_max else [])
        self.meta.update(G=G, B=B, C=C, form=form, x=x, premap=m, grid=(G,), reds=reds)
        self.finish_block(reds, G, m.iv, C * B)

    def p_simt(self):
        r = self.rng
        G = int(r.integers(2, 6))
        B = self.block_dim
        coarse = r.random() < 0.5
        C = int(r.integers(2, 5)) if coarse else 1
        two = r.random() < 0.3
        xs = [self.new_in((G * B * C,)) for _ in range(2 if two else 1)]
        b = self.body
        leaves = {"xv": self.in_iv()}
        if two:
            leaves["yv"] = self.in_iv()
        node, niv = self.scalar_expr(leaves, depth=int(r.integers(1, 3)))
        order = pick(r, ("coalesced", "per_thread"))
        Bt = str(B)
        if r.random() < 0.5:                         # the block width read at run time
            b.append("bd = wp.block_dim()")
            Bt = "bd"
            self.ops.add("block_dim")
        if coarse:
            kv = pick(r, ("k", "kk", "it"))
            idx = f"(i * {C} + {kv}) * {Bt} + lane" if order == "coalesced" else f"(i * {Bt} + lane) * {C} + {kv}"
            b.append(f"part = {self.cast(0)}")
            b.append(f"for {kv} in range({C}):")
            b.append(f"    xv = {xs[0]}[{idx}]")
            if two:
                b.append(f"    yv = {xs[1]}[{idx}]")
            b.append(f"    part += {expr_text(node)}")
            v = "part"
        else:
            b.append(f"xv = {xs[0]}[i * {Bt} + lane]")
            if two:
                b.append(f"yv = {xs[1]}[i * {Bt} + lane]")
            b.append(f"v = {expr_text(node)}")
            v = "v"
        b.append(f"t = wp.tile({v})")
        self.ops.update({"tile_from_thread_values", f"simt_{'coarse_' + order if coarse else 'single'}"})
        iv = Interval(niv.lo * C, niv.hi * C)
        self.add_sum_error(B * C, niv.mag, C + self.block_dim + G + 2)
        self.meta.update(G=G, B=B, C=C, coarse=coarse, order=order, xs=xs, node=node, grid=(G,))
        post = pick(r, ("reduce", "reduce", "center", "scan", "map")) if not (self.ty == "float64") else \
            pick(r, ("reduce", "reduce", "center", "map"))
        self.meta["post"] = post
        if post == "reduce":
            reds = self.pick_reductions(int(r.integers(1, 3)), False, iv, B)
            reds = self.safe_args(reds, injective=not self.is_int, ragged=False)
            red_meta = []
            for k, red in enumerate(reds):
                text, info = self.reduction_text(red, "t", None, B, iv)
                b.append(f"r{k} = {text}")
                red_meta.append((f"r{k}", info))
            self.meta["reds"] = red_meta
            self.finish_block(red_meta, G, iv, B, lane_available=True)
            return
        y = self.new_out((G * B,))
        if post == "center":
            b.append("s = wp.tile_sum(t)")
            width = self.cast(B) if Bt != "bd" else f"{self.D}(bd)"
            mean = f"s[0] / {width}"
            if self.ty == "float32" and Bt != "bd" and r.random() < 0.6:    # 1 / B folded at compile time
                mean = f"s[0] * wp.static(1.0 / {B})"
                self.ops.add("static_constant")
            b.append(f"{y}[i * {Bt} + lane] = {v} - {mean}" if not self.is_int else
                     f"{y}[i * {Bt} + lane] = {v} * {Bt} - s[0]")
            self.ops.add("block_center")
        elif post == "map":                           # a tile transform handed back to the threads
            m = self.premap(["t"], [iv], allow=("builtin", "func", "scale"))
            b.append(f"w = wp.untile({m.text})")
            b.append(f"{y}[i * {Bt} + lane] = w")
            self.meta["premap"] = m
            self.ops.add("block_map_untile")
            self.grad = False
        else:
            b.append(f"pre = wp.untile(wp.tile_scan_{pick(r, ('inclusive', 'exclusive'))}(t))")
            b.append(f"{y}[i * {Bt} + lane] = pre")
            self.meta["scan"] = "inclusive" if "inclusive" in b[-2] else "exclusive"
            self.ops.add("block_scan_untile")
            self.grad = False
        self.meta["y"] = y
        self.tid = self.grid_index(True)

    def p_scan(self):
        r = self.rng
        G = int(r.integers(2, 7))
        N = int(pick(r, (16, 32, 64, 128)))
        form = pick(r, ("batch", "flat"))
        two = r.random() < 0.3
        xs = [self.new_in((G, N) if form == "batch" else (G * N,)) for _ in range(2 if two else 1)]
        tn = ["t", "u"][: len(xs)]
        for nm, x in zip(tn, xs):
            load = f"wp.tile_load({x}[i], shape={N})" if form == "batch" else \
                f"wp.tile_load({x}, shape={N}, offset=i * {N})"
            self.body.append(f"{nm} = {load}")
        m = self.transform(tn, [self.in_iv()] * len(tn), chain_p=0.5, bare=False)
        self.body += m.lines
        if m.arity < len(tn):
            op = pick(r, ("+", "-", "*"))
            self.body.append(f"g = {m.name} {op} u")
            iv = bound({"+": "add", "-": "sub", "*": "mul"}[op], self.sty, m.iv, self.in_iv())
            m = _Xf(m.lines, "g", iv, [_Fold(_XfMap(m), op, iv)])
        e = m.name
        kinds = [pick(r, ("inclusive", "inclusive", "exclusive", "max", "min"))]
        if r.random() < 0.3:
            kinds.append(pick(r, tuple(k for k in ("inclusive", "exclusive", "max", "min") if k != kinds[0])))
        self.grad = False
        scans = []
        for k, kind in enumerate(kinds):
            cv = f"c{k}"
            self.body.append(f"{cv} = {SCANS[kind]}({e})")
            if kind in ("inclusive", "exclusive"):
                self.add_sum_error(N, m.iv.mag, N + 2)
            post = pick(r, ("none", "none", "sub", "total", "scale"))
            out = self.new_out((G, N) if form == "batch" else (G * N,))
            lit = None
            if post == "sub":
                self.body.append(f"{cv} = {cv} - {e}" if kind != "exclusive" else f"{cv} = {cv} + {e}")
            elif post == "scale":
                c = round(float(r.uniform(0.25, 2.0)), 2) if not self.is_int else int(pick(r, (2, 3, -1)))
                lit = c if self.is_int else rounded(c, self.sty)
                self.body.append(f"{cv} = {cv} * {self.lit_text(c)}")
            if form == "batch":
                self.body.append(f"wp.tile_store({out}[i], {cv})")
            else:
                self.body.append(f"wp.tile_store({out}, {cv}, offset=i * {N})")
            out2 = None
            if post == "total":
                out2 = self.new_out((G,))
                self.body.append(f"{out2}[i] = {cv}[{N - 1}]" if r.random() < 0.5 else
                                 f"{out2}[i] = wp.tile_extract({cv}, {N - 1})")
            self.ops.add(f"tile_scan_{kind}")
            scans.append((kind, post, lit, out, out2))
        self.meta.update(G=G, N=N, form=form, xs=xs, premap=m, scans=scans, grid=(G,))
        self.tid = self.grid_index(False)

    def p_thread(self):
        r = self.rng
        T = int(pick(r, (32, 64, 128, 256)))
        C = int(r.integers(2, 9))
        two = r.random() < 0.3
        xs = [self.new_in((T * C,)) for _ in range(2 if two else 1)]
        leaves = {"xv": self.in_iv()}
        if two:
            leaves["yv"] = self.in_iv()
        node, niv = self.scalar_expr(leaves, depth=int(r.integers(1, 3)))
        form = pick(r, ("contig", "strided", "dyn"))
        kv = pick(r, ("k", "j", "s"))
        b = self.body
        combine = pick(r, ("add", "add", "add", "max", "min"))
        init = {"add": 0, "max": NEG_INIT[self.ty], "min": POS_INIT[self.ty]}[combine]
        b.append(f"part = {self.cast(init)}")
        if form == "contig":
            b.append(f"for {kv} in range({C}):")
            idx = f"i * {C} + {kv}"
        elif form == "strided":
            b.append(f"for {kv} in range({C}):")
            idx = f"{kv} * {T} + i"
        else:
            b.append(f"for {kv} in range(i, {xs[0]}.shape[0], {T}):")
            idx = kv
        b.append(f"    xv = {xs[0]}[{idx}]")
        if two:
            b.append(f"    yv = {xs[1]}[{idx}]")
        expr = expr_text(node)
        if combine == "add":
            b.append(f"    part += {expr}")
        else:
            b.append(f"    part = wp.{combine}(part, {expr})")
        nbins = int(pick(r, (1, 1, 2, 4, 8)))
        bins = pick(r, ("mod", "div")) if nbins > 1 else "one"
        bin_text = {"one": "0", "mod": f"i % {nbins}", "div": f"i // {T // nbins}"}[bins]
        if combine == "add":
            out = self.new_out((nbins,))
        else:   # max/min: the caller initialises the bins with a sentinel (a zero start would win the max/min)
            out = self.new_inout((nbins,), init)
        atomic = {"add": "atomic_add", "max": "atomic_max", "min": "atomic_min"}[combine]
        if r.random() < 0.5 and nbins > 1:
            b.append(f"bin = {bin_text}")
            bin_text = "bin"
        b.append(f"wp.{atomic}({out}, {bin_text}, part)")
        partials = None
        if r.random() < 0.3:
            partials = self.new_out((T,))
            b.append(f"{partials}[i] = part")
        if combine != "add":
            self.grad = False
        else:
            self.add_sum_error(T * C, niv.mag, C + T // nbins + 2)
        self.ops.update({f"thread_loop_{form}", f"{atomic}", f"bins_{bins}"})
        self.meta.update(T=T, C=C, form=form, xs=xs, node=node, combine=combine, init=init, nbins=nbins,
                         bins=bins, out=out, partials=partials, grid=(T,))
        self.tid = "i = wp.tid()"
        self.tiled = False

    # --- per-block results -> outputs ------------------------------------------------------------------------
    def finish_block(self, red_meta, G, iv, n, lane_available=False):
        """Write per-block reduction results: stores, element writes, or atomics across blocks."""
        r = self.rng
        b = self.body
        lane = lane_available
        whole = self.meta.get("form") == "whole"       # one block, no thread index: results go to element 0
        at, offset = ("0", "") if whole else ("i", ", offset=i")
        float_reds = [(v, i) for v, i in red_meta if i["red"] not in ("argmax", "argmin")]
        int_reds = [(v, i) for v, i in red_meta if i["red"] in ("argmax", "argmin")]
        sinks = []
        if int_reds:
            idx = self.new_out((G,), dtype="int32")
            for k, (v, info) in enumerate(int_reds):
                if len(int_reds) == 1:
                    if r.random() < 0.5:
                        b.append(f"wp.tile_store({idx}, {v}{offset})")
                    else:
                        b.append(f"{idx}[{at}] = {v}[0]")
                    sinks.append(("idx", idx, v))
                else:
                    idx_k = idx if k == 0 else self.new_out((G,), dtype="int32")
                    b.append(f"{idx_k}[{at}] = {v}[0]")
                    sinks.append(("idx", idx_k, v))
        if float_reds:
            mode = pick(r, ("store", "elem", "expr", "tile_atomic", "lane_atomic")[:4 if whole else 5])
            if len(float_reds) > 1 and mode in ("store", "tile_atomic", "lane_atomic"):
                mode = pick(r, ("expr", "combine_tile"))
            if whole and mode == "tile_atomic" and float_reds[0][1]["red"] in MAX_MIN_REDS:
                mode = "elem"       # no tile atomic max/min, and one block without a thread index has no lane 0
            if mode == "store":
                v = float_reds[0][0]
                out = self.new_out((G,))
                b.append(f"wp.tile_store({out}, {v}{offset})")
                sinks.append(("block", out, ("var", v)))
            elif mode == "elem":
                v = float_reds[0][0]
                out = self.new_out((G,))
                b.append(f"{out}[{at}] = {v}[0]")
                sinks.append(("block", out, ("var", v)))
            elif mode == "expr":
                leaves = {}
                locals_ = []
                for k, (v, info) in enumerate(float_reds):       # the block results as scalars
                    b.append(f"x{k} = {v}[0]")
                    leaves[f"x{k}"] = self._red_iv(info, iv, n)
                    locals_.append((f"x{k}", v))
                node, _ = self.scalar_expr(leaves, depth=2, limit=1e6, math_ok=False)
                out = self.new_out((G,))
                b.append(f"{out}[{at}] = {expr_text(node)}")
                sinks.append(("block", out, ("node", node, locals_)))
            elif mode == "combine_tile":
                # combine (1,)-tiles with tile arithmetic, then store
                v0 = float_reds[0][0]
                combined = v0
                terms = [("var", v0, 1)]
                for v, _ in float_reds[1:]:
                    op = pick(r, ("+", "-"))
                    combined = f"{combined} {op} {v}"
                    terms.append(("var", v, 1 if op == "+" else -1))
                b.append(f"comb = {combined}")
                out = self.new_out((G,))
                b.append(f"wp.tile_store({out}, comb{offset})")
                sinks.append(("block", out, ("lin", terms)))
                self.ops.add("tile_combine")
            else:
                v, info = float_reds[0]
                is_max = info["red"] in MAX_REDS
                is_min = info["red"] in MIN_REDS
                nb = 1 if whole else int(pick(r, (1, 1, 2, 3)))
                if is_max or is_min:
                    total = self.new_inout((nb,), NEG_INIT[self.ty] if is_max else POS_INIT[self.ty])
                else:
                    total = self.new_out((nb,))
                if mode == "tile_atomic" and not (is_max or is_min):
                    off = "0" if nb == 1 else f"i % {nb}"
                    b.append(f"wp.tile_atomic_add({total}, {v}, offset={off})" if nb > 1 or r.random() < 0.5
                             else f"wp.tile_atomic_add({total}, {v})")
                    sinks.append(("atomic", total, v, "add", nb))
                    self.ops.add("tile_atomic_add")
                else:
                    lane = True
                    fn = "atomic_max" if is_max else ("atomic_min" if is_min else "atomic_add")
                    off = "0" if nb == 1 else f"i % {nb}"
                    if r.random() < 0.75:
                        # extract before the branch: tile_extract's adjoint needs every thread of the block
                        b.append(f"blk = {v}[0]")
                        b.append("if lane == 0:")
                        b.append(f"    wp.{fn}({total}, {off}, blk)")
                    else:
                        # Warp 1.19: tile_extract inside ``if lane == 0`` runs forward fine but its adjoint
                        # is wrong (measured), so no gradient is claimed for this form
                        b.append("if lane == 0:")
                        b.append(f"    wp.{fn}({total}, {off}, {v}[0])")
                        self.grad = False
                    sinks.append(("atomic", total, v, fn.split("_")[1], nb))
                    self.ops.add(f"lane0_{fn}")
                    if fn != "atomic_add":
                        self.grad = False
                # G block results are added in any order: G more additions over G times the terms
                self.err_bound = G * (self.err_bound + G * self.sum_bound)
                self.sum_bound *= G
                self.depth += G
        self.meta["sinks"] = sinks
        self.tid = None if whole else self.grid_index(lane)

    def _red_iv(self, info, iv: Interval, n: int) -> Interval:
        red = info["red"]
        if red in ("sum", "r_add", "fsum"):
            return Interval(iv.lo * n, iv.hi * n) if iv.lo >= 0 or iv.hi <= 0 else Interval(-iv.mag * n, iv.mag * n)
        if red == "fsumc":
            c = abs(info["c"]) * n
            return Interval(-iv.mag * n - c, iv.mag * n + c)
        if red == "fabs":
            return Interval(0.0, iv.mag * n)
        if red == "dot":
            return Interval(-iv.mag * VALUE_LIMIT[self.ty] * n, iv.mag * VALUE_LIMIT[self.ty] * n)
        if red == "fmaxabs":
            return Interval(0.0, iv.mag)
        if red == "r_mul":
            return Interval(-iv.mag ** n, iv.mag ** n)
        if red in ("r_xor", "r_or", "r_and"):                   # non-negative operands below 2**k
            return Interval(0.0, 2.0 ** int(iv.mag).bit_length() - 1)
        return iv

    # --- assembly ------------------------------------------------------------------------------------------------
    def program(self) -> Program:
        sig = []
        for a in self.args:
            sig.append(f"{a.name}: {array_type(a.dtype, len(a.shape))}")
        tid = getattr(self, "tid", "i = wp.tid()")
        source = kernel_source(sig, self.body, self.helpers, tid)
        tiled = getattr(self, "tiled", True)
        self.meta.update(depth=self.depth, sum_bound=self.sum_bound, err_bound=self.err_bound)
        features = {"dtype": self.ty, "pattern": self.pattern, "ops": sorted(self.ops),
                    "block_dim": self.block_dim if tiled else None, "grid": list(self.meta["grid"])}
        return Program(source, tuple(self.args), tuple(self.meta["grid"]), self.meta, features,
                       differentiable=self.grad and not self.is_int, block_dim=self.block_dim if tiled else None,
                       tiled=tiled)


class _MapChain(_Map):
    """A one-tile transform followed by ``+ u`` (the second input), for integer kernels without ``tile_dot``."""

    def __init__(self, inner, iv: Interval):
        super().__init__("chain", "", iv, arity=2)
        self.inner = inner

    def evaluate(self, *vals):
        return self.inner.evaluate(vals[0]) + vals[1]


class _Fold(_Map):
    """A transform of one tile followed by ``op u`` with the second input tile."""

    def __init__(self, inner, op: str, iv: Interval):
        super().__init__("fold", "", iv, arity=2)
        self.inner, self.op = inner, op

    def evaluate(self, *vals):
        a = self.inner.evaluate(vals[0])
        return {"+": np.add, "-": np.subtract, "*": np.multiply}[self.op](a, vals[1])


class _XfMap(_Map):
    """A whole transform chain used as one map."""

    def __init__(self, xf):
        super().__init__("xf", "", xf.iv, arity=xf.arity)
        self.xf = xf

    def evaluate(self, *vals):
        return self.xf.evaluate(*vals)


class _Xf:
    """A chain of element transforms: the first takes 1-2 tiles, the rest one; ``lines`` bind ``name``."""

    def __init__(self, lines, name, iv, maps):
        self.lines, self.name, self.iv, self.maps = lines, name, iv, maps

    @property
    def arity(self) -> int:
        return self.maps[0].arity

    @property
    def injective_int(self) -> bool:
        return all(m.kind in ("none", "scale") for m in self.maps)

    def evaluate(self, *vals):
        v = self.maps[0].evaluate(*vals)
        for m in self.maps[1:]:
            v = m.evaluate(v)
        return v


LOCALS = frozenset({"bd", "pre", "w", "x0", "x1", "x2", "t", "u", "e", "e2", "e3", "g", "r0", "r1", "r2", "acc", "mx", "n", "k", "c", "j", "chunk", "s",
                    "part", "xv", "yv", "v", "y", "m", "z", "mean", "var", "nrm", "hi", "lo", "amax", "p", "tot",
                    "comb", "bin", "i", "lane", "f", "blk", "val"})
PATTERNS = ("row", "row", "axis", "loop", "simt", "scan", "thread")


def generate(rng: np.random.Generator) -> Program:
    pattern = pick(rng, PATTERNS)
    return _Gen(rng, pattern).build()


# ------------------------------------------------------------------------------------------------------------
# Reference


def _reduce(info: dict, e: np.ndarray, u: np.ndarray | None = None, sty=None) -> np.ndarray:
    """Whole-tile reduction over the last axis (tiles are given flattened: ``(..., n)``): the tile operations
    (sum, max, min, argmax, argmin, dot) in NumPy, ``tile_reduce`` operators by the IR (table rows, helpers)."""
    red = info["red"]
    if red == "dot":
        return (e * u).sum(-1)
    if red in RED_OPS:
        return fold_op(RED_OPS[red], sty, e)
    if red in RED:
        return RED[red][1](e)
    return fold_func(info["func"], e)


def _sinks(meta, values: dict, out: dict, ty, inputs) -> None:
    for sink in meta["sinks"]:
        kind = sink[0]
        if kind == "idx":
            out[sink[1]] = values[sink[2]].astype(np.int64)
        elif kind == "block":
            how = sink[2]
            if how[0] == "var":
                out[sink[1]] = values[how[1]]
            elif how[0] == "node":
                env = {local: values[v] for local, v in how[2]}
                out[sink[1]] = np.broadcast_to(evaluate(how[1], env), values[next(iter(values))].shape)
            else:
                out[sink[1]] = sum(sign * values[v] for _, v, sign in how[1])
        else:
            _, name, v, op, nb = sink
            vals = values[v]
            bins = np.arange(vals.shape[0]) % nb
            res = np.asarray(inputs[name], dtype=np.float64).copy() if op != "add" else np.zeros(nb)
            for b in range(nb):
                sel = vals[bins == b]
                if op == "add":
                    res[b] = sel.sum()
                elif op == "max":
                    res[b] = max(res[b], sel.max()) if sel.size else res[b]
                else:
                    res[b] = min(res[b], sel.min()) if sel.size else res[b]
            out[name] = res


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    meta = spec.meta
    sty = SCALAR_TYPES[meta["ty"]]
    f = lambda name: np.asarray(inputs[name]).astype(sty.carrier)  # noqa: E731
    pattern = meta["pattern"]
    out: dict[str, np.ndarray] = {}
    if pattern == "row":
        G, N, short = meta["G"], meta["N"], meta["short"]
        tiles = []
        for name in meta["inputs"]:
            x = f(name)
            if meta["form"] == "flat":
                x = np.pad(x, (0, short)).reshape(G, N)
            tiles.append(x.reshape(G, N))
        if meta.get("normalize"):
            return {meta["y_out"]: _normalize(meta, meta["premap"].evaluate(tiles[0]))}
        m = meta["premap"]
        e = m.evaluate(*tiles)
        u = tiles[1] if len(tiles) > 1 else None
        values = {var: _reduce(info, e, u, sty) for var, info in meta["reds"]}
        _sinks(meta, values, out, sty, inputs)
        return out
    if pattern == "axis":
        G, M, N = meta["G"], meta["M"], meta["N"]
        ts = [f(x).reshape(G, M, N) for x in meta["xs"]]
        e = meta["premap"].evaluate(*ts)
        first = None
        for sv, axis, red, name in meta["reds"]:
            src = e
            if red == "r_mul":
                src = call(meta["affine"], e)
            s = np.sum(src, axis=axis + 1) if red == "sum" else fold_op(RED_OPS[red], sty, src, axis + 1)
            out[name] = s
            first = s if first is None else first
        axis = meta["reds"][0][1]
        if meta["extra"] == "center":
            n_red = M if axis == 0 else N
            sb = first[:, None, :] if axis == 0 else first[:, :, None]
            ninv = float(np.float32(1.0 / n_red)) if sty.name == "float32" else 1.0 / n_red
            out[meta["out2"]] = e - sb * ninv
        elif meta["extra"] == "total":
            out[meta["out2"]] = first.sum(-1)
        return out
    if pattern == "loop":
        G, B, C = meta["G"], meta["B"], meta["C"]
        x = f(meta["x"])
        if meta["form"] in ("contig", "row"):
            chunks = x.reshape(G, C, B)
        else:
            chunks = x.reshape(C, G, B).transpose(1, 0, 2)
        e = meta["premap"].evaluate(chunks)
        values = {"acc": e.sum((-1, -2))}
        if any(v == "mx" for v, _ in meta["reds"]):
            values["mx"] = np.maximum(NEG_INIT[meta["ty"]], e.max((-1, -2)))
        _sinks(meta, values, out, sty, inputs)
        return out
    if pattern == "simt":
        G, B, C = meta["G"], meta["B"], meta["C"]
        xs = [f(n) for n in meta["xs"]]
        if not meta["coarse"]:
            env = {"xv": xs[0].reshape(G, B)}
            if len(xs) > 1:
                env["yv"] = xs[1].reshape(G, B)
            part = np.broadcast_to(evaluate(meta["node"], env), (G, B))
        else:
            shape, axis = ((G, C, B), 1) if meta["order"] == "coalesced" else ((G, B, C), 2)
            env = {"xv": xs[0].reshape(shape)}
            if len(xs) > 1:
                env["yv"] = xs[1].reshape(shape)
            vals = np.broadcast_to(evaluate(meta["node"], env), shape)
            part = vals.sum(axis)
            if sty.is_int:
                part = part.astype(np.int64).astype(np.int32)    # Warp's int32 sums wrap
        post = meta["post"]
        if post == "reduce":
            values = {var: _reduce(info, part, sty=sty) for var, info in meta["reds"]}
            _sinks(meta, values, out, sty, inputs)
            return out
        if post == "center":
            s = part.sum(-1, keepdims=True)
            out[meta["y"]] = (part * B - s if sty.is_int else part - s / B).reshape(-1)
        elif post == "map":
            out[meta["y"]] = meta["premap"].evaluate(part).reshape(-1)
        else:
            c = np.cumsum(part, -1)
            out[meta["y"]] = (c if meta["scan"] == "inclusive" else c - part).reshape(-1)
        return out
    if pattern == "scan":
        G, N = meta["G"], meta["N"]
        ts = [f(x).reshape(G, N) for x in meta["xs"]]
        e = meta["premap"].evaluate(*ts)
        for kind, post, lit, name, name2 in meta["scans"]:
            if kind == "inclusive":
                c = np.cumsum(e, -1)
            elif kind == "exclusive":
                c = np.cumsum(e, -1) - e
            elif kind == "max":
                c = np.maximum.accumulate(e, -1)
            else:
                c = np.minimum.accumulate(e, -1)
            if post == "sub":
                c = c + e if kind == "exclusive" else c - e
            elif post == "scale":
                c = c * lit
            out[name] = c.reshape(f(meta["xs"][0]).shape)
            if name2:
                out[name2] = c[:, -1]
        return out
    if pattern == "thread":
        T, C = meta["T"], meta["C"]
        xs = [f(n) for n in meta["xs"]]
        shape = (T, C)
        if meta["form"] == "contig":
            views = [x.reshape(T, C) for x in xs]
        else:
            views = [x.reshape(C, T).T for x in xs]
        env = {"xv": views[0]}
        if len(views) > 1:
            env["yv"] = views[1]
        vals = np.broadcast_to(evaluate(meta["node"], env), shape).astype(np.float64)
        combine = meta["combine"]
        if combine == "add":
            part = vals.sum(-1)
        elif combine == "max":
            part = np.maximum(meta["init"], vals.max(-1))
        else:
            part = np.minimum(meta["init"], vals.min(-1))
        nb = meta["nbins"]
        ids = np.arange(T)
        bins = {"one": np.zeros(T, dtype=int), "mod": ids % nb, "div": ids // (T // nb)}[meta["bins"]]
        res = np.zeros(nb) if combine == "add" else np.asarray(inputs[meta["out"]], dtype=np.float64).copy()
        for b in range(nb):
            sel = part[bins == b]
            res[b] = sel.sum() if combine == "add" else (max(res[b], sel.max()) if combine == "max"
                                                           else min(res[b], sel.min()))
        out[meta["out"]] = res
        if meta["partials"]:
            out[meta["partials"]] = part
        return out
    raise ValueError(pattern)


def _normalize(meta, t: np.ndarray) -> np.ndarray:
    kind = meta["normalize"]
    N = t.shape[-1]
    ninv = float(np.float32(1.0 / N)) if meta["ty"] == "float32" else 1.0 / N
    if kind == "softmax":
        z = np.exp(t - t.max(-1, keepdims=True))
        y = z / z.sum(-1, keepdims=True)
    elif kind == "center":
        y = t - t.sum(-1, keepdims=True) * ninv
    elif kind == "layernorm":
        c = t - t.sum(-1, keepdims=True) * ninv
        var = (c * c).sum(-1, keepdims=True) * ninv
        eps = float(np.float32(1e-5)) if meta["ty"] == "float32" else 1e-5
        y = c / np.sqrt(var + eps)
    elif kind == "l2":
        y = t / np.sqrt((t * t).sum(-1, keepdims=True))
    else:
        y = t / np.maximum(t.max(-1, keepdims=True), -t.min(-1, keepdims=True))
    if meta["form"] in ("flat", "whole"):
        y = y.reshape(-1)[: meta["G"] * N - meta["short"]]
    return y


def tolerance(spec: KernelSpec) -> Tolerance:
    ty = spec.meta["ty"]
    if ty == "int32":
        return Tolerance(0.0, 0.0)
    bound = EPS[ty] * spec.meta["err_bound"]
    if ty == "float32":
        return Tolerance(1e-4, max(1e-5, bound))
    return Tolerance(1e-9, max(1e-11, bound))


def sample_inputs(spec: KernelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Uniform inputs, except that argmax/argmin kernels get distinct values (no ties by construction)."""
    from harness.verify import default_inputs
    values = default_inputs(spec, rng)
    if not spec.meta.get("distinct"):
        return values
    for a in spec.args:
        if a.role == "in":
            n = int(np.prod(a.shape))
            if spec.meta["ty"] == "int32":
                span = int(a.high - a.low + 1)
                perm = rng.permutation(max(span, n))[:n] + int(a.low)
                values[a.name] = perm.reshape(a.shape).astype(np.int32)
            else:
                step = (a.high - a.low) / n
                grid = a.low + step * (np.arange(n) + rng.uniform(0.1, 0.9, size=n))   # jittered: no symmetry
                values[a.name] = rng.permutation(grid).reshape(a.shape).astype(values[a.name].dtype)
    return values


FAMILY = Family(
    name="reduction",
    description=__doc__.strip().splitlines()[0],
    generate=screened("reduction", generate, reference, tolerance, sample_inputs),
    reference=reference,
    tolerance=tolerance,
    sample_inputs=sample_inputs,
    version=3,
    weight=1.0,
    covers=("parallel reduction", "tile_sum", "tile_max", "tile_min", "tile_argmax", "tile_reduce", "tile_dot",
            "tile_scan", "atomic_add", "atomic_max", "grid-stride loop", "block reduction", "float64", "int32"),
)
