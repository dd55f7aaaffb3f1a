"""math: Warp math builtins composed into random programs, every argument drawn inside its function's domain.

Random expressions over the scalar math builtins of Warp 1.19 (trigonometric, hyperbolic and inverse functions,
exp/log in three bases, sqrt/cbrt/pow, erf/erfc/erfinv/erfcinv, rounding and step functions, sign/copysign,
clamp, lerp, smoothstep, atan2, min/max, ``%``, ``//``) mixed with + - * /, in float32 or float64, spread over
1-4 statements (some updating an earlier local), optionally through a ``@wp.func`` helper, with 1-3 input
arrays, optional scalar parameters and one or two outputs.

The IR's operation table carries each builtin's Warp semantics, interval rule and domain guard; the builders
bring arguments into their domains (``abs(x) + c`` for log/sqrt/pow bases, divisors and cbrt arguments,
``tanh(x) * c`` for asin/acos/erfinv/erfcinv/tan) and keep intermediate magnitudes bounded, and the interval
engine checks the whole kernel, so no kernel divides by zero, leaves a domain or overflows. A program the
verifier would call degenerate or ill-conditioned on the interpreter's outputs is drawn again.

Gradients: Warp 1.19's adjoint of ``frac`` is zero (its derivative is 1) and ``fmod``'s adjoint ignores the
divisor. About 15% of programs may use ``frac`` and ``%`` by a variable divisor and are then not marked
differentiable (``kernels.ir.family.adjoints_right``); the others are, and their gradients are checked.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.family import KernelSpec, Program, Tolerance
from kernels.ir import analysis
from kernels.ir import nodes as n
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import Layout, Vocabulary, random_kernel
from kernels.ir.numeric import Interval
from kernels.ir.types import FLOAT32, FLOAT64

N = 64
MAX_OPS = 36
INPUT_RANGES = tuple(Interval(lo, hi) for lo, hi in ((-2.0, 2.0), (-1.0, 1.0), (0.5, 3.0), (-3.0, 1.0),
                                                      (0.1, 2.0), (-1.5, 2.5), (-4.0, 4.0)))
SCALAR_RANGES = (Interval(0.5, 2.0), Interval(-1.0, 1.0), Interval(0.2, 1.5))
UNARY = {"sin": 1.5, "cos": 1.5, "tan": 1.0, "exp": 1.3, "log": 1.3, "log2": 1.0, "log10": 0.7, "sqrt": 1.3,
         "cbrt": 1.0, "tanh": 1.0, "atan": 1.0, "asin": 1.0, "acos": 1.0, "sinh": 1.0, "cosh": 1.0, "erf": 1.0,
         "erfc": 1.0, "erfinv": 0.7, "erfcinv": 0.6, "abs": 0.5, "neg": 0.3, "degrees": 0.3, "radians": 0.3,
         "floor": 1.0, "ceil": 1.0, "round": 1.0, "rint": 0.7, "trunc": 1.0, "sign": 1.0, "step": 0.9,
         "nonzero": 0.7}
BINARY = {"add": 4.0, "sub": 4.0, "mul": 4.0, "div": 3.0, "min": 1.0, "max": 1.0, "atan2": 1.2, "pow": 1.4,
          "copysign": 0.6, "floordiv": 0.5, "clamp": 0.9, "lerp": 0.8, "smoothstep": 0.7}
#: Warp's adjoints of these are wrong (frac) or ignore an argument (a variable % divisor)
NOT_DIFFERENTIABLE = {"frac": 3.0, "mod": 0.7}
LAYOUT = Layout(inputs=(1, 3), p_inline=0.3, input_ranges=INPUT_RANGES, scalar_ranges=SCALAR_RANGES,
                statements=(1, 4), kinds={"let": 0.85, "update": 0.15}, depth=(1, 3), outputs=(1, 2),
                out_depth=(2, 3), p_helper=0.25, named=True)


def draw(rng: np.random.Generator) -> Program:
    ty = FLOAT32 if rng.random() < 0.6 else FLOAT64
    ops = {**UNARY, **BINARY, **(NOT_DIFFERENTIABLE if rng.random() < 0.15 else {})}
    vocab = Vocabulary(ops, types=(ty,), ranges={ty: INPUT_RANGES[0]}, limit=40.0, p_leaf=0.2)
    scalars = (0, 0) if rng.random() >= 0.35 else (1, 1) if rng.random() < 0.75 else (2, 2)
    layout = replace(LAYOUT, scalars=scalars)
    for _ in range(10):
        kernel, ranges = random_kernel(rng, vocab, N, layout=layout)
        stored = [e for s in kernel.body for e in n.stmt_exprs(s)] + \
            [e for f in kernel.funcs for s in f.body for e in n.stmt_exprs(s)]
        if sum(analysis.size(e) for e in stored) <= MAX_OPS:
            break
    return program(kernel, ranges, (N,), {**features(kernel), "helpers": len(kernel.funcs)})


def tolerance(spec: KernelSpec) -> Tolerance:
    """Tighter than the IR default: math builtins stay within a few ulps of the float64 reference."""
    return {FLOAT32: Tolerance(5e-5, 5e-6), FLOAT64: Tolerance(1e-10, 1e-12)}[spec.meta.kernel.params[0].type.dtype]


FAMILY = ir_family("math", __doc__, draw, version=2, tol=tolerance,
                   covers=("math builtins", "transcendental functions", "domain-safe composition",
                           "rounding functions", "erf family", "pow/atan2/copysign", "clamp/lerp/smoothstep",
                           "wp.func helpers", "float64"))
