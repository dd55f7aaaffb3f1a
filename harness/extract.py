"""Cut one kernel's code out of a Warp-generated ``.cpp`` / ``.cu`` module source.

Warp writes each top-level definition starting at column 0 and closes it with ``}`` or ``};`` at column 0.
We split the file into such blocks and take a kernel's forward and backward entry functions plus every block
they need: argument structs, ``@wp.func`` bodies and their adjoints, user structs with their companion
definitions. Dispatch wrappers and ``extern "C"`` entry points are boilerplate and left out.

Blocks are kept as a list in file order, never keyed by name alone: a module holds many definitions of the
same name (every ``@wp.struct`` brings its own ``add()`` and ``adj_atomic_add()`` overloads; a generic helper
is emitted once per argument type). A struct's companion definitions follow it in the file and name it in
their signature; they belong to it and are taken exactly when the struct is (the header templates that call
them, e.g. an array adjoint's ``adj_atomic_add``, find them by overload resolution, not by name in the
kernel's own code).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_]\w*")
_STRUCT = re.compile(r"^struct\s+(\w+)")
_CALL_NAME = re.compile(r"(\w+)\s*\(")
#: kernels' entry functions and Warp's wrappers around them: never another kernel's support
_ENTRY = re.compile(r".*_(cpu|cuda)_(kernel_)?(forward|backward)(_tasks|_dispatch)?$")


@dataclass(frozen=True, slots=True)
class KernelCode:
    forward: str
    backward: str | None
    support: str        # what forward/backward need: structs, helper functions and their adjoints


@dataclass(frozen=True, slots=True)
class Block:
    """One top-level definition: the name it defines, its text, and the struct it belongs to, if any."""

    name: str
    text: str
    signature: str              # the declaration up to its body: what tells overloads apart
    owner: str | None = None    # a struct's companion definitions (add, adj_atomic_add, ...) name the struct
    is_struct: bool = False


class ExtractionError(ValueError):
    pass


def split_blocks(source: str) -> list[Block]:
    """Top-level definitions of a Warp module source, in file order.

    A top-level ``#if ... #endif`` region (Warp guards some struct helpers with ``#if defined(__CUDA_ARCH__)``)
    is one block with its guard, so the guard travels with the definition.
    """
    blocks: list[Block] = []
    lines = source.splitlines()
    i, n = 0, len(lines)
    pending_comments: list[str] = []
    last_struct: str | None = None
    while i < n:
        line = lines[i]
        if line.startswith("#if"):
            start, depth = i, 0
            while i < n:
                if lines[i].startswith("#if"):
                    depth += 1
                elif lines[i].startswith("#endif"):
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            body = lines[start:i + 1]
            i += 1
            inner = [b for b in body if b and not b[0].isspace() and not b.startswith(("#", "//", "{", "}"))]
            if inner:
                last_struct = _append(blocks, pending_comments, body, inner, last_struct)
            pending_comments = []
            continue
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
        last_struct = _append(blocks, pending_comments, body, body, last_struct)
        pending_comments = []
        i += 1
    return blocks


def _append(blocks: list[Block], comments: list[str], body: list[str], head: list[str],
            last_struct: str | None) -> str | None:
    """Name ``body`` and append it; return the struct whose companions may follow."""
    name, signature, is_struct = _block_name(head)
    if name is None:
        return last_struct
    text = "\n".join(comments + body) + "\n"
    if is_struct:
        blocks.append(Block(name, text, signature, None, True))
        return name
    owner = (last_struct if last_struct is not None and not _ENTRY.match(name)
             and last_struct in _IDENT.findall(signature) else None)
    blocks.append(Block(name, text, signature, owner))
    return last_struct if owner is not None else None


def _block_name(body: list[str]) -> tuple[str | None, str, bool]:
    for k, line in enumerate(body):
        if line.startswith("template") or line.startswith("//"):
            continue
        m = _STRUCT.match(line)
        if m:
            return m.group(1), line, True
        m = _CALL_NAME.search(line)
        if m:
            signature = []
            for part in body[k:]:          # the declaration up to its body's opening brace
                if part == "{" or part.startswith("{"):
                    break
                signature.append(part.strip())
            return m.group(1), " ".join(signature), False
        return None, "", False
    return None, "", False


def needed_blocks(blocks: list[Block], roots: list[int]) -> list[int]:
    """Indices of ``roots`` and of every block they need, in file order.

    A block is needed when a needed block names it (every overload of that name is the kernel's: helper
    names are the kernel's own), except that a struct's companions are needed exactly when their struct is.
    Other kernels' entry points and all wrappers are never needed.
    """
    needed = set(roots)
    names: set[str] = set()
    structs: set[str] = set()
    pending = list(roots)
    while pending:
        for index in pending:
            names.update(_IDENT.findall(blocks[index].text))
        pending = []
        for index, block in enumerate(blocks):
            if index in needed or _ENTRY.match(block.name):
                continue
            if block.owner is not None:
                wanted = block.owner in structs      # may be taken in this very pass: companions follow
            else:
                wanted = block.name in names
            if wanted:
                needed.add(index)
                pending.append(index)
                if block.is_struct:
                    structs.add(block.name)
    return sorted(needed)


def extract(source: str | list[Block], mangled: str, device: str) -> KernelCode:
    """Forward, backward and support code of kernel ``mangled`` from a module source.

    ``source`` may be the text or its :func:`split_blocks` (split once per module, not once per kernel).
    """
    blocks = split_blocks(source) if isinstance(source, str) else source
    suffix = "cpu_kernel" if device == "cpu" else "cuda_kernel"
    fwd, bwd = f"{mangled}_{suffix}_forward", f"{mangled}_{suffix}_backward"
    index = {}
    for i, block in enumerate(blocks):
        if block.name in (fwd, bwd):
            if block.name in index:
                raise ExtractionError(f"{block.name} is defined twice in the generated {device} source")
            index[block.name] = i
    if fwd not in index:
        raise ExtractionError(f"no {fwd} in generated {device} source")
    roots = [index[fwd]] + ([index[bwd]] if bwd in index else [])
    support = "".join(blocks[i].text for i in needed_blocks(blocks, roots) if i not in roots)
    return KernelCode(forward=blocks[index[fwd]].text,
                      backward=blocks[index[bwd]].text if bwd in index else None, support=support)


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
