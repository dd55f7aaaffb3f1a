"""Typed random programs over Warp's vector, matrix, quaternion and transform types (shared by the vector,
matrix and quaternion families).

A program is a statement sequence over typed values: scalars (``f``), vectors (``v2 v3 v4``), square matrices
(``m22 m33 m44``), quaternions (``q``) and transforms (``t``). Every node carries per-component value intervals
and bounds on its norm (vector/quaternion length, matrix singular values, transform rotation length), so the
generator keeps programs inside their domains by construction: denominators stay away from zero, ``normalize``
gets vectors whose length is bounded below, ``inverse`` gets matrices whose smallest singular value is bounded
below (diagonal dominance, rotations), rotations get unit quaternions, and magnitudes stay below ``LIMIT``.

The NumPy evaluator works in float64 on whole batches and copies Warp 1.19's formulas (``native/quat.h``,
``spatial.h``, ``mat.h``, ``vec.h``), which matters where a formula is not the textbook one for every input:

* ``quat_rotate(q, x) = x (2w^2 - 1) + 2 q_v (q_v . x) + 2 w (q_v x x)`` and ``quat_rotate_inv`` flips the
  cross term: a rotation only for unit ``q``; ``quat_to_matrix`` has the columns ``quat_rotate(q, e_k)``;
  ``quat_inverse`` is the conjugate (no division by the norm); the quaternion product is Hamilton's with
  components ordered ``(x, y, z, w)``; ``quat_from_axis_angle`` does not normalise its axis.
* ``transform_multiply(a, b) = (quat_rotate(a.q, b.p) + a.p, a.q * b.q)``, ``transform_inverse(t) =
  (-quat_rotate(conj(q), p), conj(q))``; ``t1 * t2`` is ``transform_multiply`` but ``t * s`` scales all 7 numbers.
* ``normalize`` returns the zero vector when the length is exactly 0 (``kEps`` is 0 in Warp 1.19) and
  ``normalize(quat)`` returns the identity quaternion then; ``inverse`` returns the zero matrix when the
  determinant is exactly 0.
* Bare float literals are float32 (``0.3`` is ``float32(0.3)``) but literal arguments of ``wp.vec3d(...)`` keep
  their float64 value; a float32 literal times a ``vec3d`` does not compile, so float64 kernels wrap scalar
  literals as ``wp.float64(c)``. ``m * m`` is a matrix product and ``m * v`` a matrix-vector product.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from harness.family import PLACEHOLDER, Arg, KernelSpec, Program, Tolerance
from harness.dtypes import dtype as lookup_dtype
from kernels._common import TYPE_TOLERANCES, kernel_text, pick

LIMIT = 40.0          # bound on any component of any intermediate value
NORM_MIN = 0.3        # lower bound on a length before normalize / a singular value before inverse
ANGLE_MAX = 4.0       # bound on angles fed to sin/cos (conditioning of float32 inputs)
DENOM_MIN = 0.25      # lower bound on |denominator|
UNIT_TOL = 1e-3

SHAPE = {"f": (), "v2": (2,), "v3": (3,), "v4": (4,), "m22": (2, 2), "m33": (3, 3), "m44": (4, 4),
         "q": (4,), "t": (7,)}
VEC = ("v2", "v3", "v4")
MAT = ("m22", "m33", "m44")
VEC_OF = {2: "v2", 3: "v3", 4: "v4"}
MAT_OF = {2: "m22", 3: "m33", 4: "m44"}
COMP = "xyzw"

_TYPE32 = {"f": "float", "v2": "wp.vec2", "v3": "wp.vec3", "v4": "wp.vec4", "m22": "wp.mat22",
           "m33": "wp.mat33", "m44": "wp.mat44", "q": "wp.quat", "t": "wp.transform"}
_TYPE64 = {"f": "wp.float64", "v2": "wp.vec2d", "v3": "wp.vec3d", "v4": "wp.vec4d", "m22": "wp.mat22d",
           "m33": "wp.mat33d", "m44": "wp.mat44d", "q": "wp.quatd", "t": "wp.transformd"}
_DTYPE32 = {"f": "float32", "v2": "vec2f", "v3": "vec3f", "v4": "vec4f", "m22": "mat22f", "m33": "mat33f",
            "m44": "mat44f", "q": "quatf", "t": "transformf"}
_DTYPE64 = {"f": "float64", "v3": "vec3d"}


def type_src(kind: str, prec: str) -> str:
    return (_TYPE32 if prec == "float32" else _TYPE64)[kind]


def dtype_name(kind: str, prec: str) -> str | None:
    """The harness dtype of an array of ``kind`` (None where the harness has none, e.g. vec2d)."""
    return (_DTYPE32 if prec == "float32" else _DTYPE64).get(kind)


def dim_of(kind: str) -> int:
    return SHAPE[kind][0] if kind != "f" else 1


# --------------------------------------------------------------------------------------------------------
# Nodes with value bounds


@dataclass(eq=False, slots=True)
class Node:
    op: str
    kind: str
    args: tuple
    info: object
    lo: np.ndarray
    hi: np.ndarray
    nmin: float
    nmax: float
    mag: float = 0.0          # max |component|

    @property
    def unit(self) -> bool:
        return self.nmin >= 1 - UNIT_TOL and self.nmax <= 1 + UNIT_TOL


def _dist0(lo, hi):
    """Per component: distance of the interval from zero (0 where it contains zero)."""
    return np.maximum(lo, 0.0) + np.maximum(-hi, 0.0)


def _iv_norms(kind: str, lo: np.ndarray, hi: np.ndarray) -> tuple[float, float, float]:
    """(lower bound on the norm, upper bound on the norm, max |component|) from component intervals."""
    if kind == "f":
        a, b = float(lo), float(hi)
        m = max(-a, b)
        return (a if a > 0 else -b if b < 0 else 0.0), m, m
    mag = np.maximum(-lo, hi)
    m = float(mag.max())
    if kind == "t":
        lo, hi, mag = lo[3:], hi[3:], mag[3:]
    if kind in MAT:
        n = lo.shape[0]
        off = mag * (1 - np.eye(n))
        dmin = _dist0(lo.diagonal(), hi.diagonal())
        margin = max(float((dmin - off.sum(1)).min()), float((dmin - off.sum(0)).min()))
        return max(0.0, margin / math.sqrt(n)), math.sqrt(float((mag * mag).sum())), m
    d = _dist0(lo, hi)
    return math.sqrt(float(d @ d)), math.sqrt(float(mag @ mag)), m


def mk(op: str, kind: str, args: tuple, info, lo, hi, nmin: float | None = None, nmax: float | None = None) -> Node:
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    a, b, m = _iv_norms(kind, lo, hi)
    if nmin is not None and nmin > a:
        a = nmin
    if nmax is not None and nmax < b:
        b = nmax
    return Node(op, kind, args, info, lo, hi, a, max(a, b), m)


def iv_mul(alo, ahi, blo, bhi):
    p1, p2, p3, p4 = alo * blo, alo * bhi, ahi * blo, ahi * bhi
    return np.minimum(np.minimum(p1, p2), np.minimum(p3, p4)), np.maximum(np.maximum(p1, p2), np.maximum(p3, p4))


def iv_matmul(alo, ahi, blo, bhi):
    lo, hi = iv_mul(alo[:, :, None], ahi[:, :, None], blo[None, :, :], bhi[None, :, :])
    return lo.sum(1), hi.sum(1)


def _scalar_expand(s, kind):
    s = np.asarray(s)
    return s.reshape(s.shape + (1,) * len(SHAPE[kind]))


def has_var(node: Node) -> bool:
    if node.op == "var":
        return True
    return any(has_var(a) for a in node.args if isinstance(a, Node))


def vars_of(node: Node, out: set | None = None) -> set:
    out = set() if out is None else out
    if node.op == "var":
        out.add(node.info)
    for a in node.args:
        if isinstance(a, Node):
            vars_of(a, out)
    return out


def ops_of(node: Node, out: set | None = None) -> set:
    out = set() if out is None else out
    if node.op not in ("var", "const", "vconst"):
        out.add(node.op)
    for a in node.args:
        if isinstance(a, Node):
            ops_of(a, out)
    return out


# --------------------------------------------------------------------------------------------------------
# Source emission


def lit(c: float, prec: str) -> str:
    text = repr(float(c))
    if prec == "float64":
        return f"wp.float64({text})"
    return f"({text})" if text.startswith("-") else text


def const_value(c: float, prec: str) -> float:
    return float(c) if prec == "float64" else float(np.float32(c))


def emit(node: Node, prec: str, rename: dict | None = None) -> str:
    e = lambda n: emit(n, prec, rename)  # noqa: E731
    op, a, info = node.op, node.args, node.info
    T = lambda k: type_src(k, prec)  # noqa: E731
    if op == "var":
        return rename.get(info, info) if rename else info
    if op == "const":
        return lit(info, prec)
    if op == "vconst":
        return f"{T(node.kind)}({', '.join(repr(float(c)) for c in info)})"
    if op in ("add", "sub"):
        return f"({e(a[0])} {'+' if op == 'add' else '-'} {e(a[1])})"
    if op == "mul":
        return f"({e(a[0])} * {e(a[1])})"
    if op == "div":
        return f"({e(a[0])} / {e(a[1])})"
    if op == "neg":
        return f"(-{e(a[0])})"
    if op == "scale":                      # a[0] scalar, a[1] value
        return f"({e(a[0])} * {e(a[1])})" if info == "sv" else f"({e(a[1])} * {e(a[0])})"
    if op == "sdiv":
        return f"({e(a[0])} / {e(a[1])})"
    if op in ("smin", "smax", "vmin2", "vmax2"):
        return f"wp.{op[1:4]}({e(a[0])}, {e(a[1])})"
    if op in ("sabs", "vabs"):
        return f"wp.abs({e(a[0])})"
    if op in ("sqrt", "sin", "cos", "dot", "cross", "length", "length_sq", "normalize", "cw_mul", "cw_div",
              "transpose", "determinant", "inverse", "trace", "outer", "diag", "get_diag", "ddot", "skew",
              "quat_rotate", "quat_rotate_inv", "quat_inverse", "quat_to_matrix", "quat_from_axis_angle",
              "quat_rpy", "transform_point", "transform_vector", "transform_inverse", "matrix_from_rows",
              "matrix_from_cols"):
        return f"wp.{op}({', '.join(e(x) for x in a)})"
    if op == "qnormalize":
        return f"wp.normalize({e(a[0])})"
    if op in ("vmin", "vmax"):
        return f"wp.{op[1:]}({e(a[0])})"
    if op == "comp":                       # vector / quaternion component of a variable
        k, style = info
        return f"{e(a[0])}.{COMP[k]}" if style == "attr" else f"{e(a[0])}[{k}]"
    if op == "entry":
        i, j, style = info
        return f"{e(a[0])}[{i}][{j}]" if style == "ij" else f"{e(a[0])}[{i}, {j}]"
    if op == "row":
        return f"{e(a[0])}[{info}]"
    if op == "construct":
        return f"{T(node.kind)}({', '.join(e(x) for x in a)})"
    if op == "splat":
        return f"{T(node.kind)}({e(a[0])})"
    if op == "qctor_vw":
        return f"{T('q')}({e(a[0])}, {e(a[1])})"
    if op == "identity":
        return f"wp.identity(n={dim_of(node.kind)}, dtype={T('f')})"
    if op in ("matmul", "matvec", "vecmat"):
        return f"({e(a[0])} @ {e(a[1])})" if info == "@" else f"wp.mul({e(a[0])}, {e(a[1])})"
    if op == "qmul":
        return f"({e(a[0])} * {e(a[1])})" if info == "*" else f"wp.mul({e(a[0])}, {e(a[1])})"
    if op == "quat_identity":
        return f"wp.quat_identity(dtype={T('f')})" if prec == "float64" else "wp.quat_identity()"
    if op == "transform":
        return f"wp.transform({e(a[0])}, {e(a[1])})"
    if op == "tmul":
        return f"({e(a[0])} * {e(a[1])})" if info == "*" else f"wp.transform_multiply({e(a[0])}, {e(a[1])})"
    if op == "tget_p":
        return f"{e(a[0])}.p" if info == "attr" else f"wp.transform_get_translation({e(a[0])})"
    if op == "tget_q":
        return f"{e(a[0])}.q" if info == "attr" else f"wp.transform_get_rotation({e(a[0])})"
    if op == "where":
        c = info
        return f"wp.where({e(a[0])} {c} {e(a[1])}, {e(a[2])}, {e(a[3])})"
    if op == "call":
        return f"{info['name']}({', '.join(e(x) for x in a)})"
    raise ValueError(f"cannot emit op {op!r}")


# --------------------------------------------------------------------------------------------------------
# NumPy evaluation (float64, batched over leading axes) with Warp's formulas


def _split(x, n):
    return [x[..., k] for k in range(n)]


def np_qmul(a, b):
    ax, ay, az, aw = _split(a, 4)
    bx, by, bz, bw = _split(b, 4)
    return np.stack(np.broadcast_arrays(
        aw * bx + bw * ax + ay * bz - by * az,
        aw * by + bw * ay + az * bx - bz * ax,
        aw * bz + bw * az + ax * by - bx * ay,
        aw * bw - ax * bx - ay * by - az * bz), axis=-1)


def np_cross(a, b):
    a0, a1, a2 = _split(a, 3)
    b0, b1, b2 = _split(b, 3)
    return np.stack(np.broadcast_arrays(a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0), axis=-1)


def np_qrot(q, x, inverse=False):
    qv, w = q[..., :3], q[..., 3:4]
    c = 2.0 * w * w - 1.0
    d = 2.0 * np.sum(qv * x, axis=-1, keepdims=True)
    cr = np_cross(qv, x) * w * 2.0
    return x * c + qv * d + (-cr if inverse else cr)


def np_conj(q):
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


def _cat(parts):
    shape = np.broadcast_shapes(*[p.shape[:-1] for p in parts])
    return np.concatenate([np.broadcast_to(p, shape + p.shape[-1:]) for p in parts], axis=-1)


def np_normalize(v, quat=False):
    n = np.sqrt(np.sum(v * v, axis=-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n > 0, v / np.where(n > 0, n, 1.0), 0.0)
    if quat:
        out = np.where(n > 0, out, np.array([0.0, 0.0, 0.0, 1.0]))
    return out


def np_inverse(m):
    n = m.shape[-1]
    det = np.linalg.det(m)
    ok = det != 0
    safe = np.where(ok[..., None, None], m, np.eye(n))
    return np.where(ok[..., None, None], np.linalg.inv(safe), 0.0)


def np_skew(v):
    x, y, z = _split(v, 3)
    zero = np.zeros_like(x)
    return np.stack([np.stack([zero, -z, y], -1), np.stack([z, zero, -x], -1), np.stack([-y, x, zero], -1)], -2)


def np_qrpy(r, p, y):
    cy, sy = np.cos(y * 0.5), np.sin(y * 0.5)
    cr, sr = np.cos(r * 0.5), np.sin(r * 0.5)
    cp, sp = np.cos(p * 0.5), np.sin(p * 0.5)
    return np.stack(np.broadcast_arrays(cy * sr * cp - sy * cr * sp, cy * cr * sp + sy * sr * cp,
                                        sy * cr * cp - cy * sr * sp, cy * cr * cp + sy * sr * sp), -1)


def evaluate(node: Node, env: dict, prec: str, memo: dict | None = None) -> np.ndarray:
    """Value of ``node`` with variables from ``env``; ``memo`` (id -> value) keeps every node's value."""
    if memo is not None and id(node) in memo:
        return memo[id(node)]
    op, a, info, kind = node.op, node.args, node.info, node.kind
    if op == "var":
        val = env[info]
    elif op == "const":
        val = np.asarray(const_value(info, prec))
    elif op == "vconst":
        val = np.array([const_value(c, prec) for c in info])
    elif op == "call":
        val = evaluate(info["body"], {p: evaluate(x, env, prec, memo) for p, x in zip(info["params"], a)}, prec)
    elif op == "where":
        x, y, p, q = (evaluate(n, env, prec, memo) for n in a)
        cond = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}[info](x, y)
        val = np.where(_scalar_expand(cond, kind), p, q)
    else:
        v = [evaluate(x, env, prec, memo) for x in a]
        with np.errstate(all="ignore"):
            val = _eval_op(op, kind, info, v, a)
    if memo is not None:
        memo[id(node)] = val
    return val


def _eval_op(op, kind, info, v, a):
    if op == "add":
        return v[0] + v[1]
    if op == "sub":
        return v[0] - v[1]
    if op == "mul":
        return v[0] * v[1]
    if op == "div":
        return v[0] / v[1]
    if op == "neg":
        return -v[0]
    if op == "scale":
        return _scalar_expand(v[0], kind) * v[1]
    if op == "sdiv":
        return v[0] / _scalar_expand(v[1], kind)
    if op in ("smin", "vmin2"):
        return np.minimum(v[0], v[1])
    if op in ("smax", "vmax2"):
        return np.maximum(v[0], v[1])
    if op in ("sabs", "vabs"):
        return np.abs(v[0])
    if op == "sqrt":
        return np.sqrt(v[0])
    if op == "sin":
        return np.sin(v[0])
    if op == "cos":
        return np.cos(v[0])
    if op == "dot":
        return np.sum(v[0] * v[1], axis=-1)
    if op == "cross":
        return np_cross(v[0], v[1])
    if op == "length":
        return np.sqrt(np.sum(v[0] * v[0], axis=-1))
    if op == "length_sq":
        return np.sum(v[0] * v[0], axis=-1)
    if op == "normalize":
        return np_normalize(v[0])
    if op == "qnormalize":
        return np_normalize(v[0], quat=True)
    if op == "cw_mul":
        return v[0] * v[1]
    if op == "cw_div":
        return v[0] / v[1]
    if op == "vmin":
        return np.min(v[0], axis=-1)
    if op == "vmax":
        return np.max(v[0], axis=-1)
    if op == "comp":
        return v[0][..., info[0]]
    if op == "entry":
        return v[0][..., info[0], info[1]]
    if op == "row":
        return v[0][..., info, :]
    if op == "construct":
        return np.stack(np.broadcast_arrays(*v), axis=-1)
    if op == "splat":
        return np.repeat(np.asarray(v[0])[..., None], dim_of(kind), axis=-1)
    if op == "qctor_vw":
        return _cat([v[0], np.asarray(v[1])[..., None]])
    if op == "identity":
        return np.eye(dim_of(kind))
    if op in ("matmul",):
        return np.matmul(v[0], v[1])
    if op == "matvec":
        return np.einsum("...ij,...j->...i", v[0], v[1])
    if op == "vecmat":
        return np.einsum("...i,...ij->...j", v[0], v[1])
    if op == "transpose":
        return np.swapaxes(v[0], -1, -2)
    if op == "determinant":
        return np.linalg.det(v[0])
    if op == "inverse":
        return np_inverse(v[0])
    if op == "trace":
        return np.trace(v[0], axis1=-2, axis2=-1)
    if op == "outer":
        return v[0][..., :, None] * v[1][..., None, :]
    if op == "diag":
        return v[0][..., :, None] * np.eye(v[0].shape[-1])
    if op == "get_diag":
        return np.diagonal(v[0], axis1=-2, axis2=-1).copy()
    if op == "ddot":
        return np.sum(v[0] * v[1], axis=(-1, -2))
    if op == "skew":
        return np_skew(v[0])
    if op == "matrix_from_rows":
        return np.stack(np.broadcast_arrays(*v), axis=-2)
    if op == "matrix_from_cols":
        return np.stack(np.broadcast_arrays(*v), axis=-1)
    if op == "qmul":
        return np_qmul(v[0], v[1])
    if op == "quat_rotate":
        return np_qrot(v[0], v[1])
    if op == "quat_rotate_inv":
        return np_qrot(v[0], v[1], inverse=True)
    if op == "quat_inverse":
        return np_conj(v[0])
    if op == "quat_to_matrix":
        cols = [np_qrot(v[0], e) for e in np.eye(3)]
        return np.stack(np.broadcast_arrays(*cols), axis=-1)
    if op == "quat_from_axis_angle":
        half = np.asarray(v[1]) * 0.5
        return _cat([v[0] * np.sin(half)[..., None], np.cos(half)[..., None]])
    if op == "quat_rpy":
        return np_qrpy(*v)
    if op == "quat_identity":
        return np.array([0.0, 0.0, 0.0, 1.0])
    if op == "transform":
        return _cat([v[0], v[1]])
    if op == "tmul":
        ta, tb = v
        return _cat([np_qrot(ta[..., 3:], tb[..., :3]) + ta[..., :3], np_qmul(ta[..., 3:], tb[..., 3:])])
    if op == "transform_inverse":
        qi = np_conj(v[0][..., 3:])
        return _cat([-np_qrot(qi, v[0][..., :3]), qi])
    if op == "transform_point":
        return v[0][..., :3] + np_qrot(v[0][..., 3:], v[1])
    if op == "transform_vector":
        return np_qrot(v[0][..., 3:], v[1])
    if op == "tget_p":
        return v[0][..., :3]
    if op == "tget_q":
        return v[0][..., 3:]
    raise ValueError(f"cannot evaluate op {op!r}")


# --------------------------------------------------------------------------------------------------------
# Generation

CLASS = {"f": "f", "v2": "v", "v3": "v", "v4": "v", "m22": "m", "m33": "m", "m44": "m", "q": "q", "t": "t"}

#: the operators that can produce a value of each class
PRODUCERS = {
    "f": ("add", "sub", "mul", "div", "neg", "sabs", "smin", "smax", "sqrt", "sin", "cos", "dot", "length",
          "length_sq", "comp", "vmin", "vmax", "determinant", "trace", "entry", "ddot", "qdot", "where"),
    "v": ("add", "sub", "neg", "scale", "sdiv", "cw_mul", "cw_div", "cross", "normalize", "vabs", "vmin2", "vmax2",
          "construct", "splat", "where", "matvec", "vecmat", "row", "get_diag", "quat_rotate", "quat_rotate_inv",
          "transform_point", "transform_vector", "tget_p"),
    "m": ("add", "sub", "neg", "scale", "sdiv", "matmul", "transpose", "inverse", "outer", "diag",
          "matrix_from_rows", "matrix_from_cols", "quat_to_matrix", "skew", "cw_mul", "where"),
    "q": ("qmul", "quat_inverse", "qnormalize", "quat_from_axis_angle", "qctor", "scale", "add", "neg", "tget_q",
          "quat_rpy"),
    "t": ("transform", "tmul", "transform_inverse"),
}


class Gen:
    """Random typed expressions over the variables in scope, with bounds; ``weights`` picks the vocabulary.

    ``weights`` maps ``op`` or ``op@class`` (class one of f v m q t) to a weight; missing ops are off.
    ``kinds`` is the set of value kinds the program may use.
    """

    def __init__(self, rng: np.random.Generator, prec: str, weights: dict, kinds: set, p_leaf: float = 0.3):
        self.rng = rng
        self.prec = prec
        self.weights = weights
        self.kinds = set(kinds)
        self.p_leaf = p_leaf
        self.scope: dict[str, Node] = {}      # name -> var node (latest binding)
        self.uses: Counter = Counter()
        self.protected: set[str] = set()      # names that must not be rebound (inputs)
        self._ops = {}
        for cls, ops in PRODUCERS.items():
            ops = [op for op in ops if self.weight(op, cls) > 0]
            self._ops[cls] = (ops, np.cumsum([self.weight(op, cls) for op in ops]).tolist())

    def wpick(self, items, cum):
        """``items[k]`` with probability proportional to the increments of the cumulative weights ``cum``."""
        u = self.rng.random() * cum[-1]
        return items[min(bisect.bisect_right(cum, u), len(items) - 1)]

    # ---- small helpers
    def r(self) -> float:
        return float(self.rng.random())

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def weight(self, op: str, cls: str) -> float:
        return float(self.weights.get(f"{op}@{cls}", self.weights.get(op, 0.0)))

    def bind(self, name: str, node: Node) -> Node:
        v = Node("var", node.kind, (), name, node.lo, node.hi, node.nmin, node.nmax, node.mag)
        self.scope[name] = v
        return v

    def vars_of_kind(self, kind: str) -> list[Node]:
        return [v for v in self.scope.values() if v.kind == kind]

    def pick_var(self, kind: str) -> Node | None:
        cands = self.vars_of_kind(kind)
        if not cands:
            return None
        v = self.wpick(cands, list(itertools.accumulate(1.0 / (1 + self.uses[v.info]) ** 2 for v in cands)))
        self.uses[v.info] += 1
        return v

    def pick_kind(self, cands) -> str | None:
        cands = [k for k in cands if k in self.kinds]
        if not cands:
            return None
        present = {v.kind for v in self.scope.values()}
        return self.wpick(cands, list(itertools.accumulate(3.0 if k in present else 1.0 for k in cands)))

    def const(self, lo: float = -3.0, hi: float = 3.0, away: float = 0.0) -> Node:
        for _ in range(20):
            c = round(float(self.rng.uniform(lo, hi)), int(self.rng.integers(1, 3)))
            if abs(c) >= away and c not in (0.0, 1.0, -1.0):
                break
        v = const_value(c, self.prec)
        return mk("const", "f", (), c, v, v)

    def vconst(self, kind: str, lo: float = -2.0, hi: float = 2.0, unit: bool = False) -> Node:
        n = dim_of(kind)
        vals = np.round(self.rng.uniform(lo, hi, n), 1)
        if unit:
            axes = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.6, 0.8, 0.0), (0.0, 0.6, -0.8),
                    (0.8, 0.0, 0.6), (-0.6, 0.0, 0.8), (0.48, 0.6, 0.64)]
            vals = np.array(self.choice(axes))
        if np.all(vals == 0):
            vals[0] = 1.0
        v = np.array([const_value(c, self.prec) for c in vals])
        return mk("vconst", kind, (), tuple(float(c) for c in vals), v, v)

    def ok(self, node: Node | None) -> bool:
        return node is not None and node.mag <= LIMIT      # NaN compares False

    # ---- expressions
    def expr(self, kind: str, depth: int) -> Node:
        if depth <= 0 or self.r() < self.p_leaf:
            return self.leaf(kind)
        ops, cum = self._ops[CLASS[kind]]
        if not ops:
            return self.leaf(kind)
        for _ in range(4):
            op = self.wpick(ops, cum)
            node = getattr(self, f"p_{op}")(kind, depth)
            if self.ok(node):
                return node
        return self.leaf(kind)

    def leaf(self, kind: str) -> Node:
        v = self.pick_var(kind) if self.r() < 0.85 else None
        return v if v is not None else self.make_leaf(kind)

    def var_leaf(self, kind: str) -> Node:
        """A leaf that depends on some variable (not a constant), built from another kind if need be."""
        v = self.pick_var(kind)
        if v is not None:
            return v
        for _ in range(3):
            node = self.make_leaf(kind)
            if has_var(node):
                return node
        return node

    def make_leaf(self, kind: str) -> Node:
        cls = CLASS[kind]
        r = self.r()
        if cls == "f":
            others = [v for v in self.scope.values() if v.kind != "f"]
            if others and r < 0.6:
                src = self.choice(others)
                self.uses[src.info] += 1
                return self.derive_scalar(src)
            return self.const()
        if cls == "v":
            n = dim_of(kind)
            others = [v for v in self.scope.values() if CLASS[v.kind] in ("v", "q") and v.kind != kind]
            if others and r < 0.5:
                src = self.choice(others)
                self.uses[src.info] += 1
                m = dim_of(src.kind)
                idx = [int(k) for k in self.rng.choice(m, size=min(n, m), replace=False)]
                parts = [self.comp_of(src, k) for k in idx]
                while len(parts) < n:
                    parts.insert(int(self.rng.integers(len(parts) + 1)), self.leaf("f"))
                return self.construct(kind, parts)
            if self.vars_of_kind("f") and r < 0.75:
                return self.construct(kind, [self.leaf("f") for _ in range(n)])
            return self.vconst(kind)
        if cls == "m":
            n = dim_of(kind)
            if r < 0.35:
                return self.p_scale(kind, 0, base=mk("identity", kind, (), None, np.eye(n), np.eye(n), 1.0, 1.0))
            if r < 0.6:
                return self.p_diag(kind, 1)
            if r < 0.8:
                return self.p_outer(kind, 1)
            return self.p_matrix_from_rows(kind, 1) if self.r() < 0.5 else self.p_matrix_from_cols(kind, 1)
        if cls == "q":
            ts = self.vars_of_kind("t")
            if ts and r < 0.3:
                return self.p_tget_q(kind, 1)
            if r < 0.05:
                return mk("quat_identity", "q", (), None, [0, 0, 0, 1], [0, 0, 0, 1], 1.0, 1.0)
            return self.p_quat_from_axis_angle(kind, 1)
        if cls == "t":
            return self.p_transform(kind, 1)
        raise ValueError(kind)

    # ---- building blocks
    def comp_of(self, v: Node, k: int) -> Node:
        if v.lo[k] == v.hi[k]:                 # a constant component (zero of a diag, literal): read another
            varying = [j for j in range(v.lo.shape[0]) if v.lo[j] != v.hi[j]]
            k = self.choice(varying) if varying else k
        style = "attr" if self.r() < 0.4 else "idx"
        return mk("comp", "f", (v,), (k, style), v.lo[k], v.hi[k])

    def derive_scalar(self, src: Node) -> Node:
        """A scalar read from a variable of another kind."""
        if CLASS[src.kind] in ("v", "q"):
            return self.comp_of(src, int(self.rng.integers(dim_of(src.kind))))
        if CLASS[src.kind] == "m":
            n = dim_of(src.kind)
            i, j = int(self.rng.integers(n)), int(self.rng.integers(n))
            if src.lo[i, j] == src.hi[i, j]:
                varying = [(a, b) for a in range(n) for b in range(n) if src.lo[a, b] != src.hi[a, b]]
                i, j = self.choice(varying) if varying else (i, j)
            return mk("entry", "f", (src,), (i, j, "ij" if self.r() < 0.5 else "i_j"), src.lo[i, j], src.hi[i, j])
        k = int(self.rng.integers(3))
        p = self.tget(src, "p")
        return self.comp_of(p, k) if p.op == "var" else mk("comp", "f", (p,), (k, "idx"), p.lo[k], p.hi[k])

    def tget(self, t: Node, part: str) -> Node:
        style = "attr" if self.r() < 0.5 else "fn"
        if part == "p":
            return mk("tget_p", "v3", (t,), style, t.lo[:3], t.hi[:3])
        return mk("tget_q", "q", (t,), style, t.lo[3:], t.hi[3:], t.nmin, t.nmax)

    def construct(self, kind: str, parts: list[Node]) -> Node:
        lo = np.array([float(p.lo) for p in parts])
        hi = np.array([float(p.hi) for p in parts])
        return mk("construct", kind, tuple(parts), None, lo, hi)

    def scalar_nonzero(self, y: Node) -> Node:
        if y.lo >= DENOM_MIN or y.hi <= -DENOM_MIN:
            return y
        c = float(self.choice([0.5, 0.75, 1.0, 1.5, 2.0]))
        cn = mk("const", "f", (), c, const_value(c, self.prec), const_value(c, self.prec))
        if y.lo >= 0:
            a = y
        elif self.r() < 0.5:
            a = mk("sabs", "f", (y,), None, 0.0, y.mag)
        else:
            a = mk("mul", "f", (y, y), None, 0.0, y.mag ** 2)
        return mk("add", "f", (a, cn), None, a.lo + cn.lo, a.hi + cn.hi)

    def vec_nonzero(self, y: Node) -> Node:
        d = _dist0(y.lo, y.hi)
        if np.all(d >= DENOM_MIN):
            return y
        n = dim_of(y.kind)
        c = float(self.choice([0.5, 1.0, 1.5]))
        if np.all(y.lo >= 0):
            a = y
        elif self.r() < 0.5:
            a = mk("vabs", y.kind, (y,), None, np.zeros(n), np.maximum(np.abs(y.lo), np.abs(y.hi)))
        else:
            a = mk("cw_mul", y.kind, (y, y), None, np.zeros(n), np.maximum(y.lo ** 2, y.hi ** 2))
        cv = mk("splat", y.kind, (mk("const", "f", (), c, const_value(c, self.prec), const_value(c, self.prec)),),
                None, np.full(n, const_value(c, self.prec)), np.full(n, const_value(c, self.prec)))
        return mk("add", y.kind, (a, cv), None, a.lo + cv.lo, a.hi + cv.hi)

    def long_enough(self, kind: str, depth: int, build=None) -> Node | None:
        """An expression of vector/quaternion kind whose length is bounded below by NORM_MIN."""
        for _ in range(3):
            node = build() if build else self.expr(kind, depth)
            if node.nmin >= NORM_MIN:
                return node
        if CLASS[kind] == "q":
            return None
        # shift one component away from zero: v + vec(0, c, 0)
        k = int(np.argmax(np.abs(node.lo + node.hi)))
        n = dim_of(kind)
        if node.lo[k] + node.hi[k] >= 0:
            c = math.ceil((NORM_MIN + 0.2 - node.lo[k]) * 2) / 2
        else:
            c = -math.ceil((NORM_MIN + 0.2 + node.hi[k]) * 2) / 2
        vals = [0.0] * n
        if abs(c) > 3.0:                      # a large shift would make the direction nearly constant
            return None
        vals[k] = c
        v = np.array([const_value(x, self.prec) for x in vals])
        cv = mk("vconst", kind, (), tuple(vals), v, v)
        out = mk("add", kind, (node, cv), None, node.lo + v, node.hi + v)
        return out if out.nmin >= NORM_MIN else None

    def _unit(self, kind: str, depth: int, fallback) -> Node:
        """An expression of ``kind`` known to be a unit rotation (three tries, then ``fallback``'s)."""
        for _ in range(3):
            x = self.expr(kind, depth)
            if x.unit:
                return x
        return fallback(kind, depth)

    def unit_quat(self, depth: int) -> Node:
        return self._unit("q", depth, self.p_quat_from_axis_angle)

    def unit_transform(self, depth: int) -> Node:
        return self._unit("t", depth, self.p_transform)

    def angle(self, depth: int) -> Node:
        for _ in range(3):
            a = self.expr("f", depth)
            if a.mag <= ANGLE_MAX:
                return a
        if a.mag <= LIMIT and has_var(a):
            c = math.floor(ANGLE_MAX / a.mag * 10) / 10 or 0.05
            cn = mk("const", "f", (), c, const_value(c, self.prec), const_value(c, self.prec))
            lo, hi = iv_mul(a.lo, a.hi, cn.lo, cn.hi)
            return mk("mul", "f", (a, cn), None, lo, hi)
        return self.const(-ANGLE_MAX / 2, ANGLE_MAX / 2)

    def two(self, kind: str, depth: int) -> tuple[Node, Node]:
        a, b = self.expr(kind, depth - 1), self.expr(kind, depth - 1)
        if not has_var(a) and not has_var(b):
            b = self.var_leaf(kind)
        for _ in range(3):
            if not self.same(a, b):
                break
            b = self.var_leaf(kind) if self.r() < 0.5 else self.make_leaf(kind)
        return a, b

    def same(self, a: Node, b: Node) -> bool:
        return emit(a, self.prec) == emit(b, self.prec)

    # ---- producers: generic
    def p_add(self, kind, depth):
        a, b = self.two(kind, depth)
        return mk("add", kind, (a, b), None, a.lo + b.lo, a.hi + b.hi)

    def p_sub(self, kind, depth):
        a, b = self.two(kind, depth)
        if self.same(a, b):
            return None
        return mk("sub", kind, (a, b), None, a.lo - b.hi, a.hi - b.lo)

    def p_neg(self, kind, depth):
        a = self.expr(kind, depth - 1)
        if a.op in ("neg", "const", "vconst"):
            return None
        return mk("neg", kind, (a,), None, -a.hi, -a.lo, a.nmin, a.nmax)

    def p_scale(self, kind, depth, base: Node | None = None):
        s = self.expr("f", depth - 1) if base is None or self.r() < 0.5 else self.leaf("f")
        v = base if base is not None else self.expr(kind, depth - 1)
        if not has_var(s) and not has_var(v):
            s = self.var_leaf("f")
        lo, hi = iv_mul(np.asarray(s.lo), np.asarray(s.hi), v.lo, v.hi)
        return mk("scale", kind, (s, v), "sv" if self.r() < 0.6 else "vs", lo, hi, s.nmin * v.nmin, s.mag * v.nmax)

    def p_sdiv(self, kind, depth):
        v = self.expr(kind, depth - 1)
        s = self.scalar_nonzero(self.expr("f", depth - 1))
        if not has_var(s) and not has_var(v):
            return None
        inv_lo, inv_hi = sorted((1.0 / float(s.lo), 1.0 / float(s.hi)))
        lo, hi = iv_mul(v.lo, v.hi, inv_lo, inv_hi)
        return mk("sdiv", kind, (v, s), None, lo, hi, v.nmin / s.mag, v.nmax / max(s.nmin, 1e-9))

    def p_where(self, kind, depth):
        x, y = self.two("f", 1)
        if not has_var(x) and not has_var(y) or self.same(x, y):
            return None
        a, b = self.two(kind, depth)
        if self.same(a, b):
            return None
        cmp = self.choice(("<", "<=", ">", ">="))
        return mk("where", kind, (x, y, a, b), cmp, np.minimum(a.lo, b.lo), np.maximum(a.hi, b.hi),
                  min(a.nmin, b.nmin), max(a.nmax, b.nmax))

    def p_cw_mul(self, kind, depth):
        a, b = self.two(kind, depth)
        lo, hi = iv_mul(a.lo, a.hi, b.lo, b.hi)
        return mk("cw_mul", kind, (a, b), None, lo, hi)

    # ---- scalars
    def p_mul(self, kind, depth):
        a, b = self.two("f", depth)
        lo, hi = iv_mul(a.lo, a.hi, b.lo, b.hi)
        return mk("mul", "f", (a, b), None, lo, hi)

    def p_div(self, kind, depth):
        a, b = self.two("f", depth)
        if self.same(a, b):
            return None
        b = self.scalar_nonzero(b)
        if b.op == "const" and abs(b.info) <= 1:
            return None
        inv_lo, inv_hi = sorted((1.0 / float(b.lo), 1.0 / float(b.hi)))
        lo, hi = iv_mul(a.lo, a.hi, inv_lo, inv_hi)
        return mk("div", "f", (a, b), None, lo, hi)

    def p_sabs(self, kind, depth):
        a = self.expr("f", depth - 1)
        if a.lo >= 0 or a.hi <= 0 or a.op == "const":
            return None
        return mk("sabs", "f", (a,), None, 0.0, a.mag)

    def _minmax(self, op, kind, depth):
        a, b = self.two(kind, depth)
        if self.same(a, b) or np.all((a.hi <= b.lo) | (b.hi <= a.lo)):
            return None                                     # one side always wins
        f = np.minimum if op in ("smin", "vmin2") else np.maximum
        return mk(op, kind, (a, b), None, f(a.lo, b.lo), f(a.hi, b.hi))

    def p_smin(self, kind, depth):
        return self._minmax("smin", "f", depth)

    def p_smax(self, kind, depth):
        return self._minmax("smax", "f", depth)

    def p_sqrt(self, kind, depth):
        a = self.expr("f", depth - 1)
        if a.lo < 0.05:
            c = float(self.choice([0.25, 0.5, 1.0]))
            cn = mk("const", "f", (), c, const_value(c, self.prec), const_value(c, self.prec))
            sq = mk("mul", "f", (a, a), None, float(_dist0(a.lo, a.hi)) ** 2, a.mag ** 2)
            a = mk("add", "f", (sq, cn), None, sq.lo + c, sq.hi + c)
        return mk("sqrt", "f", (a,), None, math.sqrt(float(a.lo)), math.sqrt(float(a.hi)))

    def _trig(self, op, depth):
        a = self.angle(depth - 1)
        if not has_var(a):
            return None
        return mk(op, "f", (a,), None, -1.0, 1.0)

    def p_sin(self, kind, depth):
        return self._trig("sin", depth)

    def p_cos(self, kind, depth):
        return self._trig("cos", depth)

    def _inner(self, op, cands, depth):
        """``op(a, b)``: the sum of the component products of two values of a kind from ``cands``."""
        k = self.pick_kind(cands)
        if k is None:
            return None
        a, b = self.two(k, depth)
        lo, hi = iv_mul(a.lo, a.hi, b.lo, b.hi)
        return mk(op, "f", (a, b), None, lo.sum(), hi.sum())

    def p_dot(self, kind, depth):
        return self._inner("dot", VEC, depth)

    def p_qdot(self, kind, depth):
        if "q" not in self.kinds:
            return None
        a, b = self.two("q", depth)
        m = a.nmax * b.nmax
        return mk("dot", "f", (a, b), None, -m, m)

    def p_length(self, kind, depth):
        vk = self.pick_kind(VEC + ("q",))
        if vk is None:
            return None
        a = self.expr(vk, depth - 1)
        if a.op in ("normalize", "qnormalize") or a.unit or not has_var(a):
            return None
        return mk("length", "f", (a,), None, a.nmin, a.nmax)

    def p_length_sq(self, kind, depth):
        vk = self.pick_kind(VEC)
        if vk is None:
            return None
        a = self.expr(vk, depth - 1)
        if a.op == "normalize" or a.unit or not has_var(a):
            return None
        return mk("length_sq", "f", (a,), None, a.nmin ** 2, a.nmax ** 2)

    def p_comp(self, kind, depth):
        vk = self.pick_kind(VEC + ("q",))
        v = self.pick_var(vk) if vk else None
        return self.comp_of(v, int(self.rng.integers(dim_of(vk)))) if v is not None else None

    def _operand(self, cands, depth) -> tuple[str | None, Node | None]:
        """A kind from ``cands`` and an expression of it that reads a variable (``None`` where there is none)."""
        kind = self.pick_kind(cands)
        if kind is None:
            return None, None
        a = self.expr(kind, depth - 1)
        return kind, (a if has_var(a) else None)

    def _reduce(self, op, depth):
        _, a = self._operand(VEC, depth)
        if a is None:
            return None
        f = np.min if op == "vmin" else np.max
        return mk(op, "f", (a,), None, f(a.lo), f(a.hi))

    def p_vmin(self, kind, depth):
        return self._reduce("vmin", depth)

    def p_vmax(self, kind, depth):
        return self._reduce("vmax", depth)

    def p_determinant(self, kind, depth):
        mkind, a = self._operand(MAT, depth)
        if a is None:
            return None
        n = dim_of(mkind)
        mag = np.maximum(np.abs(a.lo), np.abs(a.hi))
        h = float(np.prod(np.sqrt((mag * mag).sum(1))))
        h = min(h, a.nmax ** n)
        return mk("determinant", "f", (a,), None, -h, h)

    def p_trace(self, kind, depth):
        _, a = self._operand(MAT, depth)
        if a is None:
            return None
        return mk("trace", "f", (a,), None, np.trace(a.lo), np.trace(a.hi))

    def p_entry(self, kind, depth):
        mkind = self.pick_kind(MAT)
        v = self.pick_var(mkind) if mkind else None
        return self.derive_scalar(v) if v is not None else None

    def p_ddot(self, kind, depth):
        return self._inner("ddot", MAT, depth)

    # ---- vectors
    def p_cw_div(self, kind, depth):
        a, b = self.two(kind, depth)
        if self.same(a, b):
            return None
        b = self.vec_nonzero(b)
        inv = np.stack([1.0 / b.lo, 1.0 / b.hi])
        lo, hi = iv_mul(a.lo, a.hi, inv.min(0), inv.max(0))
        return mk("cw_div", kind, (a, b), None, lo, hi)

    def p_cross(self, kind, depth):
        if kind != "v3":
            return None
        a, b = self.two("v3", depth)
        if self.same(a, b):
            return None
        lo, hi = np.zeros(3), np.zeros(3)
        for k in range(3):
            i, j = (k + 1) % 3, (k + 2) % 3
            l1, h1 = iv_mul(a.lo[i], a.hi[i], b.lo[j], b.hi[j])
            l2, h2 = iv_mul(a.lo[j], a.hi[j], b.lo[i], b.hi[i])
            lo[k], hi[k] = l1 - h2, h1 - l2
        return mk("cross", "v3", (a, b), None, lo, hi, 0.0, a.nmax * b.nmax)

    def p_normalize(self, kind, depth):
        a = self.long_enough(kind, depth - 1)
        if a is None or a.unit or a.op == "normalize" or not has_var(a):
            return None
        lo = np.where(a.lo >= 0, a.lo / a.nmax, np.maximum(-1.0, a.lo / a.nmin))
        hi = np.where(a.hi <= 0, a.hi / a.nmax, np.minimum(1.0, a.hi / a.nmin))
        return mk("normalize", kind, (a,), None, lo, hi, 1.0, 1.0)

    def p_vabs(self, kind, depth):
        a = self.expr(kind, depth - 1)
        if np.all(a.lo >= 0) or not has_var(a):
            return None
        return mk("vabs", kind, (a,), None, _dist0(a.lo, a.hi), np.maximum(np.abs(a.lo), np.abs(a.hi)),
                  a.nmin, a.nmax)

    def p_vmin2(self, kind, depth):
        return self._minmax("vmin2", kind, depth)

    def p_vmax2(self, kind, depth):
        return self._minmax("vmax2", kind, depth)

    def p_construct(self, kind, depth):
        parts = [self.expr("f", depth - 1) if self.r() < 0.5 else self.leaf("f") for _ in range(dim_of(kind))]
        if not any(has_var(p) for p in parts):
            parts[int(self.rng.integers(len(parts)))] = self.var_leaf("f")
        return self.construct(kind, parts)

    def p_splat(self, kind, depth):
        s = self.expr("f", depth - 1)
        if not has_var(s):
            return None
        n = dim_of(kind)
        return mk("splat", kind, (s,), None, np.full(n, float(s.lo)), np.full(n, float(s.hi)))

    def p_matvec(self, kind, depth):
        n = dim_of(kind)
        if MAT_OF[n] not in self.kinds:
            return None
        m, v = self.expr(MAT_OF[n], depth - 1), self.expr(kind, depth - 1)
        if not has_var(m) and not has_var(v):
            return None
        lo, hi = iv_mul(m.lo, m.hi, v.lo[None, :], v.hi[None, :])
        return mk("matvec", kind, (m, v), "@" if self.r() < 0.6 else "mul", lo.sum(1), hi.sum(1),
                  m.nmin * v.nmin, m.nmax * v.nmax)

    def p_vecmat(self, kind, depth):
        n = dim_of(kind)
        if MAT_OF[n] not in self.kinds:
            return None
        v, m = self.expr(kind, depth - 1), self.expr(MAT_OF[n], depth - 1)
        if not has_var(m) and not has_var(v):
            return None
        lo, hi = iv_mul(v.lo[:, None], v.hi[:, None], m.lo, m.hi)
        return mk("vecmat", kind, (v, m), "@" if self.r() < 0.6 else "mul", lo.sum(0), hi.sum(0),
                  m.nmin * v.nmin, m.nmax * v.nmax)

    def p_row(self, kind, depth):
        mkind = MAT_OF[dim_of(kind)]
        m = self.pick_var(mkind) if mkind in self.kinds else None
        if m is None:
            return None
        k = int(self.rng.integers(dim_of(kind)))
        return mk("row", kind, (m,), k, m.lo[k], m.hi[k])

    def p_get_diag(self, kind, depth):
        mkind = MAT_OF[dim_of(kind)]
        if mkind not in self.kinds:
            return None
        m = self.expr(mkind, depth - 1)
        if m.op in ("diag", "identity") or not has_var(m):
            return None
        return mk("get_diag", kind, (m,), None, np.diag(m.lo), np.diag(m.hi))

    def _rotate(self, op, kind, depth, by: str = "q"):
        """``op(r, v)`` of a unit quaternion (``by == "q"``) or transform ``r``, a rotation of the vec3 ``v``."""
        if kind != "v3" or by not in self.kinds:
            return None
        r = self.unit_quat(depth - 1) if by == "q" else self.unit_transform(depth - 1)
        v = self.expr("v3", depth - 1)
        if not has_var(r) and not has_var(v):
            return None
        s = r.nmax ** 2
        return mk(op, "v3", (r, v), None, -np.full(3, v.nmax * s), np.full(3, v.nmax * s),
                  v.nmin * r.nmin ** 2, v.nmax * s)

    def p_quat_rotate(self, kind, depth):
        return self._rotate("quat_rotate", kind, depth)

    def p_quat_rotate_inv(self, kind, depth):
        return self._rotate("quat_rotate_inv", kind, depth)

    def p_transform_point(self, kind, depth):
        if kind != "v3" or "t" not in self.kinds:
            return None
        t, v = self.unit_transform(depth - 1), self.expr("v3", depth - 1)
        r = v.nmax * t.nmax ** 2
        return mk("transform_point", "v3", (t, v), None, t.lo[:3] - r, t.hi[:3] + r)

    def p_transform_vector(self, kind, depth):
        return self._rotate("transform_vector", kind, depth, by="t")

    def p_tget_p(self, kind, depth):
        if kind != "v3":
            return None
        t = self.pick_var("t")
        return self.tget(t, "p") if t is not None else None

    # ---- matrices
    def p_matmul(self, kind, depth):
        a, b = self.two(kind, depth)
        lo, hi = iv_matmul(a.lo, a.hi, b.lo, b.hi)
        return mk("matmul", kind, (a, b), "@" if self.r() < 0.6 else "mul", lo, hi, a.nmin * b.nmin, a.nmax * b.nmax)

    def p_transpose(self, kind, depth):
        a = self.expr(kind, depth - 1)
        if a.op in ("transpose", "diag", "identity") or not has_var(a):
            return None
        return mk("transpose", kind, (a,), None, a.lo.T, a.hi.T, a.nmin, a.nmax)

    def p_inverse(self, kind, depth):
        a = None
        for _ in range(3):
            cand = self.expr(kind, depth - 1)
            if cand.nmin >= NORM_MIN and has_var(cand) and cand.op != "inverse":
                a = cand
                break
        if a is None:                                   # shift the diagonal until the matrix is dominant
            if not has_var(cand) or cand.op == "inverse":
                return None
            n = dim_of(kind)
            mag = np.maximum(np.abs(cand.lo), np.abs(cand.hi))
            off = (mag * (1 - np.eye(n))).sum(1)
            need = off + np.maximum(0.0, -np.diag(cand.lo)) + 1.0
            shift = np.ceil(need * 2) / 2
            if self.r() < 0.5:
                c = float(shift.max())
                cn = mk("const", "f", (), c, const_value(c, self.prec), const_value(c, self.prec))
                ident = mk("identity", kind, (), None, np.eye(n), np.eye(n), 1.0, 1.0)
                d = mk("scale", kind, (cn, ident), "sv" if self.r() < 0.5 else "vs", np.eye(n) * c, np.eye(n) * c)
            else:
                vals = tuple(float(x) for x in shift)
                dv = np.array([const_value(x, self.prec) for x in vals])
                d = mk("diag", kind, (mk("vconst", VEC_OF[n], (), vals, dv, dv),), None, np.diag(dv), np.diag(dv))
            a = mk("add", kind, (cand, d), None, cand.lo + d.lo, cand.hi + d.hi)
            if a.nmin < NORM_MIN:
                return None
        m = 1.0 / a.nmin
        return mk("inverse", kind, (a,), None, -np.full(a.lo.shape, m), np.full(a.lo.shape, m), 1.0 / a.nmax, m)

    def p_outer(self, kind, depth):
        vk = VEC_OF[dim_of(kind)]
        a, b = self.expr(vk, depth - 1), self.expr(vk, depth - 1)
        if not has_var(a) and not has_var(b):
            b = self.var_leaf(vk)
        lo, hi = iv_mul(a.lo[:, None], a.hi[:, None], b.lo[None, :], b.hi[None, :])
        return mk("outer", kind, (a, b), None, lo, hi, 0.0, a.nmax * b.nmax)

    def p_diag(self, kind, depth):
        n = dim_of(kind)
        v = self.expr(VEC_OF[n], depth - 1)
        if not has_var(v):
            v = self.var_leaf(VEC_OF[n])
        return mk("diag", kind, (v,), None, np.diag(v.lo), np.diag(v.hi), float(np.min(_dist0(v.lo, v.hi))),
                  float(np.max(np.maximum(np.abs(v.lo), np.abs(v.hi)))))

    def _from_vecs(self, op, kind, depth):
        n = dim_of(kind)
        vs = [self.expr(VEC_OF[n], depth - 1) if self.r() < 0.4 else self.leaf(VEC_OF[n]) for _ in range(n)]
        if not any(has_var(v) for v in vs):
            vs[0] = self.var_leaf(VEC_OF[n])
        lo = np.stack([v.lo for v in vs])
        hi = np.stack([v.hi for v in vs])
        if op == "matrix_from_cols":
            lo, hi = lo.T, hi.T
        return mk(op, kind, tuple(vs), None, lo, hi)

    def p_matrix_from_rows(self, kind, depth):
        return self._from_vecs("matrix_from_rows", kind, depth)

    def p_matrix_from_cols(self, kind, depth):
        return self._from_vecs("matrix_from_cols", kind, depth)

    def p_quat_to_matrix(self, kind, depth):
        if kind != "m33" or "q" not in self.kinds:
            return None
        q = self.unit_quat(depth - 1)
        if not has_var(q):
            return None
        return mk("quat_to_matrix", "m33", (q,), None, -np.ones((3, 3)), np.ones((3, 3)), q.nmin ** 2, q.nmax ** 2)

    def p_skew(self, kind, depth):
        if kind != "m33":
            return None
        v = self.expr("v3", depth - 1)
        if not has_var(v):
            return None
        m = np.maximum(np.abs(v.lo), np.abs(v.hi))
        x, y, z = m
        mag = np.array([[0, z, y], [z, 0, x], [y, x, 0]])
        return mk("skew", "m33", (v,), None, -mag, mag, 0.0, v.nmax)

    # ---- quaternions
    def p_qmul(self, kind, depth):
        a, b = self.two("q", depth)
        m = a.nmax * b.nmax
        return mk("qmul", "q", (a, b), "*" if self.r() < 0.6 else "mul", -np.full(4, m), np.full(4, m),
                  a.nmin * b.nmin, m)

    def p_quat_inverse(self, kind, depth):
        a = self.expr("q", depth - 1)
        if a.op == "quat_inverse" or not has_var(a):
            return None
        s = np.array([-1.0, -1.0, -1.0, 1.0])
        lo, hi = np.minimum(a.lo * s, a.hi * s), np.maximum(a.lo * s, a.hi * s)
        return mk("quat_inverse", "q", (a,), None, lo, hi, a.nmin, a.nmax)

    def p_qnormalize(self, kind, depth):
        a = None
        for _ in range(3):
            cand = self.expr("q", depth - 1)
            if cand.nmin >= NORM_MIN and cand.op != "qnormalize" and has_var(cand):
                a = cand
                break
        if a is None:
            return None
        return mk("qnormalize", "q", (a,), None, -np.ones(4), np.ones(4), 1.0, 1.0)

    def p_quat_from_axis_angle(self, kind, depth):
        axis = None
        for _ in range(2):
            cand = self.expr("v3", depth - 1) if depth > 1 else self.leaf("v3")
            if cand.unit:
                axis = cand
                break
        if axis is None:
            if self.r() < 0.6:
                axis = self.p_normalize("v3", depth)
            if axis is None:
                axis = self.vconst("v3", unit=True)
        ang = self.angle(depth - 1)
        if not has_var(axis) and not has_var(ang):
            ang = self.angle(0)
        h = ang.mag / 2
        wlo = math.cos(h) if h < math.pi else -1.0
        return mk("quat_from_axis_angle", "q", (axis, ang), None, [-1, -1, -1, wlo], [1, 1, 1, 1],
                  axis.nmin, axis.nmax)

    def p_quat_rpy(self, kind, depth):
        angs = [self.angle(depth - 1) for _ in range(3)]
        if not any(has_var(a) for a in angs):
            return None
        return mk("quat_rpy", "q", tuple(angs), None, -np.ones(4), np.ones(4), 1.0, 1.0)

    def p_qctor(self, kind, depth):
        if "v3" in self.kinds and self.r() < 0.4:
            v, w = self.expr("v3", depth - 1), self.expr("f", depth - 1)
            if not has_var(v) and not has_var(w):
                return None
            return mk("qctor_vw", "q", (v, w), None, np.append(v.lo, w.lo), np.append(v.hi, w.hi))
        parts = [self.leaf("f") if self.r() < 0.6 else self.expr("f", depth - 1) for _ in range(4)]
        if not any(has_var(p) for p in parts):
            return None
        node = self.construct("q", parts)
        return node

    def p_tget_q(self, kind, depth):
        t = self.pick_var("t")
        return self.tget(t, "q") if t is not None else None

    # ---- transforms
    def p_transform(self, kind, depth):
        p, q = self.expr("v3", depth - 1), self.unit_quat(depth - 1)
        if not has_var(p) and not has_var(q):
            p = self.var_leaf("v3")
        return mk("transform", "t", (p, q), None, np.append(p.lo, q.lo), np.append(p.hi, q.hi), q.nmin, q.nmax)

    def p_tmul(self, kind, depth):
        a, b = self.unit_transform(depth - 1), self.unit_transform(depth - 1)
        if not has_var(a) and not has_var(b):
            return None
        r = float(np.sqrt(np.sum(np.maximum(np.abs(b.lo[:3]), np.abs(b.hi[:3])) ** 2))) * a.nmax ** 2
        m = a.nmax * b.nmax
        return mk("tmul", "t", (a, b), "*" if self.r() < 0.5 else "fn", np.append(a.lo[:3] - r, -np.full(4, m)),
                  np.append(a.hi[:3] + r, np.full(4, m)), a.nmin * b.nmin, m)

    def p_transform_inverse(self, kind, depth):
        a = self.unit_transform(depth - 1)
        if a.op == "transform_inverse" or not has_var(a):
            return None
        r = float(np.sqrt(np.sum(np.maximum(np.abs(a.lo[:3]), np.abs(a.hi[:3])) ** 2))) * a.nmax ** 2
        s = np.array([-1.0, -1.0, -1.0, 1.0])
        qlo, qhi = np.minimum(a.lo[3:] * s, a.hi[3:] * s), np.maximum(a.lo[3:] * s, a.hi[3:] * s)
        return mk("transform_inverse", "t", (a,), None, np.append(-np.full(3, r), qlo), np.append(np.full(3, r), qhi),
                  a.nmin, a.nmax)

    # ---- conversions (folding an unused input into an output of another kind)
    def convert(self, x: Node, kind: str) -> Node:
        if x.kind == kind:
            return x
        cx, ck = CLASS[x.kind], CLASS[kind]
        n = dim_of(kind)
        if cx == "f":
            if ck in ("v", "m", "q"):
                base = self.leaf(kind)
                lo, hi = iv_mul(np.asarray(x.lo), np.asarray(x.hi), base.lo, base.hi)
                return mk("scale", kind, (x, base), "sv", lo, hi)
            p = self.convert(x, "v3")
            q = self.unit_quat(1)
            return mk("transform", "t", (p, q), None, np.append(p.lo, q.lo), np.append(p.hi, q.hi), q.nmin, q.nmax)
        if ck == "f":
            if cx in ("v", "q"):
                r = self.r()
                if r < 0.4:
                    return self.comp_of(x, int(self.rng.integers(dim_of(x.kind))))
                if r < 0.7:
                    b = self.leaf(x.kind)
                    lo, hi = iv_mul(x.lo, x.hi, b.lo, b.hi)
                    return mk("dot", "f", (x, b), None, lo.sum(), hi.sum())
                return mk("length_sq", "f", (x,), None, x.nmin ** 2, x.nmax ** 2)
            if cx == "m":
                if self.r() < 0.5:
                    return mk("trace", "f", (x,), None, np.trace(x.lo), np.trace(x.hi))
                return self.derive_scalar(x)
            return self.convert(self.tget(x, "p"), "f")
        if cx == "v" and ck == "v":
            m = dim_of(x.kind)
            parts = [self.comp_of(x, k) for k in range(min(n, m))]
            while len(parts) < n:
                parts.append(self.leaf("f"))
            return self.construct(kind, parts)
        if cx == "v" and ck == "m" and dim_of(x.kind) == n:
            if self.r() < 0.5:
                return mk("diag", kind, (x,), None, np.diag(x.lo), np.diag(x.hi))
            b = self.leaf(x.kind)
            lo, hi = iv_mul(x.lo[:, None], x.hi[:, None], b.lo[None, :], b.hi[None, :])
            return mk("outer", kind, (x, b), None, lo, hi)
        if cx == "m" and ck == "v" and dim_of(x.kind) == n:
            v = self.leaf(kind)
            lo, hi = iv_mul(x.lo, x.hi, v.lo[None, :], v.hi[None, :])
            return mk("matvec", kind, (x, v), "@", lo.sum(1), hi.sum(1))
        if cx == "q" and kind == "v3" and x.unit:
            v = self.leaf("v3")
            return mk("quat_rotate", "v3", (x, v), None, -np.full(3, v.nmax), np.full(3, v.nmax), v.nmin, v.nmax)
        if cx == "q" and kind == "m33" and x.unit:
            return mk("quat_to_matrix", "m33", (x,), None, -np.ones((3, 3)), np.ones((3, 3)), 1.0, 1.0)
        if cx == "q" and kind == "t" and x.unit:
            p = self.leaf("v3")
            return mk("transform", "t", (p, x), None, np.append(p.lo, x.lo), np.append(p.hi, x.hi), x.nmin, x.nmax)
        if cx == "t" and kind == "v3":
            v = self.leaf("v3")
            r = v.nmax
            return mk("transform_point", "v3", (x, v), None, x.lo[:3] - r, x.hi[:3] + r)
        if cx == "t" and kind == "q":
            return self.tget(x, "q")
        if cx == "v" and kind == "q" and x.kind == "v3":
            w = self.leaf("f")
            return mk("qctor_vw", "q", (x, w), None, np.append(x.lo, w.lo), np.append(x.hi, w.hi))
        return self.convert(self.convert(x, "f"), kind)

    def combine(self, out: Node, x: Node) -> Node:
        """``out`` combined with ``x`` (same kind) so that the result depends on both."""
        k = out.kind
        cls = CLASS[k]
        if cls == "q":
            if out.unit and x.unit:
                return mk("qmul", "q", (out, x), "*", -np.ones(4), np.ones(4), 1.0, 1.0)
            return mk("add", "q", (out, x), None, out.lo + x.lo, out.hi + x.hi)
        if cls == "t":
            r = float(np.sqrt(np.sum(np.maximum(np.abs(x.lo[:3]), np.abs(x.hi[:3])) ** 2)))
            return mk("tmul", "t", (out, x), "fn", np.append(out.lo[:3] - r, -np.ones(4)),
                      np.append(out.hi[:3] + r, np.ones(4)), out.nmin * x.nmin, out.nmax * x.nmax)
        if self.r() < 0.5:
            return mk("sub", k, (out, x), None, out.lo - x.hi, out.hi - x.lo)
        return mk("add", k, (out, x), None, out.lo + x.lo, out.hi + x.hi)


# --------------------------------------------------------------------------------------------------------
# Inputs and their samplers


@dataclass
class Input:
    """One kernel input: an array read at ``index`` (loaded into ``local`` or used inline) or a scalar parameter.

    ``sampler``: ("uniform", lo, hi) | ("shell", rmin, rmax) (random direction, length in [rmin, rmax]) |
    ("unitquat",) | ("transform", lo, hi) (uniform translation, unit rotation) |
    ("dominant", dlo, dhi, off, signs) (diagonal entries sign*U(dlo, dhi), off-diagonal U(-off, off)).
    """

    name: str
    kind: str
    sampler: tuple
    role: str = "in"
    index: str = "i"
    local: str | None = None

    @property
    def leaf(self) -> str:
        if self.role == "scalar":
            return self.name
        return self.local or f"{self.name}[{self.index}]"


def sampler_bounds(kind: str, s: tuple):
    shape = SHAPE[kind]
    tag = s[0]
    if tag == "uniform":
        return mk("var", kind, (), None, np.full(shape, s[1]), np.full(shape, s[2]))
    if tag == "shell":
        return mk("var", kind, (), None, np.full(shape, -s[2]), np.full(shape, s[2]), s[1], s[2])
    if tag == "unitquat":
        return mk("var", kind, (), None, -np.ones(4), np.ones(4), 1.0, 1.0)
    if tag == "transform":
        return mk("var", kind, (), None, np.r_[np.full(3, s[1]), -np.ones(4)], np.r_[np.full(3, s[2]), np.ones(4)],
                  1.0, 1.0)
    if tag == "dominant":
        _, dlo, dhi, off, signs = s
        lo = np.full(shape, -off)
        hi = np.full(shape, off)
        for k, sg in enumerate(signs):
            lo[k, k], hi[k, k] = (dlo, dhi) if sg > 0 else (-dhi, -dlo)
        return mk("var", kind, (), None, lo, hi)
    raise ValueError(f"unknown sampler {s!r}")


def sampler_range(s: tuple) -> tuple[float, float]:
    tag = s[0]
    if tag == "uniform":
        return float(s[1]), float(s[2])
    if tag == "shell":
        return -float(s[2]), float(s[2])
    if tag == "unitquat":
        return -1.0, 1.0
    if tag == "transform":
        return min(float(s[1]), -1.0), max(float(s[2]), 1.0)
    if tag == "dominant":
        return -float(s[2]), float(s[2])
    raise ValueError(s)


def draw(s: tuple, shape: tuple, kshape: tuple, rng: np.random.Generator) -> np.ndarray:
    tag = s[0]
    full = tuple(shape) + tuple(kshape)
    if tag == "uniform":
        return rng.uniform(s[1], s[2], full)
    if tag == "shell":
        d = rng.normal(size=full)
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        return d * rng.uniform(s[1], s[2], tuple(shape) + (1,))
    if tag == "unitquat":
        q = rng.normal(size=full)
        return q / np.linalg.norm(q, axis=-1, keepdims=True)
    if tag == "transform":
        p = rng.uniform(s[1], s[2], tuple(shape) + (3,))
        q = rng.normal(size=tuple(shape) + (4,))
        return np.concatenate([p, q / np.linalg.norm(q, axis=-1, keepdims=True)], axis=-1)
    if tag == "dominant":
        _, dlo, dhi, off, signs = s
        n = kshape[0]
        m = rng.uniform(-off, off, full)
        d = rng.uniform(dlo, dhi, tuple(shape) + (n,)) * np.asarray(signs, dtype=np.float64)
        idx = np.arange(n)
        m[..., idx, idx] = d
        return m
    raise ValueError(s)


def sample_inputs(spec: KernelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    meta = spec.meta
    out = {}
    for arg in spec.args:
        dt = lookup_dtype(arg.dtype)
        if arg.role == "out":
            out[arg.name] = np.zeros(tuple(arg.shape) + dt.shape, dtype=dt.numpy)
            continue
        out[arg.name] = draw(meta["sampling"][arg.name], arg.shape, dt.shape, rng).astype(dt.numpy)
    return out


# --------------------------------------------------------------------------------------------------------
# Programs: statements, outputs, liveness, helper functions, source


NAMES = {
    "f": ("s", "a", "k", "h", "w", "val", "ln", "tmp", "c", "coef"),
    "v": ("v", "d", "n", "dv", "rel", "off", "p", "r", "e", "vel", "ax"),
    "m": ("m", "A", "B", "R", "M", "J", "K", "S", "F"),
    "q": ("q", "rot", "qa", "qb", "ori", "dq"),
    "t": ("tf", "X", "pose", "frame", "T"),
}
PARAM_NAMES = ("a", "b", "c", "x", "y", "z", "u", "w")


@dataclass
class Statement:
    name: str
    node: Node
    aug: str | None = None        # "+" / "-": emitted as ``name += rest`` (node is add/sub(var name, rest))


def pick_weighted(rng, weights: dict):
    keys = [k for k, w in weights.items() if w > 0]
    cum = list(itertools.accumulate(weights[k] for k in keys))
    return keys[min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(keys) - 1)]


TRIVIAL = frozenset(("var", "comp", "entry", "row", "tget_p", "tget_q", "const", "vconst", "identity",
                     "quat_identity"))


def random_dims(rng: np.random.Generator) -> tuple[int, ...]:
    """A launch of 64 threads, one time in five as a 2D grid."""
    return (64,) if rng.random() < 0.8 else pick(rng, ((8, 8), (4, 16), (16, 4)))


def input_index(rng: np.random.Generator, two_d: bool, k: int) -> str:
    """Where input ``k`` is read: at the thread's index; in a 2D launch inputs after the first sometimes along one
    axis only (broadcast over the other)."""
    index = "i, j" if two_d else "i"
    if two_d and k > 0 and rng.random() < 0.3:
        index = pick(rng, ("i", "j"))
    return index


def load_local(name: str, k: int, prefix: str, taken: set) -> str:
    """The local that input ``name`` (the ``k``-th) is loaded into, not among the names ``taken`` (updated)."""
    local = f"{prefix}{name}" if prefix else f"{name}_v"
    if local in taken:
        local = f"{name}_{k}"
    taken.add(local)
    return local


def random_outputs(rng: np.random.Generator, names, draw_kind) -> tuple[list[str], list[str]]:
    """One or two outputs: names from ``names`` and kinds from ``draw_kind()``."""
    n_out = int(rng.choice([1, 1, 2]))
    out_names = pick(rng, names, n_out)
    return out_names, [draw_kind() for _ in range(n_out)]


def build_program(rng: np.random.Generator, *, prec: str, inputs: list[Input], dims: tuple, weights: dict,
                  kinds: set, stmt_kinds: dict, out_kinds: list[str], out_names: list[str], n_stmt: int | None = None,
                  p_helper: float = 0.25, p_aug: float = 0.15, max_depth: int = 3, attempts: int = 6) -> Program:
    """A random program over ``inputs`` with ``n_stmt`` statements (1-5 at random by default); retried (same RNG
    stream) while the numeric check finds it degenerate."""
    if n_stmt is None:
        n_stmt = int(rng.integers(1, 6))
    for attempt in range(attempts):
        program, ok = _build_once(rng, prec=prec, inputs=[replace(x) for x in inputs], dims=dims, weights=weights,
                                  kinds=kinds, stmt_kinds=stmt_kinds, out_kinds=out_kinds, n_stmt=n_stmt,
                                  out_names=out_names, p_helper=p_helper, p_aug=p_aug, max_depth=max_depth)
        if ok:
            break
    return program


def _build_once(rng: np.random.Generator, *, prec: str, inputs: list[Input], dims: tuple, weights: dict,
                kinds: set, stmt_kinds: dict, out_kinds: list[str], n_stmt: int, out_names: list[str],
                p_helper: float, p_aug: float, max_depth: int) -> tuple[Program, bool]:
    gen = Gen(rng, prec, weights, kinds)
    taken = {x.name for x in inputs} | set(out_names) | {"i", "j", "wp"}
    loads = []
    init_vars = {}
    for x in inputs:
        b = sampler_bounds(x.kind, x.sampler)
        v = gen.bind(x.leaf, b)
        init_vars[x.leaf] = v
        if x.local:
            loads.append(x)
            taken.add(x.local)
    gen.protected = set(init_vars)

    def fresh(kind):
        base = gen.choice(NAMES[CLASS[kind]])
        k = 0
        while f"{base}{k}" in taken or (k == 0 and base in taken):
            k += 1
        name = base if (k == 0 and gen.r() < 0.5) else f"{base}{k}"
        while name in taken:
            k += 1
            name = f"{base}{k}"
        taken.add(name)
        return name

    statements: list[Statement] = []
    for _ in range(n_stmt):
        kind = pick_weighted(rng, {k: w for k, w in sorted(stmt_kinds.items()) if k in kinds})
        node = None
        for _ in range(4):
            node = gen.expr(kind, int(rng.integers(1, max_depth + 1)))
            if node.op != "var" and has_var(node):
                break
        if node.op == "var" or not has_var(node):
            continue
        locals_same = [s.name for s in statements if s.node.kind == kind and s.name not in gen.protected]
        if locals_same and CLASS[kind] in ("f", "v", "m") and gen.r() < p_aug:
            target = gen.choice(locals_same)
            tv = gen.scope[target]
            sign = "+" if gen.r() < 0.6 else "-"
            if sign == "+":
                aug = mk("add", kind, (tv, node), None, tv.lo + node.lo, tv.hi + node.hi)
            else:
                aug = mk("sub", kind, (tv, node), None, tv.lo - node.hi, tv.hi - node.lo)
            if gen.ok(aug):
                statements.append(Statement(target, aug, sign))
                gen.bind(target, aug)
                continue
        name = fresh(kind)
        statements.append(Statement(name, node))
        gen.bind(name, node)

    outputs = []
    for oname, okind in zip(out_names, out_kinds):
        node = None
        for _ in range(6):
            node = gen.expr(okind, int(rng.integers(2, max_depth + 1)))
            if node.op not in TRIVIAL and has_var(node):
                break
        if node.op in TRIVIAL or not has_var(node):
            node = gen.combine(node if has_var(node) else gen.var_leaf(okind), gen.make_leaf(okind))
        outputs.append([oname, node])

    # liveness: drop dead statements, fold unused inputs into outputs
    statements = _live(statements, outputs)
    gen.scope = dict(init_vars)
    for st in statements:
        gen.bind(st.name, st.node)
    used = _needed(statements, outputs)
    for x in inputs:
        if x.leaf in used or x.role == "scalar":
            continue
        slot = outputs[int(rng.integers(len(outputs)))]
        conv = gen.convert(init_vars[x.leaf], slot[1].kind)
        slot[1] = gen.combine(slot[1], conv)
    used = _needed(statements, outputs)
    statements = _live(statements, outputs)
    inputs = [x for x in inputs if x.role != "scalar" or x.leaf in used]
    for x in list(init_vars):
        if x not in {y.leaf for y in inputs}:
            gen.scope.pop(x, None)
    # numeric check: every input must move some output and no output may be constant; fold inputs
    # whose influence cancels (a component that is never read, x - x after simplification...) into an output
    ok = False
    for _ in range(3):
        dead, const, ties = _numeric_deps(rng, prec, inputs, statements, outputs)
        if ties:                               # exact ties at a kink or select: start over
            break
        if not dead and not const:
            ok = True
            break
        for oname in const:
            slot = next(o for o in outputs if o[0] == oname)
            x = inputs[int(rng.integers(len(inputs)))]
            slot[1] = gen.combine(slot[1], gen.convert(init_vars[x.leaf], slot[1].kind))
        for x in dead:
            slot = outputs[int(rng.integers(len(outputs)))]
            slot[1] = gen.combine(slot[1], gen.convert(init_vars[x.leaf], slot[1].kind))
        statements = _live(statements, outputs)
    loads = [x for x in loads if x in inputs]

    helpers = []
    if rng.random() < p_helper:
        helpers = _extract_helper(rng, prec, statements, outputs)

    # source
    two_d = len(dims) == 2
    idx_full = "i, j" if two_d else "i"
    args: list[Arg] = []
    sig = []
    for x in inputs:
        lo, hi = sampler_range(x.sampler)
        dt = dtype_name(x.kind, prec)
        if x.role == "scalar":
            args.append(Arg(x.name, dt, "scalar", (), lo, hi))
            sig.append(f"{x.name}: {type_src(x.kind, prec)}")
        else:
            shape = dims if x.index == idx_full else ((dims[0],) if x.index == "i" else (dims[1],))
            args.append(Arg(x.name, dt, "in", shape, lo, hi))
            arr = "wp.array2d" if len(shape) == 2 else "wp.array"
            sig.append(f"{x.name}: {arr}(dtype={type_src(x.kind, prec)})")
    for oname, node in outputs:
        args.append(Arg(oname, dtype_name(node.kind, prec), "out", dims))
        arr = "wp.array2d" if two_d else "wp.array"
        sig.append(f"{oname}: {arr}(dtype={type_src(node.kind, prec)})")
    body = [f"{x.local} = {x.name}[{x.index}]" for x in loads]
    for st in statements:
        if st.aug:
            body.append(f"{st.name} {st.aug}= {emit(st.node.args[1], prec)}")
        else:
            body.append(f"{st.name} = {emit(st.node, prec)}")
    for oname, node in outputs:
        body.append(f"{oname}[{idx_full}] = {emit(node, prec)}")
    source = kernel_text(", ".join(sig), body, helpers, f"{'i, j' if two_d else 'i'} = wp.tid()")

    ops = set()
    kinds_used = set()
    for st in statements:
        ops_of(st.node, ops)
        kinds_used.add(st.node.kind)
    for _, node in outputs:
        ops_of(node, ops)
        kinds_used.add(node.kind)
    meta = {
        "prec": prec, "dims": tuple(dims),
        "inputs": [(x.name, x.kind, x.role, x.index, x.leaf) for x in inputs],
        "sampling": {x.name: x.sampler for x in inputs},
        "statements": [(st.name, st.node) for st in statements],
        "outputs": [(o, n) for o, n in outputs],
    }
    features = {"dtype": prec, "ops": sorted(ops), "kinds": sorted(kinds_used | {x.kind for x in inputs}),
                "statements": len(statements), "outputs": len(outputs), "inputs": len(inputs),
                "helper": bool(helpers), "dims": len(dims), "aug_assign": any(st.aug for st in statements)}
    return Program(source, tuple(args), tuple(dims), meta, features, differentiable=True), ok


CHECK_BATCH = 6


def _numeric_deps(rng, prec, inputs: list[Input], statements: list[Statement], outputs):
    """(inputs that no output depends on, names of outputs that are constant) on a small random batch."""
    stmts = [(st.name, st.node) for st in statements]
    outs = [(o, n) for o, n in outputs]

    # block 0: base values; block k + 1: input k resampled (a scalar parameter: one value per block, as in
    # the harness's own dead-input check)
    B, n = CHECK_BATCH, len(inputs)
    values = {}
    for k, x in enumerate(inputs):
        base = draw(x.sampler, () if x.role == "scalar" else (B,), SHAPE[x.kind], rng)
        base = np.broadcast_to(base, (B,) + SHAPE[x.kind])
        blocks = [base] * (n + 1)
        other = draw(x.sampler, () if x.role == "scalar" else (B,), SHAPE[x.kind], rng)
        blocks[k + 1] = np.broadcast_to(other, (B,) + SHAPE[x.kind])
        values[x.name] = np.concatenate(blocks)
    decl = [(x.name, x.kind, "in", "i", x.leaf) for x in inputs]
    memo: dict = {}
    res = run(prec, (B * (n + 1),), decl, stmts, outs, values, memo)
    res = {o: v.reshape((n + 1, B, -1)) for o, v in res.items()}
    const = [o for o, v in res.items() if np.ptp(v[0], axis=0).max() < 1e-9]
    for o, node in outs:                       # an output equal to an input counts as constant too
        for x in inputs:
            if x.kind == node.kind and np.allclose(res[o][0], values[x.name][:B].reshape(B, -1), rtol=1e-9,
                                                   atol=1e-12):
                const.append(o)
    dead = [x for k, x in enumerate(inputs)
            if all(np.allclose(v[k + 1], v[0], rtol=1e-9, atol=1e-12, equal_nan=True) for v in res.values())]
    ties = any(_suspicious(node, memo) for _, node in stmts + outs)
    return dead, const, ties


TIE_RTOL = 1e-5           # closer than this counts as a tie (structural near-equalities such as |w|^2 vs |w|)


CONSTISH = frozenset(("const", "vconst", "identity", "quat_identity"))


def _suspicious(node: Node, memo: dict) -> bool:
    """Whether ``node`` holds a kink or select sitting on its boundary for some sample, or a subexpression
    that is constant although it reads variables.

    Boundaries: ``min(a, b)`` with ``a == b`` (e.g. ``max(|w|^2, |w|)`` for unit ``w``), ``abs(0)``,
    ``where(x < x', ...)`` with ``x == x'``, ``min(v)`` of equal components: there the derivative is one-sided
    and finite differences disagree with the adjoint; random inputs land this close to a boundary by chance
    with probability ~1e-5 per element. Constant subexpressions (``cross(s * v, v)``, ``q * quat_inverse(q)``,
    ``length(w)`` of a unit input) are dead weight and often make an output a copy of an input.
    """
    op = node.op
    val = memo[id(node)]
    if op not in CONSTISH and val.ndim > len(SHAPE[node.kind]):
        flat = val.reshape(val.shape[0], -1)
        if np.all(np.ptp(flat, axis=0) <= 1e-9 * (1.0 + np.abs(flat).max())):
            return True
    if op in ("smin", "smax", "vmin2", "vmax2", "where"):
        a, b = memo[id(node.args[0])], memo[id(node.args[1])]
        if np.any(np.isclose(a, b, rtol=TIE_RTOL, atol=1e-9)):
            return True
    elif op in ("sabs", "vabs"):
        if np.any(np.abs(memo[id(node.args[0])]) <= 1e-9):
            return True
    elif op in ("vmin", "vmax"):
        v = np.sort(memo[id(node.args[0])], axis=-1)
        if np.any(np.diff(v, axis=-1) <= TIE_RTOL * np.abs(v[..., 1:]) + 1e-9):
            return True
    return any(_suspicious(a, memo) for a in node.args if isinstance(a, Node))


def _needed(statements: list[Statement], outputs) -> set:
    need: set = set()
    for _, node in outputs:
        vars_of(node, need)
    for st in reversed(statements):
        if st.name in need:
            need.discard(st.name)
            vars_of(st.node, need)
    return need


def _live(statements: list[Statement], outputs) -> list[Statement]:
    need: set = set()
    for _, node in outputs:
        vars_of(node, need)
    keep = []
    for st in reversed(statements):
        if st.name in need:
            keep.append(st)
            need.discard(st.name)
            vars_of(st.node, need)
    keep.reverse()            # an aug statement reads its own name, so its earlier binding stays live too
    return keep


def _depth(node: Node) -> int:
    kids = [a for a in node.args if isinstance(a, Node)]
    return 1 + max((_depth(k) for k in kids), default=0)


def _rename(node: Node, mapping: dict) -> Node:
    if node.op == "var":
        return Node("var", node.kind, (), mapping[node.info], node.lo, node.hi, node.nmin, node.nmax, node.mag)
    args = tuple(_rename(a, mapping) if isinstance(a, Node) else a for a in node.args)
    return Node(node.op, node.kind, args, node.info, node.lo, node.hi, node.nmin, node.nmax, node.mag)


def _extract_helper(rng, prec, statements: list[Statement], outputs) -> list[str]:
    """Move one expression into a ``@wp.func`` (reference unchanged: the call evaluates the same tree)."""
    slots = []
    for k, st in enumerate(statements):
        if not st.aug and _depth(st.node) >= 3:
            slots.append(("s", k))
    for k, (_, node) in enumerate(outputs):
        if _depth(node) >= 3:
            slots.append(("o", k))
    if not slots:
        return []
    where, k = slots[int(rng.integers(len(slots)))]
    node = statements[k].node if where == "s" else outputs[k][1]
    order: list[str] = []

    def collect(n):
        if n.op == "var":
            if n.info not in order:
                order.append(n.info)
        for a in n.args:
            if isinstance(a, Node):
                collect(a)
    collect(node)
    pnames = list(PARAM_NAMES)
    rng.shuffle(pnames)
    pnames += [f"arg{k}" for k in range(len(order))]
    mapping = {v: pnames[m] for m, v in enumerate(order)}
    body = _rename(node, mapping)
    fname = f"{PLACEHOLDER}_{('fn', 'op', 'apply', 'combine', 'step', 'eval')[int(rng.integers(6))]}"
    var_nodes = {}

    def find_vars(n):
        if n.op == "var":
            var_nodes.setdefault(n.info, n)
        for a in n.args:
            if isinstance(a, Node):
                find_vars(a)
    find_vars(node)
    call = Node("call", node.kind, tuple(var_nodes[v] for v in order),
                {"name": fname, "params": [mapping[v] for v in order], "body": body},
                node.lo, node.hi, node.nmin, node.nmax, node.mag)
    if where == "s":
        statements[k] = Statement(statements[k].name, call)
    else:
        outputs[k][1] = call
    params = ", ".join(f"{mapping[v]}: {type_src(var_nodes[v].kind, prec)}" for v in order)
    ret = f" -> {type_src(node.kind, prec)}" if rng.random() < 0.7 else ""
    lines = ["@wp.func", f"def {fname}({params}){ret}:"]
    kids = [a for a in body.args if isinstance(a, Node) and a.op not in ("var", "const", "vconst")]
    if kids and rng.random() < 0.6:
        kid = kids[int(rng.integers(len(kids)))]
        tmp = "tmp" if "tmp" not in mapping.values() else "t0"
        lines.append(f"    {tmp} = {emit(kid, prec)}")
        swapped = Node(body.op, body.kind, tuple(Node("var", kid.kind, (), tmp, kid.lo, kid.hi, kid.nmin, kid.nmax, kid.mag)
                                                 if a is kid else a for a in body.args),
                       body.info, body.lo, body.hi, body.nmin, body.nmax, body.mag)
        lines.append(f"    return {emit(swapped, prec)}")
    else:
        lines.append(f"    return {emit(body, prec)}")
    return ["\n".join(lines)]


# --------------------------------------------------------------------------------------------------------
# Reference and tolerance


def run(prec: str, dims: tuple, inputs_decl, statements, outputs, values: dict, memo: dict | None = None
        ) -> dict[str, np.ndarray]:
    """Evaluate a program on input ``values`` (by argument name); returns every output, full shape."""
    env = {}
    for name, kind, role, index, leaf in inputs_decl:
        val = np.asarray(values[name], dtype=np.float64)
        if role != "scalar" and len(dims) == 2:
            ks = SHAPE[kind]
            if index == "i":
                val = val.reshape((dims[0], 1) + ks)
            elif index == "j":
                val = val.reshape((1, dims[1]) + ks)
        env[leaf] = val
    for name, node in statements:
        env[name] = evaluate(node, env, prec, memo)
    out = {}
    for name, node in outputs:
        val = evaluate(node, env, prec, memo)
        out[name] = np.broadcast_to(val, dims + SHAPE[node.kind]).copy()
    return out


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    meta = spec.meta
    return run(meta["prec"], tuple(meta["dims"]), meta["inputs"], meta["statements"], meta["outputs"], inputs)


def tolerance(spec: KernelSpec) -> Tolerance:
    return TYPE_TOLERANCES[spec.meta["prec"]]
