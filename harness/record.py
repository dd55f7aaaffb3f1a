"""Records: one JSON object per (kernel, device), with a content-hash id and a structural fingerprint."""

from __future__ import annotations

import hashlib
import io
import json
import keyword
import platform
import tokenize

import numpy as np
import warp as wp

from . import GENERATOR_API_VERSION
from .extract import KernelCode
from .family import KernelSpec
from .verify import Verification

SCHEMA_VERSION = 2   # 2: ir.resources, verification.stages, tokens, provenance.ptxas


def canonical_json(obj) -> str:
    """The one serialisation of a record: sorted keys, no spaces, UTF-8. Byte-identical across runs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_id(python_source: str, device: str, ir: dict) -> str:
    payload = canonical_json({"python_source": python_source, "device": device, "ir": ir})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


_KEEP_NAMES = frozenset(keyword.kwlist) | {"wp", "float", "int", "bool", "range", "len", "True", "False", "None"}


def structural_text(source: str) -> str:
    """``source`` with identifiers renamed by first appearance, numbers and strings replaced, comments dropped.

    Attribute names (``wp.sin``, ``v.x``) and builtins are kept: they are the structure.
    """
    names: dict[str, str] = {}
    out: list[str] = []
    prev = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER):
            continue
        if tok.type == tokenize.NAME and tok.string not in _KEEP_NAMES and not (prev and prev.string == "."):
            text = names.setdefault(tok.string, f"v{len(names)}")
        elif tok.type == tokenize.NUMBER:
            text = "0"
        elif tok.type == tokenize.STRING:
            text = "''"
        elif tok.type == tokenize.NEWLINE:
            text = "\n"
        elif tok.type == tokenize.INDENT:
            text = "{"
        elif tok.type == tokenize.DEDENT:
            text = "}"
        else:
            text = tok.string
        out.append(text)
        prev = tok
    return " ".join(out)


def structural_hash(source: str) -> str:
    return hashlib.sha256(structural_text(source).encode("utf-8")).hexdigest()


def tool_versions() -> dict:
    from .build import toolkit_version
    from .sass import tool_version

    return {
        "warp": wp.config.version,
        "numpy": np.__version__,
        "cuda_toolkit": toolkit_version(),
        "ptxas": tool_version("ptxas"),
        "python": platform.python_version(),
    }


def token_counts(python_source: str, ir: dict) -> dict:
    """cl100k_base tokens of the Python, of the generated code (forward + backward + support) and in all."""
    from .tokens import count_tokens

    python = count_tokens(python_source)
    code = count_tokens(ir["support"]) + count_tokens(ir["forward"]) + count_tokens(ir["backward"] or "")
    return {"python": python, "code": code, "total": python + code}


def make_record(
    spec: KernelSpec,
    device: str,
    code: KernelCode,
    verification: Verification,
    *,
    factory_seed: int,
    chunk: str,
    index: int,
    arch: str | None,
    optimization_level: int,
    ptx: str | None = None,
    resources: dict | None = None,
    stages: list[str] | None = None,
    versions: dict | None = None,
) -> dict:
    ir = {
        "language": "cpp" if device == "cpu" else "cuda",
        "arch": arch,
        "forward": code.forward,
        "backward": code.backward,
        "support": code.support,
        "ptx": ptx,
        "resources": resources,
    }
    prog = spec.program
    record = {
        "id": content_id(spec.source, device, ir),
        "schema_version": SCHEMA_VERSION,
        "family": spec.family,
        "kernel_name": spec.kernel_name,
        "python_source": spec.source,
        "structural_hash": structural_hash(spec.source),
        "device": device,
        "ir": ir,
        "launch": {
            "dim": list(prog.dim),
            "block_dim": 1 if device == "cpu" and not prog.tiled else prog.block_dim,
            "tiled": prog.tiled,
        },
        "args": [
            {"name": a.name, "dtype": a.dtype, "role": a.role, "shape": list(a.shape)} for a in spec.args
        ],
        "features": dict(prog.features),
        "verification": {**verification.as_dict(), "stages": list(stages or [])},
        "tokens": token_counts(spec.source, ir),
        "provenance": {
            **(versions or tool_versions()),
            "generator": f"{spec.family}@{spec.family_version}",
            "harness_api": GENERATOR_API_VERSION,
            "factory_seed": factory_seed,
            "chunk": chunk,
            "index": index,
            "seed": spec.seed,
            "optimization_level": optimization_level,
        },
    }
    return record


def record_bytes(record: dict) -> int:
    """Size of the record as written: its canonical JSON line plus the newline."""
    return len(canonical_json(record).encode("utf-8")) + 1
