"""expression_tree: single deep expression trees (depth 5-8) of arithmetic, selects and math builtins, or DAGs of shared subexpressions.

Float32/float64 kernels over 1-4 input arrays and optional scalar parameters. Two shapes:

* ``tree``: each output is one expression of depth 5 to 8 (at most 48 operations; a few deeper once unused
  values are folded in) mixing + - * /, min/max, math builtins kept inside their domains (the IR's operation
  table guards them) and selects (``wp.where(c, a, b)`` and ``a if c else b``, whose conditions compare two
  subexpressions, sometimes under and/or);
* ``dag``: 2-5 shared subexpressions bound to locals (later ones built on earlier ones), then output
  expressions of depth 4-7 in which every local is read at least twice (common subexpression reuse), the
  shape a compiler's CSE pass produces or consumes.

Programs are drawn by the IR's builders, the reference is the IR interpreter, and a program the verifier would
call degenerate or ill-conditioned on the interpreter's outputs is drawn again.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.family import Program
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import Layout, Vocabulary, random_kernel
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, FLOAT64

N = 64
INPUT_RANGES = tuple(Interval(lo, hi) for lo, hi in ((-2.0, 2.0), (-1.0, 1.0), (0.5, 3.0), (-3.0, 1.0),
                                                      (0.1, 2.0), (-1.5, 2.5)))
SCALAR_RANGES = (Interval(0.5, 2.0), Interval(-1.0, 1.0), Interval(0.2, 1.5))
OPS = {"add": 3, "sub": 3, "mul": 3, "div": 1.2, "neg": 0.4, "abs": 0.4, "min": 0.6, "max": 0.6, "where": 0.5,
       "ifexp": 0.4, "sin": 1, "cos": 1, "tanh": 0.7, "atan": 0.6, "exp": 0.7, "sqrt": 0.7, "log": 0.6,
       "log2": 0.3, "log10": 0.3, "erf": 0.5, "erfc": 0.3, "sinh": 0.3, "cosh": 0.3, "asin": 0.3, "acos": 0.3,
       "atan2": 0.5}
TREE = Layout(inputs=(1, 4), p_inline=0.35, statements=(0, 0), outputs=(1, 2), out_depth=(5, 8), out_ops=48,
              input_ranges=INPUT_RANGES, scalar_ranges=SCALAR_RANGES, named=True)
DAG = replace(TREE, statements=(2, 5), kinds={"let": 1.0}, depth=(2, 3), out_depth=(4, 7), min_reads=2)


def draw(rng: np.random.Generator) -> Program:
    ty = FLOAT32 if rng.random() < 0.6 else FLOAT64
    dag = rng.random() < 0.5
    vocab = Vocabulary(OPS, types=(ty,), ranges={ty: INPUT_RANGES[0]}, limit=1e3, p_compound=0.2,
                       p_leaf=float(rng.uniform(0.1, 0.25) if dag else rng.uniform(0.03, 0.12)))
    layout = replace(DAG if dag else TREE, scalars=(1, 2) if rng.random() < 0.35 else (0, 0))
    kernel, ranges = random_kernel(rng, vocab, N, layout=layout)
    return program(kernel, ranges, (N,), {**features(kernel), "shape": "dag" if dag else "tree"})


FAMILY = ir_family("expression_tree", __doc__, draw, version=2,
                   covers=("deep expression trees", "selects", "wp.where", "conditional expressions",
                           "math builtins", "common subexpressions", "expression DAGs", "float64"))
