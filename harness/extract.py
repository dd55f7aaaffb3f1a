"""Cut one kernel's code out of a Warp-generated ``.cpp`` / ``.cu`` module source.

Warp writes each top-level definition starting at column 0 and closes it with ``}`` or ``};`` at column 0.
We split the file into such blocks, name each one, and take a kernel's forward and backward entry functions
plus the transitive closure of the blocks they reference (argument structs, ``@wp.func`` bodies and their
adjoints, user structs). Dispatch wrappers and ``extern "C"`` entry points are boilerplate and left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_]\w*")
_STRUCT = re.compile(r"^struct\s+(\w+)")
_CALL_NAME = re.compile(r"(\w+)\s*\(")


@dataclass(frozen=True, slots=True)
class KernelCode:
    forward: str
    backward: str | None
    support: str        # what forward/backward need: structs, helper functions and their adjoints


class ExtractionError(ValueError):
    pass


def split_blocks(source: str) -> dict[str, str]:
    """Top-level definitions of a Warp module source, by name, in file order."""
    blocks: dict[str, str] = {}
    lines = source.splitlines()
    i, n = 0, len(lines)
    pending_comments: list[str] = []
    while i < n:
        line = lines[i]
        if not line or line[0].isspace() or line.startswith("#"):
            pending_comments = [] if not line.startswith("//") else pending_comments
            i += 1
            continue
        if line.startswith("//"):
            pending_comments.append(line)
            i += 1
            continue
        if line.startswith('extern "C" {') or line.startswith("} // extern C"):
            pending_comments = []
            i += 1
            continue
        start = i
        while i < n and lines[i] not in ("}", "};"):
            i += 1
        body = lines[start:i + 1]
        name = _block_name(body)
        if name is not None:
            blocks[name] = "\n".join(pending_comments + body) + "\n"
        pending_comments = []
        i += 1
    return blocks


def _block_name(body: list[str]) -> str | None:
    for line in body:
        if line.startswith("template") or line.startswith("//"):
            continue
        m = _STRUCT.match(line)
        if m:
            return m.group(1)
        m = _CALL_NAME.search(line)
        if m:
            return m.group(1)
        return None
    return None


def _closure(roots: list[str], blocks: dict[str, str], exclude: set[str]) -> list[str]:
    seen: set[str] = set(roots)
    stack = list(roots)
    while stack:
        text = blocks[stack.pop()]
        for ident in set(_IDENT.findall(text)):
            if ident in blocks and ident not in seen and ident not in exclude:
                seen.add(ident)
                stack.append(ident)
    order = list(blocks)
    return sorted(seen, key=order.index)


_ENTRY = re.compile(r".*_(cpu|cuda)_(kernel_)?(forward|backward)(_tasks|_dispatch)?$")


def extract(source: str | dict[str, str], mangled: str, device: str) -> KernelCode:
    """Forward, backward and support code of kernel ``mangled`` (``<name>_<hash8>``) from a module source.

    ``source`` may be the text or its :func:`split_blocks` (split once per module, not once per kernel).
    """
    blocks = split_blocks(source) if isinstance(source, str) else source
    suffix = "cpu_kernel" if device == "cpu" else "cuda_kernel"
    fwd, bwd = f"{mangled}_{suffix}_forward", f"{mangled}_{suffix}_backward"
    if fwd not in blocks:
        raise ExtractionError(f"no {fwd} in generated {device} source")
    # other kernels' entry points and all wrappers are never support code
    exclude = {name for name in blocks if _ENTRY.match(name)}
    roots = [fwd] + ([bwd] if bwd in blocks else [])
    needed = _closure(roots, blocks, exclude)
    support = "".join(blocks[name] for name in needed if name not in roots)
    return KernelCode(forward=blocks[fwd], backward=blocks.get(bwd), support=support)


def kernel_mangled_name(kernel) -> str:
    """``<key>_<hash8>`` as Warp spells the kernel in generated code (valid after the module is hashed)."""
    return kernel.get_mangled_name()


def extract_ptx(ptx: str, mangled: str) -> str:
    """The ``.entry`` definitions of kernel ``mangled``'s forward and backward from a module's PTX."""
    lines = ptx.splitlines()
    out: list[str] = []
    for kind in ("forward", "backward"):
        head = f".visible .entry {mangled}_cuda_kernel_{kind}("
        try:
            start = next(i for i, line in enumerate(lines) if line.startswith(head))
        except StopIteration:
            continue
        end = next(i for i in range(start, len(lines)) if lines[i] == "}")
        out.extend(lines[start:end + 1])
        out.append("")
    if not out:
        raise ExtractionError(f"no .entry for {mangled} in PTX")
    return "\n".join(out)
