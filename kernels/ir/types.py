"""Types of the program IR: scalars, vectors, matrices, quaternions, transforms, arrays and structs.

Each type knows how Warp source spells it and which NumPy dtype holds one component. Spellings come from
``harness.dtypes`` where that table has the type (so records and IR agree), and otherwise from the Warp type's
own name (``wp.int8``, ``wp.vec3d``...): there is no second spelling table here.

Values of a type inside the interpreter (see :mod:`kernels.ir.interp`) are NumPy arrays with one row per
thread: floats are carried in float64 and rounded to their type after each operation, integers in their own
dtype (so NumPy's wrap-around is C's), booleans as ``bool``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np
import warp as wp

from harness.dtypes import DTYPES

#: suffix Warp gives vector/matrix/quaternion/transform types of each scalar (``vec3`` + ``d`` = ``vec3d``)
_SUFFIX = {"int8": "b", "uint8": "ub", "int16": "s", "uint16": "us", "int32": "i", "uint32": "ui",
           "int64": "l", "uint64": "ul", "float16": "h", "float32": "f", "float64": "d"}


def _spelling(canonical: str, warp_name: str) -> str:
    """``harness.dtypes``' spelling of ``canonical`` when it has one, else ``wp.<warp_name>``."""
    row = DTYPES.get(canonical)
    return row.source if row is not None else f"wp.{warp_name}"


@dataclass(frozen=True, slots=True)
class Scalar:
    """``bool``, a signed/unsigned integer or a float of ``bits`` bits."""

    name: str

    def __post_init__(self) -> None:
        if self.name != "bool" and self.name not in _SUFFIX:
            raise ValueError(f"Expected a scalar type name in {['bool', *_SUFFIX]} but got {self.name!r}")

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(np.bool_ if self.name == "bool" else self.name)

    @property
    def carrier(self) -> np.dtype:
        """The dtype the interpreter holds values in: float64 for every float type."""
        return np.dtype(np.float64) if self.is_float else self.numpy

    @property
    def warp(self) -> str:
        return "bool" if self.name == "bool" else _spelling(self.name, self.name)

    @property
    def is_float(self) -> bool:
        return self.name.startswith("float")

    @property
    def is_int(self) -> bool:
        return "int" in self.name

    @property
    def is_signed(self) -> bool:
        return self.name.startswith("int") or self.is_float

    @property
    def bits(self) -> int:
        return 1 if self.name == "bool" else self.numpy.itemsize * 8

    @property
    def limits(self) -> tuple[float, float]:
        """Smallest and largest finite value."""
        if self.name == "bool":
            return 0.0, 1.0
        info = np.finfo(self.numpy) if self.is_float else np.iinfo(self.numpy)
        return float(info.min), float(info.max)

    @property
    def eps(self) -> float:
        return float(np.finfo(self.numpy).eps) if self.is_float else 0.0

    def __str__(self) -> str:
        return self.name


class _Composite:
    """Spelling and printing shared by vectors, matrices, quaternions and transforms (from ``name``)."""

    __slots__ = ()

    @property
    def warp(self) -> str:
        return _spelling(self.name, self.name)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Vector(_Composite):
    """``wp.vec{n}`` of ``scalar`` components."""

    scalar: Scalar
    n: int

    @property
    def name(self) -> str:
        return f"vec{self.n}{_SUFFIX[self.scalar.name]}"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n,)


@dataclass(frozen=True, slots=True)
class SpatialVector(Vector):
    """``wp.spatial_vector``: a 6-vector (angular top, linear bottom) of ``scalar`` components."""

    @property
    def name(self) -> str:
        return "spatial_vector" + ("" if self.scalar.name == "float32" else _SUFFIX[self.scalar.name])


@dataclass(frozen=True, slots=True)
class Matrix(_Composite):
    """``wp.mat{rows}{cols}`` of ``scalar`` components."""

    scalar: Scalar
    rows: int
    cols: int

    @property
    def name(self) -> str:
        return f"mat{self.rows}{self.cols}{_SUFFIX[self.scalar.name]}"

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.rows, self.cols)


@dataclass(frozen=True, slots=True)
class Quat(_Composite):
    """``wp.quat`` (x, y, z, w) of ``scalar`` components."""

    scalar: Scalar
    shape = (4,)

    @property
    def name(self) -> str:
        return f"quat{_SUFFIX[self.scalar.name]}"


@dataclass(frozen=True, slots=True)
class Transform(_Composite):
    """``wp.transform``: position (3) then rotation quaternion (4)."""

    scalar: Scalar
    shape = (7,)

    @property
    def name(self) -> str:
        return f"transform{_SUFFIX[self.scalar.name]}"


@dataclass(frozen=True, slots=True)
class Struct:
    """A ``@wp.struct`` named ``name`` with typed ``fields`` (in declaration order)."""

    name: str
    fields: tuple[tuple[str, "Type"], ...]

    @property
    def warp(self) -> str:
        return self.name

    def field(self, name: str) -> "Type":
        for key, ty in self.fields:
            if key == name:
                return ty
        raise KeyError(f"struct {self.name} has no field {name!r}; fields: {[k for k, _ in self.fields]}")

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Array:
    """``wp.array(dtype=..., ndim=...)``."""

    dtype: "Type"
    ndim: int = 1
    short: bool = field(default=False, compare=False)     # spelled ``wp.array2d(dtype=...)`` (same type)

    @property
    def warp(self) -> str:
        if self.short and 1 < self.ndim <= 4:
            return f"wp.array{self.ndim}d(dtype={self.dtype.warp})"
        suffix = f", ndim={self.ndim}" if self.ndim != 1 else ""
        return f"wp.array(dtype={self.dtype.warp}{suffix})"

    def __str__(self) -> str:
        return f"array({self.dtype}, {self.ndim})"


@dataclass(frozen=True, slots=True)
class TupleOf:
    """The result of a ``@wp.func`` returning several values (``return a, b``), unpacked by the caller."""

    items: tuple["Type", ...]

    @property
    def warp(self) -> str:
        return f"tuple[{', '.join(t.warp for t in self.items)}]"

    def __str__(self) -> str:
        return f"tuple({', '.join(map(str, self.items))})"


Composite = Union[Vector, Matrix, Quat, Transform]
Type = Union[Scalar, Vector, Matrix, Quat, Transform, Struct, Array]

BOOL = Scalar("bool")
INT8, INT16, INT32, INT64 = (Scalar(f"int{b}") for b in (8, 16, 32, 64))
UINT8, UINT16, UINT32, UINT64 = (Scalar(f"uint{b}") for b in (8, 16, 32, 64))
FLOAT16, FLOAT32, FLOAT64 = (Scalar(f"float{b}") for b in (16, 32, 64))
INTS = (INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64)
SIGNED_INTS = (INT8, INT16, INT32, INT64)
FLOATS = (FLOAT16, FLOAT32, FLOAT64)
NUMERIC = INTS + FLOATS
SCALARS = (BOOL,) + NUMERIC
FLOAT_VECTORS = tuple(Vector(s, n) for s in FLOATS for n in (2, 3, 4))


def scalar_of(ty: Type) -> Scalar:
    """The component type of a scalar or composite type."""
    if isinstance(ty, Scalar):
        return ty
    if isinstance(ty, (Vector, Matrix, Quat, Transform)):
        return ty.scalar
    raise TypeError(f"Expected a scalar or composite type but got {ty}")


def elem_shape(ty: Type) -> tuple[int, ...]:
    """Shape of one value's components (``()`` for scalars)."""
    return () if isinstance(ty, Scalar) else scalar_shape(ty)


def scalar_shape(ty: Type) -> tuple[int, ...]:
    if isinstance(ty, (Vector, Matrix, Quat, Transform)):
        return ty.shape
    raise TypeError(f"{ty} has no component shape")


def dtype_name(ty: Type) -> str:
    """The ``harness.dtypes`` name of ``ty``, for :class:`harness.family.Arg` (which needs one)."""
    name = ty.name
    if name not in DTYPES:
        raise KeyError(f"type {ty} is not in harness.dtypes (known: {sorted(DTYPES)})")
    return name


def warp_type(ty: Type) -> object:
    """The Warp type object (``wp.float32``, ``wp.vec3d``...) of a scalar or composite type."""
    if ty == BOOL:
        return wp.bool
    return getattr(wp, ty.name)


def round_to(ty: Type, values: np.ndarray, exact: bool = True) -> np.ndarray:
    """``values`` as Warp holds them in ``ty``: floats rounded to the type (float16 through float32, as Warp's
    half operations compute in float32 and round once), integers wrapped to their width. With ``exact=False``
    float32 values are left in float64 (a smooth reference for finite differences); float16 always rounds."""
    scalar = scalar_of(ty)
    arr = np.asarray(values)
    if scalar.is_float:
        if scalar == FLOAT16:
            return arr.astype(np.float32).astype(np.float16).astype(np.float64)
        if scalar == FLOAT32 and exact:
            return arr.astype(np.float32).astype(np.float64)
        return arr.astype(np.float64)
    return arr.astype(scalar.carrier)
