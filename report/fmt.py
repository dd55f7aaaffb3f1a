"""Number formatting and Markdown building blocks shared by the report's tables and sentences."""

from __future__ import annotations

DEVICE_NAMES = {"cpu": "CPU, C++", "cuda": "CUDA C++"}


def n(x) -> str:
    return f"{int(x):,}"


def mb(b) -> str:
    return f"{b / 1e6:,.2f}"


def plural(count: int, word: str) -> str:
    return f"{n(count)} {word}{'' if count == 1 else 's'}"


def pct(part, whole, digits=1) -> str:
    return f"{100 * part / whole:.{digits}f}%" if whole else "0%"


def sig(x, digits=3) -> str:
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) < 1e-3 or abs(x) >= 1e7:
        return f"{x:.2e}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def table(header: list[str], rows: list[list], align: str | None = None) -> str:
    align = align or ("l" + "r" * (len(header) - 1))
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def counts_inline(counter: dict, total: int | None = None, limit: int | None = None) -> str:
    items = list(counter.items())[:limit] if limit else list(counter.items())
    parts = [f"{k} {n(v)}" + (f" ({pct(v, total)})" if total else "") for k, v in items]
    return ", ".join(parts) if parts else "none"


def figure(drawn: dict, name: str, caption: str, missing: str | None = None) -> str:
    if name not in drawn:
        missing = missing or f"Figure not drawn: {caption.split(':')[0].lower()} has no data in these inputs."
        return f"*({missing})*"
    return f"![{caption}](figures/{drawn[name]})\n\n*Figure: {caption}*"


# -- shortening code for the appendix ---------------------------------------------------------------------
