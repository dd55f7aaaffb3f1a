"""Nodes of the program IR: typed expressions, statements, helper functions and kernels.

Everything is a frozen, slotted dataclass, so programs are values: they hash, compare structurally (which is
how self-comparisons ``x <= x`` are found) and can be shared between the printer, the interpreter, the
interval engine and the analyses. Expressions carry their type; constructors check types against the
operation table, so an ill-typed program cannot be built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from kernels.ir.ops import op as lookup_op
from kernels.ir.types import BOOL, INT32, UINT64, Array, Scalar, Struct, Type, Vector, scalar_of


class IRTypeError(TypeError):
    """A node was built with arguments of the wrong types."""


# ---------------------------------------------------------------------------------------------------------
# Expressions


@dataclass(frozen=True, slots=True)
class Const:
    value: float | int | bool
    type: Scalar


@dataclass(frozen=True, slots=True)
class Var:
    """A local, a scalar/struct parameter or a thread index."""

    name: str
    type: Type


@dataclass(frozen=True, slots=True)
class Load:
    """``array[index...]``: ``array`` names an array parameter of type ``array_type``."""

    array: str
    array_type: Array
    index: tuple["Expr", ...]

    def __post_init__(self) -> None:
        if len(self.index) != self.array_type.ndim or any(i.type != INT32 for i in self.index):
            raise IRTypeError(f"Expected {self.array_type.ndim} int32 indices for {self.array} but got "
                              f"{[str(i.type) for i in self.index]}")

    @property
    def type(self) -> Type:
        return self.array_type.dtype


@dataclass(frozen=True, slots=True)
class Call:
    """An operation of the table (``add``, ``sqrt``, ``lt``...) applied to ``args``."""

    op: str
    args: tuple["Expr", ...]
    type: Type = field(default=None, compare=True)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        row = lookup_op(self.op)
        if row.form == "cast":
            raise IRTypeError("use Cast for conversions")
        result = row.result(tuple(a.type for a in self.args))
        if result is None:
            raise IRTypeError(f"Expected argument types accepted by {self.op} but got "
                              f"{[str(a.type) for a in self.args]}")
        if self.type is None:
            object.__setattr__(self, "type", result)
        elif self.type != result:
            raise IRTypeError(f"{self.op}: declared type {self.type} but the table gives {result}")


@dataclass(frozen=True, slots=True)
class Cast:
    """``wp.<type>(value)``: conversion between numeric scalar types (C semantics: truncation, wrap)."""

    value: "Expr"
    type: Scalar

    def __post_init__(self) -> None:
        if lookup_op("cast").result((self.value.type,), self.type) is None:
            raise IRTypeError(f"cannot cast {self.value.type} to {self.type}")


@dataclass(frozen=True, slots=True)
class Component:
    """``value[index]`` of a vector."""

    value: "Expr"
    index: int

    def __post_init__(self) -> None:
        if not isinstance(self.value.type, Vector) or not 0 <= self.index < self.value.type.n:
            raise IRTypeError(f"Expected a vector with a component {self.index} but got {self.value.type}")

    @property
    def type(self) -> Type:
        return scalar_of(self.value.type)


@dataclass(frozen=True, slots=True)
class Attr:
    """``value.field`` of a struct."""

    value: "Expr"
    field: str

    @property
    def type(self) -> Type:
        if not isinstance(self.value.type, Struct):
            raise IRTypeError(f"Expected a struct but got {self.value.type}")
        return self.value.type.field(self.field)


@dataclass(frozen=True, slots=True)
class FuncCall:
    """A call of a ``@wp.func`` helper (overloads are helpers sharing a name)."""

    func: "Func"
    args: tuple["Expr", ...]

    def __post_init__(self) -> None:
        want = tuple(p.type for p in self.func.params)
        got = tuple(a.type for a in self.args)
        if want != got:
            raise IRTypeError(f"{self.func.name}: Expected arguments {list(map(str, want))} but got "
                              f"{list(map(str, got))}")

    @property
    def type(self) -> Type:
        return self.func.ret


Expr = Union[Const, Var, Load, Call, Cast, Component, Attr, FuncCall]


# ---------------------------------------------------------------------------------------------------------
# Statements


@dataclass(frozen=True, slots=True)
class Let:
    """First binding of local ``name``."""

    name: str
    value: Expr


#: operations an :class:`Assign` may print as an augmented assignment (``x += e``), with their spelling
AUGMENTED = {"add": "+", "sub": "-", "mul": "*"}


@dataclass(frozen=True, slots=True)
class Assign:
    """Rebinding of an existing local (same type). ``augmented`` prints ``x = x + e`` as ``x += e`` (also ``-=``,
    ``*=``): the value is still the whole expression, so nothing but the printer sees the difference."""

    name: str
    value: Expr
    augmented: bool = False

    def __post_init__(self) -> None:
        if self.augmented and not (isinstance(self.value, Call) and self.value.op in AUGMENTED
                                   and self.value.args[0] == Var(self.name, self.value.type)):
            raise IRTypeError(f"augmented assignment to {self.name}: Expected {self.name} <op> e with <op> in "
                              f"{sorted(AUGMENTED)} but got {self.value}")


@dataclass(frozen=True, slots=True)
class Store:
    array: str
    array_type: Array
    index: tuple[Expr, ...]
    value: Expr

    def __post_init__(self) -> None:
        if self.value.type != self.array_type.dtype:
            raise IRTypeError(f"store to {self.array}: Expected {self.array_type.dtype} but got {self.value.type}")


@dataclass(frozen=True, slots=True)
class Atomic:
    """``wp.atomic_<kind>(array, index..., value)`` with kind add, sub, min or max (result unused)."""

    kind: str
    array: str
    array_type: Array
    index: tuple[Expr, ...]
    value: Expr

    def __post_init__(self) -> None:
        if self.kind not in ("add", "sub", "min", "max"):
            raise IRTypeError(f"Expected atomic kind add/sub/min/max but got {self.kind!r}")
        if self.value.type != self.array_type.dtype:
            raise IRTypeError(f"atomic on {self.array}: Expected {self.array_type.dtype} but got {self.value.type}")


@dataclass(frozen=True, slots=True)
class If:
    """``if cond: then else: orelse``; an ``orelse`` holding one ``If`` prints as ``elif``."""

    cond: Expr
    then: tuple["Stmt", ...]
    orelse: tuple["Stmt", ...] = ()

    def __post_init__(self) -> None:
        if self.cond.type != BOOL:
            raise IRTypeError(f"Expected a bool condition but got {self.cond.type}")


@dataclass(frozen=True, slots=True)
class For:
    """``for var in range(start, stop, step)`` (int32 bounds)."""

    var: str
    start: Expr
    stop: Expr
    body: tuple["Stmt", ...]
    step: int = 1

    def __post_init__(self) -> None:
        if self.start.type != INT32 or self.stop.type != INT32 or self.step == 0:
            raise IRTypeError("Expected int32 loop bounds and a non-zero step")


@dataclass(frozen=True, slots=True)
class While:
    """``while cond: body``; ``max_trips`` bounds the iterations the generator made sure of."""

    cond: Expr
    body: tuple["Stmt", ...]
    max_trips: int

    def __post_init__(self) -> None:
        if self.cond.type != BOOL:
            raise IRTypeError(f"Expected a bool condition but got {self.cond.type}")


@dataclass(frozen=True, slots=True)
class Break:
    pass


@dataclass(frozen=True, slots=True)
class Continue:
    pass


@dataclass(frozen=True, slots=True)
class Return:
    value: Expr


@dataclass(frozen=True, slots=True)
class GridQuery:
    """A neighbour loop over a ``wp.HashGrid``: ``for var in wp.hash_grid_query(grid, point, radius): body``
    (``style="for"``) or ``query = wp.hash_grid_query(...)``, ``var = int(0)``, ``while
    wp.hash_grid_query_next(query, var): body`` (``style="while"``). ``points`` names the array the grid was
    built from. Warp visits the points of every cell the query box overlaps (a superset of the neighbours), so
    a body must filter by distance itself; the interpreter visits every point of ``points`` (brute force),
    which gives the same result for such bodies. ``max_hits`` bounds the points a body's filter lets through
    (the generator made sure of it), which is what the interval engine iterates."""

    grid: Expr
    point: Expr
    radius: Expr
    var: str
    points: str
    body: tuple["Stmt", ...]
    max_hits: int
    style: str = "for"
    query: str = "query"

    def __post_init__(self) -> None:
        if self.grid.type != UINT64 or self.radius.type != scalar_of(self.point.type) or self.style not in (
                "for", "while"):
            raise IRTypeError(f"Expected a uint64 grid, a radius of the point's scalar type and style for/while "
                              f"but got {self.grid.type}, {self.radius.type}, {self.style!r}")


Stmt = Union[Let, Assign, Store, Atomic, If, For, While, Break, Continue, Return, GridQuery]


# ---------------------------------------------------------------------------------------------------------
# Functions and kernels


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: Type


@dataclass(frozen=True, slots=True)
class Func:
    """A ``@wp.func`` helper returning ``ret``."""

    name: str
    params: tuple[Param, ...]
    ret: Type
    body: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True)
class Kernel:
    """A ``@wp.kernel``: parameters, thread index names (``i = wp.tid()``), body, the helpers it calls and the
    structs it uses (both printed before it, in order); ``options`` are keyword arguments of the decorator
    (``(("enable_backward", False),)`` prints ``@wp.kernel(enable_backward=False)``)."""

    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    tids: tuple[str, ...] = ("i",)
    funcs: tuple[Func, ...] = ()
    structs: tuple[Struct, ...] = ()
    options: tuple[tuple[str, object], ...] = ()

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(f"kernel {self.name} has no parameter {name!r}")


def const(value: float | int | bool, ty: Scalar) -> Const:
    return Const(value, ty)


def call(op_name: str, *args: Expr) -> Call:
    return Call(op_name, tuple(args))


def children(e: Expr) -> tuple[Expr, ...]:
    """Direct sub-expressions."""
    if isinstance(e, (Call, FuncCall)):
        return e.args
    if isinstance(e, Load):
        return e.index
    if isinstance(e, (Cast, Component, Attr)):
        return (e.value,)
    return ()


def stmt_exprs(s: Stmt) -> tuple[Expr, ...]:
    """Expressions a statement evaluates itself (not those of nested blocks)."""
    if isinstance(s, (Let, Assign, Return)):
        return (s.value,)
    if isinstance(s, (Store, Atomic)):
        return (*s.index, s.value)
    if isinstance(s, (If, While)):
        return (s.cond,)
    if isinstance(s, For):
        return (s.start, s.stop)
    if isinstance(s, GridQuery):
        return (s.grid, s.point, s.radius)
    return ()


def blocks(s: Stmt) -> tuple[tuple[Stmt, ...], ...]:
    """Nested statement blocks."""
    if isinstance(s, If):
        return (s.then, s.orelse)
    if isinstance(s, (For, While, GridQuery)):
        return (s.body,)
    return ()
