"""The one NumPy interpreter: runs a kernel over all threads at once, the default reference of IR families.

Every value is an array with one row per thread (``tid`` is an index array). Control flow is lane masks:
``if``/``else`` run both branches under complementary masks, loops iterate while any lane is active, and
``break``/``continue``/``return`` clear lanes from the running mask until the loop iteration, the loop or the
helper call ends. Stores and atomics write only active lanes. Operations are the table's NumPy
implementations, so Warp's semantics live in :mod:`kernels.ir.ops` and nowhere else.

``exact=True`` rounds float32 results to float32 after every operation (what Warp computes); ``exact=False``
keeps float32 in float64 (a smooth reference for finite differences and the verifier's conditioning test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from kernels.ir import nodes as n
from kernels.ir import queries
from kernels.ir.analysis import statements, subexprs
from kernels.ir.numeric import advanced
from kernels.ir.ops import OPS, Ctx
from kernels.ir.types import Array, Struct, Transform, elem_shape, round_to, scalar_of

MAX_TRIPS = 1_000_000


class InterpError(RuntimeError):
    """The program did something the IR forbids (out-of-bounds index, unbounded loop)."""


@dataclass(slots=True)
class _Frame:
    """Locals and control flags of one kernel body or helper call."""

    env: dict[str, object]
    lanes: int
    broken: np.ndarray | None = None       # lanes that left the innermost loop
    continued: np.ndarray | None = None    # lanes that skipped the rest of this iteration
    returned: np.ndarray | None = None     # lanes that returned (helpers)
    result: np.ndarray | None = None

    def running(self) -> np.ndarray:
        out = np.ones(self.lanes, dtype=bool)
        for flags in (self.broken, self.continued, self.returned):
            if flags is not None:
                out &= ~flags
        return out


class Interpreter:
    """Evaluates one kernel on concrete inputs."""

    def __init__(self, kernel: n.Kernel, exact: bool = True) -> None:
        self.kernel = kernel
        self.exact = exact
        self.arrays: dict[str, np.ndarray] = {}
        self.geometry: dict[str, np.ndarray] = {}
        #: ids of the statement blocks some lane has entered, over every run of this interpreter
        self.reached: set[int] = set()

    def run(self, dim: tuple[int, ...], inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Launch over ``dim`` threads; returns every array parameter's final contents (NumPy dtype of the
        array's components when ``exact``, float64 for float arrays otherwise)."""
        lanes = int(np.prod(dim))
        env: dict[str, object] = {}
        for p in self.kernel.params:
            value = inputs[p.name]
            if isinstance(p.type, Array) and isinstance(p.type.dtype, Struct):    # {field: array}, read-only
                self.arrays[p.name] = _struct_array(p.type.dtype, value, self.exact)
            elif isinstance(p.type, Array):
                self.arrays[p.name] = round_to(p.type.dtype, np.array(value, copy=True), self.exact)
            else:
                env[p.name] = self._broadcast(p.type, value, lanes)
        # the arrays a tile query's structure was built from (parameters or not)
        self.geometry = {name: np.asarray(inputs[name]) for st in statements(self.kernel.body)
                         if isinstance(st, n.TileQuery) for name in st.geometry}
        tids = np.unravel_index(np.arange(lanes), dim)
        for name, idx in zip(self.kernel.tids, tids):
            env[name] = idx.astype(np.int32)
        frame = _Frame(env, lanes, returned=np.zeros(lanes, dtype=bool))     # a bare ``return`` stops a thread
        with np.errstate(all="ignore"):
            self._block(self.kernel.body, np.ones(lanes, dtype=bool), frame)
        out = {}
        for p in self.kernel.params:
            if isinstance(p.type, Array) and not isinstance(p.type.dtype, Struct):
                s = scalar_of(p.type.dtype)
                out[p.name] = self.arrays[p.name].astype(s.numpy if self.exact or not s.is_float else np.float64)
        return out

    def _broadcast(self, ty, value, lanes: int):
        if isinstance(ty, Struct):
            return {k: self._broadcast(t, value[k], lanes) for k, t in ty.fields}
        if isinstance(ty, Array):                          # an array field of a struct: shared, not per lane
            return np.asarray(value)
        arr = round_to(ty, np.asarray(value), self.exact)
        return np.broadcast_to(arr, (lanes, *elem_shape(ty))).copy()

    # -----------------------------------------------------------------------------------------------------
    # Statements

    def _block(self, body: tuple[n.Stmt, ...], mask: np.ndarray, frame: _Frame) -> None:
        if body and (mask & frame.running()).any():
            self.reached.add(id(body))
        for s in body:
            m = mask & frame.running()
            if not m.any():
                return
            self._stmt(s, m, frame)

    def _stmt(self, s: n.Stmt, m: np.ndarray, frame: _Frame) -> None:
        env = frame.env
        if isinstance(s, (n.Let, n.Assign)):
            value = self.eval(s.value, m, frame)
            old = env.get(s.name)
            env[s.name] = value if old is None else _select(m, value, old)
        elif isinstance(s, (n.Store, n.Atomic)):
            self._write(s, m, frame)
        elif isinstance(s, n.LetOut):
            args = [self.eval(a, m, frame) for a in s.value.args]
            ctx = Ctx(tuple(a.type for a in s.value.args), s.value.type, self.exact)
            for name, value in zip((s.name, s.out), OPS[s.value.op].eval_out(ctx, *args)):
                old = env.get(name)
                env[name] = value if old is None else _select(m, value, old)
        elif isinstance(s, n.SetElement):
            value = self.eval(s.value, m, frame)
            whole = np.array(env[s.name], copy=True)
            whole[(m, *s.index)] = value[m]
            env[s.name] = whole
        elif isinstance(s, n.SetAttr):             # a new dict along the path: no other local shares it
            value = self.eval(s.value, m, frame)
            if s.component is not None:                # the whole vector with one component replaced
                whole = np.array(self.eval(s.target().value, m, frame), copy=True)
                whole[:, s.component] = value
                value = whole
            env[s.name] = _set_path(env[s.name], s.path, value, m)
        elif isinstance(s, n.If):
            c = self.eval(s.cond, m, frame)
            self._block(s.then, m & c, frame)
            self._block(s.orelse, m & ~c, frame)
        elif isinstance(s, n.For):
            self._for(s, m, frame)
        elif isinstance(s, n.While):
            self._while(s, m, frame)
        elif isinstance(s, n.GridQuery):          # brute force: every point (bodies filter by distance)
            self._grid_query(s, m, frame)
        elif isinstance(s, n.TileQuery):
            self._tile_query(s, m, frame)
        elif isinstance(s, n.Break):
            frame.broken |= m
        elif isinstance(s, n.Continue):
            frame.continued |= m
        elif isinstance(s, n.Return) and s.value is None:
            frame.returned |= m
        elif isinstance(s, n.Unpack):
            values = self.eval(s.value, m, frame)
            for name, value in zip(s.names, values):
                old = env.get(name)
                env[name] = value if old is None else _select(m, value, old)
        elif isinstance(s, n.Return):
            value = self.eval(s.value, m, frame)
            frame.result = value if frame.result is None else _select(m, value, frame.result)
            frame.returned |= m
        else:
            raise TypeError(f"Expected an IR statement but got {type(s).__name__}")

    def _write(self, s: n.Store | n.Atomic, m: np.ndarray, frame: _Frame) -> None:
        arr = self.arrays[s.array]
        idx = self._index(s.array, s.index, m, frame)
        value = self.eval(s.value, m, frame)[m]
        if isinstance(s, n.Store):
            arr[idx] = value
            return
        if s.result is None and s.kind not in ("exch", "cas"):
            _ATOMIC_UFUNCS[s.kind].at(arr, idx, value)
            self.arrays[s.array] = round_to(s.array_type.dtype, arr, self.exact)
            return
        self._sequential(s, arr, idx, value, m, frame)

    def _sequential(self, s: n.Atomic, arr: np.ndarray, idx, value: np.ndarray, m: np.ndarray,
                    frame: _Frame) -> None:
        """An atomic whose old value is read (or an exchange/compare-and-swap): lanes in thread order, one at a
        time (generators use only patterns whose outcome does not depend on that order)."""
        compare = self.eval(s.compare, m, frame)[m] if s.compare is not None else None
        old = np.empty_like(value)
        ty = s.array_type.dtype
        for k in range(value.shape[0]):
            cell = tuple(int(i[k]) for i in idx)
            old[k] = arr[cell]
            if s.kind == "exch":
                arr[cell] = value[k]
            elif s.kind == "cas":
                if arr[cell] == compare[k]:
                    arr[cell] = value[k]
            else:
                arr[cell] = round_to(ty, _ATOMIC_UFUNCS[s.kind](arr[cell], value[k]), self.exact)
        if s.result is not None:
            full = np.zeros((frame.lanes, *old.shape[1:]), dtype=old.dtype)
            full[m] = old
            prev = frame.env.get(s.result)
            frame.env[s.result] = full if prev is None else _select(m, full, prev)

    def _index(self, name: str, index, m: np.ndarray, frame: _Frame) -> tuple[np.ndarray, ...]:
        shape = self.arrays[name].shape
        idx = tuple(self.eval(i, m, frame)[m].astype(np.int64) for i in index)
        for axis, i in enumerate(idx):
            if i.size and (i.min() < 0 or i.max() >= shape[axis]):
                raise InterpError(f"index {int(i.min())}..{int(i.max())} out of bounds for {name} axis {axis} "
                                  f"(size {shape[axis]})")
        return idx

    def _loop(self, frame: _Frame):
        saved = (frame.broken, frame.continued)
        frame.broken = np.zeros(frame.lanes, dtype=bool)
        return saved

    def _for(self, s: n.For, m: np.ndarray, frame: _Frame) -> None:
        start = self.eval(s.start, m, frame).astype(np.int64)
        stop = self.eval(s.stop, m, frame).astype(np.int64)
        saved = self._loop(frame)
        k = start.copy()
        for _ in range(MAX_TRIPS):
            active = m & ~frame.broken & ((k < stop) if s.step > 0 else (k > stop))
            if not active.any():
                break
            frame.env[s.var] = k.astype(np.int32)
            frame.continued = np.zeros(frame.lanes, dtype=bool)
            self._block(s.body, active, frame)
            k = k + s.step
        else:
            raise InterpError(f"loop over {s.var} ran more than {MAX_TRIPS} trips")
        frame.broken, frame.continued = saved

    def _grid_query(self, s: n.GridQuery, m: np.ndarray, frame: _Frame) -> None:
        """Every point of ``s.points`` as a neighbour candidate. A body that only accumulates (``acc += term``
        with terms that read no accumulator, no writes to arrays, no break/continue) runs once over all
        (lane, point) pairs and the accumulators add up the pairs' increments; any other body runs point by
        point."""
        count = int(self.arrays[s.points].shape[0])
        accs = _accumulators(s.body, frame.env)
        if accs is None:
            self._for(n.For(s.var, n.Const(0, n.INT32), n.Const(count, n.INT32), s.body), m, frame)
            return
        lanes = frame.lanes
        pairs = _pairs(frame, s.var, count)
        self._block(s.body, np.repeat(m, count), pairs)
        for name, ty in accs.items():
            before = frame.env[name]
            after = pairs.env[name].reshape(lanes, count, *np.shape(before)[1:])
            total = before + (after - before[:, None]).sum(axis=1)
            frame.env[name] = _select(m, round_to(ty, total, self.exact), before)

    def _tile_query(self, s: n.TileQuery, m: np.ndarray, frame: _Frame) -> None:
        """The body once for every (block, item) pair the query reports, all pairs at once (bodies write only
        what does not depend on the order the block sees its results in)."""
        first, second = (self.geometry[name] for name in s.geometry)
        member = queries.members(s.kind, self.eval(s.a, m, frame), self.eval(s.b, m, frame), first, second)
        count = member.shape[1]
        self._block(s.body, np.repeat(m, count) & member.reshape(-1), _pairs(frame, s.var, count))

    def _while(self, s: n.While, m: np.ndarray, frame: _Frame) -> None:
        saved = self._loop(frame)
        for _ in range(s.max_trips + 1):
            live = m & ~frame.broken
            active = live & self.eval(s.cond, live, frame)
            if not active.any():
                break
            frame.continued = np.zeros(frame.lanes, dtype=bool)
            self._block(s.body, active, frame)
        else:
            raise InterpError(f"while loop ran past its bound of {s.max_trips} trips")
        frame.broken, frame.continued = saved

    # -----------------------------------------------------------------------------------------------------
    # Expressions

    def eval(self, e: n.Expr, m: np.ndarray, frame: _Frame):
        """Value of ``e`` on every lane (lanes outside ``m`` may hold anything)."""
        if isinstance(e, n.Const):
            return np.full(frame.lanes, round_to(e.type, np.asarray(e.value, dtype=e.type.carrier)),
                           dtype=e.type.carrier)
        if isinstance(e, n.Var):
            if isinstance(e.type, Array):          # an array argument of a builtin (``wp.lower_bound``)
                return self.arrays[e.name]
            return frame.env[e.name]
        if isinstance(e, n.Load):
            arr = self.arrays[e.array]
            idx = tuple(np.where(m, self.eval(i, m, frame), 0).astype(np.int64) for i in e.index)
            shape = _leaf(arr).shape
            for axis, i in enumerate(idx):
                if np.any((i < 0) | (i >= shape[axis])):
                    raise InterpError(f"load {e.array}: index out of bounds on axis {axis} (size {shape[axis]})")
            return _take(arr, idx)
        if isinstance(e, n.Call) and not e.args:     # a constant (wp.pi, wp.identity): one per lane
            value = OPS[e.op].eval(Ctx((), e.type, self.exact))
            return np.broadcast_to(value, (frame.lanes, *np.shape(value))).copy()
        if isinstance(e, n.Call):
            args = [self.eval(a, m, frame) for a in e.args]
            row = OPS[e.op]
            value = row.eval(Ctx(tuple(a.type for a in e.args), e.type, self.exact), *args)
            if row.draws:                     # a random builtin advances its state local in the active lanes
                frame.env[e.args[0].name] = _select(m, advanced(args[0], row.draws)[-1], args[0])
            return value
        if isinstance(e, n.MakeTuple):
            return tuple(self.eval(v, m, frame) for v in e.values)
        if isinstance(e, n.Static):
            return self.eval(e.value, m, frame)
        if isinstance(e, n.Cast):
            return OPS["cast"].eval(Ctx((e.value.type,), e.type, self.exact), self.eval(e.value, m, frame))
        if isinstance(e, n.Component):
            return self.eval(e.value, m, frame)[..., e.index]
        if isinstance(e, n.Attr):
            return self.eval(e.value, m, frame)[e.field]
        if isinstance(e, n.Element):
            return element(self.eval(e.value, m, frame), e.value.type, e.index)
        if isinstance(e, n.FuncCall):
            return self._call(e, m, frame)
        if isinstance(e, n.ShapeOf):
            return np.full(frame.lanes, self.arrays[e.array].shape[e.dim], dtype=np.int32)
        if isinstance(e, n.New) and e.args:
            return {k: self.eval(a, m, frame) for (k, _), a in zip(e.struct.fields, e.args)}
        if isinstance(e, n.New):
            return _zeros(e.struct, frame.lanes, self.exact)
        if isinstance(e, n.FieldLoad):                 # an array field: one table shared by every lane
            table = round_to(e.type, np.asarray(self.eval(e.value, m, frame)[e.field]), self.exact)
            idx = np.where(m, self.eval(e.index, m, frame), 0).astype(np.int64)
            if np.any((idx < 0) | (idx >= table.shape[0])):
                raise InterpError(f"load .{e.field}: index out of bounds (size {table.shape[0]})")
            return table[idx]
        raise TypeError(f"Expected an IR expression but got {type(e).__name__}")

    def _call(self, e: n.FuncCall, m: np.ndarray, frame: _Frame):
        env = {p.name: self.eval(a, m, frame) for p, a in zip(e.func.params, e.args)}
        inner = _Frame(env, frame.lanes, returned=np.zeros(frame.lanes, dtype=bool))
        self._block(e.func.body, m, inner)
        if inner.result is None or np.any(m & ~inner.returned):
            raise InterpError(f"helper {e.func.name} ended without returning on some lanes")
        return inner.result


_ATOMIC_UFUNCS = {"add": np.add, "sub": np.subtract, "min": np.minimum, "max": np.maximum, "and": np.bitwise_and,
                  "or": np.bitwise_or, "xor": np.bitwise_xor}


def element(value: np.ndarray, ty, index: tuple[int, ...]) -> np.ndarray:
    """``value[index]`` on every lane (a transform's part 0 is its position, 1 its rotation)."""
    if isinstance(ty, Transform):
        return value[..., :3] if index[0] == 0 else value[..., 3:]
    return value[(slice(None), *index)]


def _pairs(frame: _Frame, var: str, count: int) -> _Frame:
    """A frame of ``frame.lanes * count`` lanes, one per (lane, item): every local repeated for each item, and
    ``var`` the item (a neighbour or query loop run for all items at once)."""
    env = {k: _repeat(v, count) for k, v in frame.env.items()}
    env[var] = np.tile(np.arange(count, dtype=np.int32), frame.lanes)
    return _Frame(env, frame.lanes * count)


def _repeat(value, count: int):
    if isinstance(value, dict):
        return {k: _repeat(v, count) for k, v in value.items()}
    return np.repeat(value, count, axis=0)


def _accumulators(body: tuple[n.Stmt, ...], env: Mapping[str, object]) -> dict[str, object] | None:
    """The locals (defined before the loop) that ``body`` only accumulates into, with their types, or None
    when the body does anything else across iterations (see :meth:`Interpreter._grid_query`)."""
    found: dict[str, object] = {}
    reads: set[str] = set()
    for st in statements(body):
        if isinstance(st, (n.Store, n.Atomic, n.Break, n.Continue, n.Return, n.While, n.For, n.GridQuery)):
            return None
        if isinstance(st, n.Assign) and st.name in env:
            v = st.value
            if not (isinstance(v, n.Call) and v.op in ("add", "sub") and v.args[0] == n.Var(st.name, v.type)):
                return None
            found[st.name] = v.type
            reads |= {x.name for x in subexprs(v.args[1]) if isinstance(x, n.Var)}
        elif isinstance(st, (n.Let, n.Assign)):
            if st.name in env:
                return None
            reads |= {x.name for x in subexprs(st.value) if isinstance(x, n.Var)}
        else:
            reads |= {x.name for e in n.stmt_exprs(st) for x in subexprs(e) if isinstance(x, n.Var)}
    return None if reads & set(found) else found


def _select(m: np.ndarray, new, old):
    if isinstance(new, tuple):
        return tuple(_select(m, a, b) for a, b in zip(new, old))
    if isinstance(new, dict):
        return {k: _select(m, new[k], old[k]) for k in new}
    mm = m.reshape(m.shape + (1,) * (np.ndim(new) - 1))
    return np.where(mm, new, old)


def run(kernel: n.Kernel, dim: tuple[int, ...], inputs: Mapping[str, np.ndarray],
        exact: bool = True) -> dict[str, np.ndarray]:
    """Final contents of ``kernel``'s arrays after a launch over ``dim`` with ``inputs`` (see :class:`Interpreter`)."""
    return Interpreter(kernel, exact).run(dim, inputs)



def unreached(kernel: n.Kernel, reached: set[int]) -> list[str]:
    """The non-empty nested blocks of ``kernel`` and its helpers (branches, loop bodies, helper bodies) that no
    lane entered in the runs that filled ``reached`` (:attr:`Interpreter.reached`): code the inputs never
    exercised, so that neither the checks nor a mutant of it could tell it apart."""
    out: list[str] = []

    def walk(body: tuple[n.Stmt, ...], where: str) -> None:
        for s in body:
            for k, inner in enumerate(n.blocks(s)):
                if inner and id(inner) not in reached:
                    out.append(f"{where}: {type(s).__name__.lower()} block {k}")
                walk(inner, where)

    walk(kernel.body, kernel.name)
    for f in kernel.funcs:
        if f.body and id(f.body) not in reached:
            out.append(f"{f.name}: body")
        walk(f.body, f.name)
    return out


def evaluate(e: n.Expr, env: Mapping[str, np.ndarray], arrays: Mapping[str, np.ndarray], lanes: int,
             exact: bool = True) -> np.ndarray:
    """Value of one expression on ``lanes`` lanes, given the values of the locals it reads and the arrays it
    loads (generators use it to place thresholds among the values a condition compares)."""
    it = Interpreter(n.Kernel("expr", (), ()), exact)
    it.arrays = dict(arrays)
    with np.errstate(all="ignore"):
        return it.eval(e, np.ones(lanes, dtype=bool), _Frame(dict(env), lanes))


def _zeros(ty, lanes: int, exact: bool):
    """A default-constructed value of ``ty`` on every lane (struct: every field zero)."""
    if isinstance(ty, Struct):
        return {k: _zeros(t, lanes, exact) for k, t in ty.fields}
    return round_to(ty, np.zeros((lanes, *elem_shape(ty))), exact)


def _set_path(value: dict, path: tuple[str, ...], new, m: np.ndarray) -> dict:
    out = dict(value)
    head = value[path[0]]
    out[path[0]] = _select(m, new, head) if len(path) == 1 else _set_path(head, path[1:], new, m)
    return out


def _struct_array(ty, value, exact: bool):
    """An array of structs as {field: array of the field's values} (nested structs nest)."""
    if isinstance(ty, Struct):
        return {k: _struct_array(t, value[k], exact) for k, t in ty.fields}
    return round_to(ty, np.array(value, copy=True), exact)


def _leaf(arr):
    return _leaf(next(iter(arr.values()))) if isinstance(arr, dict) else arr


def _take(arr, idx):
    return {k: _take(v, idx) for k, v in arr.items()} if isinstance(arr, dict) else arr[idx]
