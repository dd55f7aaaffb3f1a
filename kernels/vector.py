"""vector: random statement sequences over Warp's vec2/vec3/vec4 (float32) and vec3d (float64) types.

Construction (``wp.vec3(x, y, z)``, splats, constants, components of other vectors), component reads (``v[0]``,
``v.x``), + - and negation, scaling by and division by scalars, ``wp.cw_mul``/``wp.cw_div``, ``wp.dot``,
``wp.cross``, ``wp.length``, ``wp.length_sq``, ``wp.normalize``, elementwise ``wp.min``/``wp.max``/``wp.abs``,
reductions ``wp.min(v)``/``wp.max(v)``, ``wp.where`` selects, ``+=``/``-=`` updates and scalar arithmetic,
composed at random over 1-3 vector arrays (uniform boxes or spherical shells), optional scalar arrays and
scalar or vector parameters, in 1-D or 2-D launches, optionally through a ``@wp.func`` helper, with one or two
vector or scalar outputs.

Domains hold by construction (see ``kernels/_vector_lib.py``): denominators are bounded away from zero, vectors
are normalised only where interval bounds keep their length >= 0.3, and every intermediate stays below 40 in
magnitude. Warp semantics copied by the reference: ``normalize`` of a zero-length vector is the zero vector,
bare literals are float32 except inside ``wp.vec3d(...)``, float64 kernels spell scalar literals
``wp.float64(c)`` (a float32 literal times a ``vec3d`` does not compile).
"""

from __future__ import annotations

import numpy as np

from harness.family import Family, Program
from kernels import _vector_lib as L
from kernels._common import ARRAY_NAMES, OUT_NAMES, SCALAR_NAMES, pick

WEIGHTS = {
    "add": 1.0, "sub": 1.0, "neg": 0.25, "scale": 1.2, "sdiv": 0.5, "cw_mul": 0.7, "cw_div": 0.5, "cross": 1.4,
    "normalize": 1.0, "vabs": 0.35, "vmin2": 0.4, "vmax2": 0.4, "construct": 0.6, "splat": 0.25, "where": 0.25,
    "add@f": 0.8, "sub@f": 0.6, "mul": 0.8, "div": 0.35, "sabs": 0.15, "smin": 0.2, "smax": 0.2, "sqrt": 0.25,
    "sin": 0.12, "cos": 0.12, "dot": 1.3, "length": 0.8, "length_sq": 0.5, "comp": 0.6, "vmin": 0.25, "vmax": 0.25,
    "where@f": 0.1,
}
VEC_RANGES = ((-2.0, 2.0), (-1.0, 1.0), (-1.0, 3.0), (0.5, 2.0), (-3.0, 0.5), (-1.5, 1.5))
SCALAR_RANGES = ((-2.0, 2.0), (0.5, 2.0), (-1.0, 1.0), (0.1, 3.0))
SHELLS = ((0.5, 2.0), (1.0, 1.0), (0.8, 1.5), (0.3, 3.0))
LOAD_PREFIX = ("", "x", "v_", "p")


def _vec_sampler(rng):
    if rng.random() < 0.35:
        return ("shell",) + tuple(pick(rng, SHELLS))
    return ("uniform",) + tuple(pick(rng, VEC_RANGES))


def generate(rng: np.random.Generator) -> Program:
    prec = "float64" if rng.random() < 0.25 else "float32"
    if prec == "float32":
        main = pick(rng, ("v3", "v3", "v3", "v2", "v4"))
        arr_kinds = [main] + (["v2", "v3", "v4"] if rng.random() < 0.3 else [])
        kinds = {"f", "v2", "v3", "v4"} if rng.random() < 0.4 else {"f", main}
        out_pool = sorted({main, "f"} | ({"v2", "v3", "v4"} & kinds))
    else:
        main = "v3"
        arr_kinds = ["v3"]
        kinds = {"f", "v3"} | ({"v2", "v4"} if rng.random() < 0.3 else set())
        out_pool = ["v3", "f"]
    dims = L.random_dims(rng)
    two_d = len(dims) == 2
    n_vec = int(rng.integers(1, 4))
    n_sc = int(rng.choice([0, 0, 1, 1, 2]))
    names = pick(rng, ARRAY_NAMES, n_vec + n_sc)
    inline = rng.random() < 0.35
    prefix = pick(rng, LOAD_PREFIX)
    inputs = []
    for k, name in enumerate(names):
        kind = (main if k == 0 else pick(rng, arr_kinds)) if k < n_vec else "f"
        sampler = _vec_sampler(rng) if kind != "f" else ("uniform",) + tuple(pick(rng, SCALAR_RANGES))
        index = L.input_index(rng, two_d, k)
        local = None if inline else (f"{prefix}{name}" if prefix else f"{name}_v" if rng.random() < 0.5 else f"{name}i")
        if local in names:
            local = f"{name}_v"
        inputs.append(L.Input(name, kind, sampler, "in", index, local))
    if rng.random() < 0.3:
        inputs.append(L.Input(pick(rng, SCALAR_NAMES), "f", ("uniform",) + tuple(pick(rng, SCALAR_RANGES)), "scalar"))
    if rng.random() < 0.15 and prec == "float32":
        inputs.append(L.Input(pick(rng, ("g", "axis", "dir0", "offset_v", "origin")), main,
                              _vec_sampler(rng), "scalar"))
    out_names, out_kinds = L.random_outputs(rng, OUT_NAMES,
                                            lambda: main if rng.random() < 0.55 else pick(rng, out_pool))
    stmt_kinds = {k: (3.0 if k == main else 1.5 if k == "f" else 0.8) for k in sorted(kinds)}
    return L.build_program(rng, prec=prec, inputs=inputs, dims=dims, weights=WEIGHTS, kinds=kinds,
                           stmt_kinds=stmt_kinds, out_kinds=out_kinds, out_names=out_names)


FAMILY = Family(
    name="vector",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=L.reference,
    tolerance=L.tolerance,
    sample_inputs=L.sample_inputs,
    weight=1.0,
    covers=("vec2", "vec3", "vec4", "vec3d", "dot", "cross", "normalize", "length", "cw_mul", "vector components",
            "float64"),
)
