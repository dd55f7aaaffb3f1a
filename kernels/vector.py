"""vector: random statement sequences over Warp's vec2/vec3/vec4 (float32) and vec3d (float64) types.

Construction (``wp.vec3(x, y, z)``, splats ``wp.vec3(s)``, constants, components of other vectors), component
reads (``v[0]``, ``v.x``) and assignments (``v[0] = x``, ``v.y = x``), + - and negation, scaling by and division
by scalars, ``wp.cw_mul``/``wp.cw_div``, ``wp.dot``, ``wp.cross``, ``wp.length``, ``wp.length_sq``,
``wp.normalize``, elementwise ``wp.min``/``wp.max``/``wp.abs``, reductions ``wp.min(v)``/``wp.max(v)``,
``wp.where`` selects, ``+=``/``-=`` updates, ``wp.pi``, integer vectors (``wp.vec3i``) built from the thread
index and read back through casts, and scalar arithmetic, composed at random over 1-3 vector arrays, optional
scalar arrays and scalar parameters, in 1-D or 2-D launches, optionally through a ``@wp.func`` helper, with one
or two vector or scalar outputs.

Programs are drawn by the IR's composite builder (``kernels/ir/composite.py``); the operation table carries
Warp's semantics (``normalize`` of a zero vector is zero, float64 literals are spelled ``wp.float64(c)``) and
the interval engine keeps divisors and ``cw_div`` denominators away from zero and normalises only vectors whose
component bounds keep their length away from zero. The reference is the IR interpreter.
"""

from __future__ import annotations

import numpy as np

from harness.family import Program
from kernels.ir.composite import (Port, Shape, composite_kernel, differentiable, first_clean,
                                   with_new_ports)
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import OUT_NAMES, SCALAR_NAMES, Vocabulary
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, FLOAT64, INT32, Vector

OPS = {"add": 1.0, "sub": 1.0, "neg": 0.25, "mul": 1.6, "div": 0.6, "cw_mul": 0.7, "cw_div": 0.5, "cross": 1.4,
       "normalize": 2.0, "abs": 0.5, "min": 0.6, "max": 0.6, "vec2": 0.3, "vec3": 0.4, "vec4": 0.3, "splat2": 0.1,
       "splat3": 0.1, "splat4": 0.1, "where": 0.3, "sqrt": 0.25, "sin": 0.15, "cos": 0.15, "dot": 1.3, "length": 0.8,
       "length_sq": 0.5, "vmin": 0.25, "vmax": 0.25}
FLOAT32_ONLY = {"pi": 0.2}
INT_OPS = {"ivec2": 0.4, "ivec3": 0.4, "ivec4": 0.3}
VEC_RANGES = tuple(Interval(lo, hi) for lo, hi in ((-2.0, 2.0), (-1.0, 1.0), (-1.0, 3.0), (0.5, 2.0), (-3.0, -0.5),
                                                    (-1.5, 1.5)))
SCALAR_RANGES = tuple(Interval(lo, hi) for lo, hi in ((-2.0, 2.0), (0.5, 2.0), (-1.0, 1.0), (0.1, 3.0)))
SHAPE = Shape(statements=(1, 4), kinds={"let": 1.0, "update": 0.2, "set": 0.2}, depth=(1, 3), out_depth=(2, 3),
              p_helper=0.45, two_d=0.2)


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def draw(rng: np.random.Generator) -> Program:
    s = FLOAT64 if rng.random() < 0.25 else FLOAT32
    vecs = [Vector(s, k) for k in (2, 3, 4)]
    main = Vector(s, 3) if s == FLOAT64 else _pick(rng, (vecs[1], vecs[1], vecs[1], vecs[0], vecs[2]))
    arrays = [main] if s == FLOAT64 else [main] + (vecs if rng.random() < 0.3 else [])
    types = [s, *vecs] if rng.random() < 0.4 else [s, main]
    ops = dict(OPS)
    if s == FLOAT32:
        ops.update(FLOAT32_ONLY)
    if s == FLOAT32 and rng.random() < 0.25:            # integer vectors from the thread index
        k = int(rng.integers(2, 5))
        types += [INT32, Vector(INT32, k)]
        ops.update(INT_OPS)
    vocab = Vocabulary(ops, types=tuple(types), ranges={s: Interval(-2.0, 2.0), INT32: Interval(0.0, 9.0)},
                       limit=200.0, p_leaf=0.3, p_const=0.15, p_call=0.35)
    n_vec, n_sc = int(rng.integers(1, 4)), int(rng.choice([0, 0, 1, 1, 2]))
    inputs = [Port(main if k == 0 else _pick(rng, arrays), _pick(rng, VEC_RANGES), normalized=rng.random() < 0.3)
              for k in range(n_vec)]
    inputs += [Port(s, _pick(rng, SCALAR_RANGES)) for _ in range(n_sc)]
    scalars = [Port(s, _pick(rng, SCALAR_RANGES), SCALAR_NAMES)] if rng.random() < 0.3 else []
    types += [p.type for p in inputs if p.type not in types]
    vocab = Vocabulary(ops, types=tuple(types), ranges=vocab.ranges, limit=vocab.limit, p_leaf=vocab.p_leaf,
                       p_const=vocab.p_const, p_call=vocab.p_call)
    outs = [Port(main if rng.random() < 0.55 else _pick(rng, [t for t in types if t in arrays or t == s]),
                 names=OUT_NAMES) for _ in range(int(rng.integers(1, 3)))]
    weights = {t: 3.0 if t == main else 1.5 if t == s else 0.8 for t in types}
    kernel, ranges, dim = first_clean(lambda: composite_kernel(rng, vocab, inputs, outs, scalars, weights, SHAPE))
    return program(kernel, ranges, dim, features(kernel), differentiable=differentiable(kernel))


FAMILY = ir_family("vector", __doc__, with_new_ports(draw), version=2,
                   covers=("vec2", "vec3", "vec4", "vec3d", "vec3i", "dot", "cross", "normalize", "length",
                           "cw_mul", "vector components", "component assignment", "wp.pi", "float64"))
