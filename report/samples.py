"""Appendix A: real records pulled from the datasets, their generated code shortened around what matters."""

from __future__ import annotations

import json
import re

from .stats import program_key


def shorten(text: str, head: int, tail: int, comment: str = "//") -> str:
    lines = text.rstrip("\n").splitlines()
    if len(lines) <= head + tail + 3:
        return "\n".join(lines)
    left = len(lines) - head - tail
    indent = re.match(r"\s*", lines[head]).group(0)
    return "\n".join(lines[:head] + [f"{indent}{comment} ... {left} lines omitted ..."] + lines[-tail:])


def focus(code: str, body: int = 26, tail: int = 4) -> str:
    """A generated function shortened to what matters: its signature and preamble (CPU contiguous-array
    specialisation, CUDA grid-stride loop), then the statements from the ``// forward`` marker on; the variable
    declarations in between are counted, not shown."""
    lines = code.rstrip("\n").splitlines()
    marker = next((i for i, line in enumerate(lines) if line.strip() == "// forward"), None)
    decl = next((i for i, line in enumerate(lines) if line.strip() in ("// argument vars", "// primal vars")), None)
    if marker is None or decl is None or decl >= marker:
        return shorten(code, 24, 8)
    keep = decl - 1 if decl > 0 and lines[decl - 1].strip().startswith("//---") else decl
    out = lines[:keep]
    indent = re.match(r"\s*", lines[marker]).group(0)
    out.append(f"{indent}// ... {marker - keep} lines of variable declarations omitted ...")
    rest = lines[marker:]
    if len(rest) > body + tail + 3:
        rest = rest[:body] + [f"{indent}// ... {len(rest) - body - tail} lines omitted ..."] + rest[-tail:]
    return "\n".join(out + rest)


def support_excerpt(support: str) -> str:
    """The first ``@wp.func`` body of the support code (else the first block), and the names of the others."""
    from harness.extract import split_blocks

    blocks = {block.name: block.text for block in split_blocks(support)}
    if not blocks:
        return shorten(support, 12, 4)
    names = list(blocks)
    first = next((k for k in names if not blocks[k].lstrip().startswith(("struct", "//")) or
                  "static" in blocks[k]), names[0])
    text = shorten(blocks[first], 26, 6)
    others = [k for k in names if k != first]
    if others:
        text += "\n// ... and " + ", ".join(others[:6]) + (f" and {len(others) - 6} more" if len(others) > 6 else "")
    return text


def reverse_part(backward: str, keep: int = 18) -> str:
    """The ``// reverse`` section of a backward function (the adjoint statements), shortened."""
    lines = backward.rstrip("\n").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "// reverse"), None)
    if start is None:
        return shorten(backward, 20, 8)
    body = lines[start - 1:]
    if len(body) > keep + 3:
        indent = re.match(r"\s*", body[keep]).group(0)
        body = body[:keep] + [f"{indent}// ... {len(body) - keep - 2} lines omitted ..."] + body[-2:]
    return "\n".join(body)


# -- the context ------------------------------------------------------------------------------------------


def sample_records(datasets: dict, per: int = 3) -> str:
    """Appendix A: up to ``per`` kernels (preferring families of different kinds), CPU and CUDA code side by side."""
    cpu_rows = datasets["cpu"].rows
    cuda_by_name = {program_key(r): r for r in datasets["cuda"].rows}
    by_family: dict[str, list[dict]] = {}
    for r in cpu_rows:
        by_family.setdefault(r["family"], []).append(r)
    preferred = ["arithmetic", "funcs", "tiles", "control_flow", "vector", "atomic"]
    order = [f for f in preferred if f in by_family] + sorted(f for f in by_family if f not in preferred)
    chosen = []
    for fam in order:
        rs = sorted(by_family[fam], key=lambda r: (len(r["python_source"]), r["id"]))
        both = [r for r in rs if program_key(r) in cuda_by_name] or rs
        chosen.append(both[len(both) // 4])
        if len(chosen) == per:
            break
    parts = []
    for i, r in enumerate(chosen, 1):
        meta = {"launch": r["launch"], "args": r["args"], "features": r["features"],
                "verification": r["verification"], "provenance": r["provenance"]}
        parts.append(f"### A.{i} `{r['kernel_name']}` (family `{r['family']}`)\n")
        parts.append("Python source (`python_source`):\n\n```python\n" + shorten(r["python_source"], 30, 6, "#")
                     + "\n```\n")
        parts.append("CPU forward (`ir.forward`, C++):\n\n```cpp\n" + focus(r["ir"]["forward"]) + "\n```\n")
        if r["ir"]["backward"]:
            parts.append("CPU backward, reverse part (`ir.backward`):\n\n```cpp\n" + reverse_part(r["ir"]["backward"], 14)
                         + "\n```\n")
        if r["ir"]["support"]:
            parts.append("Support code (`ir.support`):\n\n```cpp\n" + support_excerpt(r["ir"]["support"]) + "\n```\n")
        twin = cuda_by_name.get(program_key(r))
        if twin is not None:
            parts.append(f"CUDA forward of the same kernel from `cuda_code` (`ir.forward`, {twin['ir']['arch']}):\n\n"
                         "```cuda\n" + focus(twin["ir"]["forward"], 16, 4) + "\n```\n")
        parts.append("Metadata (`launch`, `args`, `features`, `verification`, `provenance`; `id` "
                     f"`{r['id'][:16]}...`):\n\n```json\n"
                     + "{\n" + ",\n".join(f'  "{k}": {json.dumps(v)}' for k, v in meta.items()) + "\n}\n```\n")
    return "\n".join(parts)
