"""sph: SPH neighbour sums over a wp.HashGrid: densities, pressure and viscosity forces, smoothed fields.

One thread per particle (64 particles of a jittered 4x4x4 lattice, spacing 0.5). The kernel loops over
``wp.hash_grid_query`` (``for`` form, or ``hash_grid_query_next`` in a ``while``), filters the candidates by
distance (``dot(d, d) < support * support`` or ``length(d) < support``) and accumulates 1-2 quantities drawn
from: density ``sum m_j W``, pressure force ``-sum m_j (p_i + p_j) / (2 rho_j) grad W`` (or the symmetric
``p_i / rho_i^2 + p_j / rho_j^2`` form), viscosity ``mu sum m_j (v_j - v_i) / rho_j lap W``, and a smoothed
field ``sum m_j / rho_j A_j W``. Smoothing kernels are ``@wp.func`` helpers drawn from poly6, spiky, cubic
spline (support h or 2h) and Wendland C2 shapes, normalised with their closed-form factor of ``h`` or not;
pressures come from an equation of state drawn as linear, Tait (``wp.pow``) or a random expression of the
density, clamped or not; masses are an array, a scalar or unit.

The IR interpreter is the reference: a ``GridQuery`` loop visits every point (brute-force neighbour search),
which equals Warp's cell-superset query because the body filters by distance. Kernels vanish continuously at
the support radius, so a neighbour whose membership flips under float32 rounding changes nothing measurable.
Neighbour sums run in cell order in Warp and index order in the reference: rtol 1e-4 and atol 1e-4 cover
float32 sums of up to ~60 terms of magnitude up to ~20 in any order; larger cancellation is masked by the
verifier's rounding-sized perturbations. Distinct particles are at least 0.3 apart (an assumption given to the
interval engine for the distance that force terms divide by). Not differentiated (neighbour loops of dynamic
length); half the kernels say so with ``@wp.kernel(enable_backward=False)``, and Warp emits no adjoint for them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

import numpy as np
import warp as wp

from harness.family import KernelSpec, Program, Tolerance
from kernels.ir import analysis
from kernels.ir import nodes as n
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import ExprBuilder, Vocabulary
from kernels.ir.numeric import INF, Interval
from kernels.ir.sim import VEC3, SimMeta, call, clean, f32, sample_inputs, var, vec3
from kernels.ir.types import FLOAT32, INT32, UINT64, Array

COUNTS, SPACING, JITTER = (4, 4, 4), 0.5, 0.1
N = 64
POS = Interval(-JITTER, 3 * SPACING + JITTER)
MIN_DIST = SPACING - 2 * JITTER
RHO = Interval(0.8, 1.5)
VEL = Interval(-1.0, 1.0)
TOL = Tolerance(1e-4, 1e-4)
PI = 3.1415927
EOS_OPS = {"add": 2, "sub": 2, "mul": 3, "div": 1, "max": 0.5, "sqrt": 0.4, "exp": 0.3, "tanh": 0.4, "log": 0.4}
NAMES = {"grid": ("grid", "grid_id", "hash_grid"), "x": ("x", "pos", "particle_x", "points"),
         "m": ("mass", "particle_mass", "m"), "rho": ("rho", "density", "particle_rho"),
         "v": ("v", "vel", "particle_v"), "A": ("phi", "temp", "field", "color"),
         "h": ("h", "smoothing_length", "support", "radius"), "out_rho": ("rho_out", "density_out", "rho_new"),
         "out_p": ("p_out", "pressure", "press_out"), "out_f": ("f_out", "force", "accel", "dvdt"),
         "out_a": ("phi_out", "field_out", "smoothed")}


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def max_hits(support: float) -> int:
    """Points of the jittered lattice within ``support`` of one of them (itself included), at most: lattice
    sites within ``support + 2 * jitter * sqrt(3)`` of its site."""
    reach = (support + 2 * JITTER * math.sqrt(3)) / SPACING
    k = int(math.ceil(reach))
    return sum(1 for o in itertools.product(range(-k, k + 1), repeat=3) if math.sqrt(sum(c * c for c in o)) <= reach)


# ---------------------------------------------------------------------------------------------------------
# Smoothing kernels (as @wp.func helpers)

@dataclass(frozen=True)
class Shape:
    """A smoothing kernel: ``W`` of ``r`` (or ``r2``), its radial derivative, the support in units of h."""

    name: str
    scale: float          # support radius / h
    on_r2: bool           # W takes the squared distance


SHAPES = (Shape("poly6", 1.0, True), Shape("spiky", 1.0, False), Shape("cubic", 1.0, False),
          Shape("cubic2h", 2.0, False), Shape("wendland", 1.0, False), Shape("random", 1.0, False),
          Shape("random", 1.0, False), Shape("random", 1.0, False), Shape("random", 1.0, False))
SHAPE_OPS = {"add": 2, "sub": 1.5, "mul": 3, "exp": 0.5, "tanh": 0.4, "sqrt": 0.4, "min": 0.4, "max": 0.4,
             "cos": 0.3}


def _norm(kind: str, h: n.Var, normalise: bool) -> n.Expr | None:
    """The closed-form normalisation of a 3D kernel as an expression of ``h`` (None when unnormalised)."""
    if not normalise:
        return None
    table = {"poly6": (315.0 / (64.0 * PI), 9.0), "spiky": (15.0 / PI, 6.0), "cubic": (8.0 / PI, 3.0),
             "cubic2h": (1.0 / PI, 3.0), "wendland": (21.0 / (2.0 * PI), 3.0), "spiky_grad": (45.0 / PI, 6.0),
             "poly6_grad": (945.0 / (32.0 * PI), 9.0), "visc_lap": (45.0 / PI, 6.0)}
    c, power = table[kind]
    return call("div", f32(round(c, 5)), call("pow", h, f32(power)))


def _times(e: n.Expr, norm: n.Expr | None) -> n.Expr:
    return e if norm is None else call("mul", norm, e)


def _value_func(shape: Shape, normalise: bool, name: str, rng: np.random.Generator) -> n.Func:
    """``W(r or r2, h)``, zero at the support radius (a ``random`` shape is ``(1 - q)^2`` times a random
    expression of ``q = r / h`` and ``1 - q``)."""
    h = var("h")
    r = var("r2" if shape.on_r2 else "r")
    body: list[n.Stmt] = []
    norm = _norm(shape.name, h, normalise) if shape.name != "random" else None
    if shape.name == "poly6":
        body.append(n.Let("t", call("sub", call("mul", h, h), r)))
        t = var("t")
        body.append(n.Return(_times(call("mul", call("mul", t, t), t), norm)))
    elif shape.name == "spiky":
        body.append(n.Let("t", call("sub", h, r)))
        t = var("t")
        body.append(n.Return(_times(call("mul", call("mul", t, t), t), norm)))
    elif shape.name in ("cubic", "cubic2h"):
        body.append(n.Let("q", call("div", r, h)))
        q = var("q")
        if shape.name == "cubic":           # Monaghan's spline on [0, 1]
            inner = call("add", call("mul", f32(6.0), call("sub", call("mul", call("mul", q, q), q), call(
                "mul", q, q))), f32(1.0))
            body.append(n.If(call("lt", q, f32(0.5)), (n.Return(_times(inner, norm)),)))
            body.append(n.Let("t", call("sub", f32(1.0), q)))
            t = var("t")
            body.append(n.Return(_times(call("mul", f32(2.0), call("mul", call("mul", t, t), t)), norm)))
        else:                               # the M4 spline on [0, 2]
            inner = call("add", call("sub", f32(1.0), call("mul", f32(1.5), call("mul", q, q))), call(
                "mul", f32(0.75), call("mul", call("mul", q, q), q)))
            body.append(n.If(call("lt", q, f32(1.0)), (n.Return(_times(inner, norm)),)))
            body.append(n.Let("t", call("sub", f32(2.0), q)))
            t = var("t")
            body.append(n.Return(_times(call("mul", f32(0.25), call("mul", call("mul", t, t), t)), norm)))
    elif shape.name == "random":
        body.append(n.Let("q", call("div", r, h)))
        body.append(n.Let("t", call("sub", f32(1.0), var("q"))))
        t, q = var("t"), var("q")
        vocab = Vocabulary(SHAPE_OPS, types=(FLOAT32,), ranges={FLOAT32: Interval(0.0, 1.0)}, limit=20.0,
                           p_leaf=0.3, p_const=0.25)
        g = ExprBuilder(rng, vocab, [(q, Interval(0.0, 1.0)), (t, Interval(0.0, 1.0))]).compound(
            FLOAT32, int(rng.integers(1, 4)))[0]
        scale = call("div", f32(1.0), call("mul", call("mul", h, h), h)) if normalise else None
        body.append(n.Return(_times(call("mul", call("mul", t, t), g), scale)))
    else:                                   # Wendland C2
        body.append(n.Let("q", call("div", r, h)))
        body.append(n.Let("t", call("sub", f32(1.0), var("q"))))
        t, q = var("t"), var("q")
        t4 = call("mul", call("mul", t, t), call("mul", t, t))
        body.append(n.Return(_times(call("mul", t4, call("add", f32(1.0), call("mul", f32(4.0), q))), norm)))
    return n.Func(name, (n.Param(r.name, FLOAT32), n.Param("h", FLOAT32)), FLOAT32, tuple(body))


def _grad_func(kind: str, normalise: bool, name: str) -> n.Func:
    """``dW/dr(r, h)`` of the spiky, poly6 or Wendland kernel (negative inside the support)."""
    h, r = var("h"), var("r")
    body: list[n.Stmt] = []
    if kind == "spiky":
        body.append(n.Let("t", call("sub", h, r)))
        t = var("t")
        ret = call("neg", _times(call("mul", t, t), _norm("spiky_grad", h, normalise)))
    elif kind == "poly6":
        body.append(n.Let("t", call("sub", call("mul", h, h), call("mul", r, r))))
        t = var("t")
        ret = call("neg", _times(call("mul", r, call("mul", t, t)), _norm("poly6_grad", h, normalise)))
    else:
        body.append(n.Let("q", call("div", r, h)))
        body.append(n.Let("t", call("sub", f32(1.0), var("q"))))
        t, q = var("t"), var("q")
        core = call("div", call("mul", call("mul", f32(20.0), q), call("mul", call("mul", t, t), t)), h)
        ret = call("neg", _times(core, _norm("wendland", h, normalise)))
    body.append(n.Return(ret))
    return n.Func(name, (n.Param("r", FLOAT32), n.Param("h", FLOAT32)), FLOAT32, tuple(body))


def _lap_func(normalise: bool, name: str, rng: np.random.Generator) -> n.Func:
    """The viscosity Laplacian: Mueller's ``45 / (pi h^6) (h - r)``, or ``(1 - q)`` times a random expression of
    ``q = r / h`` and ``1 - q``."""
    h, r = var("h"), var("r")
    if rng.random() < 0.5:
        return n.Func(name, (n.Param("r", FLOAT32), n.Param("h", FLOAT32)), FLOAT32,
                      (n.Return(_times(call("sub", h, r), _norm("visc_lap", h, normalise))),))
    q, t = var("q"), var("t")
    vocab = Vocabulary(SHAPE_OPS, types=(FLOAT32,), ranges={FLOAT32: Interval(0.0, 1.0)}, limit=20.0,
                       p_leaf=0.3, p_const=0.25)
    g = ExprBuilder(rng, vocab, [(q, Interval(0.0, 1.0)), (t, Interval(0.0, 1.0))]).compound(
        FLOAT32, int(rng.integers(1, 4)))[0]
    return n.Func(name, (n.Param("r", FLOAT32), n.Param("h", FLOAT32)), FLOAT32,
                  (n.Let("q", call("div", r, h)), n.Let("t", call("sub", f32(1.0), q)), n.Return(call("mul", t, g))))


def _eos(rng, rho: n.Expr) -> tuple[n.Expr, str]:
    """Pressure from density."""
    kind = _pick(rng, ("linear", "tait", "random"))
    rho0 = f32(_pick(rng, (1.0, 0.9, 1.1, 1.2)))
    if kind == "linear":
        e = call("mul", f32(round(float(rng.uniform(1.0, 5.0)), 1)), call("sub", rho, rho0))
    elif kind == "tait":
        gamma = f32(_pick(rng, (7.0, 3.0, 1.4)))
        e = call("mul", f32(round(float(rng.uniform(0.5, 3.0)), 1)), call("sub", call("pow", call(
            "div", rho, rho0), gamma), f32(1.0)))
    else:
        vocab = Vocabulary(EOS_OPS, types=(FLOAT32,), ranges={FLOAT32: RHO}, limit=50.0, p_leaf=0.3, p_const=0.3)
        gen = ExprBuilder(rng, vocab, [(rho, RHO)])
        e = gen.compound(FLOAT32, int(rng.integers(1, 3)))[0]
        if not any(isinstance(x, n.Var) for x in analysis.subexprs(e)):
            e = call("mul", f32(2.0), call("sub", rho, rho0))
    if rng.random() < 0.3:
        e = call("max", e, f32(0.0))
        kind += "_clamped"
    return e, kind


# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SphMeta(SimMeta):
    """Also the grid parameter, the points array, the grid's cell dims and cell width."""

    grid: str = ""
    points: str = ""
    dims: tuple[int, int, int] = (8, 8, 8)
    cell: float = 1.0


def _draw_once(rng: np.random.Generator) -> Program | None:
    i = var("i", INT32)
    params: list[n.Param] = []
    ranges: dict[str, Interval] = {}
    body: list[n.Stmt] = []
    funcs: list[n.Func] = []
    grid = _pick(rng, NAMES["grid"])
    params.append(n.Param(grid, UINT64))
    ranges[grid] = Interval(0.0, 0.0)
    x = _pick(rng, NAMES["x"])
    params.append(n.Param(x, Array(VEC3)))
    ranges[x] = POS
    kinds = _pick(rng, (("density",), ("density",), ("pressure",), ("viscosity",), ("pressure", "viscosity"),
                        ("field",), ("density", "field"), ("xsph",), ("density", "xsph")))
    wshape = _pick(rng, SHAPES)
    normalise = rng.random() < 0.6
    # smoothing length: a parameter or a literal, and the support radius it implies
    support_hi = _pick(rng, (0.65, 0.75, 0.85))
    h_hi = support_hi / wshape.scale
    h_lo = round(h_hi * 0.8, 3)
    hname = _pick(rng, NAMES["h"])
    if rng.random() < 0.6:
        params.append(n.Param(hname, FLOAT32))
        ranges[hname] = Interval(h_lo, h_hi)
        h: n.Expr = var(hname)
    else:                           # a literal smoothing length bound to a local
        body.append(n.Let(hname, f32(round(float(rng.uniform(h_lo, h_hi)), 3))))
        h = var(hname)
    body.append(n.Let("xi", n.Load(x, Array(VEC3), (i,))))
    xi = var("xi", VEC3)
    radius: n.Expr = h if wshape.scale == 1.0 else call("mul", f32(wshape.scale), h)
    if wshape.scale != 1.0 or rng.random() < 0.3:
        sname = "support" if hname != "support" else "cutoff"
        body.append(n.Let(sname, radius))
        radius = var(sname)
    # masses
    mstyle = _pick(rng, ("array", "scalar", "unit"))
    mname = _pick(rng, NAMES["m"])
    if mstyle == "array":
        params.append(n.Param(mname, Array(FLOAT32)))
        ranges[mname] = Interval(0.5, 1.5)
    elif mstyle == "scalar":
        params.append(n.Param(mname, FLOAT32))
        ranges[mname] = Interval(0.5, 1.5)
    j = var(_pick(rng, ("j", "k", "nb")), INT32)

    def m_j() -> n.Expr | None:
        return n.Load(mname, Array(FLOAT32), (j,)) if mstyle == "array" else var(mname) if mstyle == "scalar" \
            else None

    def times_m(e: n.Expr) -> n.Expr:
        m = m_j()
        return e if m is None else call("mul", m, e)

    loop: list[n.Stmt] = []        # inside the distance filter
    outputs: list[tuple[str, n.Expr, object]] = []
    needs_r = any(k in kinds for k in ("pressure", "viscosity")) or not wshape.on_r2
    forces = [k for k in kinds if k in ("pressure", "viscosity")]
    rho_name = _pick(rng, NAMES["rho"])
    if forces or "field" in kinds or "xsph" in kinds:
        params.append(n.Param(rho_name, Array(FLOAT32)))
        ranges[rho_name] = RHO
    rho_j = n.Load(rho_name, Array(FLOAT32), (j,))
    wname = _pick(rng, ("kernel_w", "w_poly", "smooth_w", "W"))
    wfunc = _value_func(wshape, normalise, wname, rng)
    pre: list[n.Stmt] = []
    r2 = var("r2")
    r = var("r")

    def w_of() -> n.Expr:
        if wfunc not in funcs:
            funcs.append(wfunc)
        return n.FuncCall(wfunc, (r2 if wshape.on_r2 else r, h))

    if "density" in kinds:
        acc = _pick(rng, ("rho_i", "dens", "rho_sum"))
        pre.append(n.Let(acc, f32(0.0)))
        loop.append(n.Assign(acc, call("add", var(acc), times_m(w_of())), augmented=True))
        out = _pick(rng, NAMES["out_rho"])
        outputs.append((out, var(acc), FLOAT32))
        if rng.random() < 0.6:
            press, _ = _eos(rng, var(acc))
            outputs.append((_pick(rng, NAMES["out_p"]), press, FLOAT32))
    if "field" in kinds:
        aname = _pick(rng, NAMES["A"])
        params.append(n.Param(aname, Array(FLOAT32)))
        ranges[aname] = Interval(-1.0, 2.0)
        acc = _pick(rng, ("phi_i", "field_i", "a_sum"))
        pre.append(n.Let(acc, f32(0.0)))
        term = call("mul", call("div", n.Load(aname, Array(FLOAT32), (j,)), rho_j), w_of())
        loop.append(n.Assign(acc, call("add", var(acc), times_m(term)), augmented=True))
        outputs.append((_pick(rng, NAMES["out_a"]), var(acc), FLOAT32))
    if "xsph" in kinds:                 # XSPH velocity smoothing: v_i + eps sum m_j / rho_j (v_j - v_i) W
        vname = _pick(rng, NAMES["v"])
        params.append(n.Param(vname, Array(VEC3)))
        ranges[vname] = VEL
        pre.append(n.Let("vi", n.Load(vname, Array(VEC3), (i,))))
        pre.append(n.Let("dv", vec3(0.0, 0.0, 0.0)))
        term = call("mul", call("sub", n.Load(vname, Array(VEC3), (j,)), var("vi", VEC3)),
                    call("div", times_m(w_of()), rho_j))
        loop.append(n.Assign("dv", call("add", var("dv", VEC3), term), augmented=True))
        eps = f32(_pick(rng, (0.1, 0.25, 0.5)))
        outputs.append((_pick(rng, ("v_out", "v_smooth", "vel_xsph")), call("add", var("vi", VEC3), call(
            "mul", var("dv", VEC3), eps)), VEC3))
    force_loop: list[n.Stmt] = []
    eos_kind = None
    if forces:
        facc = _pick(rng, ("f", "fi", "acc"))
        pre.append(n.Let(facc, vec3(0.0, 0.0, 0.0)))
        fvar = var(facc, VEC3)
        if "pressure" in forces:
            gkind = _pick(rng, ("spiky", "poly6", "wendland"))
            gfunc = _grad_func(gkind, normalise, _pick(rng, ("grad_w", "spiky_grad", "dw_dr", "kernel_grad")))
            funcs.append(gfunc)
            eos_expr, eos_kind = _eos(rng, var("rho"))
            eos = n.Func(_pick(rng, ("eos", "pressure_of", "state")), (n.Param("rho", FLOAT32),), FLOAT32,
                         (n.Return(eos_expr),))
            funcs.append(eos)
            pre.append(n.Let("rho_i", n.Load(rho_name, Array(FLOAT32), (i,))))
            pre.append(n.Let("p_i", n.FuncCall(eos, (var("rho_i"),))))
            force_loop.append(n.Let("rho_j", rho_j))
            force_loop.append(n.Let("p_j", n.FuncCall(eos, (var("rho_j"),))))
            if rng.random() < 0.5:
                coef = call("div", call("add", var("p_i"), var("p_j")), call("mul", f32(2.0), var("rho_j")))
            else:
                coef = call("add", call("div", var("p_i"), call("mul", var("rho_i"), var("rho_i"))),
                            call("div", var("p_j"), call("mul", var("rho_j"), var("rho_j"))))
            grad = n.FuncCall(gfunc, (r, h))
            force_loop.append(n.Assign(facc, call("sub", fvar, call("mul", var("d", VEC3), call(
                "div", call("mul", times_m(coef), grad), r))), augmented=True))
        if "viscosity" in forces:
            vname = _pick(rng, NAMES["v"])
            params.append(n.Param(vname, Array(VEC3)))
            ranges[vname] = VEL
            lfunc = _lap_func(normalise, _pick(rng, ("visc_lap", "laplacian_w", "lap_w")), rng)
            funcs.append(lfunc)
            pre.append(n.Let("vi", n.Load(vname, Array(VEC3), (i,))))
            if rng.random() < 0.5:
                mu: n.Expr = f32(round(float(rng.uniform(0.05, 0.5)), 2))
            else:
                mu = var(_pick(rng, ("mu", "viscosity", "nu")))
                params.append(n.Param(mu.name, FLOAT32))
                ranges[mu.name] = Interval(0.05, 0.5)
            dv = call("sub", n.Load(vname, Array(VEC3), (j,)), var("vi", VEC3))
            rj = var("rho_j") if "pressure" in forces else rho_j
            coef = call("mul", mu, call("div", times_m(n.FuncCall(lfunc, (r, h))), rj))
            force_loop.append(n.Assign(facc, call("add", fvar, call("mul", dv, coef)), augmented=True))
        result: n.Expr = fvar
        if rng.random() < 0.5:           # acceleration: force over density
            if "pressure" not in forces:
                pre.append(n.Let("rho_i", n.Load(rho_name, Array(FLOAT32), (i,))))
            result = call("div", fvar, var("rho_i"))
        outputs.append((_pick(rng, NAMES["out_f"]), result, VEC3))
    # the neighbour loop
    d_first = rng.random() < 0.5
    if rng.random() < 0.4:              # neighbour count, an exact int output
        pre.append(n.Let("count", n.Const(0, INT32)))
        loop.append(n.Assign("count", call("add", var("count", INT32), n.Const(1, INT32)), augmented=True))
        outputs.append((_pick(rng, ("neighbors", "n_count", "counts")), var("count", INT32), INT32))
        kinds = (*kinds, "count")
    filt = _pick(rng, ("r2", "r", "q") if wshape.scale == 1.0 and not wshape.on_r2 and isinstance(
        radius, n.Var) and radius == h else ("r2", "r"))
    inner: list[n.Stmt] = [n.Let("d", call("sub", xi, n.Load(x, Array(VEC3), (j,))) if d_first else
                                 call("sub", n.Load(x, Array(VEC3), (j,)), xi))]
    if not d_first and forces:     # keep d = xi - xj for the force formulas
        return None
    if filt == "r2":
        inner.append(n.Let("r2", call("dot", var("d", VEC3), var("d", VEC3))))
        cond = call("lt", r2, call("mul", radius, radius))
        then_head = [n.Let("r", call("sqrt", r2))] if needs_r else []
    elif filt == "q":                   # in units of the smoothing length
        inner.append(n.Let("r", call("length", var("d", VEC3))))
        cond = call("lt", call("div", r, h), f32(1.0))
        then_head = []
    else:
        inner.append(n.Let("r", call("length", var("d", VEC3))))
        cond = call("lt", r, radius)
        then_head = []
        if wshape.on_r2:
            then_head = [n.Let("r2", call("mul", r, r))]
    then = [*then_head, *loop]
    if force_loop:
        then.append(n.If(call("ne", j, var("i", INT32)), tuple(force_loop)))
    inner.append(n.If(cond, tuple(then)))
    support_hi_val = h_hi * wshape.scale
    style = _pick(rng, ("for", "while"))
    body += pre
    body.append(n.GridQuery(var(grid, UINT64), xi, radius, j.name, x, tuple(inner), max_hits(support_hi_val),
                            style=style, query=_pick(rng, ("query", "q", "it"))))
    shapes = {p.name: (N,) for p in params if isinstance(p.type, Array)}
    for name, value, ty in outputs:
        params.append(n.Param(name, Array(ty)))
        shapes[name] = (N,)
        body.append(n.Store(name, Array(ty), (i,), value))
    no_backward = rng.random() < 0.5          # nothing differentiates these: say so, and Warp emits no adjoint
    kernel = n.Kernel("wkf_kernel", tuple(params), tuple(body), funcs=tuple(funcs),
                      options=(("enable_backward", False),) if no_backward else ())
    kernel = analysis.remove_dead(kernel)
    assume = {"r": Interval(MIN_DIST - 1e-3, INF)} if forces else {}
    why = clean(kernel, ranges, (N,), shapes, assume)
    if why:
        return None
    info = {"quantities": list(kinds), "kernel_shape": wshape.name, "normalised": normalise, "mass": mstyle,
            "loop": style, "filter": filt, "eos": eos_kind, "h_param": hname in ranges, "enable_backward": not no_backward}
    prog = program(kernel, ranges, (N,), {**features(kernel), **info}, differentiable=False, shapes=shapes)
    dims = tuple(int(rng.integers(4, 17)) for _ in range(3))
    cell = round(support_hi_val * float(_pick(rng, (0.5, 1.0, 1.5))), 3)
    return replace(prog, meta=SphMeta(prog.meta.kernel, prog.meta.dim, ((x, "lattice", (COUNTS, SPACING, JITTER)),),
                                      grid=grid, points=x, dims=dims, cell=cell))


def draw(rng: np.random.Generator) -> Program:
    for _ in range(40):
        prog = _draw_once(rng)
        if prog is not None:
            return prog
    raise RuntimeError("sph: no clean draw in 40 tries")


def tolerance(spec: KernelSpec) -> Tolerance:
    return TOL


def prepare(spec: KernelSpec, inputs, device: str, namespace: dict) -> dict:
    """The hash grid over the points, built on the launch device."""
    meta: SphMeta = spec.meta
    pts = wp.array(np.asarray(inputs[meta.points], dtype=np.float32), dtype=wp.vec3, device=device)
    grid = wp.HashGrid(*meta.dims, device=device)
    grid.build(pts, meta.cell)
    return {meta.grid: grid.id, "_keep": (grid, pts)}


FAMILY = replace(
    ir_family("sph", __doc__, draw, version=1, tol=tolerance, sample_inputs=sample_inputs,
              covers=("wp.HashGrid", "hash_grid_query for-loops", "hash_grid_query_next while-loops",
                      "SPH density / pressure / viscosity", "poly6 / spiky / cubic spline / Wendland kernels",
                      "equations of state", "@wp.func helpers", "brute-force neighbour reference")),
    prepare=prepare)
