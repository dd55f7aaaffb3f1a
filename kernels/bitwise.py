"""bitwise: integer and bit-manipulation programs in int32, uint32, int64 and uint8.

Random expression trees and statement sequences over ``& | ^ ~ << >>``, ``+ - *``, ``%`` and ``//``,
``wp.min``/``wp.max``/``wp.abs``, ``wp.bit_count``, comparisons, bit tests and selects (``wp.where``, ``a if c
else b``, ``if``/``else`` blocks), conversions between integer widths (``wp.uint32(x)``, ``wp.int64(x)``,
``wp.uint8(x)``, ``bool(x)``), augmented local updates (``h ^= h >> 13``, ``h *= wp.uint32(0x45D9F3B)``), short
fixed-trip mixing loops, the thread index and scalar parameters. Comparison is exact.

Warp's semantics live in the IR's operation table (``kernels/ir/ops.py``): unsigned ``+ - * << ~`` and
conversions to an unsigned type wrap modulo 2**bits; signed ``>>`` is arithmetic; ``%`` truncates like C and
``//`` floors; ``wp.bit_count`` counts the two's-complement bits at the operand's width and returns int32.
Undefined behaviour is excluded by the interval engine: signed overflow, shifts by >= the width (amounts are
constants or ``e & (W - 1)``), left shifts of negative signed values (masked non-negative first), and division
by zero (divisors are moved away from 0). Programs whose outputs the verifier would call degenerate (constant,
a copy of an input, an input that changes nothing) are drawn again.
"""

from __future__ import annotations

import numpy as np

from harness.family import Program
from kernels.ir import analysis
from kernels.ir import nodes as n
from kernels.ir.arrays import outputs_read_inputs
from kernels.ir.family import features, ir_family, program
from kernels.ir.gen import (ARRAY_NAMES, LOCAL_NAMES, OUT_NAMES, SCALAR_NAMES, ExprBuilder, Leaf, Names,
                            Vocabulary, first_clean)
from kernels.ir.numeric import Interval
from kernels.ir.types import BOOL, INT32, INT64, UINT8, UINT32, Array, Scalar

N = 64
TYPES = (INT32, INT32, UINT32, UINT32, UINT32, INT64, UINT8)
M32 = 2.0**32 - 1
INPUT_RANGES = {
    INT32: (Interval(-100, 100), Interval(-5000, 5000), Interval(-(2**20), 2**20), Interval(0, 2**16),
            Interval(-(2**30), 2**30), Interval(0, 255)),
    UINT32: (Interval(0, M32), Interval(0, M32), Interval(0, 2**16 - 1), Interval(0, 1000)),
    INT64: (Interval(-(2**40), 2**40), Interval(-(10**6), 10**6), Interval(0, 2**48), Interval(-(2**20), 2**20)),
    UINT8: (Interval(0, 255), Interval(0, 255), Interval(0, 15)),
}
#: other integer types a program reads an input of, or converts an output to
OTHER = {INT32: (UINT32, INT64, UINT8), UINT32: (INT32, INT64, UINT8), INT64: (INT32, UINT32),
         UINT8: (INT32, UINT32)}
OPS = {"bit_and": 1.2, "bit_or": 0.9, "bit_xor": 1.4, "lshift": 1.0, "rshift": 1.2, "add": 1.0, "sub": 0.7,
       "mul": 0.5, "mod": 0.6, "floordiv": 0.5, "min": 0.35, "max": 0.35, "invert": 0.4, "abs": 0.2,
       "where": 0.3, "ifexp": 0.3}
#: odd multipliers and increments of well-known integer hashes, all below 2**31
HASH_MULTS = (0x45D9F3B, 0x27D4EB2D, 0x7FEB352D, 0x119DE1F3, 1664525, 1103515245, 0x5BD1E995, 16777619,
              0x61C88647, 0x6A09E667, 0x3C6EF372, 69069, 0x2C1B3C6D, 0x297A2D39)
HASH_ADDS = (1013904223, 12345, 0x9E37, 0x68E31DA4, 0x165667B1, 0x1B873593)
MASKS = (0xFF, 0xFFFF, 0xF0F0, 0x3FF, 0x55555555, 0x33333333, 0x0F0F0F0F, 0x00FF00FF, 0x7F7F7F7F)
LOCALS = LOCAL_NAMES + ("hsh", "bits", "lo", "hi", "mix")
SCALARS = SCALAR_NAMES + ("seed", "salt", "mask", "key")


class BitBuilder(ExprBuilder):
    """Expressions that keep shifts inside the width, mask what is shifted left, and mix in ``wp.bit_count``
    and the constants integer hashes use."""

    def __init__(self, rng, vocab, leaves, ty: Scalar) -> None:
        super().__init__(rng, vocab, leaves)
        self.ty = ty

    def constant(self, ty: Scalar) -> Leaf:
        roll = self.rng.random()
        if ty.bits >= 32 and roll < 0.2:
            value = int(self.pick(list(HASH_MULTS if roll < 0.06 and not ty.is_signed else MASKS)))
        elif ty.bits >= 32 and roll < 0.25 and not ty.is_signed:
            value = int(self.pick(list(HASH_ADDS)))
        else:
            value = int(self.pick([-7, -5, -3, 2, 3, 4, 5, 7, 9, 11, 13, 16]))
            value = abs(value) if not ty.is_signed else value
        if value > ty.limits[1]:
            value = value & (2 ** (ty.bits - 1) - 1) or 3
        return n.Const(value, ty), Interval.point(value)

    def expr(self, ty: Scalar, depth: int, top: bool = False) -> Leaf:
        if ty != BOOL and depth >= 1 and self.rng.random() < 0.07:
            inner, iv = self.expr(ty, depth - 1)
            if not isinstance(inner, n.Const) and "bit_count" not in analysis.op_names(
                    n.Kernel("e", (), (n.Let("e", inner),))):
                made = self.checked(n.Call("bit_count", (inner,)), [iv])
                if made is not None:
                    return made if ty == INT32 else (self.checked(n.Cast(made[0], ty), [made[1]]) or made)
        return super().expr(ty, depth, top)

    def repair(self, name: str, parts: list[Leaf]) -> list[Leaf]:
        if name not in ("lshift", "rshift"):
            return super().repair(name, parts)
        (a, ia), (b, ib) = parts
        ty = a.type
        if not (0 <= ib.lo and ib.hi <= ty.bits - 1):
            if isinstance(b, n.Const) or self.rng.random() < 0.5:
                s = int(self.rng.integers(1, min(ty.bits, 24)))
                b, ib = n.Const(s, ty), Interval.point(s)
            else:
                m = n.Const(ty.bits - 1 if self.rng.random() < 0.5 else 7, ty)
                b, ib = n.Call("bit_and", (b, m)), Interval(0.0, float(m.value))
        if name == "lshift" and ty.is_signed and (ia.lo < 0 or ia.hi * 2.0**ib.hi > ty.limits[1]):
            keep = ty.bits - 2 - int(ib.hi)
            if keep < 1 or isinstance(a, n.Const):
                return parts
            mask = n.Const(2**keep - 1, ty)
            a, ia = n.Call("bit_and", (a, mask)), Interval(0.0, float(mask.value))
        return [(a, ia), (b, ib)]


def _mixing_loop(gen: BitBuilder, h: str, names: Names) -> list[n.Stmt] | None:
    """``for r in range(K):`` mixing rounds on an unsigned local (``h ^= h >> s``, ``h *= C``, ``h += r``...)."""
    ty = gen.ty
    var = names.fresh(("r", "it", "step", "rnd"), "r", 0)
    trips = int(gen.rng.integers(2, 5))
    hv = n.Var(h, ty)
    body: list[n.Stmt] = []
    for kind in gen.rng.permutation(["xorshift", "mul", "round"])[:int(gen.rng.integers(2, 4))]:
        if kind == "xorshift":
            s = int(gen.rng.integers(min(5, ty.bits // 2), min(17, ty.bits)))
            body.append(n.Assign(h, n.Call("bit_xor", (hv, n.Call("rshift", (hv, n.Const(s, ty))))), True))
        elif kind == "mul":
            mult = int(gen.pick(list(HASH_MULTS))) & int(ty.limits[1]) | 1
            body.append(n.Assign(h, n.Call("mul", (hv, n.Const(mult, ty))), True))
        else:
            r = n.Cast(n.Var(var, INT32), ty)
            body.append(n.Assign(h, n.Call(gen.pick(["add", "bit_xor"]), (hv, r)), True))
    return [n.For(var, n.Const(0, INT32), n.Const(trips, INT32), tuple(body))]


def _draw_kernel(rng: np.random.Generator) -> tuple[n.Kernel, dict[str, Interval]]:
    ty = TYPES[int(rng.integers(len(TYPES)))]
    vocab = Vocabulary({**OPS, "mul": 1.1 if not ty.is_signed else 0.5}, types=(ty,),
                       ranges={ty: INPUT_RANGES[ty][0]}, limit=2.0**64, p_leaf=0.3, p_const=0.25)
    i = n.Var("i", INT32)
    names = Names(rng, True)
    params: list[n.Param] = []
    ranges: dict[str, Interval] = {}
    body: list[n.Stmt] = []
    leaves: list[Leaf] = []
    for k in range(int(rng.integers(1, 4))):
        src = ty if k == 0 or rng.random() >= 0.3 else OTHER[ty][int(rng.integers(len(OTHER[ty])))]
        iv = INPUT_RANGES[src][int(rng.integers(len(INPUT_RANGES[src])))]
        if src != ty and ty.is_signed:          # conversions into a signed type only see values that fit
            iv = Interval(max(iv.lo, ty.limits[0] / 2), min(iv.hi, ty.limits[1] / 2))
        arr = names.fresh(ARRAY_NAMES, f"in{k}", k)
        params.append(n.Param(arr, Array(src)))
        ranges[arr] = iv
        load: n.Expr = n.Load(arr, Array(src), (i,))
        if src != ty:                           # conversions into an unsigned type wrap
            load = n.Cast(load, ty)
            iv = iv if ty.limits[0] <= iv.lo and iv.hi <= ty.limits[1] else Interval(*ty.limits)
        if rng.random() < 0.55 or src != ty:
            local = names.loaded(arr, k)
            body.append(n.Let(local, load))
            leaves.append((n.Var(local, ty), iv))
        else:
            leaves.append((load, iv))
    if rng.random() < 0.35:
        leaves.append((i if ty == INT32 else n.Cast(i, ty), Interval(0.0, N - 1.0)))
    if rng.random() < 0.3:
        scalar = names.fresh(SCALARS, "s0", 0)
        iv = [Interval(1, 31), Interval(0, 255), Interval(1, 2**20)][int(rng.integers(3))]
        iv = Interval(iv.lo, min(iv.hi, ty.limits[1]))
        params.append(n.Param(scalar, ty))
        ranges[scalar] = iv
        leaves.append((n.Var(scalar, ty), iv))
    gen = BitBuilder(rng, vocab, leaves, ty)
    locals_: list[str] = []
    for k in range(int(rng.integers(1, 5))):
        roll = rng.random()
        if locals_ and roll < 0.3:
            made = _update(gen, body, locals_)
            if made:
                continue
        if locals_ and roll < 0.45 and not ty.is_signed:
            h = gen.pick(locals_)
            body += _mixing_loop(gen, h, names)
            _set_leaf(gen, h, Interval(*ty.limits))
            continue
        if locals_ and roll < 0.55:
            if _if_else(gen, body, locals_):
                continue
        e, iv = gen.compound(ty, int(rng.integers(1, 4)))
        local = names.fresh(LOCALS, f"t{k}", k, suffix=True)
        body.append(n.Let(local, e))
        gen.leaves.append((n.Var(local, ty), iv))
        locals_.append(local)
    for k in range(int(rng.integers(1, 3))):
        e, iv = gen.compound(ty, int(rng.integers(1, 4)))
        dst = ty
        if rng.random() < 0.25:
            dst = OTHER[ty][int(rng.integers(len(OTHER[ty])))]
            if dst.is_signed and not (dst.limits[0] <= iv.lo and iv.hi <= dst.limits[1]):
                m = n.Const(0x7FFFFFFF if dst.bits > 8 else 0x7F, ty)
                e = n.Call("bit_and", (e, m)) if e.type.bits > 8 else e
            e = n.Cast(e, dst)
        out = names.fresh(OUT_NAMES, f"out{k}", k)
        params.append(n.Param(out, Array(dst)))
        body.append(n.Store(out, Array(dst), (i,), e))
    if rng.random() < 0.15:
        flag = names.fresh(("flag", "odd", "is_set", "nonzero"), "flag0", 0)
        e, _ = gen.compound(ty, 1)
        params.append(n.Param(flag, Array(INT32)))
        body.append(n.Store(flag, Array(INT32), (i,), n.Call("where", (n.Call("to_bool", (e,)), n.Const(1, INT32),
                                                                          n.Const(-1, INT32)))))
    kernel = analysis.remove_dead(analysis.fold_unused(n.Kernel("wkf_kernel", tuple(params), tuple(body)),
                                                       op="bit_xor"))
    return kernel, ranges


def _set_leaf(gen: BitBuilder, name: str, iv: Interval) -> None:
    var = n.Var(name, gen.ty)
    gen.leaves = [(e, iv if e == var else v) for e, v in gen.leaves]


def _update(gen: BitBuilder, body: list[n.Stmt], locals_: list[str]) -> bool:
    """``h op= e`` for an earlier local ``h`` with ``e`` free of ``h`` (``h ^ (h ^ c)`` would erase it)."""
    h = gen.pick(locals_)
    var = n.Var(h, gen.ty)
    iv = next(v for e, v in gen.leaves if e == var)
    op = gen.pick(["bit_xor", "bit_xor", "add", "mul", "bit_or", "bit_and", "rshift", "sub"])
    saved = gen.leaves
    gen.leaves = [x for x in saved if h not in analysis.uses(x[0])]
    try:
        if op == "rshift":
            made = gen.checked(n.Call("rshift", (var, n.Const(int(gen.rng.integers(3, 17)), gen.ty))),
                               [iv, Interval(3, 16)])
            made = made and gen.checked(n.Call("bit_xor", (var, made[0])), [iv, made[1]])
            op_node = made
        else:
            e, eiv = gen.expr(gen.ty, int(gen.rng.integers(1, 3))) if op not in ("bit_and", "bit_or") else \
                gen.constant(gen.ty)
            op_node = gen.checked(n.Call(op, (var, e)), [iv, eiv]) if gen.leaves or op in ("bit_and", "bit_or") \
                else None
    finally:
        gen.leaves = saved
    if not op_node:
        return False
    body.append(n.Assign(h, op_node[0], augmented=op_node[0].op in n.AUGMENTED and gen.rng.random() < 0.6))
    _set_leaf(gen, h, op_node[1])
    return True


def _if_else(gen: BitBuilder, body: list[n.Stmt], locals_: list[str]) -> bool:
    """``if c: h = h op1 e1 else: h = h op2 e2`` on an earlier local."""
    h = gen.pick(locals_)
    before = len(body)
    cond, _ = gen.condition(2)
    arms = []
    saved = list(gen.leaves)
    for _ in range(2):
        if not _update(gen, body, [h]):
            break
        arms.append((body.pop(), next(v for e, v in gen.leaves if e == n.Var(h, gen.ty))))
        gen.leaves = list(saved)
    if len(arms) < 2 or arms[0][0] == arms[1][0] or len(body) != before:
        gen.leaves = saved
        return False
    body.append(n.If(cond, (arms[0][0],), (arms[1][0],)))
    _set_leaf(gen, h, arms[0][1].join(arms[1][1]))
    return True


def draw(rng: np.random.Generator) -> Program:
    def build() -> tuple[n.Kernel, dict[str, Interval]]:
        for _ in range(20):
            kernel, ranges = _draw_kernel(rng)
            if outputs_read_inputs(kernel):
                break
        return kernel, ranges

    kernel, ranges = first_clean(build, N, tries=40)
    return program(kernel, ranges, (N,), features(kernel), differentiable=False)


FAMILY = ir_family("bitwise", __doc__, draw, version=2,
                   covers=("bitwise operators", "shifts", "uint32 wraparound", "int64", "uint8", "integer hashing",
                           "bit_count", "C integer division and remainder", "integer casts", "bool casts",
                           "augmented assignment", "mixing loops"))
