"""springs: spring and constraint forces over an edge list, accumulated per particle with atomics.

One thread per edge (48-96 edges between 32 particles of a jittered lattice). Edges come as an ``(E, 2)`` int
array, a flat ``2E`` array (``edges[tid * 2]``, ``edges[tid * 2 + 1]``) or two index arrays. Each thread loads
its particles, forms the edge vector, its length and direction, the stretch (``length - rest`` or the strain
``(length - rest) / rest``) and, with velocities, the relative velocity along the edge; the force law is
composed from 1-3 terms drawn from Hooke, cubic hardening, exponential, logarithmic, saturating (``tanh``),
tension-only (cable) and random expressions of the stretch, plus a damping term (linear, ``tanh`` or quadratic
in the relative velocity), with per-edge (array) or uniform (scalar) stiffness. The law is inline or a
``@wp.func``. The force is added to one end and subtracted from the other (``wp.atomic_add`` /
``wp.atomic_sub``, or ``atomic_add`` of the negated force), and the spring energy may be summed into a
one-element array.

The IR interpreter is the reference (atomics as ``np.add.at`` / ``np.subtract.at``). Float atomics sum in a
device-dependent order: the tolerance (rtol 1e-4, atol 1e-4) covers float32 sums of up to 10 terms of magnitude
up to 100 in any order, ``(k - 1) * 2**-24 * sum |t|``; larger cancellation makes the reference move under the
verifier's rounding-sized input perturbations and masks the element. The lattice keeps particles 0.3 apart,
which the interval engine is told as an assumption on the edge length it divides by. Differentiable.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.family import KernelSpec, Program, Tolerance
from kernels.ir import analysis
from kernels.ir import nodes as n
from kernels.ir.family import adjoints_right, features, ir_family, program
from kernels.ir.gen import ExprBuilder, Vocabulary
from kernels.ir.numeric import Interval
from kernels.ir.sim import VEC3, SimMeta, call, clean, f32, i32, sample_inputs, var
from kernels.ir.types import FLOAT32, INT32, Array

N = 32
COUNTS, SPACING, JITTER = (4, 4, 2), 0.5, 0.1
POS = Interval(-JITTER, 3 * SPACING + JITTER)
LENGTH = Interval(SPACING - 2 * JITTER - 1e-3, 2.6)     # what the lattice guarantees for distinct particles
REST = Interval(0.3, 1.2)
VEL = Interval(-1.0, 1.0)
TOL = Tolerance(1e-4, 1e-4)
LAW_OPS = {"add": 2, "sub": 2, "mul": 3, "min": 0.6, "max": 0.6, "abs": 0.5, "tanh": 0.6, "exp": 0.3,
           "sqrt": 0.3, "div": 0.6}
NAMES = {"x": ("x", "pos", "particle_q", "points"), "v": ("v", "vel", "particle_qd"),
         "edges": ("edges", "spring_indices", "springs", "edge_idx"), "rest": ("rest", "rest_length", "spring_rest",
                                                                           "l0"),
         "ke": ("ke", "stiffness", "spring_ke", "k_s"), "kd": ("kd", "damping", "spring_kd", "k_d"),
         "f": ("f", "forces", "particle_f", "f_out"), "energy": ("energy", "pe", "potential")}


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def _short(rng, lo, hi, digits=2) -> float:
    return round(float(rng.uniform(lo, hi)), digits)


def _name(rng, key: str) -> str:
    return _pick(rng, NAMES[key])


def _law(rng, leaves: dict[str, tuple[n.Expr, Interval]], has_v: bool) -> tuple[n.Expr, list[str]]:
    """The scalar force law: 1-3 stiffness terms of the stretch plus (with velocities) a damping term."""
    s, s_iv = leaves["s"]
    ke = leaves["ke"][0]
    kinds = ["hooke", "cubic", "exp", "log", "tanh", "cable", "random"]
    weights = np.array([1.5, 1.0, 1.0, 0.8, 1.0, 1.0, 2.5])
    chosen = [kinds[int(j)] for j in rng.choice(len(kinds), int(rng.integers(1, 4)), replace=False,
                                                  p=weights / weights.sum())]
    terms = []
    for kind in chosen:
        if kind == "hooke":
            terms.append(call("mul", ke, s))
        elif kind == "cubic":
            terms.append(call("mul", call("mul", call("mul", s, s), s), f32(_short(rng, 0.5, 4.0, 1))))
        elif kind == "exp":
            terms.append(call("mul", ke, call("sub", call("exp", call("mul", s, f32(_short(rng, 0.3, 1.0)))),
                                              f32(1.0))))
        elif kind == "log":
            length, rest = leaves["L"][0], leaves["rest"][0]
            terms.append(call("mul", call("mul", ke, rest), call("log", call("div", length, rest))))
        elif kind == "tanh":
            fmax = f32(_short(rng, 2.0, 10.0, 1))
            terms.append(call("mul", fmax, call("tanh", call("div", call("mul", ke, s), fmax))))
        elif kind == "cable":
            terms.append(call("mul", ke, call("max", s, f32(0.0))))
        else:
            vocab = Vocabulary(LAW_OPS, types=(FLOAT32,), ranges={FLOAT32: Interval(-1.0, 1.0)}, limit=200.0,
                               p_leaf=0.35, p_const=0.2)
            pool = [leaves[k] for k in ("L", "rest", "ke") if k in leaves] + [(call("abs", s), Interval(
                0.0, s_iv.mag))]
            gen = ExprBuilder(rng, vocab, pool)
            g, _ = gen.compound(FLOAT32, int(rng.integers(1, 3)))
            terms.append(call("mul", s, g))
    if has_v and rng.random() < 0.85:
        kd, vrel = leaves["kd"][0], leaves["vrel"][0]
        damping = _pick(rng, ("linear", "linear", "tanh", "quadratic"))
        if damping == "linear":
            terms.append(call("mul", kd, vrel))
        elif damping == "tanh":
            terms.append(call("mul", kd, call("tanh", vrel)))
        else:
            terms.append(call("mul", call("mul", kd, vrel), call("abs", vrel)))
        chosen.append(f"damping_{damping}")
    law = terms[0]
    for t in terms[1:]:
        law = call("add", law, t)
    return law, chosen


def _draw_once(rng: np.random.Generator) -> Program | None:
    E = int(_pick(rng, (48, 64, 96)))
    tid = var("tid", INT32)
    params: list[n.Param] = []
    ranges: dict[str, Interval] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    body: list[n.Stmt] = []
    draws = []
    x = _name(rng, "x")
    params.append(n.Param(x, Array(VEC3)))
    ranges[x], shapes[x] = POS, (N,)
    draws.append((x, "lattice", (COUNTS, SPACING, JITTER)))
    has_v = rng.random() < 0.6
    if has_v:
        v = _name(rng, "v")
        params.append(n.Param(v, Array(VEC3)))
        ranges[v], shapes[v] = VEL, (N,)
    layout = _pick(rng, ("pairs", "flat", "split"))
    ends = []
    ename = _name(rng, "edges")
    ia, ib = _pick(rng, (("a", "b"), ("i", "j"), ("p0", "p1"), ("ia", "ib")))
    if layout == "pairs":
        et = Array(INT32, 2)
        params.append(n.Param(ename, et))
        shapes[ename] = (E, 2)
        ends = [n.Load(ename, et, (tid, i32(k))) for k in (0, 1)]
        draws.append((ename, "edges", (N, "pairs", E)))
    elif layout == "flat":
        et = Array(INT32)
        params.append(n.Param(ename, et))
        shapes[ename] = (2 * E,)
        base = call("mul", tid, i32(2))
        ends = [n.Load(ename, et, (base,)), n.Load(ename, et, (call("add", base, i32(1)),))]
        draws.append((ename, "edges", (N, "flat", E)))
    else:
        names = _pick(rng, (("src", "dst"), ("edge_a", "edge_b"), ("first", "second")))
        for nm, which in zip(names, ("first", "second")):
            params.append(n.Param(nm, Array(INT32)))
            shapes[nm] = (E,)
            ends.append(n.Load(nm, Array(INT32), (tid,)))
            draws.append((nm, "edges", (N, which, E)))
    for p in params:
        if p.type.dtype == INT32:
            ranges[p.name] = Interval(0.0, N - 1.0)
    body += [n.Let(ia, ends[0]), n.Let(ib, ends[1])]
    xa, xb = _pick(rng, (("xa", "xb"), ("pa", "pb"), ("x0", "x1")))
    body += [n.Let(xa, n.Load(x, Array(VEC3), (var(ia, INT32),))), n.Let(xb, n.Load(x, Array(VEC3), (var(ib, INT32),)))]
    flip = rng.random() < 0.3                     # edge vector from b to a: the force signs flip
    dname, lname, dirname = _pick(rng, (("d", "length", "dir"), ("delta", "l", "n"), ("e", "dist", "e_hat")))
    body.append(n.Let(dname, call("sub", *((var(xa, VEC3), var(xb, VEC3)) if flip else (var(xb, VEC3),
                                                                                          var(xa, VEC3))))))
    body.append(n.Let(lname, call("length", var(dname, VEC3))))
    body.append(n.Let(dirname, call("div", var(dname, VEC3), var(lname))))
    leaves: dict[str, tuple[n.Expr, Interval]] = {"L": (var(lname), LENGTH)}
    # rest lengths: an array per edge, or one scalar
    rest_arr = rng.random() < 0.7
    rname = _name(rng, "rest")
    if rest_arr:
        params.append(n.Param(rname, Array(FLOAT32)))
        ranges[rname], shapes[rname] = REST, (E,)
        body.append(n.Let("r", n.Load(rname, Array(FLOAT32), (tid,))))
        leaves["rest"] = (var("r"), REST)
    else:
        params.append(n.Param(rname, FLOAT32))
        ranges[rname] = REST
        leaves["rest"] = (var(rname), REST)
    rest = leaves["rest"][0]
    strain = rng.random() < 0.3
    sname = _pick(rng, ("s", "stretch", "c", "ext"))
    stretch = call("sub", var(lname), rest)
    s_iv = Interval(LENGTH.lo - REST.hi, LENGTH.hi - REST.lo)
    if strain:
        stretch = call("div", stretch, rest)
        s_iv = Interval(s_iv.lo / REST.lo, s_iv.hi / REST.lo)
    body.append(n.Let(sname, stretch))
    leaves["s"] = (var(sname), s_iv)
    ke_arr = rng.random() < 0.5
    kname = _name(rng, "ke")
    KE = Interval(1.0, 10.0) if not strain else Interval(0.5, 3.0)
    per_length = rng.random() < 0.25           # stiffness per unit rest length: k = ke / rest
    if ke_arr or per_length:
        if ke_arr:
            params.append(n.Param(kname, Array(FLOAT32)))
            ranges[kname], shapes[kname] = KE, (E,)
            k_value: n.Expr = n.Load(kname, Array(FLOAT32), (tid,))
        else:
            params.append(n.Param(kname, FLOAT32))
            ranges[kname] = KE
            k_value = var(kname)
        k_iv = KE
        if per_length:
            k_value = call("div", k_value, rest)
            k_iv = Interval(KE.lo / REST.hi, KE.hi / REST.lo)
        body.append(n.Let("k", k_value))
        leaves["ke"] = (var("k"), k_iv)
    else:
        params.append(n.Param(kname, FLOAT32))
        ranges[kname] = KE
        leaves["ke"] = (var(kname), KE)
    if has_v:
        kdn = _name(rng, "kd")
        params.append(n.Param(kdn, FLOAT32))
        ranges[kdn] = Interval(0.1, 1.0)
        leaves["kd"] = (var(kdn), ranges[kdn])
        vrel = call("dot", call("sub", n.Load(v, Array(VEC3), (var(ib, INT32),)), n.Load(v, Array(VEC3), (
            var(ia, INT32),))), var(dirname, VEC3))
        body.append(n.Let("vrel", vrel if not flip else call("neg", vrel)))
        leaves["vrel"] = (var("vrel"), Interval(-6.0, 6.0))
    law, kinds = _law(rng, leaves, has_v)
    funcs: tuple[n.Func, ...] = ()
    fsname = _pick(rng, ("fs", "mag", "f_mag", "scalar_f"))
    if rng.random() < 0.5:           # the law as a @wp.func of the values it reads
        used = analysis.uses(law)
        fparams = tuple(n.Param(nm, FLOAT32) for nm in [e.name for e, _ in leaves.values() if isinstance(e, n.Var)]
                        if nm in used)
        func = n.Func(_pick(rng, ("spring_force", "force_law", "edge_force", "constraint_force")), fparams, FLOAT32,
                      (n.Return(law),))
        funcs = (func,)
        body.append(n.Let(fsname, n.FuncCall(func, tuple(var(p.name) for p in fparams))))
    else:
        body.append(n.Let(fsname, law))
    fvname = _pick(rng, ("fv", "force", "fij", "f_edge"))
    body.append(n.Let(fvname, call("mul", var(dirname, VEC3), var(fsname))))
    fout = _name(rng, "f")
    params.append(n.Param(fout, Array(VEC3)))
    shapes[fout] = (N,)
    fv = var(fvname, VEC3)
    end_a, end_b = (var(ib, INT32), var(ia, INT32)) if flip else (var(ia, INT32), var(ib, INT32))
    scatter = _pick(rng, ("sub", "sub", "neg"))
    body.append(n.Atomic("add", fout, Array(VEC3), (end_a,), fv))
    if scatter == "sub":
        body.append(n.Atomic("sub", fout, Array(VEC3), (end_b,), fv))
    else:
        body.append(n.Atomic("add", fout, Array(VEC3), (end_b,), call("neg", fv)))
    if rng.random() < 0.35:
        en = _name(rng, "energy")
        params.append(n.Param(en, Array(FLOAT32)))
        shapes[en] = (1,)
        s = leaves["s"][0]
        body.append(n.Atomic("add", en, Array(FLOAT32), (i32(0),), call("mul", call("mul", f32(0.5), leaves["ke"][0]),
                                                                            call("mul", s, s))))
    if rng.random() < 0.3:                   # per-edge diagnostics: the force magnitude or the stretch
        tname = _pick(rng, ("tension", "edge_mag", "strain_out", "edge_stretch"))
        params.append(n.Param(tname, Array(FLOAT32)))
        shapes[tname] = (E,)
        body.append(n.Store(tname, Array(FLOAT32), (tid,), var(fsname) if rng.random() < 0.6 else leaves["s"][0]))
    kernel = n.Kernel("wkf_kernel", tuple(params), tuple(body), tids=("tid",), funcs=funcs)
    kernel = analysis.remove_dead(kernel)
    if clean(kernel, ranges, (E,), shapes, {lname: LENGTH}):
        return None
    info = {"edges": layout, "law": sorted(kinds), "strain": strain, "rest": "array" if rest_arr else "scalar",
            "stiffness": ("array" if ke_arr else "scalar") + ("/rest" if per_length else ""), "helper": bool(funcs),
            "scatter": scatter,
            "num_edges": E, "num_particles": N}
    prog = program(kernel, ranges, (E,), {**features(kernel), **info}, shapes=shapes,
                   differentiable=adjoints_right(kernel))        # the int edge arrays are not differentiated
    return replace(prog, meta=SimMeta(prog.meta.kernel, prog.meta.dim, tuple(draws)))


def draw(rng: np.random.Generator) -> Program:
    for _ in range(30):
        prog = _draw_once(rng)
        if prog is not None:
            return prog
    raise RuntimeError("springs: no clean draw in 30 tries")


def tolerance(spec: KernelSpec) -> Tolerance:
    return TOL


FAMILY = ir_family("springs", __doc__, draw, version=1, tol=tolerance, sample_inputs=sample_inputs,
                   covers=("edge lists (2D, flat, split int arrays)", "wp.atomic_add / wp.atomic_sub on wp.vec3",
                           "Hooke and nonlinear force laws", "damping", "energy reduction", "@wp.func force laws",
                           "indirect indexing"))
