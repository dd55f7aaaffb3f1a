"""Analyses over the IR: uses, liveness and dead-code removal, folding unused values into an output, and the
source-hygiene checks (self-comparisons such as ``x <= x``, identity operations such as ``x - 0``, ``0 + x``,
``x * 1``, unused helpers) that generators fold away or redraw, and that tests assert never reach a record.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Iterable, Iterator

from kernels.ir import nodes as n
from kernels.ir.ops import ALIASES
from kernels.ir.types import BOOL, Array, Scalar

#: operations that two equal arguments make a constant, a copy or a simpler operation (``x - x``, ``x / x``,
#: ``min(x, x)``, ``atan2(x, x)``, ``copysign(x, x)``, ``clamp(x, x, h)``, ``lerp(a, a, t)``...)
SELF_OPS = frozenset({"lt", "le", "gt", "ge", "eq", "ne", "sub", "div", "floordiv", "mod", "min", "max",
                      "and", "or", "bit_and", "bit_or", "bit_xor", "atan2", "pow", "copysign", "clamp", "lerp",
                      "smoothstep", "pow_op", "mod_fn", "floordiv_fn"})


def subexprs(e: n.Expr) -> Iterator[n.Expr]:
    """``e`` and every expression inside it (helper bodies excluded)."""
    yield e
    for c in n.children(e):
        yield from subexprs(c)


def depth(e: n.Expr) -> int:
    """Operations on the longest path from ``e`` to a leaf (a leaf has depth 0)."""
    below = [depth(c) for c in n.children(e) if not isinstance(e, n.Load)]
    return (1 + max(below)) if below and isinstance(e, (n.Call, n.FuncCall)) else max(below, default=0)


def size(e: n.Expr) -> int:
    """Number of operations (calls of the table or of helpers) in ``e``."""
    return sum(isinstance(x, (n.Call, n.FuncCall)) for x in subexprs(e))


def reads(exprs: Iterable[n.Expr], name: str) -> int:
    """How many times ``exprs`` (and what is inside them) read local ``name``."""
    return sum(isinstance(x, n.Var) and x.name == name for e in exprs for x in subexprs(e))


def uses(e: n.Expr) -> set[str]:
    """Names ``e`` reads: locals, parameters and loaded arrays."""
    out: set[str] = set()
    for x in subexprs(e):
        if isinstance(x, n.Var):
            out.add(x.name)
        elif isinstance(x, n.Load):
            out.add(x.array)
    return out


def statements(body: tuple[n.Stmt, ...]) -> Iterator[n.Stmt]:
    """Every statement of ``body``, nested blocks included, in source order."""
    for s in body:
        yield s
        for b in n.blocks(s):
            yield from statements(b)


def expressions(body: tuple[n.Stmt, ...]) -> Iterator[n.Expr]:
    for s in statements(body):
        for e in n.stmt_exprs(s):
            yield from subexprs(e)


def op_names(kernel: n.Kernel) -> list[str]:
    """The table operations a kernel and its helpers use, sorted (casts as ``cast``)."""
    body = kernel.body + tuple(s for f in kernel.funcs for s in f.body)
    return sorted({x.op if isinstance(x, n.Call) else "cast" for x in expressions(body)
                   if isinstance(x, (n.Call, n.Cast))})


def _base(e: n.Call) -> str:
    """The operation a call is read as: an alias row (``ivmin``) as the row it aliases (``min``)."""
    return ALIASES.get(e.op, e.op)


def _is_const(e: n.Expr, value: float) -> bool:
    return isinstance(e, n.Const) and not isinstance(e.value, bool) and e.value == value


def is_identity(e: n.Expr) -> bool:
    """``x + 0``, ``0 + x``, ``x - 0``, ``x * 1``, ``1 * x``, ``x / 1``, ``x // 1``, ``x | 0``, ``x ^ 0``,
    ``x << 0``, ``x >> 0``, ``-(-x)``, ``where(c, x, x)``, ``x if c else x`` and casts to the same type:
    operations that return an argument unchanged."""
    if isinstance(e, n.Cast):
        return e.type == e.value.type
    if not isinstance(e, n.Call):
        return False
    a, op = e.args, _base(e)
    if op in ("add", "bit_or", "bit_xor"):
        return _is_const(a[0], 0) or _is_const(a[1], 0)
    if op in ("sub", "lshift", "rshift"):
        return _is_const(a[1], 0)
    if op == "mul":
        return _is_const(a[0], 1) or _is_const(a[1], 1)
    if op in ("div", "floordiv"):
        return _is_const(a[1], 1)
    if op == "neg":
        return isinstance(a[0], n.Call) and a[0].op == "neg"
    if op in ("where", "ifexp"):
        return a[1] == a[2]
    return False


def is_absorbed(e: n.Expr) -> bool:
    """``max(x, min(x, y))`` or ``min(x, max(x, y))`` (in any order), always ``x``; ``abs(-x)`` or
    ``abs(abs(x))``, always ``abs(x)``."""
    if isinstance(e, n.Call) and _base(e) == "abs":
        return isinstance(e.args[0], n.Call) and _base(e.args[0]) in ("neg", "abs")
    if not (isinstance(e, n.Call) and _base(e) in ("min", "max")):
        return False
    other = "max" if _base(e) == "min" else "min"
    for a, b in (e.args, e.args[::-1]):
        if isinstance(b, n.Call) and _base(b) == other and a in b.args:
            return True
    return False


def is_double_negation(e: n.Expr) -> bool:
    """``x - (-c)``, ``x + (-c)`` for a negative constant ``-c``, or ``x + -y``, ``x - -y``: a person writes
    ``x + c``, ``x - c``, ``x - y``, ``x + y``."""
    if not (isinstance(e, n.Call) and e.op in ("add", "sub")):
        return False
    b = e.args[1]
    negative = isinstance(b, n.Const) and not isinstance(b.value, bool) and b.value < 0
    return negative or (isinstance(b, n.Call) and b.op == "neg")


def is_self_operation(e: n.Expr) -> bool:
    """A comparison or operation of a value with itself (``x <= x``, ``x - x``, ``min(x, x)``)."""
    return isinstance(e, n.Call) and _base(e) in SELF_OPS and len(set(e.args)) < len(e.args)


def simplify(e: n.Expr) -> n.Expr:
    """``e`` with identity operations folded away, bottom-up."""
    if isinstance(e, n.Call):
        e = n.Call(e.op, tuple(simplify(a) for a in e.args))
        if is_identity(e):
            a = e.args
            if e.op == "neg":
                return a[0].args[0]
            if e.op in ("where", "ifexp"):
                return a[1]
            unit = 1 if e.op == "mul" else 0
            left_is_unit = e.op in ("add", "mul", "bit_or", "bit_xor") and _is_const(a[0], unit)
            return a[1] if left_is_unit else a[0]
    elif isinstance(e, n.Cast):
        inner = simplify(e.value)
        return inner if inner.type == e.type else n.Cast(inner, e.type)
    return e


# ---------------------------------------------------------------------------------------------------------
# Liveness


def remove_dead(kernel: n.Kernel) -> n.Kernel:
    """``kernel`` without bindings whose value is never read (every expression is pure), and without helpers
    it no longer calls."""
    body, _ = _live_block(kernel.body, set(), frozenset())
    called = {x.func for x in expressions(body) if isinstance(x, n.FuncCall)}
    return replace(kernel, body=body, funcs=tuple(f for f in kernel.funcs if f in called))


def _live_block(body, live: set[str], loop_live: frozenset[str]) -> tuple[tuple[n.Stmt, ...], set[str]]:
    out: list[n.Stmt] = []
    for s in reversed(body):
        kept, live = _live_stmt(s, live, loop_live)
        if kept is not None:
            out.append(kept)
    return tuple(reversed(out)), live


def draws(e: n.Expr) -> bool:
    """Whether ``e`` calls a random builtin (which advances its state: the call is not pure)."""
    from kernels.ir.ops import OPS
    return any(isinstance(x, n.Call) and OPS[x.op].draws for x in subexprs(e))


def _live_stmt(s: n.Stmt, live: set[str], loop_live: frozenset[str]):
    if isinstance(s, n.Unpack):
        if not live & set(s.names) and not draws(s.value):
            return None, live
        return s, (live - set(s.names)) | uses(s.value)
    if isinstance(s, (n.Let, n.Assign)):
        if s.name not in live and not draws(s.value):
            return None, live
        return s, (live - {s.name}) | uses(s.value)
    if isinstance(s, n.LetOut):              # the out argument is read: its declaration must stay
        if s.name not in live and s.out not in live:
            return None, live
        return s, (live - {s.name}) | uses(s.value) | {s.out}
    if isinstance(s, (n.SetElement, n.SetAttr)):   # reads the rest of the local: it stays live
        return (s, live | uses(s.value)) if s.name in live else (None, live)
    if isinstance(s, (n.Break, n.Continue)):
        return s, live | loop_live
    if isinstance(s, n.Return):
        return s, uses(s.value) if s.value is not None else live
    if isinstance(s, n.If):
        then, lt = _live_block(s.then, set(live), loop_live)
        orelse, le = _live_block(s.orelse, set(live), loop_live)
        return replace(s, then=then, orelse=orelse), lt | le | uses(s.cond)
    if isinstance(s, (n.For, n.While, n.GridQuery, n.TileQuery)):
        head = set(live)
        while True:
            body, entry = _live_block(s.body, head | live, frozenset(head | live))
            new = head | entry | (uses(s.cond) if isinstance(s, n.While) else set())
            if new == head:
                break
            head = new
        if isinstance(s, n.For):
            return replace(s, body=body), (head - {s.var}) | uses(s.start) | uses(s.stop)
        if isinstance(s, (n.GridQuery, n.TileQuery)):
            return replace(s, body=body), (head - {s.var}) | set().union(*map(uses, n.stmt_exprs(s)))
        return replace(s, body=body), head
    if isinstance(s, n.Atomic) and s.result is not None:
        live = live - {s.result}
    return s, live | set().union(*(uses(e) for e in n.stmt_exprs(s)))


def dead_locals(kernel: n.Kernel) -> list[str]:
    """Names bound by statements that :func:`remove_dead` would remove."""
    before = [s for s in statements(kernel.body)
              if isinstance(s, (n.Let, n.Assign, n.LetOut, n.SetElement, n.SetAttr))]
    after = {id(s) for s in statements(remove_dead(kernel).body)}
    return [s.name for s in before if id(s) not in after]


def reaching(kernel: n.Kernel) -> set[str]:
    """Names that influence some array write or control decision (through any chain of bindings)."""
    deps: dict[str, set[str]] = {}
    roots: set[str] = set()
    for s in statements(kernel.body):
        if isinstance(s, (n.Let, n.Assign, n.SetElement, n.SetAttr)):
            deps.setdefault(s.name, set()).update(uses(s.value))
        elif isinstance(s, (n.LetOut, n.Unpack)):
            for name in ((s.name, s.out) if isinstance(s, n.LetOut) else s.names):
                deps.setdefault(name, set()).update(uses(s.value))
        elif isinstance(s, (n.Store, n.Atomic)):
            roots |= set().union(*(uses(e) for e in n.stmt_exprs(s))) | {s.array}
            if isinstance(s, n.Atomic) and s.result is not None:     # the old value read from the array
                deps.setdefault(s.result, set()).add(s.array)
        else:
            roots |= set().union(set(), *(uses(e) for e in n.stmt_exprs(s)))
    live, frontier = set(), set(roots)
    while frontier:
        v = frontier.pop()
        if v not in live:
            live.add(v)
            frontier |= deps.get(v, set())
    return live


def fold_unused(kernel: n.Kernel, op: str = "add") -> n.Kernel:
    """Fold top-level locals and scalar inputs that reach no output into the last top-level scalar store
    (``out[i] = v`` becomes ``out[i] = v + unused``, cast to the output's type), so no value is computed for
    nothing. Stored arrays and inputs that are read nowhere cannot be folded and are left as they are."""
    stores = [k for k, s in enumerate(kernel.body) if isinstance(s, n.Store) and isinstance(s.value.type, Scalar)]
    if not stores:
        return kernel
    candidates = [(s.name, s.value.type) for s in kernel.body if isinstance(s, n.Let)]
    candidates += [(p.name, p.type.dtype) for p in kernel.params if isinstance(p.type, Array)]
    candidates += [(p.name, p.type) for p in kernel.params if isinstance(p.type, Scalar)]
    last = stores[-1]
    store = kernel.body[last]
    value = store.value
    for name, ty in candidates:
        probe = replace(kernel, body=kernel.body[:last] + (replace(store, value=value),) + kernel.body[last + 1:])
        if name in reaching(probe) or name == store.array or not isinstance(ty, Scalar) or ty == BOOL:
            continue
        term: n.Expr = n.Var(name, ty)
        if any(p.name == name and isinstance(p.type, Array) for p in kernel.params):
            term = n.Load(name, kernel.param(name).type, store.index)
        if term.type != value.type:
            term = n.Cast(term, value.type)
        value = n.Call(op, (value, term))
    body = kernel.body[:last] + (replace(store, value=value),) + kernel.body[last + 1:]
    return replace(kernel, body=body)


def hygiene(kernel: n.Kernel) -> dict[str, list]:
    """Source-hygiene findings: dead locals, self-operations, identity operations, unused helpers."""
    exprs = list(expressions(kernel.body))
    for f in kernel.funcs:
        exprs += list(expressions(f.body))
    called = {x.func.name for x in exprs if isinstance(x, n.FuncCall)}
    return {
        "dead_locals": dead_locals(kernel),
        "self_operations": [x for x in exprs if is_self_operation(x)],
        "identity_operations": [x for x in exprs if is_identity(x)],
        "unused_helpers": [f.name for f in kernel.funcs if f.name not in called],
    }


def substitute(node, mapping: dict):
    """``node`` (a statement, an expression or a tuple of them) with every sub-expression found in ``mapping``
    replaced; helpers (``FuncCall.func``) and ``wp.static`` values are left as they are."""
    if isinstance(node, tuple):
        out = tuple(substitute(x, mapping) for x in node)
        return node if all(a is b for a, b in zip(out, node)) else out
    if not is_dataclass(node) or isinstance(node, (n.Func, n.Static)) or type(node).__module__ != n.__name__:
        return node
    try:
        hit = mapping.get(node)
    except TypeError:                      # an unhashable node holds no expression of the mapping
        hit = None
    if hit is not None:
        return hit
    changes = {}
    for f in fields(node):
        value = getattr(node, f.name)
        made = substitute(value, mapping)
        if made is not value:
            changes[f.name] = made
    return replace(node, **changes) if changes else node


def capture(kernel: n.Kernel, names: Iterable[str], factory: str, bare: bool = False, limit: int = 2) -> n.Kernel:
    """``kernel`` made by a Python factory (a closure): up to ``limit`` of its int32/float32 literals, the first
    in the body, become the factory's parameters (the first of ``names`` the kernel does not use already, in
    order), read as ``wp.static(name)`` or, with ``bare``, as ``name``. A kernel without such literals (or
    without a free name) is returned as it is."""
    from kernels.ir.types import FLOAT32, INT32
    taken = {p.name for p in kernel.params} | set(kernel.tids) | {f.name for f in kernel.funcs}
    taken |= {x.name for x in expressions(kernel.body) if isinstance(x, n.Var)}
    taken |= {getattr(s, a) for s in statements(kernel.body) for a in ("name", "var", "result", "query")
              if isinstance(getattr(s, a, None), str)}
    taken |= {x for s in statements(kernel.body) if isinstance(s, n.Unpack) for x in s.names}
    names = [x for x in names if x not in taken]
    consts: list[n.Const] = []
    for x in expressions(kernel.body):
        if isinstance(x, n.Const) and x.type in (INT32, FLOAT32) and x not in consts and len(consts) < limit:
            consts.append(x)
    consts = consts[:len(names)]
    if not consts:
        return kernel
    names = names[:len(consts)]
    mapping = {c: n.Static(name, c, bare=bare) for name, c in zip(names, consts)}
    body = substitute(kernel.body, mapping)
    return replace(kernel, body=body,
                   factory=n.Factory(factory, kernel.name, tuple((name, c) for name, c in zip(names, consts))))
