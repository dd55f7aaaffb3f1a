"""matrix: random statement sequences over Warp's mat22/mat33/mat44 (float32) with matching vectors and scalars.

Construction (``wp.matrix_from_rows``/``_cols``, ``wp.diag``, ``wp.outer``, ``wp.skew``, scaled
``wp.identity``), element and row reads (``m[i][j]``, ``m[i, j]``, ``m[i]``), + - and negation, scaling and
division by scalars, matrix products (``m1 @ m2`` and ``wp.mul``), matrix-vector and vector-matrix products,
``wp.transpose``, ``wp.determinant``, ``wp.inverse``, ``wp.trace``, ``wp.get_diag``, ``wp.ddot``,
``wp.cw_mul``, ``wp.where`` selects and ``+=``/``-=`` updates, mixed with vector and scalar operations, composed
at random over 1-3 matrix arrays (uniform entries or diagonally dominant), optional vector and scalar arrays and
scalar or matrix parameters, in 1-D or 2-D launches, optionally through a ``@wp.func`` helper, with one or two
matrix, vector or scalar outputs.

``wp.inverse`` is only applied where interval bounds give the matrix a smallest singular value >= 0.3
(diagonal dominance, products and inverses of such matrices); elsewhere the generator first shifts the diagonal
(``m + c * wp.identity(...)`` or ``m + wp.diag(vec)``) until it is dominant, so every inverse is well conditioned
by construction. Warp semantics copied by the reference: ``inverse`` returns the zero matrix for a zero
determinant, ``m * m`` is a matrix product, the 4x4 determinant and inverse accumulate in double inside Warp.
"""

from __future__ import annotations

import numpy as np

from harness.family import Family, Program
from kernels import _vector_lib as L
from kernels._common import ARRAY_NAMES, OUT_NAMES, SCALAR_NAMES, pick

WEIGHTS = {
    # matrices
    "add@m": 0.8, "sub@m": 0.6, "neg@m": 0.2, "scale@m": 1.0, "sdiv@m": 0.3, "matmul": 1.6, "transpose": 0.8,
    "inverse": 0.9, "outer": 0.6, "diag": 0.5, "matrix_from_rows": 0.3, "matrix_from_cols": 0.3, "skew": 0.3,
    "cw_mul@m": 0.3, "where@m": 0.12,
    # vectors
    "matvec": 1.3, "vecmat": 0.6, "row": 0.4, "get_diag": 0.3, "add@v": 0.6, "sub@v": 0.4, "scale@v": 0.5,
    "normalize": 0.25, "cross": 0.25, "construct": 0.25, "cw_mul@v": 0.2, "sdiv@v": 0.15,
    # scalars
    "determinant": 1.6, "trace": 0.8, "entry": 0.6, "ddot": 0.4, "dot": 0.6, "add@f": 0.5, "sub@f": 0.4,
    "mul": 0.5, "div": 0.2, "comp": 0.3, "length": 0.25, "length_sq": 0.2, "smax": 0.1, "smin": 0.1,
}
UNIFORM = ((-1.0, 1.0), (-2.0, 2.0), (-0.5, 1.5), (0.0, 2.0), (-1.5, 0.5))
VEC_RANGES = ((-1.0, 1.0), (-2.0, 2.0), (0.5, 2.0))
SCALAR_RANGES = ((-2.0, 2.0), (0.5, 2.0), (-1.0, 1.0))
MAT_NAMES = ("A", "B", "M", "K", "J", "R", "S", "F", "H", "P", "mats", "xform", "stiff", "inertia", "jac", "cov")
LOAD_PREFIX = ("", "x", "m_", "l")


def _mat_sampler(rng, n):
    if rng.random() < 0.45:
        off = float(pick(rng, (0.25, 0.5, 0.75)))
        dlo = off * (n - 1) + 1.0
        signs = tuple(float(s) for s in rng.choice([-1.0, 1.0, 1.0], size=n))
        return ("dominant", dlo, dlo + 1.5, off, signs)
    return ("uniform",) + tuple(pick(rng, UNIFORM))


def generate(rng: np.random.Generator) -> Program:
    n = int(rng.choice([2, 3, 3, 4, 4]))
    mk_, vk = L.MAT_OF[n], L.VEC_OF[n]
    kinds = {"f", vk, mk_}
    if rng.random() < 0.12:                   # a second size: values move across through entries/components
        m2 = pick(rng, [k for k in (2, 3, 4) if k != n])
        kinds |= {L.MAT_OF[m2], L.VEC_OF[m2]}
    dims = L.random_dims(rng)
    two_d = len(dims) == 2
    n_mat = int(rng.choice([1, 2, 2, 3]))
    n_vec = int(rng.choice([0, 0, 1, 1, 2]))
    n_sc = int(rng.choice([0, 0, 0, 1]))
    mat_names = pick(rng, MAT_NAMES, n_mat)
    other = pick(rng, [x for x in ARRAY_NAMES if x not in mat_names], n_vec + n_sc)
    inline = rng.random() < 0.3
    prefix = pick(rng, LOAD_PREFIX)
    inputs = []
    taken = set(mat_names) | set(other)
    for k, name in enumerate(list(mat_names) + list(other)):
        if k < n_mat:
            kind, sampler = mk_, _mat_sampler(rng, n)
        elif k < n_mat + n_vec:
            kind, sampler = vk, ("uniform",) + tuple(pick(rng, VEC_RANGES))
        else:
            kind, sampler = "f", ("uniform",) + tuple(pick(rng, SCALAR_RANGES))
        index = L.input_index(rng, two_d, k)
        local = None if inline else L.load_local(name, k, prefix, taken)
        inputs.append(L.Input(name, kind, sampler, "in", index, local))
    if rng.random() < 0.25:
        inputs.append(L.Input(pick(rng, SCALAR_NAMES), "f", ("uniform",) + tuple(pick(rng, SCALAR_RANGES)), "scalar"))
    if rng.random() < 0.12:
        inputs.append(L.Input(pick(rng, ("basis", "frame", "T0", "W")), mk_, _mat_sampler(rng, n), "scalar"))
    out_names, out_kinds = L.random_outputs(rng, OUT_NAMES, lambda: pick(rng, (mk_, mk_, mk_, vk, vk, "f")))
    stmt_kinds = {k: (3.0 if k == mk_ else 1.2 if k == vk else 1.0 if k == "f" else 0.5) for k in sorted(kinds)}
    return L.build_program(rng, prec="float32", inputs=inputs, dims=dims, weights=WEIGHTS, kinds=kinds,
                           stmt_kinds=stmt_kinds, out_kinds=out_kinds, out_names=out_names)


FAMILY = Family(
    name="matrix",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=L.reference,
    tolerance=L.tolerance,
    sample_inputs=L.sample_inputs,
    weight=1.0,
    covers=("mat22", "mat33", "mat44", "matmul", "mat-vec", "transpose", "determinant", "inverse", "outer", "diag",
            "trace", "matrix indexing"),
)
