"""Adapter from an IR kernel to the harness: a :class:`harness.family.Program` whose ``meta`` is the IR, and a
reference that runs the interpreter, so that a family is its vocabulary, its generator and its tolerances.

A family written against the IR::

    def generate(rng):
        kernel, ranges = random_kernel(rng, VOCAB, size=64)
        return program(kernel, ranges, dim=(64,))

    FAMILY = Family(name="mine", description="...", generate=generate, reference=reference,
                    tolerance=lambda spec: Tolerance(1e-4, 1e-5))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from harness.family import PLACEHOLDER, Arg, KernelSpec, Program
from kernels.ir import interp, printer
from kernels.ir import nodes as n
from kernels.ir.analysis import reaching, statements
from kernels.ir.numeric import Interval
from kernels.ir.types import Array, dtype_name, scalar_of


@dataclass(frozen=True, slots=True)
class IRMeta:
    """What the reference needs: the kernel and its launch shape."""

    kernel: n.Kernel
    dim: tuple[int, ...]


def _role(kernel: n.Kernel, p: n.Param) -> str:
    if not isinstance(p.type, Array):
        return "scalar"
    written = {s.array for s in statements(kernel.body) if isinstance(s, (n.Store, n.Atomic))}
    if p.name not in written:
        return "in"
    loaded = reaching(kernel) & {p.name}
    return "inout" if loaded and any(
        isinstance(x, n.Load) and x.array == p.name
        for s in statements(kernel.body) for e in n.stmt_exprs(s) for x in _walk(e)) else "out"


def _walk(e: n.Expr):
    yield e
    for c in n.children(e):
        yield from _walk(c)


def program(kernel: n.Kernel, ranges: Mapping[str, Interval], dim: tuple[int, ...], features: dict | None = None,
            differentiable: bool | None = None) -> Program:
    """The harness program of ``kernel`` (printed with the placeholder name), one ``Arg`` per parameter with
    shape ``dim`` for arrays and the sampling range from ``ranges``."""
    kernel = n.Kernel(PLACEHOLDER, kernel.params, kernel.body, kernel.tids, kernel.funcs, kernel.structs)
    args = []
    for p in kernel.params:
        role = _role(kernel, p)
        iv = ranges.get(p.name, Interval(-2.0, 2.0))
        dtype = p.type.dtype if isinstance(p.type, Array) else p.type
        shape = tuple(dim) if isinstance(p.type, Array) else ()
        args.append(Arg(p.name, dtype_name(dtype), role, shape, iv.lo, iv.hi))
    if differentiable is None:
        differentiable = all(scalar_of(a.type.dtype if isinstance(a.type, Array) else a.type).is_float
                             for a in kernel.params)
    return Program(printer.kernel_source(kernel), tuple(args), tuple(dim), IRMeta(kernel, tuple(dim)),
                   dict(features or {}), differentiable=differentiable)


def reference(spec: KernelSpec, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The interpreter's outputs, float32 kept in float64 (the verifier's conditioning and gradient checks
    perturb inputs by less than a float32 ulp and need a smooth reference)."""
    meta: IRMeta = spec.meta
    result = interp.run(meta.kernel, meta.dim, inputs, exact=False)
    return {a.name: result[a.name] for a in spec.args if a.is_output}
