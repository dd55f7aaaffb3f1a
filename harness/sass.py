"""CUDA all the way down: the records' own code -> NVRTC -> PTX -> ptxas -> SASS (cubin), with resource usage.

The CUDA stage of production compiles the translation unit of a module's records (:mod:`harness.rebuild`:
Warp's module header, then each record's ``support``, ``forward`` and ``backward`` alone in a namespace of its
own). So one NVRTC build is at once the proof that every record rebuilds from its own fields and the code
whose machine code and resources the records report. ptxas (from NVIDIA's ``nvidia-cuda-nvcc`` package,
pinned in ``pyproject.toml``) assembles the PTX for the real architecture; its ``-v`` report gives registers,
spills and stack per entry, and ``cuobjdump --dump-resource-usage`` (``nvidia-cuda-cuobjdump``) reads
shared, local and constant memory off the cubin.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .nvrtc import CompileTimeout, time_limit
from .rebuild import compile_cuda, translation_unit

_PTXAS_ENTRY = re.compile(r"Function properties for (\w+)\s*\n\s*(\d+) bytes stack frame, (\d+) bytes spill stores, "
                          r"(\d+) bytes spill loads")
_PTXAS_USED = re.compile(r"Compiling entry function '(\w+)'.*?\n.*?Used (\d+) registers", re.S)
_CUOBJ_FUNC = re.compile(r"Function (\w+):\s*\n([^\n]*)")
_CUOBJ_FIELD = re.compile(r"([A-Z]+(?:\[\d+\])?):(\d+)")


class ToolMissing(RuntimeError):
    pass


class AssembleError(RuntimeError):
    """ptxas refused PTX that NVRTC produced."""


def cuda_tool(name: str) -> str:
    """``ptxas`` / ``cuobjdump`` from NVIDIA's PyPI packages (never a system CUDA install)."""
    try:
        import nvidia  # noqa: PLC0415 - namespace package of NVIDIA's wheels
    except ImportError:
        raise ToolMissing(f"{name}: install the nvidia-cuda-nvcc and nvidia-cuda-cuobjdump packages") from None
    for base in nvidia.__path__:
        for sub in ("cu13", "cuda_nvcc", "cuda_cuobjdump"):
            candidate = Path(base) / sub / "bin" / name
            if candidate.exists():
                return str(candidate)
    raise ToolMissing(f"{name} not found in the nvidia-cuda-nvcc / nvidia-cuda-cuobjdump packages")


@lru_cache(maxsize=None)
def tool_version(name: str = "ptxas") -> str | None:
    try:
        out = subprocess.run([cuda_tool(name), "--version"], capture_output=True, text=True, check=False).stdout
    except ToolMissing:
        return None
    m = re.search(r"release (\d+\.\d+), V([\d.]+)", out)
    return m.group(2) if m else None


@dataclass(slots=True)
class Assembled:
    """A module's records as machine code: PTX text, the cubin, and resources per entry function."""

    ptx: str
    cubin: bytes
    resources: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def resource_usage(ptxas_log: str, cuobjdump_out: str) -> dict[str, dict[str, int]]:
    """Per entry: registers, spills and stack from ``ptxas -v``; shared/local/constant memory from cuobjdump."""
    usage: dict[str, dict[str, int]] = {}
    for name, regs in _PTXAS_USED.findall(ptxas_log):
        usage.setdefault(name, {})["registers"] = int(regs)
    for name, stack, stores, loads in _PTXAS_ENTRY.findall(ptxas_log):
        usage.setdefault(name, {}).update(stack_frame_bytes=int(stack), spill_store_bytes=int(stores),
                                          spill_load_bytes=int(loads))
    for name, line in _CUOBJ_FUNC.findall(cuobjdump_out):
        # cuobjdump prints "REG:40 STACK:0 SHARED:2048 LOCAL:0 CONSTANT[2]:12 CONSTANT[0]:904 ..."; the
        # order of the constant banks varies (bank 2 holds compiler constants when there are any).
        fields = {key: int(value) for key, value in _CUOBJ_FIELD.findall(line)}
        if not {"REG", "SHARED", "LOCAL", "CONSTANT[0]"} <= fields.keys():
            continue
        entry = usage.setdefault(name, {})
        entry.setdefault("registers", fields["REG"])
        entry.update(shared_bytes=fields["SHARED"], local_bytes=fields["LOCAL"], constant_bytes=fields["CONSTANT[0]"])
    return usage


def assemble(irs: list[dict], block_dim: int, arch: int, optimization_level: int = 3) -> Assembled:
    """NVRTC (PTX) then ptxas (SASS) on the records' own code; raises on either failure, and
    :class:`~harness.nvrtc.CompileTimeout` when either runs past its time limit."""
    source = translation_unit(irs, block_dim)
    seconds: dict[str, float] = {}
    limit = time_limit(len(irs))
    with tempfile.TemporaryDirectory(prefix="wkf_sass_") as tmp:
        ptx_path = os.path.join(tmp, "records.ptx")
        t0 = time.perf_counter()
        compile_cuda(source, arch, ptx_path, optimization_level, timeout_s=limit)
        seconds["nvrtc"] = time.perf_counter() - t0
        ptx = Path(ptx_path).read_bytes().rstrip(b"\0").decode("utf-8")
        clean = os.path.join(tmp, "clean.ptx")
        Path(clean).write_text(ptx, encoding="utf-8")
        cubin_path = os.path.join(tmp, "records.cubin")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([cuda_tool("ptxas"), "-v", f"-arch=sm_{arch}", f"-O{max(optimization_level, 1)}",
                                   clean, "-o", cubin_path], capture_output=True, text=True, check=False,
                                  timeout=limit)
        except subprocess.TimeoutExpired:
            raise CompileTimeout(f"ptxas gave no answer within {limit:g} s (killed)") from None
        seconds["ptxas"] = time.perf_counter() - t0
        if proc.returncode != 0:
            errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
            raise AssembleError("ptxas: " + ("; ".join(errors[:3]) or proc.stderr.strip()[:400]))
        dump = subprocess.run([cuda_tool("cuobjdump"), "--dump-resource-usage", cubin_path],
                              capture_output=True, text=True, check=False)
        return Assembled(ptx=ptx, cubin=Path(cubin_path).read_bytes(),
                         resources=resource_usage(proc.stderr + proc.stdout, dump.stdout), seconds=seconds)
