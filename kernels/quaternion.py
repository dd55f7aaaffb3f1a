"""quaternion: random statement sequences over Warp's quat and transform types (float32).

``wp.quat_from_axis_angle``, ``wp.quat_rpy``, ``wp.quat(x, y, z, w)``/``wp.quat(v, w)``, quaternion products
(``q1 * q2`` and ``wp.mul``), ``wp.quat_inverse``, ``wp.normalize``, ``wp.quat_rotate``/``wp.quat_rotate_inv``,
``wp.quat_to_matrix``, components (``q[3]``, ``q.w``) and their assignment, ``wp.dot``/``wp.length`` on
quaternions, ``wp.transform(p, q)``, ``wp.transform_point``, ``wp.transform_vector``, ``wp.transform_multiply``
and ``t1 * t2``, ``wp.transform_inverse``, ``t.p``/``t.q`` and ``wp.transform_get_translation``/``_rotation``,
``wp.pi``, spatial vectors (``wp.spatial_vector(w, v)``, ``wp.spatial_top``/``_bottom``, ``wp.spatial_dot``,
``wp.spatial_cross``, components ``s[4]``), mixed with vec3, mat33 and scalar operations, composed at random
over quaternion arrays, transform arrays, vec3 and angle arrays and parameters, in 1-D or 2-D launches,
optionally through a ``@wp.func`` helper, with one or two quaternion, transform, vector, matrix or scalar
outputs.

Warp's conventions (``warp/native/quat.h``, ``spatial.h``) live in the operation table: components are ordered
``(x, y, z, w)``; ``a * b`` is the Hamilton product; ``quat_rotate(q, x) = x (2w^2 - 1) + 2 q.v (q.v . x) +
2 w (q.v x x)`` (the same formula for quaternions that are not unit); ``quat_inverse`` is the conjugate;
``quat_to_matrix`` has columns ``quat_rotate(q, e_k)``; ``quat_from_axis_angle`` does not normalise its axis;
``transform_multiply(a, b) = (rot(a.q, b.p) + a.p, a.q b.q)``; ``transform_inverse(t) = (-rot(conj q, p),
conj q)``; ``quat_rpy(roll, pitch, yaw)`` follows Warp's formula. The reference is the IR interpreter.
"""

from __future__ import annotations

import numpy as np

from harness.family import Program
from kernels.ir.composite import (Port, Shape, composite_kernel, differentiable, first_clean,
                                   with_new_ports)
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import OUT_NAMES, Vocabulary
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, Matrix, Quat, SpatialVector, Transform, Vector

Q, T, V3, M33 = Quat(FLOAT32), Transform(FLOAT32), Vector(FLOAT32, 3), Matrix(FLOAT32, 3, 3)
S6 = SpatialVector(FLOAT32, 6)
OPS = {
    # quaternions
    "qmul": 1.6, "wp_mul": 0.5, "quat_inverse": 0.8, "normalize": 1.6, "quat_from_axis_angle": 1.2, "quat": 0.2,
    "quat_vw": 0.2, "mscale": 0.3, "add": 0.6, "sub": 0.5, "neg": 0.1, "transform_get_rotation": 0.4,
    "quat_rpy": 0.3,
    # transforms
    "transform": 1.0, "transform_multiply": 1.5, "transform_inverse": 1.0,
    # vectors
    "quat_rotate": 2.0, "quat_rotate_inv": 1.3, "transform_point": 2.0, "transform_vector": 1.8,
    "transform_get_translation": 0.4, "mul": 0.4, "cross": 0.3, "vec3": 0.2, "matmul": 0.5,
    # matrices
    "quat_to_matrix": 1.3, "transpose": 0.2, "diag": 0.15, "outer": 0.15, "matrix_from_rows": 0.1,
    "matrix_from_cols": 0.1,
    # scalars
    "dot": 0.6, "length": 0.25, "length_sq": 0.3, "sin": 0.15, "cos": 0.15, "determinant": 0.1, "trace": 0.15,
    "pi": 0.15,
    # spatial vectors (twists, wrenches): built from two vec3, read back through their halves and products
    "spatial_vector": 0.8, "spatial_top": 0.5, "spatial_bottom": 0.5, "spatial_dot": 0.4, "spatial_cross": 0.6,
}
QUAT_NAMES = ("q", "rot", "ori", "qa", "qb", "quats", "orient", "spin", "att")
XFORM_NAMES = ("tf", "pose", "body_q", "X", "frames", "xf", "joint_X", "T")
VEC_NAMES = ("pos", "v", "pts", "x", "vel", "axis", "dirs", "offs", "p")
ANGLE_NAMES = ("theta", "angle", "phi", "yaw", "ang", "t")
OUT_EXTRA = ("q_out", "pose_out", "world", "xform_out")
QUAT_RANGES = (Interval(0.2, 1.0), Interval(-1.0, 1.0), Interval(0.3, 0.8), Interval(-0.9, -0.1))
XFORM_RANGES = (Interval(-2.0, 2.0), Interval(-1.0, 1.0), Interval(0.0, 1.5))
VEC_RANGES = (Interval(-2.0, 2.0), Interval(-1.0, 1.0), Interval(0.0, 2.0), Interval(0.5, 1.5))
ANGLE_RANGES = (Interval(-3.0, 3.0), Interval(-1.0, 1.0), Interval(0.0, 1.5))
SHAPE = Shape(statements=(1, 4), kinds={"let": 1.0, "update": 0.15, "set": 0.2}, depth=(1, 3), out_depth=(2, 3),
              p_helper=0.45, two_d=0.2)


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def draw(rng: np.random.Generator) -> Program:
    has_t = rng.random() < 0.55
    types = [FLOAT32, V3, Q] + ([T] if has_t else []) + ([M33] if rng.random() < 0.45 else []) + \
        ([S6] if rng.random() < 0.3 else [])
    vocab = Vocabulary(OPS, types=tuple(types), ranges={FLOAT32: Interval(-2.0, 2.0)}, limit=500.0, p_leaf=0.3,
                       p_const=0.1, p_call=0.35)
    n_q = int(rng.choice([0, 1, 1, 2])) if has_t else int(rng.choice([1, 1, 2]))
    n_t = int(rng.choice([1, 1, 2])) if has_t else 0
    n_v, n_a = int(rng.choice([0, 1, 1, 2])), int(rng.choice([0, 0, 1]))
    inputs = [Port(Q, _pick(rng, QUAT_RANGES), QUAT_NAMES, normalized=rng.random() < 0.6) for _ in range(n_q)]
    inputs += [Port(T, _pick(rng, XFORM_RANGES), XFORM_NAMES) for _ in range(n_t)]
    inputs += [Port(V3, _pick(rng, VEC_RANGES), VEC_NAMES, normalized=rng.random() < 0.3) for _ in range(n_v)]
    inputs += [Port(FLOAT32, _pick(rng, ANGLE_RANGES), ANGLE_NAMES) for _ in range(n_a)]
    inputs = [inputs[int(k)] for k in rng.permutation(len(inputs))]
    scalars = [Port(FLOAT32, Interval(-1.5, 1.5), ("alpha", "omega", "dt", "angle0", "twist"))] \
        if rng.random() < 0.2 else []
    pool = [Q, Q, V3, V3, FLOAT32] + ([T, T] if has_t else []) + ([M33] if M33 in types else [])
    outs = [Port(_pick(rng, pool), names=OUT_NAMES + OUT_EXTRA) for _ in range(int(rng.integers(1, 3)))]
    weights = {Q: 2.5, T: 1.5, V3: 2.0, FLOAT32: 0.7, M33: 0.6, S6: 1.0}
    kernel, ranges, dim = first_clean(lambda: composite_kernel(rng, vocab, inputs, outs, scalars,
                                                               {t: weights[t] for t in types}, SHAPE))
    return program(kernel, ranges, dim, features(kernel), differentiable=differentiable(kernel))


FAMILY = ir_family("quaternion", __doc__, with_new_ports(draw), version=2,
                   covers=("quat", "transform", "quat_from_axis_angle", "quat_rotate", "quat_to_matrix",
                           "transform_point", "transform_multiply", "transform_inverse", "quaternion product",
                           "component assignment", "wp.pi", "spatial_vector"))
