"""quaternion: random statement sequences over Warp's quat and transform types (float32).

``wp.quat_from_axis_angle`` (unit axes: inputs on the unit sphere, constant unit axes or ``wp.normalize``\\ d
vectors), ``wp.quat_rpy``, ``wp.quat(x, y, z, w)``/``wp.quat(v, w)``, quaternion products (``q1 * q2`` and
``wp.mul``), ``wp.quat_inverse``, ``wp.normalize``, ``wp.quat_rotate``/``wp.quat_rotate_inv``,
``wp.quat_to_matrix``, components (``q[3]``, ``q.w``), ``wp.dot``/``wp.length`` on quaternions,
``wp.transform(p, q)``, ``wp.transform_point``, ``wp.transform_vector``, ``wp.transform_multiply`` and ``t1 * t2``,
``wp.transform_inverse``, ``t.p``/``t.q`` and ``wp.transform_get_translation``/``_rotation``, mixed with vec3,
mat33 and scalar operations, composed at random over quaternion arrays (unit), transform arrays (unit rotations),
vec3 and angle arrays and parameters, in 1-D or 2-D launches, optionally through a ``@wp.func`` helper, with one
or two quaternion, transform, vector, matrix or scalar outputs.

Warp's conventions (``warp/native/quat.h``, ``spatial.h``), copied by the reference: components are ordered
``(x, y, z, w)``; ``a * b`` is the Hamilton product ``(a.w b.v + b.w a.v + a.v x b.v, a.w b.w - a.v . b.v)``;
``quat_rotate(q, x) = x (2w^2 - 1) + 2 q.v (q.v . x) + 2 w (q.v x x)`` (a rotation only for unit q, so rotations
are only applied to quaternions that interval bounds show to be unit); ``quat_inverse`` is the conjugate;
``quat_to_matrix`` has columns ``quat_rotate(q, e_k)``; ``quat_from_axis_angle`` does not normalise its axis;
``normalize`` of a zero quaternion is the identity; ``transform_multiply(a, b) = (rot(a.q, b.p) + a.p, a.q b.q)``;
``transform_inverse(t) = (-rot(conj q, p), conj q)``; ``transform_point`` adds ``p``, ``transform_vector`` does
not; ``quat_rpy(roll, pitch, yaw)`` follows Warp's formula.
"""

from __future__ import annotations

import numpy as np

from harness.family import Family, Program
from kernels import _vector_lib as L
from kernels._common import OUT_NAMES, pick

WEIGHTS = {
    # quaternions
    "qmul": 1.6, "quat_inverse": 0.8, "qnormalize": 0.6, "quat_from_axis_angle": 1.2, "qctor": 0.3, "scale@q": 0.2,
    "add@q": 0.2, "neg@q": 0.1, "tget_q": 0.5, "quat_rpy": 0.3,
    # transforms
    "transform": 1.0, "tmul": 1.2, "transform_inverse": 1.0,
    # vectors
    "quat_rotate": 1.5, "quat_rotate_inv": 1.0, "transform_point": 1.3, "transform_vector": 1.0, "tget_p": 0.5,
    "add@v": 0.6, "sub@v": 0.5, "scale@v": 0.4, "cross": 0.3, "normalize": 0.3, "construct": 0.2, "matvec": 0.5,
    # matrices
    "quat_to_matrix": 1.3, "matmul": 0.3, "transpose": 0.2,
    # scalars
    "comp": 0.4, "dot": 0.4, "qdot": 0.4, "length": 0.25, "add@f": 0.4, "sub@f": 0.2, "mul": 0.3, "sin": 0.15,
    "cos": 0.15, "determinant": 0.1, "trace": 0.15,
}
QUAT_NAMES = ("q", "rot", "ori", "qa", "qb", "quats", "orient", "spin", "att")
XFORM_NAMES = ("tf", "pose", "body_q", "X", "frames", "xf", "joint_X", "T")
VEC_NAMES = ("pos", "v", "pts", "x", "vel", "axis", "dirs", "offs", "p")
ANGLE_NAMES = ("theta", "angle", "phi", "yaw", "ang", "t")
OUT_EXTRA = ("q_out", "pose_out", "world", "xform_out")
LOAD_PREFIX = ("", "x", "l_")


def generate(rng: np.random.Generator) -> Program:
    has_t = rng.random() < 0.55
    kinds = {"f", "v3", "q"} | ({"t"} if has_t else set()) | ({"m33"} if rng.random() < 0.45 else set())
    dims = L.random_dims(rng)
    two_d = len(dims) == 2
    decl = []
    n_q = int(rng.choice([0, 1, 1, 2])) if has_t else int(rng.choice([1, 1, 2]))
    n_t = int(rng.choice([1, 1, 2])) if has_t else 0
    n_v = int(rng.choice([0, 1, 1, 2]))
    n_a = int(rng.choice([0, 0, 1]))
    if n_q + n_t == 0:
        n_q = 1
    for name in pick(rng, QUAT_NAMES, n_q):
        decl.append((name, "q", ("unitquat",)))
    for name in pick(rng, XFORM_NAMES, n_t):
        decl.append((name, "t", ("transform",) + tuple(pick(rng, ((-2.0, 2.0), (-1.0, 1.0), (0.0, 3.0))))))
    for name in pick(rng, VEC_NAMES, n_v):
        s = ("shell", 1.0, 1.0) if name in ("axis", "dirs") or rng.random() < 0.25 else \
            ("uniform",) + tuple(pick(rng, ((-2.0, 2.0), (-1.0, 1.0), (0.0, 2.0))))
        decl.append((name, "v3", s))
    for name in pick(rng, ANGLE_NAMES, n_a):
        decl.append((name, "f", ("uniform",) + tuple(pick(rng, ((-3.0, 3.0), (-1.0, 1.0), (0.0, 1.5))))))
    order = rng.permutation(len(decl))
    decl = [decl[int(k)] for k in order]
    inline = rng.random() < 0.3
    prefix = pick(rng, LOAD_PREFIX)
    inputs = []
    taken = {d[0] for d in decl}
    for k, (name, kind, sampler) in enumerate(decl):
        index = L.input_index(rng, two_d, k)
        local = None if inline else L.load_local(name, k, prefix, taken)
        inputs.append(L.Input(name, kind, sampler, "in", index, local))
    if rng.random() < 0.2:
        name = pick(rng, ("alpha", "omega", "dt", "angle0", "twist"))
        inputs.append(L.Input(name, "f", ("uniform", -1.5, 1.5), "scalar"))
    if rng.random() < 0.12:
        inputs.append(L.Input(pick(rng, ("q0", "ref_rot", "base_q")), "q", ("unitquat",), "scalar"))
    pool = ["q", "q", "v3", "v3", "f"] + (["t", "t"] if has_t else []) + (["m33"] if "m33" in kinds else [])
    out_names, out_kinds = L.random_outputs(rng, OUT_NAMES + OUT_EXTRA, lambda: pick(rng, pool))
    stmt_kinds = {"q": 2.5, "t": 1.5, "v3": 2.0, "f": 0.7, "m33": 0.6}
    return L.build_program(rng, prec="float32", inputs=inputs, dims=dims, weights=WEIGHTS, kinds=kinds,
                           stmt_kinds=stmt_kinds, out_kinds=out_kinds, out_names=out_names)


FAMILY = Family(
    name="quaternion",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=L.reference,
    tolerance=L.tolerance,
    sample_inputs=L.sample_inputs,
    weight=1.0,
    covers=("quat", "transform", "quat_from_axis_angle", "quat_rotate", "quat_to_matrix", "transform_point",
            "transform_multiply", "transform_inverse", "quaternion product"),
)
