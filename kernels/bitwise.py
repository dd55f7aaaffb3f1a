"""bitwise: integer and bit-manipulation programs in int32, uint32 and int64.

Random expression trees and statement sequences over ``& | ^ ~ << >>``, ``+ - *``, ``%`` and ``//``,
``wp.min``/``wp.max``/``wp.abs``, ``wp.bit_count``, comparisons, bit tests and selects (``wp.where``, ``a if c
else b``, ``if``/``else`` blocks), casts between int32, uint32 and int64, augmented local updates
(``h ^= h >> 13``, ``h *= wp.uint32(0x45D9F3B)``), short fixed-trip mixing loops, the thread index and scalar
parameters. Comparison is exact.

Semantics copied by the reference (measured on Warp 1.19; see the module notes below):
- uint32 ``+ - * << ~`` and unary ``-`` wrap modulo 2**32 (well defined); conversions to uint32 wrap modulo 2**32,
  conversions uint32/int64 -> int32 wrap to two's complement.
- Signed ``>>`` is arithmetic; ``%`` truncates like C (remainder has the dividend's sign); ``//`` floors
  (``floordiv_signed`` in warp/native/builtin.h); uint32 ``%``/``//`` are plain unsigned.
- ``wp.bit_count`` counts the two's-complement bits at the operand's width and returns int32.
- Literals of uint32/int64 must be wrapped (``wp.uint32(5)``): a bare ``a + 1`` with ``a: uint32`` fails codegen;
  a shift amount must have the shifted operand's type. Comparing uint32 with int32 compiles but compares as
  unsigned (C conversions), so programs never mix them.

Undefined behaviour is excluded by construction from value intervals: signed overflow (int32 results stay in
range, int64 within +-2**52 so the verifier's float64 comparison stays exact), shifts by >= the width (amounts are
constants in [0, W-1] or ``e & m`` with ``m < W``), left shifts of negative signed values or into overflow
(operands are masked non-negative first), ``abs``/negation of the minimum value, and division by zero or
``INT_MIN // -1`` (divisors are constants != 0, +-1, or ``(e & m) + 1`` / ``wp.max(e, 1)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.family import Arg, Family, KernelSpec, Program, Tolerance
from kernels import _indexing_lib as L
from kernels._expr import ops_of, uses
from kernels._common import ARRAY_NAMES, LOCAL_NAMES, OUT_NAMES, SCALAR_NAMES, pick

N = 64
M32 = (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class IType:
    name: str
    bits: int
    signed: bool
    lo: int           # smallest value programs may hold
    hi: int           # largest value programs may hold

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    def lit(self, v: int, hexa: bool = False) -> str:
        text = hex(v) if hexa and v > 0 else str(v)
        if self.name == "int32":
            return f"({text})" if v < 0 else text
        return f"wp.{self.name}({text})"


TYPES = {
    "int32": IType("int32", 32, True, -(2**31) + 1, 2**31 - 1),
    "uint32": IType("uint32", 32, False, 0, M32),
    "int64": IType("int64", 64, True, -(2**52), 2**52),
}
INPUT_RANGES = {
    "int32": ((-100, 100), (-5000, 5000), (-(2**20), 2**20), (0, 2**16), (-(2**30), 2**30), (0, 255)),
    "uint32": ((0, M32), (0, M32), (0, 2**16 - 1), (0, 1000)),
    "int64": ((-(2**40), 2**40), (-(10**6), 10**6), (0, 2**48), (-(2**20), 2**20)),
}
#: odd multipliers of well-known integer hashes, all below 2**31 (larger uint32 literals make Warp emit
#: ``const int32 v = 2654435761`` and the C++ compiler warn about the narrowing, though the value wraps right)
HASH_MULTS = (0x45D9F3B, 0x27D4EB2D, 0x7FEB352D, 0x119DE1F3, 1664525, 1103515245, 0x5BD1E995, 16777619,
              0x61C88647, 0x6A09E667, 0x3C6EF372, 69069, 0x2C1B3C6D, 0x297A2D39)
HASH_ADDS = (1013904223, 12345, 0x9E37, 0x68E31DA4, 0x165667B1, 0x1B873593)


def _sbits(lo: int, hi: int) -> int:
    """Smallest k with -2**k <= lo and hi <= 2**k - 1."""
    return max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0)


@dataclass(frozen=True, slots=True)
class B:
    """An integer expression node: op, children, payload (variable name or constant), the interval ``[lo, hi]``
    of its values, and its known bits (``kz``: bits known to be 0, ``ko``: known to be 1, as W-bit patterns)."""

    op: str
    args: tuple = ()
    value: object = None
    lo: int = 0
    hi: int = 0
    kz: int = 0
    ko: int = 0
    hexa: bool = False

    def unknown(self, ty: "IType") -> int:
        return ty.mask & ~(self.kz | self.ko)


BIN_SYM = {"add": "+", "sub": "-", "mul": "*", "band": "&", "bor": "|", "bxor": "^", "shl": "<<",
           "shr": ">>", "mod": "%", "floordiv": "//"}
CMP_SYM = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


# --------------------------------------------------------------------------------------------------------
# Known bits: enough bit-level tracking to refuse operations whose result is a constant or that erase an
# operand (``(x << 11) % 16``, ``(x | 0x1FFFFFFF) | y`` with y < 2**29, ``(x >> 20) & 0xF`` with x < 2**16...)


def _known_from_interval(ty: "IType", lo: int, hi: int) -> tuple[int, int]:
    if lo >= 0:
        return ty.mask & ~((1 << hi.bit_length()) - 1), 0
    if hi < 0:
        k = (-lo - 1).bit_length()
        return 0, ty.mask & ~((1 << k) - 1)
    return 0, 0


def _tz(n: B) -> int:
    """Number of low bits known to be zero."""
    low = n.kz
    t = 0
    while low & 1 and t < 64:
        low >>= 1
        t += 1
    return t


def mk(ty: "IType", op: str, args: tuple, lo: int, hi: int, value=None, hexa: bool = False) -> B:
    """A node with its known bits, from the operator's bit rules and from its interval."""
    M = ty.mask
    kz, ko = 0, 0
    a = args
    if op == "const":
        kz, ko = M & ~value, M & value
    elif op == "band":
        kz, ko = a[0].kz | a[1].kz, a[0].ko & a[1].ko
    elif op == "bor":
        kz, ko = a[0].kz & a[1].kz, a[0].ko | a[1].ko
    elif op == "bxor":
        kz = (a[0].kz & a[1].kz) | (a[0].ko & a[1].ko)
        ko = (a[0].kz & a[1].ko) | (a[0].ko & a[1].kz)
    elif op == "invert":
        kz, ko = a[0].ko, a[0].kz
    elif op == "shl" and a[1].op == "const":
        s = a[1].value
        kz, ko = ((a[0].kz << s) | ((1 << s) - 1)) & M, (a[0].ko << s) & M
    elif op == "shl":
        t = _tz(a[0])
        kz = (1 << t) - 1
    elif op == "shr" and a[1].op == "const":
        s = a[1].value
        top = M ^ (M >> s)
        sign = 1 << (ty.bits - 1)
        kz, ko = a[0].kz >> s, a[0].ko >> s
        if not ty.signed or a[0].kz & sign:
            kz |= top
        elif a[0].ko & sign:
            ko |= top
    elif op in ("add", "sub"):
        kz = (1 << min(_tz(a[0]), _tz(a[1]))) - 1
    elif op == "mul":
        kz = ((1 << min(_tz(a[0]) + _tz(a[1]), ty.bits)) - 1) & M
    elif op == "mod" and a[1].op == "const" and (abs(a[1].value) & (abs(a[1].value) - 1)) == 0:
        k = abs(a[1].value).bit_length() - 1          # x % 2**k keeps the low k bits (and x's sign)
        low = (1 << k) - 1
        if (a[0].kz & low) == low:
            kz = M
        elif a[0].lo >= 0:
            kz, ko = (a[0].kz & low) | (M & ~low), a[0].ko & low
    elif op in ("where", "ifexp"):
        kz, ko = a[1].kz & a[2].kz, a[1].ko & a[2].ko
    iz, io = _known_from_interval(ty, lo, hi)
    kz, ko = (kz | iz) & M, (ko | io) & M
    if kz & ko:                     # contradictory (cannot happen with sound rules): forget the bit facts
        kz, ko = iz, io
    return B(op, args, value, lo, hi, kz, ko, hexa)


# --------------------------------------------------------------------------------------------------------
# Emission


def emit(n: B, ty: IType) -> str:
    if n.op == "var":
        return str(n.value)
    if n.op == "const":
        return ty.lit(n.value, n.hexa)
    if n.op in BIN_SYM:
        return f"({emit(n.args[0], ty)} {BIN_SYM[n.op]} {emit(n.args[1], ty)})"
    if n.op == "invert":
        return f"(~{emit(n.args[0], ty)})"
    if n.op == "neg":
        return f"(-{emit(n.args[0], ty)})"
    if n.op in ("min", "max", "abs"):
        return f"wp.{n.op}({', '.join(emit(a, ty) for a in n.args)})"
    if n.op == "bit_count":
        inner = f"wp.bit_count({emit(n.args[0], ty)})"
        return inner if ty.name == "int32" else f"wp.{ty.name}({inner})"
    if n.op == "where":
        return f"wp.where({emit_cond(n.args[0], ty)}, {emit(n.args[1], ty)}, {emit(n.args[2], ty)})"
    if n.op == "ifexp":
        return f"({emit(n.args[1], ty)} if {emit_cond(n.args[0], ty)} else {emit(n.args[2], ty)})"
    raise ValueError(n.op)


def emit_cond(c: B, ty: IType) -> str:
    if c.op in CMP_SYM:
        return f"{emit(c.args[0], ty)} {CMP_SYM[c.op]} {emit(c.args[1], ty)}"
    if c.op in ("and", "or"):
        return f"({emit_cond(c.args[0], ty)}) {c.op} ({emit_cond(c.args[1], ty)})"
    raise ValueError(c.op)


# --------------------------------------------------------------------------------------------------------
# NumPy evaluation (values held exactly in int64; uint32 as 0..2**32-1)


def _fix(x, ty: IType):
    """Bring a mathematically exact int64 result back to ``ty``'s value set (wrap where Warp wraps)."""
    if ty.name == "uint32":
        return np.asarray(x, dtype=np.int64) & M32
    return np.asarray(x, dtype=np.int64)


def _as_int32(x):
    return ((np.asarray(x, dtype=np.int64) + 2**31) & M32) - 2**31


def _popcount(x, ty: IType):
    x = np.asarray(x, dtype=np.int64)
    if ty.bits == 32:
        return np.bitwise_count(x & M32).astype(np.int64)
    return np.bitwise_count(x.astype(np.uint64)).astype(np.int64)   # two's complement bits, not |x|'s


def evaluate(n: B, env: dict, ty: IType) -> np.ndarray:
    op = n.op
    if op == "var":
        return env[n.value]
    if op == "const":
        return np.int64(n.value)
    if op in ("where", "ifexp"):
        return np.where(evaluate_cond(n.args[0], env, ty), evaluate(n.args[1], env, ty),
                        evaluate(n.args[2], env, ty))
    a = [evaluate(x, env, ty) for x in n.args]
    with np.errstate(over="ignore"):
        if op == "add":
            return _fix(a[0] + a[1], ty)
        if op == "sub":
            return _fix(a[0] - a[1], ty)
        if op == "mul":            # uint32 products up to 2**64 wrap mod 2**64 in int64: low 32 bits stay exact
            return _fix(a[0] * a[1], ty)
        if op == "band":
            return a[0] & a[1]
        if op == "bor":
            return a[0] | a[1]
        if op == "bxor":
            return a[0] ^ a[1]
        if op == "shl":
            return _fix(np.left_shift(a[0], a[1]), ty)
        if op == "shr":            # arithmetic for signed (int64 holds the sign), logical for uint32 (non-negative)
            return np.right_shift(a[0], a[1])
        if op == "mod":            # C: truncated remainder
            return np.fmod(a[0], a[1])
        if op == "floordiv":       # Warp: floored quotient for signed, plain for unsigned
            return np.floor_divide(a[0], a[1])
        if op == "invert":
            return _fix(~a[0], ty)
        if op == "neg":
            return _fix(-a[0], ty)
        if op == "abs":
            return np.abs(a[0])
        if op == "min":
            return np.minimum(a[0], a[1])
        if op == "max":
            return np.maximum(a[0], a[1])
        if op == "bit_count":
            return _popcount(a[0], ty)
    raise ValueError(op)


def evaluate_cond(c: B, env: dict, ty: IType) -> np.ndarray:
    if c.op in CMP_SYM:
        x, y = evaluate(c.args[0], env, ty), evaluate(c.args[1], env, ty)
        return {"lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal, "eq": np.equal,
                "ne": np.not_equal}[c.op](x, y)
    x, y = evaluate_cond(c.args[0], env, ty), evaluate_cond(c.args[1], env, ty)
    return (x & y) if c.op == "and" else (x | y)


# --------------------------------------------------------------------------------------------------------
# Generation


def _overlap_ok(x: B, y: B, share: float = 0.15) -> bool:
    """The ranges overlap enough that comparing (or min/max-ing) x and y is not (almost) decided in advance."""
    return min(x.hi, y.hi) - max(x.lo, y.lo) >= share * max(x.hi - x.lo, y.hi - y.lo, 1)


def _bit_positions(bits: int) -> list[int]:
    return [b for b in range(bits.bit_length()) if bits >> b & 1]


class Gen:
    """Random integer expressions for ``ty`` over ``leaves`` (name -> template node) that stay inside ``ty``'s
    defined behaviour and refuse operations that are constant or erase an operand (see module docstring)."""

    def __init__(self, rng: np.random.Generator, ty: IType, leaves: dict[str, B]):
        self.rng = rng
        self.ty = ty
        self.leaves = leaves
        ops = {"band": 1.2, "bor": 0.9, "bxor": 1.4, "shl": 1.0, "shr": 1.2, "add": 1.0, "sub": 0.7,
               "mul": 1.1 if ty.name == "uint32" else 0.5, "mod": 0.6, "floordiv": 0.5, "min": 0.35, "max": 0.35}
        self.ops = tuple(ops)
        self.p = np.array(list(ops.values())) / sum(ops.values())

    def leaf(self, name: str, lo: int, hi: int) -> B:
        """Register ``name`` as a leaf holding values in [lo, hi] (known bits from the interval)."""
        node = mk(self.ty, "var", (), lo, hi, name)
        self.leaves[name] = node
        return node

    def const(self, v: int, hexa: bool = False) -> B:
        return mk(self.ty, "const", (), int(v), int(v), int(v), hexa)

    def random_op(self) -> str:
        return self.ops[int(self.rng.choice(len(self.ops), p=self.p))]

    # leaves -------------------------------------------------------------------------------------------
    def var(self) -> B:
        return self.leaves[pick(self.rng, list(self.leaves))]

    def small_const(self) -> B:
        lo = -9 if self.ty.signed else 2
        v = 0
        while v in (0, 1, -1):
            v = int(self.rng.integers(lo, 10))
        return self.const(v)

    def mask_for(self, x: B, op: str = "band") -> B:
        """A mask constant that meets ``x``'s unknown bits (``x | m`` keeps some of them free as well)."""
        ty, rng = self.ty, self.rng
        free = x.unknown(ty) & ((1 << (ty.bits - 1)) - 1 if ty.name != "int64" else (1 << 51) - 1)
        pos = _bit_positions(free) or [0]
        lo_b, hi_b = pos[0], pos[-1]
        roll = rng.random()
        if op == "bor":             # few bits: a flag, a nibble, a narrow field
            if roll < 0.5:
                m = 1 << int(pick(rng, pos))
            else:
                w = int(rng.integers(2, 5))
                m = ((1 << w) - 1) << int(rng.integers(lo_b, max(lo_b, hi_b - w + 1) + 1))
        elif roll < 0.35:
            m = (1 << int(rng.integers(lo_b + 1, hi_b + 2))) - 1
        elif roll < 0.6:
            w = int(rng.integers(1, max(2, hi_b - lo_b + 1)))
            m = ((1 << w) - 1) << int(rng.integers(lo_b, max(lo_b, hi_b - w + 1) + 1))
        elif roll < 0.75:
            m = int(pick(rng, (0x55555555, 0x33333333, 0x0F0F0F0F, 0x00FF00FF, 0x7F7F7F7F)))
        else:
            m = int(rng.integers(1, 1 << (hi_b + 1)))
        m &= (1 << 31) - 1 if ty.name != "int64" else (1 << 51) - 1
        if not m & free:
            m |= 1 << int(pick(rng, pos))
        return self.const(m, hexa=m > 9 and rng.random() < 0.7)

    # composite ----------------------------------------------------------------------------------------
    def expr(self, depth: int) -> B:
        if depth <= 0 or self.rng.random() < 0.25:
            return self.var() if self.rng.random() < 0.85 else self.small_const()
        roll = self.rng.random()
        if roll < 0.1:
            return self.select(depth)
        if roll < 0.25:
            return self.unary(pick(self.rng, ("invert", "invert", "neg", "abs", "bit_count")), self.expr(depth - 1))
        return self.binary(self.random_op(), self.expr(depth - 1), None, depth)

    def bit_test(self, x: B) -> B:
        """``(x & m) == 0`` / ``!= 0`` with one or two of x's free bits in m."""
        if x.op == "const" or not x.unknown(self.ty):
            x = self.var()
        pos = _bit_positions(x.unknown(self.ty) & ((1 << (self.ty.bits - 1)) - 1)) or [0]
        m = 0
        for _ in range(int(self.rng.integers(1, 3))):
            m |= 1 << int(pick(self.rng, pos))
        node = self.make("band", x, self.const(m, hexa=m > 9 and self.rng.random() < 0.5)) or x
        return B(pick(self.rng, ("eq", "ne")), (node, self.const(0)))

    def condition(self, depth: int) -> B:
        roll = self.rng.random()
        if roll < 0.35:
            c = self.bit_test(self.expr(max(0, depth - 1)))
        elif roll < 0.5 and self.ty.signed:   # sign or parity
            x = self.var()
            if x.lo < 0 < x.hi:
                c = B(pick(self.rng, ("lt", "ge")), (x, self.const(0)))
            else:
                c = self.bit_test(x)
        else:
            for _ in range(4):
                a = self.expr(max(0, depth - 1))
                b = self.expr(max(0, depth - 1))
                if a.op == "const" and b.op == "const":
                    a = self.var()
                if a != b and _overlap_ok(a, b):
                    break
            else:
                a = self.var()
                b = self.binary("shr", a, None, 1)
                if b == a:
                    return self.bit_test(a)
            small = max(a.hi - a.lo, b.hi - b.lo) <= 64
            c = B(pick(self.rng, ("lt", "le", "gt", "ge") + (("eq", "ne") if small else ())), (a, b))
        if depth > 1 and self.rng.random() < 0.2:
            c = B(pick(self.rng, ("and", "or")), (c, self.condition(1)))
        return c

    def select(self, depth: int) -> B:
        c = self.condition(max(1, depth - 1))
        x, y = self.expr(depth - 1), self.expr(depth - 1)
        if x == y:
            y = self.binary("bxor", y, None, 1)
        return mk(self.ty, pick(self.rng, ("where", "ifexp")), (c, x, y), min(x.lo, y.lo), max(x.hi, y.hi))

    def unary(self, op: str, x: B) -> B:
        ty = self.ty
        if x.op == "const":
            x = self.var()
        if x.op == op and op in ("invert", "neg"):          # ~~x, --x
            op = "bit_count" if op == "invert" else "invert"
        if op == "abs" and (not ty.signed or x.lo >= 0 or x.lo <= ty.lo - 1):
            op = "invert"
        if op == "neg" and ty.signed and x.lo <= ty.lo - 1:
            op = "invert"
        if op == "bit_count" and x.op == "bit_count":
            op = "invert"
        if op == "invert":
            lo, hi = (-x.hi - 1, -x.lo - 1) if ty.signed else (M32 - x.hi, M32 - x.lo)
        elif op == "neg":
            lo, hi = (-x.hi, -x.lo) if ty.signed else ((0, M32) if x.lo == 0 else (M32 + 1 - x.hi, M32 + 1 - x.lo))
        elif op == "abs":
            lo, hi = (0 if x.lo <= 0 <= x.hi else min(abs(x.lo), abs(x.hi))), max(abs(x.lo), abs(x.hi))
        else:
            lo, hi = 0, ty.bits
        return mk(ty, op, (x,), lo, hi)

    def shift_amount(self, x: B, op: str) -> B:
        """A shift amount in [0, W-1]: a constant chosen to keep information, or ``e & m``."""
        ty = self.ty
        width = (_sbits(x.lo, x.hi) if ty.signed else x.hi.bit_length()) or 1
        if self.rng.random() < 0.25:
            m = int(pick(self.rng, (3, 7, 15) + ((31,) if op == "shr" or not ty.signed else ())))
            m = min(m, ty.bits - 1)
            e = self.var()
            return mk(ty, "band", (e, self.const(m)), 0, m)
        top = max(1, min(width - 1, ty.bits - 1)) if op == "shr" else max(1, min(ty.bits - 1, 24))
        return self.const(int(self.rng.integers(1, top + 1)))

    def divisor(self) -> B:
        ty = self.ty
        roll = self.rng.random()
        if roll < 0.55:
            v = int(self.rng.integers(2, 18))
            if ty.signed and self.rng.random() < 0.3:
                v = -v
            return self.const(v)
        e = self.var()
        if roll < 0.85 or e.hi < 3:
            m = (1 << int(self.rng.integers(2, 5))) - 1
            return mk(ty, "add", (mk(ty, "band", (e, self.const(m)), 0, m), self.const(1)), 1, m + 1)
        k = int(self.rng.integers(1, 4))
        return mk(ty, "max", (e, self.const(k)), k, max(e.hi, k))

    def binary(self, op: str, x: B, y: B | None, depth: int) -> B:
        ty, rng = self.ty, self.rng
        if x.op == "const":
            x = self.var()
        if y is not None:
            pass
        elif op in ("shl", "shr"):
            y = self.shift_amount(x, op)
        elif op in ("mod", "floordiv"):
            y = self.divisor()
        elif op in ("band", "bor", "bxor") and rng.random() < 0.45:
            y = self.mask_for(x, op)
        elif op == "mul" and ty.name == "uint32" and rng.random() < 0.5:
            y = self.const(int(pick(rng, HASH_MULTS)), hexa=rng.random() < 0.6)
        elif op == "add" and ty.name == "uint32" and rng.random() < 0.3:
            y = self.const(int(pick(rng, HASH_ADDS)), hexa=rng.random() < 0.5)
        else:
            y = self.expr(max(0, depth - 1))
            if y.op == "const" and op == "mul" and ty.signed:
                y = self.small_const()
        if x == y and op in ("sub", "bxor", "band", "bor", "min", "max"):
            y = self.mask_for(x, op) if op in ("bxor", "band", "bor") else self.var()
            if x == y:
                op = "add"
        node = self.make(op, x, y)
        if node is None and op == "shl" and ty.signed:
            # left shift of a signed value: mask it non-negative and small enough first
            room = (31 if ty.name == "int32" else 51) - y.hi
            m = (1 << max(1, min(room, _sbits(x.lo, x.hi) or 1))) - 1
            xm = self.make("band", x, self.const(m, hexa=m > 9))
            node = self.make(op, xm, y) if xm is not None else None
        if node is None:
            for alt in ("bxor", "add", "band"):
                node = self.make(alt, x, y)
                if node is not None:
                    break
        return node if node is not None else x

    def make(self, op: str, x: B, y: B) -> B | None:
        """The node with its interval, or None when ``op`` could overflow, hit undefined behaviour, give a
        constant, or erase an operand."""
        ty = self.ty
        if op in ("add", "sub", "mul"):
            if op == "add":
                lo, hi = x.lo + y.lo, x.hi + y.hi
            elif op == "sub":
                lo, hi = x.lo - y.hi, x.hi - y.lo
            else:
                c = (x.lo * y.lo, x.lo * y.hi, x.hi * y.lo, x.hi * y.hi)
                lo, hi = min(c), max(c)
            if not ty.signed and (lo < 0 or hi > M32):
                lo, hi = 0, M32                                  # wraps modulo 2**32: defined for uint32
        elif op in ("band", "bor", "bxor"):
            ux, uy = x.unknown(ty), y.unknown(ty)
            if op == "band" and ((uy and not uy & ~x.kz) or (ux and not ux & ~y.kz)):
                return None                                      # one operand is masked away entirely
            if op == "bor" and ((uy and not uy & ~x.ko) or (ux and not ux & ~y.ko)):
                return None                                      # one operand is covered by the other's ones
            if x.lo >= 0 and y.lo >= 0:
                k = max(x.hi.bit_length(), y.hi.bit_length())
                lo, hi = {"band": (0, min(x.hi, y.hi)), "bor": (max(x.lo, y.lo), (1 << k) - 1),
                          "bxor": (0, (1 << k) - 1)}[op]
            elif op == "band" and (x.lo >= 0 or y.lo >= 0):
                lo, hi = 0, (x.hi if x.lo >= 0 else y.hi)
            else:
                k = max(_sbits(x.lo, x.hi), _sbits(y.lo, y.hi))
                lo, hi = -(1 << k), (1 << k) - 1
        elif op == "shl":
            if ty.signed and x.lo < 0:
                return None
            lo, hi = x.lo << y.lo, x.hi << y.hi
            if not ty.signed and hi > M32:
                lo, hi = 0, M32
        elif op == "shr":
            lo = min(x.lo >> y.lo, x.lo >> y.hi)
            hi = max(x.hi >> y.lo, x.hi >> y.hi)
        elif op in ("mod", "floordiv"):
            if y.lo <= 0 <= y.hi:
                return None
            if op == "mod":
                d = max(abs(y.lo), abs(y.hi)) - 1
                lo = 0 if x.lo >= 0 else max(x.lo, -d)
                hi = 0 if x.hi <= 0 else min(x.hi, d)
            else:
                c = [a // b for a in (x.lo, x.hi) for b in (y.lo, y.hi)]
                lo, hi = min(c), max(c)
        elif op in ("min", "max"):
            if not _overlap_ok(x, y):                            # one side (almost) always wins
                return None
            lo, hi = (min(x.lo, y.lo), min(x.hi, y.hi)) if op == "min" else (max(x.lo, y.lo), max(x.hi, y.hi))
        else:
            raise ValueError(op)
        if lo < ty.lo or hi > ty.hi or lo == hi:
            return None
        node = mk(ty, op, (x, y), lo, hi)
        if not node.unknown(ty):                                 # every bit known: a constant
            return None
        return node


# --------------------------------------------------------------------------------------------------------
# Program


def _cast_text(src: str, dst: str, text: str) -> str:
    return text if src == dst else f"wp.{dst}({text})"


def _cast_value(x, dst: str):
    if dst == "uint32":
        return np.asarray(x, dtype=np.int64) & M32
    if dst == "int32":
        return _as_int32(x)
    return np.asarray(x, dtype=np.int64)


def _cast_interval(lo: int, hi: int, dst: str) -> tuple[int, int]:
    if dst == "uint32" and (lo < 0 or hi > M32):
        return 0, M32
    return lo, hi       # conversions into int32 only ever see values inside int32 (inputs are drawn so)


def generate(rng: np.random.Generator) -> Program:
    """A random program; candidates whose outputs are constant, copy an input, or ignore an input on sampled
    inputs are replaced (bit operations erase information in ways intervals and known bits do not see)."""
    for _ in range(3):
        program = _candidate(rng)
        if not _degenerate(program, rng):
            return program
    return program


class _SpecView:
    """What ``reference`` reads of a KernelSpec (for checks at generation time)."""

    def __init__(self, program: Program):
        self.meta = program.meta
        self.args = program.args
        self.program = program


def _degenerate(program: Program, rng) -> bool:
    from harness.verify import default_inputs
    view = _SpecView(program)
    srng = np.random.default_rng(int(rng.integers(2**31)))
    sets = [default_inputs(view, srng) for _ in range(2)]
    outs = [reference(view, inputs) for inputs in sets]
    ins = [a for a in program.args if a.role in ("in", "scalar")]
    for name in outs[0]:
        both = np.concatenate([o[name].ravel() for o in outs])
        if np.all(both == both[0]):
            return True
        for a in ins:
            if a.role == "in" and all(np.array_equal(s[a.name], o[name]) for s, o in zip(sets, outs)):
                return True
    for a in ins:
        changed = dict(sets[0])
        changed[a.name] = default_inputs(_SpecView(Program("", (a,), (N,))), srng)[a.name]
        moved = reference(view, changed)
        if all(np.array_equal(moved[k], outs[0][k]) for k in moved):
            return True
    return False


def _candidate(rng: np.random.Generator) -> Program:
    tname = pick(rng, ("int32", "int32", "uint32", "uint32", "uint32", "int64"))
    ty = TYPES[tname]
    gen = Gen(rng, ty, {})
    n_in = int(rng.integers(1, 4))
    names = pick(rng, ARRAY_NAMES, n_in)
    args: list[Arg] = []
    body: list[str] = []
    sources: list[str] = []          # leaves that carry input data (loads, scalar parameters)
    loads = []                       # (leaf, array, source dtype)
    for idx, n in enumerate(names):
        src = tname
        if idx > 0 and rng.random() < 0.3:
            src = pick(rng, [t for t in TYPES if t != tname])
        lo, hi = pick(rng, INPUT_RANGES[src])
        if src == "int32" and tname != "int32" and rng.random() < 0.5:
            lo, hi = -(2**15), 2**15
        if src != tname and tname == "int32":   # conversions into int32: keep inputs inside int32's range
            lo, hi = max(lo, -(2**30)), min(hi, 2**30)
        args.append(Arg(n, src, "in", (N,), float(lo), float(hi)))
        text = _cast_text(src, tname, f"{n}[i]")
        if rng.random() < 0.55 or src != tname:
            leaf = f"{n}_v" if rng.random() < 0.4 else pick(rng, ("x", "y", "u", "w", "key", "bits")) + str(idx)
            body.append(f"{leaf} = {text}")
        else:
            leaf = text
        gen.leaf(leaf, *_cast_interval(lo, hi, tname))
        loads.append((leaf, n, src))
        sources.append(leaf)
    if rng.random() < 0.35:
        gen.leaf(_cast_text("int32", tname, "i"), 0, N - 1)
    scalars = []
    if rng.random() < 0.3:
        sname = pick(rng, SCALAR_NAMES + ("seed", "salt", "mask", "key"))
        slo, shi = pick(rng, ((1, 31), (0, 255), (1, 1 << 20)))
        args.append(Arg(sname, tname, "scalar", (), float(slo), float(shi)))
        gen.leaf(sname, slo, shi)
        scalars.append(sname)
        sources.append(sname)
    stmts = []             # ("let"|"set", name, node) | ("loop", var, trips, [(name, node)], box) | ("if", cond, h, a, b)
    locals_: list[str] = []
    for s in range(int(rng.integers(1, 5))):
        roll = rng.random()
        if locals_ and roll < 0.3:
            # update an existing local in place: h ^= h >> 13, h *= C, h = h + (...)
            h = pick(rng, locals_)
            node = _update(gen, h, pick(rng, ("bxor", "bxor", "add", "mul", "bor", "band", "shr", "sub")))
            if node is not None:
                stmts.append(("set", h, node))
                gen.leaves[h] = _as_leaf(h, node)
                continue
        if locals_ and roll < 0.45:
            h = pick(rng, locals_)
            loop = _loop(gen, h, rng)
            if loop is not None:
                stmts.append(loop)
                continue
        if locals_ and roll < 0.55:
            # if/else: two different updates of a local (both keep what it carried)
            h = pick(rng, locals_)
            cond = gen.condition(2)
            ops2 = pick(rng, ("bxor", "add", "mul", "bor", "band", "shr", "sub"), 2)
            a, b = _update(gen, h, ops2[0]), _update(gen, h, ops2[1])
            if a is not None and b is not None and a != b:
                stmts.append(("if", cond, h, a, b))
                gen.leaves[h] = mk(ty, "var", (), min(a.lo, b.lo), max(a.hi, b.hi), h)
                continue
        name = f"{pick(rng, LOCAL_NAMES + ('hsh', 'bits', 'lo', 'hi', 'mix'))}{s}"
        node = gen.expr(int(rng.integers(1, 4)))
        if node.op in ("var", "const"):
            node = gen.binary(gen.random_op(), node, None, 2)
        stmts.append(("let", name, node))
        gen.leaves[name] = _as_leaf(name, node)
        locals_.append(name)
    outs = pick(rng, OUT_NAMES, int(rng.integers(1, 3)))
    out_nodes = []
    for o in outs:
        node = gen.expr(int(rng.integers(1, 4)))
        if node.op in ("var", "const"):
            node = gen.binary(gen.random_op(), node, None, 2)
        out_nodes.append([o, node])
    # every output reads input data; every local and input reaches an output (folded in where missing;
    # locals latest first, since folding one makes what it was computed from live)
    carriers = _carriers(stmts, set(sources))
    for slot in out_nodes:
        if not uses(slot[1]) & carriers:
            slot[1] = _fold(gen, slot[1], pick(rng, sorted(carriers)))
    for leaf in locals_[::-1] + sources:
        if leaf not in _live(stmts, [node for _, node in out_nodes]):
            slot = out_nodes[int(rng.integers(len(out_nodes)))] if leaf in locals_ else out_nodes[0]
            slot[1] = _fold(gen, slot[1], leaf)
    # output element types: mostly the program's type, sometimes a conversion on store
    final = []
    for o, node in out_nodes:
        dst = tname if rng.random() < 0.75 else pick(rng, [t for t in TYPES if t != tname])
        if dst == "int32" and (tname == "int64" or (node.hi > 2**31 - 1 and rng.random() < 0.5)):
            m = pick(rng, (0x7FFFFFFF, 0xFFFF, 0xFFFFFF, 0x3FFFFFFF))
            node = gen.make("band", node, gen.const(m, hexa=True)) or \
                mk(ty, "band", (node, gen.const(m, hexa=True)), 0, m)
        final.append((o, dst, node))
    for kind, *rest in stmts:
        if kind == "let":
            body.append(f"{rest[0]} = {emit(rest[1], ty)}")
        elif kind == "set":
            body.append(_emit_update(rest[0], rest[1], ty, rng))
        elif kind == "loop":
            var, trips, inner = rest
            body.append(f"for {var} in range({trips}):")
            for h, node in inner:
                body.append("    " + _emit_update(h, node, ty, rng))
        else:
            cond, h, a, b = rest
            body += [f"if {emit_cond(cond, ty)}:", "    " + _emit_update(h, a, ty, rng), "else:",
                     "    " + _emit_update(h, b, ty, rng)]
    for o, dst, node in final:
        body.append(f"{o}[i] = {_cast_text(tname, dst, emit(node, ty))}")
        args.append(Arg(o, dst, "out", (N,)))
    ops = set()
    for st in stmts:
        for part in st:
            if isinstance(part, B):
                ops |= ops_of(part)
            if isinstance(part, list):
                for _, node in part:
                    ops |= ops_of(node)
    for _, _, node in final:
        ops |= ops_of(node)
    meta = {"ty": tname, "loads": loads, "stmts": stmts, "outputs": final, "scalars": scalars,
            "index_leaf": _cast_text("int32", tname, "i")}
    features = {"dtype": tname, "ops": sorted(ops), "statements": len(stmts), "outputs": len(final),
                "inputs": n_in, "input_dtypes": sorted({a.dtype for a in args if a.role == "in"}),
                "output_dtypes": sorted({d for _, d, _ in final}),
                "loop": any(s[0] == "loop" for s in stmts), "if_block": any(s[0] == "if" for s in stmts)}
    source = L.kernel_text(rng, args, body, "i = wp.tid()")
    return Program(source, tuple(args), (N,), meta, features)


def _as_leaf(name: str, node: B) -> B:
    """A variable standing for ``node``'s value (same interval and known bits)."""
    return B("var", (), name, node.lo, node.hi, node.kz, node.ko)


def _fold(gen: Gen, node: B, leaf: str) -> B:
    """``node`` combined with ``leaf`` so that the leaf's value matters."""
    v = gen.leaves[leaf]
    out = gen.binary(pick(gen.rng, ("bxor", "add", "bor", "bxor", "sub")), node, v, 1)
    if leaf in uses(out):
        return out
    # could not combine in range: xor cannot overflow
    if node.lo >= 0 and v.lo >= 0:
        lo, hi = 0, (1 << max(node.hi.bit_length(), v.hi.bit_length())) - 1
    else:
        k = max(_sbits(node.lo, node.hi), _sbits(v.lo, v.hi))
        lo, hi = -(1 << k), (1 << k) - 1
    return mk(gen.ty, "bxor", (node, v), lo, hi)


def _update(gen: Gen, h: str, op: str, loop_var: B | None = None) -> B | None:
    """``h <op> rhs`` as a node (emitted as ``h op= rhs`` or ``h = h op rhs``); None if it would be degenerate.

    In a loop, xor/or operands mix in the loop variable (``h ^= x`` repeated an even number of times cancels).
    """
    x = gen.leaves[h]
    ty, rng = gen.ty, gen.rng
    if op == "shr":                       # xorshift step: h ^= h >> s
        sh = gen.make("shr", x, gen.shift_amount(x, "shr"))
        return gen.make("bxor", x, sh) if sh is not None else None
    if op == "mul" and ty.name == "uint32":
        return gen.make("mul", x, gen.const(int(pick(rng, HASH_MULTS)), hexa=True))
    if op in ("band", "bor") and loop_var is None:
        return gen.make(op, x, gen.mask_for(x, op))
    # the operand must not read h itself: h ^ (h ^ c) or h - h would erase what h carried
    others = {k: v for k, v in gen.leaves.items() if k != h}
    if not others:
        return gen.make("bxor", x, gen.mask_for(x))
    saved, gen.leaves = gen.leaves, others
    try:
        y = gen.expr(int(rng.integers(1, 3)))
        if loop_var is not None and loop_var.value not in uses(y):
            y = gen.binary(pick(rng, ("add", "bxor", "mul")), loop_var, y, 1)
    finally:
        gen.leaves = saved
    return gen.make(op, x, y)


def _emit_update(h: str, node: B, ty: IType, rng) -> str:
    """``h = h op y`` in the augmented form ``h op= y`` half of the time."""
    if node.op in BIN_SYM and node.args[0].op == "var" and node.args[0].value == h and rng.random() < 0.6:
        return f"{h} {BIN_SYM[node.op]}= {emit(node.args[1], ty)}"
    return f"{h} = {emit(node, ty)}"


def _loop(gen: Gen, h: str, rng) -> tuple | None:
    """``for r in range(K):`` mixing rounds on ``h``, inside an interval closed under the body (checked)."""
    ty = gen.ty
    cur = gen.leaves[h]
    if ty.signed:
        k = min(max(_sbits(cur.lo, cur.hi), 8), 30 if ty.name == "int32" else 50)
        box = (-(1 << k), (1 << k) - 1)
    else:
        box = (0, M32)
    var = pick(rng, ("r", "it", "step", "rnd", "n"))
    trips = int(rng.integers(2, 5))
    saved = dict(gen.leaves)
    gen.leaf(h, *box)
    rvar = gen.leaf(_cast_text("int32", ty.name, var), 0, trips - 1)
    inner = []
    for _ in range(int(rng.integers(1, 4))):
        node = _update(gen, h, pick(rng, ("bxor", "shr", "mul", "add", "bxor", "bor")), rvar)
        if node is None or node.lo < box[0] or node.hi > box[1]:
            continue
        inner.append((h, node))
    gen.leaves = saved
    if not inner:
        return None
    gen.leaf(h, *box)
    return ("loop", var, trips, inner)


def _carriers(stmts, sources: set[str]) -> set[str]:
    """Leaves whose value depends on input data."""
    dep = set(sources)
    for st in stmts:
        if st[0] in ("let", "set"):
            if uses(st[2]) & dep:
                dep.add(st[1])
        elif st[0] == "loop":
            if any(uses(n) & dep for _, n in st[3]):
                dep.add(st[3][0][0])
        elif (uses(st[1]) | uses(st[3]) | uses(st[4])) & dep:
            dep.add(st[2])
    return dep


def _live(stmts, out_nodes) -> set[str]:
    """Leaves and locals whose value can reach an output (statements followed backwards)."""
    live: set[str] = set()
    for node in out_nodes:
        live |= uses(node)
    for st in reversed(stmts):
        kind = st[0]
        if kind in ("let", "set"):
            if st[1] in live:
                live |= uses(st[2])
        elif kind == "loop":
            if st[3][0][0] in live:
                for _, node in st[3]:
                    live |= uses(node)
        else:
            cond, h, a, b = st[1:]
            if h in live:
                live |= uses(cond) | uses(a) | uses(b)
    return live


# --------------------------------------------------------------------------------------------------------
# Reference


def reference(spec: KernelSpec, inputs) -> dict[str, np.ndarray]:
    meta = spec.meta
    ty = TYPES[meta["ty"]]
    env: dict[str, np.ndarray] = {}
    for leaf, name, src in meta["loads"]:
        env[leaf] = _cast_value(inputs[name].astype(np.int64), ty.name)
    env[meta["index_leaf"]] = np.arange(N, dtype=np.int64)
    for s in meta["scalars"]:
        env[s] = np.int64(inputs[s])
    for st in meta["stmts"]:
        kind = st[0]
        if kind in ("let", "set"):
            env[st[1]] = np.broadcast_to(evaluate(st[2], env, ty), (N,))
        elif kind == "loop":
            var, trips, inner = st[1], st[2], st[3]
            for r in range(trips):
                env[var] = np.int64(r)
                env[_cast_text("int32", ty.name, var)] = np.int64(r)
                for h, node in inner:
                    env[h] = np.broadcast_to(evaluate(node, env, ty), (N,))
        else:
            cond, h, a, b = st[1:]
            env[h] = np.broadcast_to(np.where(evaluate_cond(cond, env, ty), evaluate(a, env, ty),
                                              evaluate(b, env, ty)), (N,))
    return {o: np.broadcast_to(_cast_value(evaluate(node, env, ty), dst), (N,)).copy()
            for o, dst, node in meta["outputs"]}


def tolerance(spec: KernelSpec) -> Tolerance:
    return Tolerance(0.0, 0.0)


FAMILY = Family(
    name="bitwise",
    description=__doc__.strip().splitlines()[0],
    generate=generate,
    reference=reference,
    tolerance=tolerance,
    weight=1.0,
    covers=("bitwise operators", "shifts", "uint32 wraparound", "int64", "integer hashing", "bit_count",
            "C integer division and remainder", "integer casts", "augmented assignment", "mixing loops"),
)
