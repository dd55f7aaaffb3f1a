"""Multi-dimensional launches and arrays on the IR: thread indices, integer index expressions, their values over
the launch grid, and the clean check of :func:`kernels.ir.gen.is_clean` for arrays whose shapes differ from the
launch (used by the ``indexing`` and ``atomic`` families).
"""

from __future__ import annotations

from typing import Callable, Mapping, TypeVar

import numpy as np

from kernels.ir import analysis, interp, intervals
from kernels.ir import nodes as n
from kernels.ir.numeric import Interval
from kernels.ir.types import INT32

TID_NAMES = ("i", "j", "k", "l")
Shapes = Mapping[str, tuple[int, ...]]


def tid_vars(dims: tuple[int, ...]) -> list[n.Var]:
    return [n.Var(t, INT32) for t in TID_NAMES[:len(dims)]]


def c(value: int) -> n.Const:
    return n.Const(int(value), INT32)


def op(name: str, *args: n.Expr) -> n.Call:
    return n.Call(name, tuple(args))


def grid_values(e: n.Expr, dims: tuple[int, ...], arrays: Mapping[str, np.ndarray] | None = None,
                env: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Values of an expression over every thread of a launch over ``dims`` (flat, in thread order)."""
    lanes = int(np.prod(dims))
    grid = np.unravel_index(np.arange(lanes), dims)
    values = {t: g.astype(np.int32) for t, g in zip(TID_NAMES, grid)}
    values.update(env or {})
    return interp.evaluate(e, values, dict(arrays or {}), lanes)


def is_clean(kernel: n.Kernel, inputs: Mapping[str, Interval], dims: tuple[int, ...], shapes: Shapes) -> bool:
    """:func:`kernels.ir.gen.is_clean` for a launch over ``dims`` with arrays of ``shapes``: guards hold
    (indices inside every array's bounds included), no hygiene findings, no output never written or constant,
    every parameter reaches an output."""
    facts = intervals.analyze(kernel, inputs, dims, shapes)
    outputs = sorted({s.array for s in analysis.statements(kernel.body) if isinstance(s, (n.Store, n.Atomic))})
    return not any(analysis.hygiene(kernel).values()) and not facts.violations and \
        not facts.degenerate(outputs) and analysis.reaching(kernel) >= {p.name for p in kernel.params}


Drawn = TypeVar("Drawn", bound=tuple)


def first_clean(draw: Callable[[], Drawn], tries: int = 30) -> Drawn:
    """The first of ``tries`` draws ``(kernel, inputs, dims, shapes, ...)`` that :func:`is_clean`."""
    for _ in range(tries):
        drawn = draw()
        if drawn is not None and is_clean(*drawn[:4]):
            return drawn
    raise RuntimeError(f"no clean kernel in {tries} draws")


def _cells(index: tuple[n.Expr, ...], dims: tuple[int, ...], shape: tuple[int, ...],
           shapes: Shapes | None) -> np.ndarray:
    arrays = {name: np.zeros(s) for name, s in (shapes or {}).items()}      # for ``a.shape[d]`` in the index
    return np.ravel_multi_index(tuple(grid_values(e, dims, arrays).astype(np.int64) for e in index), shape)


def injective(index: tuple[n.Expr, ...], dims: tuple[int, ...], shape: tuple[int, ...],
              shapes: Shapes | None = None) -> bool:
    """Whether every thread of the launch writes its own cell through ``index`` (no two threads share one), so
    a plain store has one writer per cell and the result does not depend on the order of threads."""
    flat = _cells(index, dims, shape, shapes)
    return np.unique(flat).size == flat.size


def cell_counts(index: tuple[n.Expr, ...], dims: tuple[int, ...], shape: tuple[int, ...],
                shapes: Shapes | None = None) -> int:
    """The most threads that write one cell through ``index``."""
    return int(np.bincount(_cells(index, dims, shape, shapes)).max())


def outputs_read_inputs(kernel: n.Kernel) -> bool:
    """Every stored value depends on some parameter (input array or scalar), through any chain of locals."""
    dep = {p.name for p in kernel.params}
    for _ in range(2):                       # twice: loop-carried updates
        for s in analysis.statements(kernel.body):
            if isinstance(s, (n.Let, n.Assign)) and analysis.uses(s.value) & dep:
                dep.add(s.name)
            elif isinstance(s, n.Atomic) and s.result is not None:
                dep.add(s.result)
    return all(analysis.uses(s.value) & dep for s in analysis.statements(kernel.body)
               if isinstance(s, (n.Store, n.Atomic)) and not isinstance(s.value, n.Const))
