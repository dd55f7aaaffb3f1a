"""The one interval engine: abstract interpretation of a kernel over value intervals, loops included.

Given an interval for every input (array elements and scalar parameters), it bounds every local, every value
stored to each array, and checks each operation's domain guard from the table (``log`` of a positive value,
divisors away from 0, no integer overflow, casts that fit). Loops iterate abstractly once per possible trip
(joining the states, the states at ``break`` and at ``continue``) up to :data:`UNROLL` trips, then widen what
still grows to the whole line, so a loop whose values are not bounded fails its guards instead of passing.
Generators use it to keep programs inside their domains and to refuse degenerate outputs before compiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from kernels.ir import nodes as n
from kernels.ir.numeric import BOOL_IV, INF, Interval
from kernels.ir.ops import OPS, Ctx
from kernels.ir.types import INT32, Array, Struct, scalar_of

UNROLL = 64
EVERYTHING = Interval(-INF, INF)
Env = dict[str, Interval]


@dataclass(slots=True)
class Facts:
    """What the engine learned: final local intervals, the hull of each array's contents after the launch,
    guard violations, and conditions whose value is the same on every input."""

    env: Env
    arrays: dict[str, Interval]
    written: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    constant_conditions: list[n.Expr] = field(default_factory=list)

    def degenerate(self, outputs: list[str]) -> list[str]:
        """Reasons the outputs are degenerate before anything runs: never written, or one constant value."""
        reasons = []
        for name in outputs:
            if name not in self.written:
                reasons.append(f"output {name!r} is never written")
            elif self.arrays[name].is_point:
                reasons.append(f"output {name!r} is always {self.arrays[name].lo:g}")
        return reasons


def _join(a: Env, b: Env) -> Env:
    out = dict(a)
    for k, v in b.items():
        out[k] = _join_value(out[k], v) if k in out else v
    return out


def _join_value(a, b):
    """Join of two bounds; a struct's bounds are {field: bound} (a field missing on one side is unbounded)."""
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)):
            return EVERYTHING
        return {k: _join_value(a[k], b[k]) if k in a and k in b else EVERYTHING for k in a.keys() | b.keys()}
    return a.join(b)


def _struct_iv(ty, iv: Interval):
    """Bounds of a struct value whose every leaf field lies in ``iv``."""
    return {k: _struct_iv(t, iv) for k, t in ty.fields} if isinstance(ty, Struct) else iv


def _set_path(value, ty, path: tuple[str, ...], new):
    """Bounds of struct ``value`` (of type ``ty``) after field ``path`` is set to bounds ``new``."""
    out = dict(value) if isinstance(value, dict) else _struct_iv(ty, EVERYTHING)
    field = ty.field(path[0])
    out[path[0]] = new if len(path) == 1 else _set_path(out.get(path[0]), field, path[1:], new)
    return out


@dataclass(slots=True)
class _Loop:
    exits: list[Env] = field(default_factory=list)
    continues: list[Env] = field(default_factory=list)


class Engine:
    """Abstract interpreter of one kernel (see module docstring)."""

    def __init__(self, kernel: n.Kernel, inputs: Mapping[str, Interval], dim: tuple[int, ...],
                 shapes: Mapping[str, tuple[int, ...]] | None = None) -> None:
        self.kernel = kernel
        self.shapes = dict(shapes or {})
        self.dim = tuple(dim)
        self.lanes = math.prod(dim)
        self.facts = Facts(env={}, arrays={})
        self.loops: list[_Loop] = []
        self.returns: list[list[Interval]] = []
        self.multiplicity = float(self.lanes)
        env: Env = {}
        for p in kernel.params:
            if isinstance(p.type, Array):
                self.facts.arrays[p.name] = inputs.get(p.name, Interval(0.0, 0.0))
            elif not isinstance(p.type, Struct):
                env[p.name] = inputs[p.name]
            elif isinstance(inputs.get(p.name), dict):      # a struct: {field: interval or nested dict}
                env[p.name] = inputs[p.name]
        for name, size in zip(kernel.tids, dim):
            env[name] = Interval(0.0, size - 1.0)
        self.start = env

    def run(self) -> Facts:
        self.facts.env = self.block(self.kernel.body, dict(self.start))
        return self.facts

    def violation(self, reason: str) -> None:
        if reason not in self.facts.violations:
            self.facts.violations.append(reason)

    # -----------------------------------------------------------------------------------------------------

    def block(self, body: tuple[n.Stmt, ...], env: Env) -> Env:
        for s in body:
            env = self.stmt(s, env)
        return env

    def stmt(self, s: n.Stmt, env: Env) -> Env:
        if isinstance(s, (n.Let, n.Assign)):
            return {**env, s.name: self.expr(s.value, env)}
        if isinstance(s, n.LetOut):
            row = OPS[s.value.op]
            ivs = [self.expr(a, env) for a in s.value.args]
            written = row.writes_interval(Ctx(tuple(a.type for a in s.value.args), s.value.type), *ivs)
            return {**env, s.name: self.expr(s.value, env), s.out: written}
        if isinstance(s, n.Atomic) and s.result is not None:
            self._write(s, env)
            return {**env, s.result: self.facts.arrays[s.array]}     # an old value: some state of the cell
        if isinstance(s, (n.Store, n.Atomic)):
            self._write(s, env)
            return env
        if isinstance(s, n.SetElement):
            return {**env, s.name: env.get(s.name, EVERYTHING).join(self.expr(s.value, env))}
        if isinstance(s, n.SetAttr):
            value = self.expr(s.value, env)
            if s.component is not None:                # the other components keep theirs
                value = value.join(self.expr(s.target().value, env))
            return {**env, s.name: _set_path(env.get(s.name), s.type, s.path, value)}
        if isinstance(s, n.If):
            return self._if(s, env)
        if isinstance(s, n.For):
            return self._for(s, env)
        if isinstance(s, n.While):
            return self._loop(s.body, env, s.max_trips, cond=s.cond)
        if isinstance(s, (n.GridQuery, n.TileQuery)):       # at most max_hits trips over item indices
            for e in n.stmt_exprs(s):
                self.expr(e, env)
            count = self.shapes.get(s.points, (s.max_hits,))[0] if isinstance(s, n.GridQuery) else s.max_hits
            var = Interval(0.0, count - 1.0)
            return self._loop(s.body, {**env, s.var: var}, s.max_hits, loop_var=(s.var, var))
        if isinstance(s, n.Break):
            self.loops[-1].exits.append(env)
            return env
        if isinstance(s, n.Continue):
            self.loops[-1].continues.append(env)
            return env
        if isinstance(s, n.Return) and s.value is None:      # a kernel's early exit: later states only narrow
            return env
        if isinstance(s, n.Return):
            self.returns[-1].append(self.expr(s.value, env))
            return env
        if isinstance(s, n.Unpack):
            return {**env, **dict(zip(s.names, self.expr(s.value, env)))}
        raise TypeError(f"Expected an IR statement but got {type(s).__name__}")

    def _write(self, s: n.Store | n.Atomic, env: Env) -> None:
        for axis, i in enumerate(s.index):
            self._check_index(s.array, axis, self.expr(i, env))
        value = self.expr(s.value, env)
        old = self.facts.arrays[s.array]
        first = s.array not in self.facts.written
        self.facts.written.add(s.array)
        if isinstance(s, n.Atomic) and s.compare is not None:
            self.expr(s.compare, env)
        if isinstance(s, n.Atomic) and s.kind in ("add", "sub"):
            m = self.multiplicity
            if s.kind == "sub":
                value = Interval(-value.hi, -value.lo)
            value = Interval(old.lo + min(0.0, m * value.lo), old.hi + max(0.0, m * value.hi))
            lo, hi = scalar_of(s.array_type.dtype).limits
            if not (lo <= value.lo and value.hi <= hi):
                self.violation(f"atomic_{s.kind} on {s.array}: sums in {value} leave {s.array_type.dtype}")
        elif isinstance(s, n.Atomic) and s.kind in ("and", "or", "xor"):
            value = OPS["bit_" + s.kind].interval(None, old, value).join(old)
        elif isinstance(s, n.Atomic):
            value = value.join(old)
        # a first plain store at the thread index into an array of the launch's shape overwrites every element
        covers = (isinstance(s, n.Store) and s.index == tuple(n.Var(t, INT32) for t in self.kernel.tids)
                  and self.shapes.get(s.array, self.dim) == self.dim and not self.loops)
        self.facts.arrays[s.array] = value if first and covers else old.join(value)

    def _check_index(self, name: str, axis: int, iv: Interval) -> None:
        shape = self.shapes.get(name)
        if shape is not None and not (0 <= iv.lo and iv.hi <= shape[axis] - 1):
            self.violation(f"index {iv} of {name} axis {axis} leaves [0, {shape[axis] - 1}]")

    def _if(self, s: n.If, env: Env) -> Env:
        c = self.expr(s.cond, env)
        if c.is_point:
            self.facts.constant_conditions.append(s.cond)
        then = self.block(s.then, dict(env)) if c.hi > 0 else None
        orelse = self.block(s.orelse, dict(env)) if c.lo < 1 else None
        if then is None or orelse is None:
            return then if orelse is None else orelse
        return _join(then, orelse)

    def _for(self, s: n.For, env: Env) -> Env:
        start, stop = self.expr(s.start, env), self.expr(s.stop, env)
        if s.step > 0:
            trips, var = (stop.hi - start.lo) / s.step, Interval(start.lo, max(start.lo, stop.hi - 1))
        else:
            trips, var = (start.hi - stop.lo) / -s.step, Interval(min(start.hi, stop.lo + 1), start.hi)
        trips = max(0, math.ceil(trips)) if math.isfinite(trips) else INF
        return self._loop(s.body, {**env, s.var: var}, trips, loop_var=(s.var, var))

    def _loop(self, body, env: Env, trips: float, cond: n.Expr | None = None,
              loop_var: tuple[str, Interval] | None = None) -> Env:
        loop = _Loop()
        self.loops.append(loop)
        outer_mult = self.multiplicity
        self.multiplicity = outer_mult * (trips if math.isfinite(trips) else 1e30)
        joined, state = dict(env), dict(env)
        t = 0
        while t < trips:
            if cond is not None and self.expr(cond, state).hi == 0:
                break
            if t >= UNROLL:                              # widen what still grows, then settle once
                state = {k: (v if joined.get(k) == v else EVERYTHING) for k, v in state.items()}
            after = self.block(body, dict(state))
            for c in loop.continues:
                after = _join(after, c)
            loop.continues.clear()
            if loop_var is not None:
                after[loop_var[0]] = loop_var[1]
            new = _join(joined, after)
            t += 1
            if new == joined and t > 1:
                break
            joined, state = new, after
        self.loops.pop()
        self.multiplicity = outer_mult
        for e in loop.exits:
            joined = _join(joined, e)
        return joined

    # -----------------------------------------------------------------------------------------------------

    def expr(self, e: n.Expr, env: Env) -> Interval:
        if isinstance(e, n.Const):
            return Interval.point(float(e.value))
        if isinstance(e, n.Var) and isinstance(e.type, Array):     # a builtin's array argument: its index range
            shape = self.shapes.get(e.name)
            return Interval(0.0, shape[0] - 1.0) if shape else EVERYTHING
        if isinstance(e, n.Var):
            return env.get(e.name, EVERYTHING)
        if isinstance(e, n.ShapeOf):
            shape = self.shapes.get(e.array)
            return Interval.point(float(shape[e.dim])) if shape else Interval(0.0, 2.0**31 - 1)
        if isinstance(e, n.Load):
            for axis, i in enumerate(e.index):
                self._check_index(e.array, axis, self.expr(i, env))
            return self.facts.arrays[e.array]
        if isinstance(e, (n.Call, n.Cast)):
            args = e.args if isinstance(e, n.Call) else (e.value,)
            ivs = [self.expr(a, env) for a in args]
            row = OPS[e.op] if isinstance(e, n.Call) else OPS["cast"]
            ctx = Ctx(tuple(a.type for a in args), e.type)
            try:
                reason = row.guard(ctx, *ivs)
                bound = row.bound(ctx, *ivs)
                if row.refine is not None and isinstance(e, n.Call):
                    reason, bound = row.refine(lambda x: self.expr(x, env), e.args, ctx)
            except (ValueError, OverflowError, ZeroDivisionError):
                reason = f"{row.name}: unbounded on {[str(iv) for iv in ivs]}"
                bound = EVERYTHING if row.form != "compare" else BOOL_IV
            if reason:
                self.violation(reason)
            return bound
        if isinstance(e, (n.Component, n.Element)):
            return self.expr(e.value, env)
        if isinstance(e, n.FuncCall):
            return self._call(e, env)
        if isinstance(e, n.MakeTuple):
            return tuple(self.expr(v, env) for v in e.values)
        if isinstance(e, n.Static):
            return self.expr(e.value, env)
        if isinstance(e, n.New) and e.args:
            return {k: self.expr(a, env) for (k, _), a in zip(e.struct.fields, e.args)}
        if isinstance(e, n.New):
            return _struct_iv(e.struct, Interval.point(0.0))
        if isinstance(e, n.FieldLoad):
            iv = self.expr(e.index, env)
            if not (0 <= iv.lo and iv.hi <= e.size - 1):
                self.violation(f"load .{e.field}: index {iv} outside [0, {e.size - 1}]")
            value = self.expr(e.value, env)
            return value.get(e.field, EVERYTHING) if isinstance(value, dict) else EVERYTHING
        if isinstance(e, n.Attr):
            value = self.expr(e.value, env)
            return value.get(e.field, EVERYTHING) if isinstance(value, dict) else EVERYTHING
        return EVERYTHING

    def _call(self, e: n.FuncCall, env: Env) -> Interval:
        inner = {p.name: self.expr(a, env) for p, a in zip(e.func.params, e.args)}
        self.returns.append([])
        self.block(e.func.body, inner)
        values = self.returns.pop()
        out = values[0]
        for v in values[1:]:
            out = tuple(a.join(b) for a, b in zip(out, v)) if isinstance(out, tuple) else _join_value(out, v)
        return out


def analyze(kernel: n.Kernel, inputs: Mapping[str, Interval], dim: tuple[int, ...],
            shapes: Mapping[str, tuple[int, ...]] | None = None) -> Facts:
    """Bounds and guard violations of ``kernel`` launched over ``dim`` with inputs in ``inputs``."""
    return Engine(kernel, inputs, dim, shapes).run()
