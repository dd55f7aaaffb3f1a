"""Source hygiene of a record's Python: what a reader would call noise in otherwise valid Warp code.

Counted per record (issue #13's list), each by a walk of the source's ``ast``:

- ``unused_funcs``: a ``@wp.func`` (or ``@wp.struct``) defined and never referred to;
- ``dead_locals``: a name a function assigns (``=``, ``+=``, tuple unpacking) and never reads;
- ``self_comparisons``: a comparison whose two sides are the same expression (``x <= x``);
- ``identity_ops``: ``e + 0``, ``0 + e``, ``e - 0``, ``e * 1``, ``1 * e``, ``e / 1``, ``e ** 1`` (a zero or one
  written as a literal, a negated literal or a type constructor of one, e.g. ``wp.float32(0.0)``);
- ``long_lines``: lines longer than ``LONG_LINE`` characters;
- ``hashed_names``: identifiers that carry a long content hash, 8 hex digits or more (``foo_513e50b91f``);
  the 6-digit suffix of a kernel's name (``math_cf2633``) is the short one a name needs to be unique.
"""

from __future__ import annotations

import ast
import re
from collections import Counter

LONG_LINE = 120
KINDS = ("unused_funcs", "dead_locals", "self_comparisons", "identity_ops", "long_lines", "hashed_names")
_HASHED = re.compile(r"(?:^|_)[0-9a-f]{8,}(?:_|$)")


def _literal(node: ast.AST) -> float | None:
    """The number a node spells as a literal (``0``, ``-0.0``, ``wp.float32(1.0)``), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _literal(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
        return _literal(node.args[0])
    return None


def _is_identity(node: ast.BinOp) -> bool:
    left, right = _literal(node.left), _literal(node.right)
    if isinstance(node.op, ast.Add):
        return left == 0.0 or right == 0.0
    if isinstance(node.op, ast.Sub):
        return right == 0.0
    if isinstance(node.op, ast.Mult):
        return left == 1.0 or right == 1.0
    if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Pow)):
        return right == 1.0
    return False


def _decorated(node: ast.AST, names: tuple[str, ...]) -> bool:
    for d in getattr(node, "decorator_list", ()):
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute) and target.attr in names:
            return True
    return False


def _targets(node: ast.AST):
    if isinstance(node, ast.Name):
        yield node.id
    elif isinstance(node, (ast.Tuple, ast.List)):
        for e in node.elts:
            yield from _targets(e)


def _dead_locals(fn: ast.FunctionDef) -> int:
    stored: set[str] = set()
    loaded: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                loaded.add(node.id)
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                stored.update(_targets(t))
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            stored.update(_targets(node.target))
    # ``x += 1`` reads x only to write it back: a name loaded nowhere is dead even when it is augmented; a name
    # starting with ``_`` says it is unused on purpose (``i, _lane = wp.tid()`` in a tiled kernel)
    return len({name for name in stored if name not in loaded and not name.startswith("_")})


def hygiene(source: str) -> Counter:
    """Counts of each kind of noise in one record's Python source (zero counts included)."""
    counts = Counter({k: 0 for k in KINDS})
    counts["long_lines"] = sum(len(line) > LONG_LINE for line in source.splitlines())
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return counts
    defs, names, referenced = [], set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
            if isinstance(node.ctx, ast.Load):
                referenced.add(node.id)
        elif isinstance(node, ast.Attribute):
            referenced.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs.append(node)
            names.add(node.name)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            counts["self_comparisons"] += sum(ast.dump(a) == ast.dump(b) for a, b in zip(sides, sides[1:]))
        elif isinstance(node, ast.BinOp) and _is_identity(node):
            counts["identity_ops"] += 1
    for d in defs:
        if _decorated(d, ("func", "struct")) and d.name not in referenced:
            counts["unused_funcs"] += 1
        if isinstance(d, ast.FunctionDef):
            counts["dead_locals"] += _dead_locals(d)
    counts["hashed_names"] = sum(bool(_HASHED.search(name)) for name in names)
    return counts


def summarize(sources_by_family: dict[str, list[str]]) -> dict:
    """Per family and overall: how many records have each kind of noise, and the total occurrences."""
    out: dict = {}
    overall = {"records": 0, **{k: {"records": 0, "occurrences": 0} for k in KINDS}}
    for fam, sources in sorted(sources_by_family.items()):
        slot = {"records": len(sources), **{k: {"records": 0, "occurrences": 0} for k in KINDS}}
        for src in sources:
            for k, v in hygiene(src).items():
                for s in (slot, overall):
                    s[k]["records"] += v > 0
                    s[k]["occurrences"] += v
        overall["records"] += len(sources)
        out[fam] = slot
    return {"per_family": out, "overall": overall, "long_line": LONG_LINE}
