"""arithmetic: random expression trees and statement sequences over scalars and array elements.

Operators + - * / (and // % for integers), min/max, abs, negation, selects (``wp.where`` and ``a if c else b``)
in float32, float64 or int32 (C semantics), with 1-3 input arrays, optional scalar parameters, 0-4 local
bindings and one or two outputs. Programs are drawn by the IR's builders (``kernels/ir/gen.py``); the reference
is the IR interpreter, and a program the verifier would call degenerate on the interpreter's outputs is drawn
again.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.family import Program
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import Layout, Vocabulary, random_kernel
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, FLOAT64, INT32

N = 64
TYPES = (FLOAT32, FLOAT32, FLOAT64, INT32)
FLOAT_RANGES = (Interval(-2.0, 2.0), Interval(-1.0, 3.0), Interval(0.5, 4.0))
OPS = {"add": 3, "sub": 3, "mul": 3, "div": 2, "min": 1.5, "max": 1.5, "neg": 1, "abs": 1, "where": 0.6,
       "ifexp": 0.6}
INT_OPS = {**OPS, "mod": 1.5, "floordiv": 1.5}
LAYOUT = Layout(inputs=(1, 3), p_inline=0.4, statements=(0, 4), kinds={"let": 1.0}, depth=(1, 3),
                outputs=(1, 2), out_depth=(2, 4), named=True)


def draw(rng: np.random.Generator) -> Program:
    ty = TYPES[int(rng.integers(len(TYPES)))]
    iv = Interval(-20.0, 20.0) if ty.is_int else FLOAT_RANGES[int(rng.integers(len(FLOAT_RANGES)))]
    scalar_iv = Interval(1.0, 5.0) if ty.is_int else Interval(0.5, 2.0)
    vocab = Vocabulary(INT_OPS if ty.is_int else OPS, types=(ty,), ranges={ty: iv}, limit=1e5, p_compound=0.25)
    layout = replace(LAYOUT, scalars=(1, 1) if rng.random() < 0.35 else (0, 0), scalar_ranges=(scalar_iv,))
    kernel, ranges = random_kernel(rng, vocab, N, layout=layout)
    return program(kernel, ranges, (N,), features(kernel))


FAMILY = ir_family("arithmetic", __doc__, draw, version=2,
                   covers=("arithmetic", "expression trees", "scalar parameters", "int32 C semantics", "float64"))
