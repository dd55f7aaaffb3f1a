"""Single mutations of Warp-generated C++/CUDA forward code: the judge must reject (kill) them.

Each operator changes one site of the forward section (the statements after Warp's ``// forward`` marker; comment
lines are never touched), chosen by a seeded RNG, and returns None when the code has no such site.
"""

from __future__ import annotations

import random
import re
from typing import Callable

_SWAP_CALLS = {"add": "sub", "sub": "add", "mul": "div", "div": "mul", "min": "max", "max": "min"}
_SWAP_CMP = {"<": ">=", ">": "<=", "<=": ">", ">=": "<", "==": "!=", "!=": "=="}
_CALL = re.compile(r"wp::(add|sub|mul|div|min|max)\(")
_CMP = re.compile(r"\((var_\w+) (<=|>=|<|>|==|!=) (var_\w+)\)")
_CONST = re.compile(r"(const wp::(?:float16|float32|float64|int32|int64|uint32|uint64) var_\w+ = )([^;]+);")
_STMT = re.compile(r"^\s+(?:var_\w+ = .+;|wp::(?:array_store|atomic_\w+)\(.+\);)$")
_ADDR_MULTI = re.compile(r"wp::address\((var_\w+), (var_\w+), (var_\w+)")
_NONCOMM = re.compile(r"wp::(sub|div|mod)\((var_\w+), (var_\w+)\)")
_RANGE = re.compile(r"wp::range\(([^;]*?)\);")
_ADDR = re.compile(r"wp::address\((var_\w+), (var_\w+)\)")


def _lines(code: str) -> tuple[list[str], int]:
    lines = code.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == "// forward"), 0)
    return lines, start


def _sites(code: str, pattern: re.Pattern, whole_line: bool = False,
           declarations: bool = False) -> list[tuple[int, re.Match]]:
    lines, start = _lines(code)
    start = 0 if declarations else start        # named constants are declared before the forward marker
    out = []
    for i in range(start, len(lines)):
        if lines[i].lstrip().startswith("//"):
            continue
        if whole_line:
            m = pattern.match(lines[i])
            if m:
                out.append((i, m))
        else:
            out.extend((i, m) for m in pattern.finditer(lines[i]))
    return out


def _edit(code: str, sites, rng: random.Random, change: Callable[[re.Match], str]) -> str | None:
    if not sites:
        return None
    i, m = sites[rng.randrange(len(sites))]
    lines, _ = _lines(code)
    lines[i] = lines[i][:m.start()] + change(m) + lines[i][m.end():]
    return "\n".join(lines)


def operator_swap(code: str, rng: random.Random) -> str | None:
    """``wp::add`` <-> ``wp::sub``, ``mul`` <-> ``div``, ``min`` <-> ``max``, or a comparison negated."""
    sites = _sites(code, _CALL) + _sites(code, _CMP)

    def change(m: re.Match) -> str:
        if m.re is _CALL:
            return f"wp::{_SWAP_CALLS[m.group(1)]}("
        return f"({m.group(1)} {_SWAP_CMP[m.group(2)]} {m.group(3)})"
    return _edit(code, sites, rng, change)


def constant_change(code: str, rng: random.Random) -> str | None:
    """One named constant: floats scaled by 1.5 and shifted by 0.25, integers plus one."""
    def change(m: re.Match) -> str:
        text = m.group(2).strip()
        try:
            value = int(text, 0)
            new = str(value + 1)
        except ValueError:
            try:
                new = repr(float(text) * 1.5 + 0.25)
            except ValueError:
                new = f"({text}) + 1"
        return f"{m.group(1)}{new};"
    return _edit(code, _sites(code, _CONST, declarations=True), rng, change)


def dropped_statement(code: str, rng: random.Random) -> str | None:
    """One assignment, store or atomic statement removed."""
    return _edit(code, _sites(code, _STMT, whole_line=True), rng, lambda m: "    ;")


def swapped_indices(code: str, rng: random.Random) -> str | None:
    """Two indices of a multi-dimensional access swapped; in kernels that index in 1-D only, the operands of
    a non-commutative operation (``sub``, ``div``, ``mod``)."""
    multi = _sites(code, _ADDR_MULTI)
    if multi:
        return _edit(code, multi, rng, lambda m: f"wp::address({m.group(1)}, {m.group(3)}, {m.group(2)}")
    return _edit(code, _sites(code, _NONCOMM), rng, lambda m: f"wp::{m.group(1)}({m.group(3)}, {m.group(2)})")


def off_by_one(code: str, rng: random.Random) -> str | None:
    """The stop of a dynamic loop's ``wp::range`` plus one; in kernels whose loops Warp unrolled (no range
    left in the code), an array index plus one."""
    ranges = _sites(code, _RANGE)
    if ranges:
        def bump(m: re.Match) -> str:
            args = [a.strip() for a in m.group(1).split(",")]
            stop = 0 if len(args) == 1 else 1
            args[stop] = f"wp::add({args[stop]}, 1)"
            return f"wp::range({', '.join(args)});"
        return _edit(code, ranges, rng, bump)
    return _edit(code, _sites(code, _ADDR), rng, lambda m: f"wp::address({m.group(1)}, wp::add({m.group(2)}, 1))")


MUTATIONS: dict[str, Callable[[str, random.Random], str | None]] = {
    "operator_swap": operator_swap, "constant_change": constant_change, "dropped_statement": dropped_statement,
    "swapped_indices": swapped_indices, "off_by_one": off_by_one,
}
