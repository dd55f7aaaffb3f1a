"""Helpers shared by the ``indexing``, ``atomic`` and ``bitwise`` families.

Multi-dimensional array spellings (``wp.array2d(dtype=float)``, ``wp.array(dtype=wp.uint32, ndim=3)``...), a
signature writer for them, kernel text assembly with any ``wp.tid()`` unpacking, and small integer index
expressions (over thread indices) that know their value interval and evaluate in NumPy with C semantics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.family import Arg
from kernels import _common as C
from kernels._common import pick

#: element type spellings (several per dtype: picked at random for variety)
ELEMENT_SPELLING = {
    "float32": ("float", "wp.float32"),
    "float64": ("wp.float64",),
    "int32": ("int", "wp.int32"),
    "uint32": ("wp.uint32",),
    "int64": ("wp.int64",),
}
SCALAR_TYPE = {"float32": "float", "float64": "wp.float64", "int32": "int", "uint32": "wp.uint32",
               "int64": "wp.int64"}
TID_NAMES = ("i", "j", "k", "l")


def array_spelling(rng: np.random.Generator, dtype: str, ndim: int) -> str:
    elem = pick(rng, ELEMENT_SPELLING[dtype])
    if ndim == 1:
        return f"wp.array(dtype={elem})"
    if rng.random() < 0.6:
        return f"wp.array{ndim}d(dtype={elem})"
    return f"wp.array(dtype={elem}, ndim={ndim})"


def signature(rng: np.random.Generator, args: list[Arg]) -> str:
    parts = []
    for a in args:
        spelled = SCALAR_TYPE[a.dtype] if a.role == "scalar" else array_spelling(rng, a.dtype, len(a.shape))
        parts.append(f"{a.name}: {spelled}")
    return ", ".join(parts)


def tid_line(names: tuple[str, ...] | list[str]) -> str:
    return f"{', '.join(names)} = wp.tid()"


def launch_indices(dims, tids) -> dict[str, np.ndarray]:
    """The thread indices of a launch over ``dims`` (arrays of that shape), by their names ``tids``."""
    grid = np.indices(tuple(dims), dtype=np.int64)
    return {t: grid[k] for k, t in enumerate(tids)}


def kernel_text(rng: np.random.Generator, args: list[Arg], body: list[str], tid: str,
                helpers: list[str] = ()) -> str:
    """Kernel source; ``body`` lines may carry their own extra indentation (nested blocks)."""
    return C.kernel_text(signature(rng, args), body, helpers, tid)


# --------------------------------------------------------------------------------------------------------
# Integer index expressions over thread indices


@dataclass(frozen=True, slots=True)
class Ix:
    """An integer expression over thread indices with the closed interval ``[lo, hi]`` of its values.

    ``op`` is one of var, const, add, sub, mul, floordiv, mod, min, max, clamp, abs. The generator only builds
    ``//`` and ``%`` with non-negative operands and positive divisors, and the evaluator copies C semantics anyway.
    """

    op: str
    args: tuple = ()
    value: object = None
    lo: int = 0
    hi: int = 0


def ix_var(name: str, extent: int) -> Ix:
    return Ix("var", (), name, 0, extent - 1)


def ix_const(c: int) -> Ix:
    return Ix("const", (), int(c), int(c), int(c))


def ix_bin(op: str, a: Ix, b: Ix) -> Ix:
    if op == "add":
        return Ix(op, (a, b), None, a.lo + b.lo, a.hi + b.hi)
    if op == "sub":
        return Ix(op, (a, b), None, a.lo - b.hi, a.hi - b.lo)
    if op == "mul":
        c = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        return Ix(op, (a, b), None, min(c), max(c))
    if op == "floordiv":
        assert a.lo >= 0 and b.lo >= 1, (a, b)
        return Ix(op, (a, b), None, a.lo // b.hi, a.hi // b.lo)
    if op == "mod":
        assert a.lo >= 0 and b.lo >= 1, (a, b)
        hi = min(a.hi, b.hi - 1)
        lo = a.lo if a.hi < b.lo else 0
        return Ix(op, (a, b), None, lo, hi)
    if op == "min":
        return Ix(op, (a, b), None, min(a.lo, b.lo), min(a.hi, b.hi))
    if op == "max":
        return Ix(op, (a, b), None, max(a.lo, b.lo), max(a.hi, b.hi))
    raise ValueError(op)


def ix_clamp(x: Ix, lo: int, hi: int) -> Ix:
    return Ix("clamp", (x, ix_const(lo), ix_const(hi)), None, min(max(x.lo, lo), hi), max(min(x.hi, hi), lo))


_SYM = {"add": "+", "sub": "-", "mul": "*", "floordiv": "//", "mod": "%"}
_PREC = {"add": 1, "sub": 1, "mul": 2, "floordiv": 2, "mod": 2}


def ix_emit(x: Ix, parent: int = 0, right: bool = False) -> str:
    """Source text with Python precedence (parentheses only where needed)."""
    if x.op == "var":
        return str(x.value)
    if x.op == "const":
        return str(x.value) if x.value >= 0 else f"({x.value})"
    if x.op in _SYM:
        prec = _PREC[x.op]
        text = f"{ix_emit(x.args[0], prec)} {_SYM[x.op]} {ix_emit(x.args[1], prec, True)}"
        loose = prec < parent or (prec == parent and right)
        return f"({text})" if loose else text
    return f"wp.{x.op}({', '.join(ix_emit(a) for a in x.args)})"


def ix_eval(x: Ix, env: dict[str, np.ndarray]) -> np.ndarray:
    if x.op == "var":
        return env[x.value]
    if x.op == "const":
        return np.int64(x.value)
    a = [ix_eval(c, env) for c in x.args]
    if x.op == "add":
        return a[0] + a[1]
    if x.op == "sub":
        return a[0] - a[1]
    if x.op == "mul":
        return a[0] * a[1]
    if x.op == "floordiv":               # Warp's integer // floors
        return np.floor_divide(a[0], a[1])
    if x.op == "mod":                    # Warp's integer % truncates (C)
        return np.fmod(a[0], a[1])
    if x.op == "min":
        return np.minimum(a[0], a[1])
    if x.op == "max":
        return np.maximum(a[0], a[1])
    if x.op == "clamp":
        return np.minimum(np.maximum(a[0], a[1]), a[2])
    if x.op == "abs":
        return np.abs(a[0])
    raise ValueError(x.op)
