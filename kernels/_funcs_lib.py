"""Helpers shared by the funcs, structs and random families: expression hygiene on ``kernels._expr`` trees and
the masks of their float32-emulating references."""

from __future__ import annotations

import numpy as np

from kernels import _expr as E
from kernels._common import pick


def strong_uses(node: E.Node) -> set[str]:
    """Variables the value depends on through + - * / neg abs only (not min/max arms, selects or conditions):
    folding a variable in this way guarantees the result really depends on it."""
    if node.op == "var":
        return {node.value}
    if node.op in ("add", "sub", "mul", "div", "neg", "abs"):
        out: set[str] = set()
        for child in node.args:
            out |= strong_uses(child)
        return out
    return set()


def fold_in(gen: E.ExprGen, rng, node: E.Node, must, leaves: dict) -> E.Node:
    """``node`` made to depend on each variable of ``must`` (intervals in ``leaves``) through + - * (see
    :func:`strong_uses`), not as a min/max arm that the other side could dominate."""
    for m in must:
        if m not in strong_uses(node):
            node = gen.apply_binary(pick(rng, ("add", "sub", "mul")), node, E.var(m, leaves[m]))
            if m not in strong_uses(node):
                node = E.Node("add", (node, E.var(m, leaves[m])),
                              iv=E.Interval(node.iv.lo + leaves[m].lo, node.iv.hi + leaves[m].hi))
    return node


def emulation_moved(emulated, want, tol) -> np.ndarray:
    """Where a run that emulates float32 rounding moved an output by more than a quarter of the tolerance
    ``tol`` (the reference masks those elements: the kernel's own rounding may move them as far)."""
    with np.errstate(all="ignore"):
        return ~(np.abs(emulated - want) <= 0.25 * (tol.atol + tol.rtol * np.abs(want)))


def sane_cond(c: E.Node) -> bool:
    """A comparison whose sides differ, are not both constant, and whose intervals overlap (both outcomes
    are possible)."""
    if c.op in ("and", "or"):
        return sane_cond(c.args[0]) and sane_cond(c.args[1])
    if c.op == "not":
        return sane_cond(c.args[0])
    if c.op not in E.COMPARE_SYMBOL:
        return True
    a, b = c.args
    if a == b or (not E.uses(a) and not E.uses(b)):
        return False
    return not (a.iv.hi < b.iv.lo or b.iv.hi < a.iv.lo)


def _is_cond(node) -> bool:
    return isinstance(node, E.Node) and (node.op in E.COMPARE_SYMBOL or node.op in ("and", "or", "not"))


def sanitize(node: E.Node) -> E.Node:
    """Replace selects whose condition is trivial (``x >= x``, constant, disjoint intervals) by their first arm,
    and sanitize the operands of the remaining conditions."""
    if node.op in ("where", "ifexp"):
        cond = sanitize_cond(node.args[0])
        if not sane_cond(cond):
            return sanitize(node.args[1])
        return E.Node(node.op, (cond, sanitize(node.args[1]), sanitize(node.args[2])), node.value, node.iv)
    if not node.args:
        return node
    args = tuple(sanitize(a) if isinstance(a, E.Node) and not _is_cond(a) else a for a in node.args)
    return E.Node(node.op, args, node.value, node.iv) if args != node.args else node


def sanitize_cond(c: E.Node) -> E.Node:
    if c.op in ("and", "or", "not"):
        return E.Node(c.op, tuple(sanitize_cond(a) for a in c.args), c.value, c.iv)
    return E.Node(c.op, tuple(sanitize(a) for a in c.args), c.value, c.iv)


def count_token(leaf: str, text: str, glue: str = "_(") -> int:
    """Occurrences of ``leaf`` in ``text`` as a whole token: not preceded by a name character or ``.``, not
    followed by a name character or one of ``glue``."""
    n, start = 0, 0
    while True:
        k = text.find(leaf, start)
        if k < 0:
            return n
        end = k + len(leaf)
        before = text[k - 1] if k else " "
        after = text[end] if end < len(text) else " "
        if not (before.isalnum() or before in "_.") and not (after.isalnum() or after in glue):
            n += 1
        start = k + 1
