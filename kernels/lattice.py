"""lattice: integer lattice kernels over wp.vec2i/vec3i/vec4i, as generic kernels and kernel factories (closures).

Simulation code writes its grid kernels this way: once for many types or constants.

Cell coordinates and offsets are integer vectors: loaded from arrays, built from components and the thread index
(``wp.vec3i(i, 2, c)``), added, subtracted, negated, scaled by integers, clamped elementwise with
``wp.min``/``wp.max``, reduced with ``wp.dot`` and ``wp.min(v)``/``wp.max(v)``, selected with ``wp.where`` and
read back by component (``c[1]``, ``c.y``) into integer arithmetic (``//``, ``%``, ``wp.clamp``) or, in some
programs, into float32 values through casts. Outputs are integer vectors, int32 ids or float32 values, compared
exactly when integer.

Each program is also drawn in one of Warp's ways of writing a kernel once for many uses (both, either or
neither):

- **generic** (``a: wp.array(dtype=Any)``): the integer-vector arrays are typed ``Any`` and the concrete types
  are declared after the kernel with ``wp.overload(kernel, {"a": wp.array(dtype=wp.vec3i)})``, so Warp builds
  that instance;
- **closure**: the kernel is defined inside a factory ``def <name>_make(k: int, ...)`` that returns it, and the
  module binds ``<name> = <name>_make(3, ...)``; the kernel reads the factory's parameters as captured
  constants (``wp.static(k)`` or ``k``), which Warp's code generator folds into the generated code.

Programs are drawn by the IR's composite builder (``kernels/ir/composite.py``) over this vocabulary; the interval
engine keeps every integer far from int32 overflow and every divisor away from zero, and the reference is the IR
interpreter (integers in their own width, so wrap-around and truncating division are C's).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.family import Program
from kernels._common import pick
from kernels.ir.analysis import capture
from kernels.ir.composite import Port, Shape, composite_kernel, first_clean, with_new_ports
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import OUT_NAMES, SCALAR_NAMES, Vocabulary
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, INT32, Array, Vector

INT_OPS = {"add": 1.2, "sub": 1.0, "neg": 0.3, "ivmul": 0.8, "ivmin": 0.6, "ivmax": 0.6, "ivabs": 0.3,
           "ivdot": 0.6, "ivreduce_min": 0.3, "ivreduce_max": 0.3, "ivwhere": 0.3, "ivec2": 0.5, "ivec3": 0.5,
           "ivec4": 0.4, "mul": 0.8, "min": 0.4, "max": 0.4, "clamp": 0.3, "abs": 0.3, "floordiv": 0.4,
           "mod": 0.4, "where": 0.2}
FLOAT_OPS = {"sqrt": 0.2, "div": 0.3}
#: sampling ranges of integer-vector inputs (cells, offsets, small signed coordinates)
CELL_RANGES = tuple(Interval(lo, hi) for lo, hi in ((0.0, 15.0), (-8.0, 8.0), (-3.0, 3.0), (0.0, 7.0), (1.0, 9.0)))
SCALAR_RANGES = tuple(Interval(lo, hi) for lo, hi in ((1.0, 8.0), (0.0, 4.0), (-4.0, 4.0)))
SHAPE = Shape(statements=(1, 4), kinds={"let": 1.0, "update": 0.25, "set": 0.2}, depth=(1, 3), out_depth=(2, 3),
              p_helper=0.25, two_d=0.25)
#: names of the factory's parameters (the captured constants)
CAPTURE_NAMES = (("k", "m", "c0", "c1"), ("n", "stride", "n0", "n1"), ("offset", "scale", "off", "gain"),
                 ("width", "shift", "w0", "s0"), ("cells", "base", "cells0", "base0"))
P_GENERIC = 0.5
P_CLOSURE = 0.5


def draw(rng: np.random.Generator) -> Program:
    n_main = int(rng.choice([2, 3, 4], p=[0.3, 0.45, 0.25]))
    main = Vector(INT32, n_main)
    ivecs = [main]
    if rng.random() < 0.3:
        ivecs.append(Vector(INT32, pick(rng, [k for k in (2, 3, 4) if k != n_main])))
    floats = rng.random() < 0.35
    types = [INT32, *ivecs] + ([FLOAT32] if floats else [])
    ops = dict(INT_OPS)
    if floats:
        ops.update(FLOAT_OPS)
    ranges = {INT32: Interval(-6.0, 6.0), FLOAT32: Interval(-2.0, 2.0)}
    vocab = Vocabulary(ops, types=tuple(types), ranges=ranges, limit=4096.0, p_leaf=0.3, p_const=0.2, p_call=0.4)
    inputs = [Port(main if k == 0 else pick(rng, ivecs), pick(rng, CELL_RANGES))
              for k in range(int(rng.integers(1, 4)))]
    inputs += [Port(INT32, pick(rng, CELL_RANGES)) for _ in range(int(rng.choice([0, 0, 1])))]
    if floats:
        inputs.append(Port(FLOAT32, Interval(-2.0, 2.0)))
    scalars = [Port(INT32, pick(rng, SCALAR_RANGES), SCALAR_NAMES)] if rng.random() < 0.35 else []
    out_types = [main, main, INT32] + ivecs[1:] + ([FLOAT32] if floats else [])
    outs = [Port(pick(rng, out_types), names=OUT_NAMES) for _ in range(int(rng.integers(1, 3)))]
    weights = {t: 3.0 if t == main else 1.5 if t == INT32 else 1.0 for t in types}
    kernel, ranges_, dim = first_clean(lambda: composite_kernel(rng, vocab, inputs, outs, scalars, weights, SHAPE))
    generic = rng.random() < P_GENERIC
    closure = rng.random() < P_CLOSURE
    if generic:
        kernel = replace(kernel, generic=tuple(p.name for p in kernel.params if isinstance(p.type, Array)
                                               and isinstance(p.type.dtype, Vector)))
    if closure:
        kernel = capture(kernel, pick(rng, CAPTURE_NAMES), f"{kernel.name}_make", bare=rng.random() < 0.5)
    feats = {**features(kernel), "generic": bool(kernel.generic), "closure": kernel.factory is not None}
    return program(kernel, ranges_, dim, feats, differentiable=False)


FAMILY = ir_family("lattice", __doc__, with_new_ports(draw), version=1,
                   covers=("vec2i", "vec3i", "vec4i", "generic kernels (Any + wp.overload)",
                           "kernel closures (factory functions)", "wp.static of captured constants",
                           "integer vector min/max/dot/where", "integer division and modulo"))
