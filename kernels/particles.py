"""particles: one integration step of a particle system on wp.vec3 arrays, with forces and collisions.

One thread per particle (64). The program is composed, not templated: a force built from 1-4 terms (gravity
along the drawn up axis, linear or quadratic drag, an anchor spring, a swirl ``cross(axis, p)``, wind, and a
term along a direction whose coefficient is a random expression of the height, the speed, the particle's
(inverse) mass and the drag parameter); an integrator (semi-implicit Euler, explicit Euler, or position Verlet
from the previous positions); optional velocity clamping (by length through ``wp.max``, or per component with
``wp.clamp``); then 1-3 collisions in random order (ground or walls on an axis, tilted planes, spheres) with
restitution and friction, written inline or through a ``@wp.func`` response helper. Outputs are the new
positions and (usually) velocities.

The IR interpreter is the reference. Particles are drawn at least 0.35 from every sphere's centre (and move
less than 0.1 in a step), which the interval engine is told as an assumption on the sphere distance it divides
by (see :mod:`kernels.ir.sim`). Collisions are kinks: elements whose reference flips under rounding-sized input
changes are masked by the verifier. Differentiable (branches select, no loops).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.family import Program
from kernels.ir import analysis
from kernels.ir import nodes as n
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import ExprBuilder, Vocabulary
from kernels.ir.numeric import INF, Interval
from kernels.ir.sim import VEC3, SimMeta, call, clean, comp, f32, sample_inputs, var, vec3
from kernels.ir.types import FLOAT32, INT32, Array

N = 64
POS = Interval(-1.0, 2.0)
VEL = Interval(-2.0, 2.0)
SPHERE_CLEAR = 0.35            # sampled particles keep this far from every sphere centre
STEP_MOVE = 0.1                # |v| dt and the force's share stay below this in one step
COEF_OPS = {"add": 2, "sub": 2, "mul": 3, "div": 1, "min": 0.7, "max": 0.7, "abs": 0.6, "sqrt": 0.4,
            "exp": 0.4, "tanh": 0.6, "sin": 0.3, "cos": 0.3}
NAMES = {"x": ("x", "pos", "positions", "particle_q", "q"), "v": ("v", "vel", "velocities", "particle_qd", "qd"),
         "w": ("inv_mass", "particle_inv_mass", "inv_m", "w"), "m": ("mass", "particle_mass", "m"),
         "xp": ("x_prev", "prev_pos", "q_prev"), "xo": ("x_new", "pos_out", "q_out", "x_out"),
         "vo": ("v_new", "vel_out", "qd_out", "v_out"), "dt": ("dt", "delta_t", "step_dt", "sim_dt"),
         "drag": ("drag", "damping", "k_drag", "air_drag"), "p": ("p", "xi", "pos_i", "x0"),
         "vel": ("vel", "vi", "v0", "u")}


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _short(rng, lo: float, hi: float, digits: int = 2) -> float:
    value = round(float(rng.uniform(lo, hi)), digits)
    return value if value != 0 else round(hi, digits)


class _Kernel:
    """Statements, parameters and facts of one drawn kernel."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.params: list[n.Param] = []
        self.ranges: dict[str, Interval] = {}
        self.body: list[n.Stmt] = []
        self.assume: dict[str, Interval] = {}
        self.funcs: list[n.Func] = []
        self.used: set[str] = {"i"}
        self.tags: dict[str, object] = {}

    def name(self, key: str) -> str:
        for cand in self.rng.permutation(NAMES[key]):
            if str(cand) not in self.used:
                self.used.add(str(cand))
                return str(cand)
        raise RuntimeError(f"no free name for {key}")

    def local(self, pool: tuple[str, ...]) -> str:
        for cand in self.rng.permutation(pool):
            if str(cand) not in self.used:
                self.used.add(str(cand))
                return str(cand)
        k = 1
        while f"{pool[0]}{k}" in self.used:
            k += 1
        self.used.add(f"{pool[0]}{k}")
        return f"{pool[0]}{k}"

    def array(self, key: str, ty, iv: Interval | None) -> str:
        name = self.name(key)
        self.params.append(n.Param(name, Array(ty)))
        if iv is not None:
            self.ranges[name] = iv
        return name

    def scalar(self, key: str, iv: Interval) -> n.Var:
        name = self.name(key)
        self.params.append(n.Param(name, FLOAT32))
        self.ranges[name] = iv
        return var(name)


def _up_vector(up: int, value: float) -> n.Call:
    return vec3(*[value if k == up else 0.0 for k in range(3)])


def _coefficient(k: _Kernel, leaves: list, lo_hi: tuple[float, float]) -> n.Expr:
    """A random expression of the leaves, squashed into ``lo_hi`` with ``tanh`` when its interval leaves it."""
    vocab = Vocabulary(COEF_OPS, types=(FLOAT32,), ranges={FLOAT32: Interval(-1.0, 1.0)}, limit=50.0, p_leaf=0.35,
                       p_const=0.25)
    gen = ExprBuilder(k.rng, vocab, leaves)
    e, iv = gen.compound(FLOAT32, int(k.rng.integers(1, 3)))
    dom = Interval(*lo_hi)
    if not dom.contains(iv):
        squashed = gen.squash((e, iv), dom)
        if squashed is None:
            return f32(lo_hi[1])
        e = squashed[0]
    return e


def _force(k: _Kernel, p: n.Var, vel: n.Expr, up: int, mass_leaf, mass_op: str, drag) -> tuple[n.Expr, list[str]]:
    """A sum of 1-4 force terms (vec3) and their kinds."""
    rng = k.rng
    kinds = ["drag", "quad_drag", "anchor", "swirl", "wind", "field"]
    chosen = [kinds[int(j)] for j in rng.choice(len(kinds), int(rng.integers(1, 4)), replace=False)]
    if rng.random() < 0.8:
        chosen.insert(0, "gravity")
    speed_leaf = (call("length", vel), Interval(0.0, 3.5))
    leaves = [(comp(p, up), POS), speed_leaf, mass_leaf]
    if drag is not None:
        leaves.append((drag, k.ranges[drag.name]))
    terms: list[tuple[str, n.Expr]] = []
    for kind in chosen:
        c = drag if (drag is not None and rng.random() < 0.6) else f32(_short(rng, 0.05, 0.6))
        if kind == "gravity":       # m g: times the mass, or over the inverse mass
            g = _up_vector(up, _pick(rng, (-9.8, -9.81, -3.0, -1.5)))
            terms.append(("+", call(mass_op, g, mass_leaf[0])))
        elif kind == "drag":
            terms.append(("-", call("mul", vel, c)))
        elif kind == "quad_drag":
            terms.append(("-", call("mul", vel, call("mul", c, call("length", vel)))))
        elif kind == "anchor":
            anchor = vec3(*[_short(rng, -0.5, 1.5, 1) for _ in range(3)])
            terms.append(("+", call("mul", call("sub", anchor, p), f32(_short(rng, 0.5, 4.0, 1)))))
        elif kind == "swirl":
            axis = _up_vector(up, 1.0) if rng.random() < 0.7 else vec3(*_unit(rng))
            terms.append(("+", call("mul", call("cross", axis, p), f32(_short(rng, 0.2, 2.0, 1)))))
        elif kind == "wind":
            wind = vec3(*[_short(rng, -1.0, 1.0, 1) for _ in range(3)])
            terms.append(("+", call("mul", call("sub", wind, vel), c)))
        else:
            direction = _pick(rng, (_up_vector(up, 1.0), vec3(*_unit(rng)), vel))
            coef = _coefficient(k, leaves, (-2.0, 2.0))
            terms.append(("+", call("mul", direction, coef)))
    sign, force = terms[0]
    if sign == "-":
        force = call("neg", force)
    for sign, t in terms[1:]:
        force = call("add" if sign == "+" else "sub", force, t)
    return force, chosen


def _unit(rng) -> tuple[float, float, float]:
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    return tuple(round(float(x), 4) for x in d)


def _response(k: _Kernel, vel: n.Var, nrm: n.Expr, e: float, mu: float) -> n.Expr:
    """Velocity after a contact with normal ``nrm``: restitution on the normal part, friction on the rest,
    through the kernel's helper when it has one."""
    if k.funcs:
        f = k.funcs[0]
        args = [vel, nrm] + [f32(x) for x in (e, mu)][:len(f.params) - 2]
        return n.FuncCall(f, tuple(args))
    vn = call("dot", vel, nrm)
    vt = call("sub", vel, call("mul", nrm, vn))
    return call("sub", call("mul", vt, f32(round(1.0 - mu, 3))), call("mul", nrm, call("mul", vn, f32(e))))


def _helper(rng) -> n.Func:
    """``@wp.func`` contact response: ``vt * (1 - friction) - n * (vn * restitution)`` in one of a few shapes."""
    name = _pick(rng, ("contact_velocity", "bounce", "reflect", "collide_response"))
    v, nn = n.Var("v", VEC3), n.Var("nrm", VEC3)
    e, mu = n.Var("restitution", FLOAT32), n.Var("friction", FLOAT32)
    vn = n.Var("vn", FLOAT32)
    vt = n.Var("vt", VEC3)
    body: list[n.Stmt] = [n.Let("vn", call("dot", v, nn)), n.Let("vt", call("sub", v, call("mul", nn, vn)))]
    shape = rng.integers(3)
    if shape == 0:
        ret = call("sub", call("mul", vt, call("sub", f32(1.0), mu)), call("mul", nn, call("mul", vn, e)))
    elif shape == 1:      # only an approaching velocity is reflected
        body.append(n.If(call("lt", vn, f32(0.0)), (n.Return(call("sub", call("mul", vt, call(
            "sub", f32(1.0), mu)), call("mul", nn, call("mul", vn, e)))),)))
        ret = v
    else:                 # friction proportional to the normal impulse, never reversing the tangent
        scale = call("max", f32(0.0), call("sub", f32(1.0), call("mul", mu, call("abs", vn))))
        ret = call("sub", call("mul", vt, scale), call("mul", nn, call("mul", vn, e)))
    return n.Func(name, (n.Param("v", VEC3), n.Param("nrm", VEC3), n.Param("restitution", FLOAT32),
                         n.Param("friction", FLOAT32)), VEC3, (*body, n.Return(ret)))


def _collisions(k: _Kernel, p: n.Var, vel: n.Var | None, up: int, centres: list) -> list[str]:
    rng = k.rng
    kinds = [_pick(rng, ("ground", "ground", "wall", "plane", "sphere")) for _ in range(int(rng.integers(1, 4)))]
    for kind in kinds:
        e, mu = _short(rng, 0.1, 0.9), _short(rng, 0.0, 0.5)
        if kind in ("ground", "wall"):
            axis = up if kind == "ground" else _pick(rng, [a for a in range(3) if a != up])
            below = kind == "ground" or rng.random() < 0.5
            bound = _short(rng, -0.5, 0.2, 1) if below else _short(rng, 1.0, 1.6, 1)
            cond = call("lt" if below else "gt", comp(p, axis), f32(bound))
            then: list[n.Stmt] = [n.Assign(p.name, vec3(*[f32(bound) if a == axis else comp(p, a) for a in range(3)]))]
            if vel is not None:
                if k.funcs and rng.random() < 0.5:
                    nrm = _up_vector(axis, 1.0 if below else -1.0)
                    then.append(n.Assign(vel.name, _response(k, vel, nrm, e, mu)))
                else:
                    then.append(n.Assign(vel.name, vec3(*[
                        call("mul", comp(vel, a), f32(-e)) if a == axis else call("mul", comp(vel, a), f32(round(
                            1.0 - mu, 3))) for a in range(3)])))
            k.body.append(n.If(cond, tuple(then)))
        elif kind == "plane":
            normal = list(_unit(rng))
            normal[up] = abs(normal[up]) + 0.5
            nv = np.asarray(normal) / np.linalg.norm(normal)
            nname = k.local(("nrm", "normal", "plane_n", "n_hat"))
            dname = k.local(("dist", "sd", "phi", "depth"))
            k.body.append(n.Let(nname, vec3(*[round(float(x), 4) for x in nv])))
            nvar = n.Var(nname, VEC3)
            offset = _short(rng, -0.4, 0.4)
            signed = call("dot", p, nvar)
            if offset:
                signed = call("sub" if offset > 0 else "add", signed, f32(abs(offset)))
            k.body.append(n.Let(dname, signed))
            then = [n.Assign(p.name, call("sub", p, call("mul", nvar, var(dname))))]
            if vel is not None:
                then.append(n.Assign(vel.name, _response(k, vel, nvar, e, mu)))
            k.body.append(n.If(call("lt", var(dname), f32(0.0)), tuple(then)))
        else:
            centre = tuple(_short(rng, 0.0, 1.0, 1) for _ in range(3))
            radius = _short(rng, 0.4, 0.8)
            centres.append(centre)
            dv = k.local(("d", "delta", "rel", "offset"))
            dist = k.local(("dist", "r", "len_d", "dlen"))
            nname = k.local(("nrm", "normal", "n_hat", "dir"))
            c = vec3(*centre)
            k.body.append(n.Let(dv, call("sub", p, c)))
            k.body.append(n.Let(dist, call("length", n.Var(dv, VEC3))))
            k.assume[dist] = Interval(SPHERE_CLEAR - STEP_MOVE - 0.05, INF)
            nvar = n.Var(nname, VEC3)
            then = [n.Let(nname, call("div", n.Var(dv, VEC3), var(dist))),
                    n.Assign(p.name, call("add", c, call("mul", nvar, f32(radius))))]
            if vel is not None:
                then.append(n.Assign(vel.name, _response(k, vel, nvar, e, mu)))
            k.body.append(n.If(call("lt", var(dist), f32(radius)), tuple(then)))
    return kinds


def _draw_once(rng: np.random.Generator) -> Program | None:
    k = _Kernel(rng)
    up = 1 if rng.random() < 0.6 else 2
    scheme = _pick(rng, ("semi_implicit", "semi_implicit", "explicit", "verlet"))
    if rng.random() < 0.5:
        k.funcs.append(_helper(rng))
    x = k.array("x", VEC3, POS)
    xp = k.array("xp", VEC3, POS) if scheme == "verlet" else None
    v = k.array("v", VEC3, VEL) if scheme != "verlet" else None
    use_inv = rng.random() < 0.6
    marr = k.array("w" if use_inv else "m", FLOAT32, Interval(0.5, 2.0))
    dt_param = rng.random() < 0.6
    dt = k.scalar("dt", Interval(0.005, 0.02)) if dt_param else f32(_pick(rng, (0.01, 0.005, 0.016, 0.02)))
    drag = k.scalar("drag", Interval(0.05, 0.5)) if rng.random() < 0.5 else None
    pname, vname = k.name("p"), k.name("vel")
    p = n.Var(pname, VEC3)
    k.body.append(n.Let(pname, n.Load(x, Array(VEC3), (var("i", INT32),))))
    mass = k.local(("wi", "inv_m", "im")) if use_inv else k.local(("mi", "m_i", "pm"))
    k.body.append(n.Let(mass, n.Load(marr, Array(FLOAT32), (var("i", INT32),))))
    mvar = var(mass)
    if scheme == "verlet":
        prev = k.local(("p_prev", "xp_i", "q0"))
        k.body.append(n.Let(prev, n.Load(xp, Array(VEC3), (var("i", INT32),))))
        k.body.append(n.Let(vname, call("div", call("sub", p, n.Var(prev, VEC3)), dt)))   # implied velocity
    else:
        k.body.append(n.Let(vname, n.Load(v, Array(VEC3), (var("i", INT32),))))
    vel = n.Var(vname, VEC3)
    force, force_kinds = _force(k, p, vel, up, (mvar, Interval(0.5, 2.0)), "div" if use_inv else "mul", drag)
    fname = k.local(("f", "force", "f_total", "fi"))
    k.body.append(n.Let(fname, force))
    f = n.Var(fname, VEC3)
    accel = call("mul", f, mvar) if use_inv else call("div", f, mvar)
    if scheme == "semi_implicit":
        k.body.append(n.Assign(vname, call("add", vel, call("mul", accel, dt)), augmented=True))
        _clamp(k, vel)
        k.body.append(n.Assign(pname, call("add", p, call("mul", vel, dt)), augmented=True))
    elif scheme == "explicit":
        k.body.append(n.Assign(pname, call("add", p, call("mul", vel, dt)), augmented=True))
        k.body.append(n.Assign(vname, call("add", vel, call("mul", accel, dt)), augmented=True))
        _clamp(k, vel)
    else:
        damp = _pick(rng, (1.0, 0.99, 0.995, 0.98))
        inertia = call("sub", p, n.Var(prev, VEC3))
        if damp != 1.0:
            inertia = call("mul", inertia, f32(damp))
        dt2 = call("mul", dt, dt) if isinstance(dt, n.Var) else f32(float(np.float32(dt.value * dt.value)))
        k.body.append(n.Assign(pname, call("add", call("add", p, inertia), call("mul", accel, dt2))))
    centres: list = []
    collision_kinds = _collisions(k, p, None if scheme == "verlet" else vel, up, centres)
    xo = k.array("xo", VEC3, None)
    k.body.append(n.Store(xo, Array(VEC3), (var("i", INT32),), p))
    if scheme != "verlet" and rng.random() < 0.85:
        vo = k.array("vo", VEC3, None)
        k.body.append(n.Store(vo, Array(VEC3), (var("i", INT32),), vel))
    elif scheme == "verlet" and rng.random() < 0.5:     # central difference over the two steps
        vo = k.array("vo", VEC3, None)
        k.body.append(n.Store(vo, Array(VEC3), (var("i", INT32),), call("div", call("sub", p, n.Var(
            prev, VEC3)), call("mul", f32(2.0), dt) if isinstance(dt, n.Var) else f32(2.0 * dt.value))))
    kernel = n.Kernel("wkf_kernel", tuple(k.params), tuple(k.body), funcs=tuple(k.funcs))
    kernel = analysis.remove_dead(kernel)
    shapes = {prm.name: (N,) for prm in kernel.params if isinstance(prm.type, Array)}
    if clean(kernel, k.ranges, (N,), shapes, k.assume):
        return None
    draws = []
    if centres:
        draws.append((x, "away", (POS.lo, POS.hi, tuple(centres), SPHERE_CLEAR)))
    if xp is not None:                  # the previous positions one small step behind
        draws.append((xp, "near", (x, 0.02)))
    info = {"scheme": scheme, "up_axis": "yz"[up - 1], "forces": sorted(set(force_kinds)),
            "collisions": sorted(set(collision_kinds)), "helper": bool(kernel.funcs), "dt_param": dt_param,
            "clamp": k.tags.get("clamp", "none")}
    prog = program(kernel, k.ranges, (N,), {**features(kernel), **info}, shapes=shapes)
    return replace(prog, meta=SimMeta(prog.meta.kernel, prog.meta.dim, tuple(draws)))


def _clamp(k: _Kernel, vel: n.Var) -> None:
    rng = k.rng
    style = _pick(rng, ("none", "none", "length", "component"))
    vmax = f32(_pick(rng, (1.5, 2.0, 2.5, 3.0)))
    if style == "length":
        k.body.append(n.Assign(vel.name, call("mul", vel, call("div", vmax, call("max", call("length", vel), vmax)))))
    elif style == "component":
        k.body.append(n.Assign(vel.name, vec3(*[call("clamp", comp(vel, a), f32(-vmax.value), vmax)
                                                 for a in range(3)])))
    k.tags["clamp"] = style


def draw(rng: np.random.Generator) -> Program:
    for _ in range(30):
        prog = _draw_once(rng)
        if prog is not None:
            return prog
    raise RuntimeError("particles: no clean draw in 30 tries")


FAMILY = ir_family("particles", __doc__, draw, version=1, sample_inputs=sample_inputs,
                   covers=("wp.vec3 arrays", "semi-implicit / explicit Euler", "position Verlet",
                           "gravity and drag forces", "random force coefficients", "ground/wall/plane/sphere "
                           "collisions", "restitution and friction", "velocity clamping", "@wp.func helpers"))
