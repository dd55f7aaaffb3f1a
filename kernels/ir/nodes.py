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
from kernels.ir.types import BOOL, FLOAT32, INT32, UINT64, Array, Scalar, Struct, Type, Vector, scalar_of
from kernels.ir.types import Matrix, Quat, Transform


class IRTypeError(TypeError):
    """A node was built with arguments of the wrong types."""


#: conversions Warp also accepts under Python's names (``float(x)`` is ``wp.float32(x)``)
PYTHON_CASTS = {FLOAT32: "float", INT32: "int"}


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
    """``wp.<type>(value)``: conversion between numeric scalar types (C semantics: truncation, wrap). ``python``
    prints a float32 or int32 conversion the way much Warp code writes it, ``float(value)`` / ``int(value)``."""

    value: "Expr"
    type: Scalar
    python: bool = False

    def __post_init__(self) -> None:
        if lookup_op("cast").result((self.value.type,), self.type) is None:
            raise IRTypeError(f"cannot cast {self.value.type} to {self.type}")
        if self.python and self.type not in PYTHON_CASTS:
            raise IRTypeError(f"Expected a python-spelled cast to one of {sorted(PYTHON_CASTS.values())} "
                              f"but got {self.type}")


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


@dataclass(frozen=True, slots=True)
class ShapeOf:
    """``array.shape[dim]`` of an array parameter (int32)."""

    array: str
    array_type: Array
    dim: int

    def __post_init__(self) -> None:
        if not 0 <= self.dim < self.array_type.ndim:
            raise IRTypeError(f"{self.array} has {self.array_type.ndim} dimensions, not a dimension {self.dim}")

    @property
    def type(self) -> Type:
        return INT32



#: attribute names of components (``v.x``) and of a transform's parts (``t.p``, ``t.q``)
COMPONENT_NAMES = "xyzw"
TRANSFORM_PARTS = "pq"


def element_type(ty: Type, index: tuple[int, ...]) -> Type | None:
    """The type of ``value[index]``: a component of a vector or quaternion, an entry (two indices) or a row (one)
    of a matrix, a transform's position (0) or rotation (1); None where there is no such element."""
    k = len(index)
    if isinstance(ty, (Vector, Quat)) and k == 1 and 0 <= index[0] < ty.shape[0]:
        return ty.scalar
    if isinstance(ty, Matrix) and k == 2 and 0 <= index[0] < ty.rows and 0 <= index[1] < ty.cols:
        return ty.scalar
    if isinstance(ty, Matrix) and k == 1 and 0 <= index[0] < ty.rows:
        return Vector(ty.scalar, ty.cols)
    if isinstance(ty, Transform) and k == 1 and index[0] in (0, 1):
        return Vector(ty.scalar, 3) if index[0] == 0 else Quat(ty.scalar)
    return None


#: how an element is written: ``v[0]``/``m[1, 2]`` ("index"), ``v.x``/``t.p`` ("attr"), ``m[1][2]`` ("chain")
STYLES = ("index", "attr", "chain")


def _check_element(ty: Type, index: tuple[int, ...], style: str) -> None:
    if element_type(ty, index) is None or style not in STYLES:
        raise IRTypeError(f"Expected an element index of {ty} but got {index} ({style})")
    if style == "attr" and not (isinstance(ty, Transform) or (len(index) == 1 and isinstance(ty, (Vector, Quat))
                                                               and ty.shape[0] <= 4)):
        raise IRTypeError(f"{ty} has no attribute for element {index}")
    if style == "chain" and len(index) != 2:
        raise IRTypeError(f"Expected two indices for m[i][j] but got {index}")
    if isinstance(ty, Transform) and style != "attr":
        raise IRTypeError("a transform's parts are written t.p and t.q")


@dataclass(frozen=True, slots=True)
class Element:
    """``value[k]``, ``value.x``, ``m[i, j]``, ``m[i][j]``, ``m[i]`` (a row), ``t.p``/``t.q`` (constant indices)."""

    value: "Expr"
    index: tuple[int, ...]
    style: str = "index"

    def __post_init__(self) -> None:
        _check_element(self.value.type, self.index, self.style)

    @property
    def type(self) -> Type:
        return element_type(self.value.type, self.index)


Expr = Union[Const, Var, Load, Call, Cast, Component, Attr, FuncCall, ShapeOf, Element]


# ---------------------------------------------------------------------------------------------------------
# Statements


@dataclass(frozen=True, slots=True)
class Let:
    """First binding of local ``name``."""

    name: str
    value: Expr


#: operations an :class:`Assign` may print as an augmented assignment (``x += e``), with their spelling
AUGMENTED = {"add": "+", "sub": "-", "mul": "*", "bit_and": "&", "bit_or": "|", "bit_xor": "^", "lshift": "<<",
             "rshift": ">>"}


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


#: kinds of ``wp.atomic_<kind>``
ATOMIC_KINDS = ("add", "sub", "min", "max", "and", "or", "xor", "exch", "cas")
#: atomics Warp also spells as an augmented assignment to an array element, with the operator
INPLACE_ATOMICS = {"add": "+", "sub": "-", "and": "&", "or": "|", "xor": "^"}


@dataclass(frozen=True, slots=True)
class Atomic:
    """``wp.atomic_<kind>(array, index..., value)`` (``cas``: ``array, index..., compare, value``); with
    ``result`` the old value is bound to that new local (``old = wp.atomic_cas(...)``), else it is unused."""

    kind: str
    array: str
    array_type: Array
    index: tuple[Expr, ...]
    value: Expr
    result: str | None = None
    compare: Expr | None = None
    inplace: bool = False       # printed ``array[index] += value`` (also -=, &=, |=, ^=), which Warp makes atomic

    def __post_init__(self) -> None:
        if self.inplace and (self.kind not in INPLACE_ATOMICS or self.result is not None):
            raise IRTypeError(f"atomic_{self.kind} with its old value used has no in-place spelling")
        if self.kind not in ATOMIC_KINDS:
            raise IRTypeError(f"Expected an atomic kind in {ATOMIC_KINDS} but got {self.kind!r}")
        if self.value.type != self.array_type.dtype:
            raise IRTypeError(f"atomic on {self.array}: Expected {self.array_type.dtype} but got {self.value.type}")
        if (self.kind == "cas") != (self.compare is not None) or (
                self.compare is not None and self.compare.type != self.array_type.dtype):
            raise IRTypeError(f"atomic_{self.kind} on {self.array}: a compare value of {self.array_type.dtype} "
                              f"goes with cas only")
        if self.kind in ("and", "or", "xor") and not scalar_of(self.array_type.dtype).is_int:
            raise IRTypeError(f"atomic_{self.kind} needs an integer array, not {self.array_type.dtype}")


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
    """``return value`` from a helper; ``value`` None: a bare ``return`` (a kernel's thread stops early)."""

    value: Expr | None


@dataclass(frozen=True, slots=True)
class LetOut:
    """``name = value`` where the builtin ``value`` also writes a second result into the existing local ``out``,
    passed as its last source argument (``s = wp.volume_sample_grad_f(vol, uvw, wp.Volume.LINEAR, g)``); the row's
    ``writes`` is the type of that result."""

    name: str
    value: Call
    out: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, Call) or lookup_op(self.value.op).writes is None:
            raise IRTypeError(f"Expected a call of a row that writes an out argument but got {self.value}")



@dataclass(frozen=True, slots=True)
class SetElement:
    """``name[k] = value``, ``name.x = value``, ``name[i, j] = value``: one scalar element of local ``name`` (of
    type ``type``, a vector, quaternion or matrix) is replaced; the rest of the local is kept."""

    name: str
    type: Type
    index: tuple[int, ...]
    value: Expr
    style: str = "index"

    def __post_init__(self) -> None:
        _check_element(self.type, self.index, self.style)
        if element_type(self.type, self.index) != self.value.type or not isinstance(self.value.type, Scalar):
            raise IRTypeError(f"{self.name}{list(self.index)}: Expected a {element_type(self.type, self.index)} "
                              f"scalar but got {self.value.type}")


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


#: tile queries: (constructor, step) builtins of each kind, and the geometry arrays each reads
TILE_QUERIES = {"aabb": ("wp.tile_bvh_query_aabb", "wp.tile_bvh_query_next"),
                "ray": ("wp.tile_bvh_query_ray", "wp.tile_bvh_query_next"),
                "mesh_aabb": ("wp.tile_mesh_query_aabb", "wp.tile_mesh_query_aabb_next")}


@dataclass(frozen=True, slots=True)
class TileQuery:
    """A block-cooperative BVH or mesh query in a kernel launched with ``wp.launch_tiled``::

        query = wp.tile_bvh_query_aabb(structure, a, b)      # _ray(structure, start, dir); tile_mesh_query_aabb
        while wp.tile_query_valid(query):
            var = wp.untile(wp.tile_bvh_query_next(query))  # style "tile": the tile is a local of its own first
            if var >= 0:
                body

    Each step hands every thread of the block one result (or a negative value); over the loop the block sees
    every box (triangle) the query reports exactly once, in an unspecified order. ``geometry`` names the inputs the
    structure was built from (``lowers, uppers`` of the boxes; ``points, indices`` of a mesh), parameters or aux
    inputs; ``max_hits`` is their count. The interpreter runs the body over every (block, item) pair the query
    reports (brute force membership, closed box overlap; for rays Warp's slab test ``lmax >= 0 and lmax >= lmin``),
    so bodies write only what does not depend on that order (atomics, idempotent stores)."""

    kind: str
    structure: Expr
    a: Expr
    b: Expr
    var: str
    geometry: tuple[str, str]
    body: tuple["Stmt", ...]
    max_hits: int
    style: str = "untile"
    query: str = "query"
    tile: str = "hits"

    def __post_init__(self) -> None:
        vec3 = Vector(FLOAT32, 3)
        if self.kind not in TILE_QUERIES or self.structure.type != UINT64 or self.a.type != vec3 or \
                self.b.type != vec3 or self.style not in ("untile", "tile"):
            raise IRTypeError(f"Expected a kind in {sorted(TILE_QUERIES)}, a uint64 structure, two vec3 and style "
                              f"untile/tile but got {self.kind!r}, {self.structure.type}, {self.a.type}, "
                              f"{self.b.type}, {self.style!r}")


Stmt = Union[Let, Assign, Store, Atomic, If, For, While, Break, Continue, Return, LetOut, SetElement, GridQuery,
             TileQuery]


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
    generic: bool = False        # parameters printed ``typing.Any`` (one definition serves every instance)
    factory: "Factory | None" = None   # made by a Python factory function capturing constants (a closure)


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
    #: keyword options of the decorator, e.g. ``(("enable_backward", False),)`` -> ``@wp.kernel(enable_backward=False)``
    options: tuple[tuple[str, object], ...] = ()
    #: array parameters printed ``wp.array(dtype=Any)`` (a generic kernel), with their concrete types declared
    #: by ``wp.overload(kernel, {...})`` after it
    generic: tuple[str, ...] = ()
    #: made by a Python factory function whose parameters the body reads (``wp.static(k)`` or ``k``): a closure
    factory: "Factory | None" = None

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
    if isinstance(e, (Cast, Component, Attr, Element)):
        return (e.value,)
    if isinstance(e, MakeTuple):
        return e.values
    if isinstance(e, FieldLoad):
        return (e.value, e.index)
    if isinstance(e, New):
        return e.args
    return ()


def stmt_exprs(s: Stmt) -> tuple[Expr, ...]:
    """Expressions a statement evaluates itself (not those of nested blocks)."""
    if isinstance(s, Return) and s.value is None:
        return ()
    if isinstance(s, (Let, Assign, Return, LetOut, SetElement, Unpack, SetAttr)):
        return (s.value,)
    if isinstance(s, Atomic) and s.compare is not None:
        return (*s.index, s.compare, s.value)
    if isinstance(s, (Store, Atomic)):
        return (*s.index, s.value)
    if isinstance(s, (If, While)):
        return (s.cond,)
    if isinstance(s, For):
        return (s.start, s.stop)
    if isinstance(s, GridQuery):
        return (s.grid, s.point, s.radius)
    if isinstance(s, TileQuery):
        return (s.structure, s.a, s.b)
    return ()


def blocks(s: Stmt) -> tuple[tuple[Stmt, ...], ...]:
    """Nested statement blocks."""
    if isinstance(s, If):
        return (s.then, s.orelse)
    if isinstance(s, (For, While, GridQuery, TileQuery)):
        return (s.body,)
    return ()


# ---------------------------------------------------------------------------------------------------------
# Helpers with several results, compile-time constants and closures


@dataclass(frozen=True, slots=True)
class MakeTuple:
    """``a, b`` in ``return a, b`` (only as a helper's returned value)."""

    values: tuple[Expr, ...]

    @property
    def type(self) -> Type:
        from kernels.ir.types import TupleOf
        return TupleOf(tuple(v.type for v in self.values))


@dataclass(frozen=True, slots=True)
class Unpack:
    """``a, b = helper(...)``: first binding of one local per value of a helper's tuple result."""

    names: tuple[str, ...]
    value: Expr

    def __post_init__(self) -> None:
        items = getattr(self.value.type, "items", None)
        if items is None or len(items) != len(self.names):
            raise IRTypeError(f"Expected a tuple of {len(self.names)} values but got {self.value.type}")


@dataclass(frozen=True, slots=True)
class Static:
    """A value Warp computes at code-generation time: ``wp.static(text)`` (``text`` a Python expression over
    module constants ``consts`` or captured closure variables), or, with ``bare``, a captured variable read
    directly (``k``). Its value is ``value``."""

    text: str
    value: Const
    consts: tuple[tuple[str, float | int], ...] = ()
    bare: bool = False

    @property
    def type(self) -> Type:
        return self.value.type


@dataclass(frozen=True, slots=True)
class Factory:
    """How a closure helper is made: ``def <name>(<param>...):`` defines the helper (as ``inner``) and returns
    it; the module binds the helper's name to ``<name>(<value>...)``."""

    name: str
    inner: str
    captures: tuple[tuple[str, Const], ...]


# ---------------------------------------------------------------------------------------------------------
# Structs: default construction and field assignment


@dataclass(frozen=True, slots=True)
class New:
    """``S()``: a ``@wp.struct`` value with every field zero (Warp's default constructor), or ``S(a, b)``."""

    struct: Struct
    args: tuple[Expr, ...] = ()      # ``S(a, b)``: Warp's positional constructor, one value per field in order

    def __post_init__(self) -> None:
        if self.args and tuple(a.type for a in self.args) != tuple(t for _, t in self.struct.fields):
            raise IRTypeError(f"{self.struct.name}(...): Expected {[str(t) for _, t in self.struct.fields]} but got "
                              f"{[str(a.type) for a in self.args]}")

    @property
    def type(self) -> Type:
        return self.struct


def field_type(ty: Type, path: tuple[str, ...]) -> Type:
    """The type of field ``path`` (``("a", "b")`` is ``.a.b``) of struct type ``ty``."""
    for name in path:
        if not isinstance(ty, Struct):
            raise IRTypeError(f"Expected a struct before .{name} but got {ty}")
        ty = ty.field(name)
    return ty


@dataclass(frozen=True, slots=True)
class SetAttr:
    """``name.a.b = value``: one (nested) field of local struct ``name`` (of type ``type``) is replaced; the
    other fields are kept. A helper's struct parameter is its own copy (Warp passes structs by value)."""

    name: str
    type: Struct
    path: tuple[str, ...]
    value: Expr
    augmented: bool = False      # printed ``name.a += e`` (the value is still ``name.a + e``, see Assign)
    component: int | None = None     # ``name.a[k] = e``: one component of a vector field

    def __post_init__(self) -> None:
        if self.component is not None:
            ty = field_type(self.type, self.path)
            if not isinstance(ty, Vector) or not 0 <= self.component < ty.n or self.value.type != ty.scalar \
                    or self.augmented:
                raise IRTypeError(f"{self.name}.{'.'.join(self.path)}[{self.component}]: Expected a component of a "
                                  f"vector field but got {ty} and {self.value.type}")
            return
        if not self.path or field_type(self.type, self.path) != self.value.type:
            raise IRTypeError(f"{self.name}.{'.'.join(self.path)}: Expected a "
                              f"{field_type(self.type, self.path) if self.path else 'field'} but got "
                              f"{self.value.type}")
        if self.augmented and not (isinstance(self.value, Call) and self.value.op in AUGMENTED
                                   and self.value.args[0] == self.target()):
            raise IRTypeError(f"augmented assignment to {self.name}.{'.'.join(self.path)}: Expected the field "
                              f"<op> e but got {self.value}")

    def target(self) -> Expr:
        """The field as an expression (``Attr`` chain on the local)."""
        e: Expr = Var(self.name, self.type)
        for name in self.path:
            e = Attr(e, name)
        return e if self.component is None else Component(e, self.component)


@dataclass(frozen=True, slots=True)
class FieldLoad:
    """``value.field[index]``: an element of an array field of a struct (``size`` elements, what the interval
    engine checks the index against)."""

    value: Expr
    field: str
    index: Expr
    size: int

    def __post_init__(self) -> None:
        ty = Attr(self.value, self.field).type
        if not isinstance(ty, Array) or ty.ndim != 1 or self.index.type != INT32:
            raise IRTypeError(f"Expected a 1-d array field and an int32 index but got {ty}, {self.index.type}")

    @property
    def type(self) -> Type:
        return Attr(self.value, self.field).type.dtype
