"""Small helpers shared by families: names, kernel text assembly, typed argument spellings, tolerances."""

from __future__ import annotations

import numpy as np

from harness.family import PLACEHOLDER, Arg, KernelSpec, Tolerance
from kernels.ir.gen import ARRAY_NAMES, LOCAL_NAMES, OUT_NAMES, SCALAR_NAMES  # noqa: F401  (one name pool)

#: source spelling of array element types and scalar parameter types, by dtype name
ARRAY_SPELLING = {"float32": "wp.array(dtype=float)", "float64": "wp.array(dtype=wp.float64)",
                  "int32": "wp.array(dtype=int)", "float16": "wp.array(dtype=wp.float16)",
                  "vec3f": "wp.array(dtype=wp.vec3)", "vec2f": "wp.array(dtype=wp.vec2)",
                  "vec4f": "wp.array(dtype=wp.vec4)", "mat22f": "wp.array(dtype=wp.mat22)",
                  "mat33f": "wp.array(dtype=wp.mat33)", "uint32": "wp.array(dtype=wp.uint32)"}
SCALAR_SPELLING = {"float32": "float", "float64": "wp.float64", "int32": "int", "float16": "wp.float16",
                   "uint32": "wp.uint32"}


def pick(rng: np.random.Generator, options, k: int | None = None):
    """One option (``k is None``) or ``k`` distinct options, order random."""
    if k is None:
        return options[int(rng.integers(len(options)))]
    idx = rng.choice(len(options), size=k, replace=False)
    return [options[int(i)] for i in idx]


def signature(args: list[Arg]) -> str:
    parts = []
    for a in args:
        spelled = SCALAR_SPELLING[a.dtype] if a.role == "scalar" else ARRAY_SPELLING[a.dtype]
        parts.append(f"{a.name}: {spelled}")
    return ", ".join(parts)


def kernel_text(sig: str, body, helpers=(), tid: str = "i = wp.tid()", imports=(), constants=()) -> str:
    """Kernel source: ``import warp as wp`` (and ``imports``), module ``constants``, the ``helpers`` (``@wp.func``
    and ``@wp.struct`` texts, each between blank lines), then the kernel with parameters ``sig``, first line
    ``tid`` and the ``body`` lines (which may carry their own extra indentation)."""
    lines = ["import warp as wp", *imports, ""]
    if constants:
        lines += [*constants, ""]
    for helper in helpers:
        lines += ["", helper.rstrip("\n"), ""]
    lines += ["", "@wp.kernel", f"def {PLACEHOLDER}({sig}):", f"    {tid}"]
    lines += [f"    {line}" for line in body]
    return "\n".join(lines) + "\n"


def kernel_source(args: list[Arg], body: list[str], helpers: list[str] = (), tid: str = "i = wp.tid()") -> str:
    return kernel_text(signature(args), body, helpers, tid)


def strip_parens(text: str) -> str:
    """Drop one redundant pair of outer parentheses."""
    if text.startswith("(") and text.endswith(")"):
        depth = 0
        for k, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and k < len(text) - 1:
                return text
        return text[1:-1]
    return text


#: tolerances of the families whose programs compute in one scalar type, ``meta["ty"]``
TYPE_TOLERANCES = {"float32": Tolerance(1e-4, 1e-5), "float64": Tolerance(1e-9, 1e-11), "int32": Tolerance(0.0, 0.0)}


def type_tolerance(spec: KernelSpec) -> Tolerance:
    return TYPE_TOLERANCES[spec.meta["ty"]]
