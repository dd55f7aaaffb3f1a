"""matrix: random statement sequences over Warp's mat22/mat33/mat44 (float32) with matching vectors and scalars.

Construction (``wp.matrix_from_rows``/``_cols``, ``wp.diag``, ``wp.outer``, ``wp.skew``, scaled
``wp.identity``), element and row reads (``m[i][j]``, ``m[i, j]``, ``m[i]``) and element assignments
(``m[i, j] = x``), + - and negation, scaling and division by scalars, matrix products (``m1 @ m2`` and
``wp.mul``), matrix-vector and vector-matrix products, ``wp.transpose``, ``wp.determinant``, ``wp.inverse``,
``wp.trace``, ``wp.get_diag``, ``wp.ddot``, ``wp.cw_mul``, ``wp.where`` selects and ``+=``/``-=`` updates, mixed
with vector and scalar operations, composed at random over 1-3 matrix arrays, optional vector and scalar arrays
and scalar parameters, in 1-D or 2-D launches, optionally through a ``@wp.func`` helper, with one or two matrix,
vector or scalar outputs.

``wp.inverse`` is only applied to diagonal shifts ``A + c * wp.identity(...)`` / ``A + wp.diag(d)`` whose
diagonal-dominance margin (from the interval engine's bounds on ``A``) is at least 0.5, so every inverse is well
conditioned by construction (``||M^-1||_inf <= 1 / margin``); the operation table's refine rule for ``inverse``
checks it. The reference is the IR interpreter (``inverse`` of a singular matrix is the zero matrix, as in Warp).
"""

from __future__ import annotations

import numpy as np

from harness.family import Program
from kernels.ir.composite import (CompositeBuilder, Port, Shape, composite_kernel, differentiable, first_clean,
                                   with_new_ports)
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import OUT_NAMES, SCALAR_NAMES, Vocabulary
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, Matrix, Vector

OPS = {
    # matrices
    "add": 0.8, "sub": 0.6, "neg": 0.2, "mscale": 1.0, "mdiv": 0.3, "matmul": 1.6, "wp_mul": 0.6, "transpose": 0.8,
    "outer": 0.6, "diag": 0.5, "matrix_from_rows": 0.3, "matrix_from_cols": 0.3, "skew": 0.3, "cw_mul": 0.3,
    "select": 0.12,
    # vectors
    "get_diag": 0.3, "mul": 0.6, "normalize": 0.8, "cross": 0.25, "vec2": 0.1, "vec3": 0.1, "vec4": 0.1,
    "div": 0.2,
    # scalars
    "determinant": 1.6, "trace": 0.8, "ddot": 0.4, "dot": 0.6, "length": 0.25, "length_sq": 0.2, "min": 0.1,
    "max": 0.1,
}
UNIFORM = tuple(Interval(lo, hi) for lo, hi in ((-1.0, 1.0), (-2.0, 2.0), (-0.5, 1.5), (0.0, 2.0), (-1.5, 0.5)))
VEC_RANGES = tuple(Interval(lo, hi) for lo, hi in ((-1.0, 1.0), (-2.0, 2.0), (0.5, 2.0), (-2.0, -0.5)))
SCALAR_RANGES = tuple(Interval(lo, hi) for lo, hi in ((-2.0, 2.0), (0.5, 2.0), (-1.0, 1.0)))
MAT_NAMES = ("A", "B", "M", "K", "J", "R", "S", "F", "H", "P", "mats", "xform", "stiff", "inertia", "jac", "cov")
SHAPE = Shape(statements=(1, 4), kinds={"let": 1.0, "update": 0.2, "set": 0.25}, depth=(1, 3), out_depth=(2, 3),
              p_helper=0.45, two_d=0.2)


class MatrixBuilder(CompositeBuilder):
    p_inverse = 0.3


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def draw(rng: np.random.Generator) -> Program:
    k = int(rng.choice([2, 3, 3, 4, 4]))
    mat, vec = Matrix(FLOAT32, k, k), Vector(FLOAT32, k)
    types = [FLOAT32, vec, mat]
    if rng.random() < 0.12:                   # a second size: values move across through entries/components
        k2 = _pick(rng, [x for x in (2, 3, 4) if x != k])
        types += [Vector(FLOAT32, k2), Matrix(FLOAT32, k2, k2)]
    vocab = Vocabulary(OPS, types=tuple(types), ranges={FLOAT32: Interval(-2.0, 2.0)}, limit=500.0, p_leaf=0.3,
                       p_const=0.1, p_call=0.35)
    n_mat, n_vec, n_sc = int(rng.choice([1, 2, 2, 3])), int(rng.choice([0, 0, 1, 1, 2])), int(rng.choice([0, 0, 0, 1]))
    inputs = [Port(mat, _pick(rng, UNIFORM), MAT_NAMES) for _ in range(n_mat)]
    inputs += [Port(vec, _pick(rng, VEC_RANGES), normalized=rng.random() < 0.4) for _ in range(n_vec)]
    inputs += [Port(FLOAT32, _pick(rng, SCALAR_RANGES)) for _ in range(n_sc)]
    scalars = [Port(FLOAT32, _pick(rng, SCALAR_RANGES), SCALAR_NAMES)] if rng.random() < 0.25 else []
    outs = [Port(_pick(rng, (mat, mat, mat, vec, vec, FLOAT32)), names=OUT_NAMES)
            for _ in range(int(rng.integers(1, 3)))]
    weights = {t: 3.0 if t == mat else 1.2 if t == vec else 1.0 if t == FLOAT32 else 0.5 for t in types}
    kernel, ranges, dim = first_clean(lambda: composite_kernel(rng, vocab, inputs, outs, scalars, weights, SHAPE,
                                                               builder=MatrixBuilder))
    return program(kernel, ranges, dim, features(kernel), differentiable=differentiable(kernel))


FAMILY = ir_family("matrix", __doc__, with_new_ports(draw), version=2,
                   covers=("mat22", "mat33", "mat44", "matmul", "mat-vec", "transpose", "determinant", "inverse",
                           "outer", "diag", "trace", "matrix indexing", "matrix element assignment"))
