"""control_flow: if/elif/else, for and while loops, break/continue, nested conditions.

State variables declared before the control flow that updates them (accumulations, ``+=``/``-=``, running
extrema, decays), if/elif/else chains on compound conditions (and/or/not, loop-index tests such as
``j % 2 == 0``), ``for`` loops over constant ranges (plain, offset, reversed, strided), ranges bounded by an
int scalar parameter or by a per-element int array, neighbour gathers ``a[(i + j) % 64]``, nested loops,
counted ``while`` loops with data-dependent exits, and conditional ``break``/``continue``, nested up to three
levels, in float32, float64 or int32 (C semantics). Programs are drawn by the IR's control-flow builder
(``kernels/ir/flow.py``: loop-carried values bounded by the interval engine, clamped where they could
escape); the reference is the IR interpreter, and a program the verifier would call degenerate on the
interpreter's outputs is drawn again.
"""

from __future__ import annotations

import numpy as np

from harness.family import Program
from kernels.ir.family import adjoints_right, features, ir_family, program
from kernels.ir.flow import FlowBuilder, Redraw, Shape, constructs, unrolled
from kernels.ir.gen import Vocabulary, first_clean
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, FLOAT64, INT32

N = 64
TYPES = (FLOAT32, FLOAT32, FLOAT64, INT32)
FLOAT_RANGES = (Interval(-2.0, 2.0), Interval(-1.0, 3.0), Interval(0.5, 4.0))
OPS = {"add": 3, "sub": 3, "mul": 3, "div": 1.5, "min": 1, "max": 1, "neg": 0.5, "abs": 0.5, "where": 0.4}
INT_OPS = {**OPS, "mod": 1, "floordiv": 1}
SHAPE = Shape(max_lines=22, unrolled=16)


def draw(rng: np.random.Generator) -> Program:
    ty = TYPES[int(rng.integers(len(TYPES)))]
    iv = Interval(-20.0, 20.0) if ty.is_int else FLOAT_RANGES[int(rng.integers(len(FLOAT_RANGES)))]
    vocab = Vocabulary(INT_OPS if ty.is_int else OPS, types=(ty,), ranges={ty: iv}, limit=1e5, p_leaf=0.4)

    def build():
        for _ in range(10):
            try:
                return FlowBuilder(rng, ty, vocab, SHAPE, N).build()
            except Redraw:
                continue
        raise RuntimeError("control_flow: no bounded draw in 10 tries")

    kernel, ranges = first_clean(build, N)
    info = constructs(kernel)
    return program(kernel, ranges, (N,), {**features(kernel), **info, "constructs": sorted(info)},
                   differentiable=not ty.is_int and unrolled(kernel) and adjoints_right(kernel))


FAMILY = ir_family("control_flow", __doc__, draw, version=2,
                   covers=("if/elif/else", "for loops", "dynamic loop bounds", "while loops", "break/continue",
                           "augmented assignment", "nested conditions", "nested loops", "and/or/not",
                           "int32 C semantics", "float64"))
