"""Rebuild records from their own fields: the proof that a record's code is complete and only its own.

A record's ``ir.support`` + ``ir.forward`` + ``ir.backward`` must compile behind Warp's own module header with
nothing else. :func:`translation_unit` writes that file for one record or for many at once, each record in a
namespace of its own: a record that leaned on a definition carried by another record (or left out by
extraction) cannot see it there and fails to compile, so one compiler call checks every record of a module
exactly as if each were compiled alone.

CPU code is checked with the system C++ compiler (``g++ -fsyntax-only`` against Warp's ``native`` headers,
the CPU entry templates instantiated for both specialisations); CUDA code with NVRTC through Warp's own
``build_cuda`` (the records' translation unit is what production assembles to machine code, see
:mod:`harness.sass`) and, where the ``nvidia-cuda-nvcc`` package is installed, optionally with nvcc.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import warp as wp

_CPU_ENTRY = re.compile(r"static void (\w+_cpu_kernel_(?:forward|backward))\(")


class RebuildError(RuntimeError):
    """Records that do not compile from their own fields; ``failed`` names them."""

    def __init__(self, message: str, failed: list[str]):
        super().__init__(message)
        self.failed = failed


def warp_include_dir() -> str:
    return os.path.join(os.path.dirname(wp.__file__), "native")


def record_code(ir: dict) -> str:
    return (ir.get("support") or "") + ir["forward"] + (ir.get("backward") or "")


def _header(language: str, block_dim: int, code: str) -> str:
    from warp._src import codegen

    template = codegen.cpu_module_header if language == "cpp" else codegen.cuda_module_header
    # Warp's own rule (Module.codegen): WP_NO_BFLOAT16 unless the code uses bfloat16
    type_defines = "" if "bfloat16" in code else "#define WP_NO_BFLOAT16\n"
    return type_defines + template.format(block_dim=block_dim) + codegen.codegen_cast_macros


def _instantiations(code: str) -> str:
    """CPU entries are templates on ``wp_linear_contiguous``: instantiate both so their bodies are checked."""
    lines = []
    for n, name in enumerate(sorted(set(_CPU_ENTRY.findall(code)))):
        for flag in ("true", "false"):
            lines.append(f"[[maybe_unused]] static auto* const wkf_use_{n}_{flag} = &{name}<{flag}>;")
    return "\n".join(lines) + "\n"


def translation_unit(irs: list[dict], block_dim: int, isolate: bool = True) -> str:
    """One compilable file holding the code of ``irs`` (same language and block width) behind Warp's header."""
    if not irs:
        raise ValueError("no records to rebuild")
    language = irs[0]["language"]
    bodies = []
    for n, ir in enumerate(irs):
        if ir["language"] != language:
            raise ValueError("records of one translation unit must share a language")
        code = record_code(ir)
        if language == "cpp":
            code += _instantiations(code)
        bodies.append(f"namespace wkf_record_{n} {{\n{code}}} // namespace wkf_record_{n}\n" if isolate else code)
    return _header(language, block_dim, "".join(record_code(ir) for ir in irs)) + "\n".join(bodies)


def cxx_compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")


def check_cpu(irs: list[dict], block_dim: int, names: list[str] | None = None) -> None:
    """Compile CPU records from their own fields with the system C++ compiler (syntax and semantics only)."""
    compiler = cxx_compiler()
    if compiler is None:
        raise RebuildError("no system C++ compiler (g++ or clang++) to rebuild CPU records with", [])
    source = translation_unit(irs, block_dim)
    with tempfile.TemporaryDirectory(prefix="wkf_rebuild_") as tmp:
        path = Path(tmp) / "records.cpp"
        path.write_text(source, encoding="utf-8")
        proc = subprocess.run(
            [compiler, "-std=c++17", "-fsyntax-only", "-w", "-I", warp_include_dir(), str(path)],
            capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RebuildError(_first_errors(proc.stderr), _failed_records(proc.stderr, source, names))


def compile_cuda(source: str, arch: int, out_path: str, optimization_level: int = 3,
                 timeout_s: float | None = None) -> None:
    """NVRTC through Warp's own ``build_cuda`` with the options Warp compiles modules with (PTX or cubin by
    the extension of ``out_path``), in a child process killed after ``timeout_s`` (by default
    :func:`harness.nvrtc.time_limit` of the number of kernels in ``source``): raises
    :class:`harness.nvrtc.CompileTimeout` then."""
    from .nvrtc import compile_bounded, time_limit

    if timeout_s is None:
        timeout_s = time_limit(source.count("_cuda_kernel_forward("))
    compile_bounded(source, arch, out_path, optimization_level, timeout_s)


def compile_cuda_here(source: str, arch: int, out_path: str, optimization_level: int = 3) -> None:
    """:func:`compile_cuda` in this process, with no time limit (what the NVRTC child runs)."""
    from warp._src import build as wp_build

    with tempfile.TemporaryDirectory(prefix="wkf_nvrtc_") as tmp:
        cu = os.path.join(tmp, "records.cu")
        Path(cu).write_text(source, encoding="utf-8")
        wp_build.build_cuda(cu, arch, out_path, config=wp.config.mode, optimization_level=optimization_level,
                            verify_fp=wp.config.verify_fp, fast_math=False, fuse_fp=True, lineinfo=False,
                            pch_dir=wp._src.context.runtime.get_nvrtc_pch_dir(), use_precompiled_headers=True)


def check_cuda(irs: list[dict], block_dim: int, arch: int, names: list[str] | None = None) -> None:
    """Compile CUDA records from their own fields with NVRTC (to PTX)."""
    source = translation_unit(irs, block_dim)
    with tempfile.TemporaryDirectory(prefix="wkf_rebuild_") as tmp:
        try:
            compile_cuda(source, arch, os.path.join(tmp, "records.ptx"))
        except Exception as exc:  # noqa: BLE001 - NVRTC reports through Warp's log and a generic exception
            raise RebuildError(f"NVRTC: {exc}", list(names or [])) from exc


def check_nvcc(irs: list[dict], block_dim: int, arch: int, nvcc: str) -> None:
    """A second, independent CUDA compiler: nvcc (from ``nvidia-cuda-nvcc``) to PTX on the records' own code.

    Warp's header defines ``WP_NO_CRT`` for NVRTC (no C runtime headers); nvcc compiles with the host's, so the
    define is dropped, as for any nvcc build of Warp's code. Tile code needs NVRTC's device-by-default mode.
    """
    source = translation_unit(irs, block_dim).replace("#define WP_NO_CRT\n", "")
    with tempfile.TemporaryDirectory(prefix="wkf_nvcc_") as tmp:
        path = Path(tmp) / "records.cu"
        path.write_text(source, encoding="utf-8")
        proc = subprocess.run(
            [nvcc, "-std=c++17", "--expt-relaxed-constexpr", f"-arch=sm_{arch}", "-ptx", "-DWP_ENABLE_CUDA=1",
             "-I", warp_include_dir(), "-Xcudafe", "--diag_suppress=177", "-o", str(Path(tmp) / "records.ptx"),
             str(path)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RebuildError("nvcc: " + _first_errors(proc.stderr), list(range(len(irs))))


def nvcc_path() -> str | None:
    """nvcc from the ``nvidia-cuda-nvcc`` package, if installed (never a system CUDA install)."""
    from .sass import ToolMissing, cuda_tool

    try:
        return cuda_tool("nvcc")
    except ToolMissing:
        return None


def _first_errors(stderr: str, limit: int = 3) -> str:
    errors = [line for line in stderr.splitlines() if "error" in line]
    return "; ".join(errors[:limit]) or stderr.strip()[:400]


def _failed_records(stderr: str, source: str, names: list[str] | None) -> list[str]:
    """Which records (namespaces) the compiler's errors point into."""
    starts = [i + 1 for i, line in enumerate(source.splitlines()) if line.startswith("namespace wkf_record_")]
    failed: set[int] = set()
    for m in re.finditer(r"records\.cpp:(\d+):\d+: error", stderr):
        line = int(m.group(1))
        inside = [n for n, start in enumerate(starts) if start <= line]
        if inside:
            failed.add(inside[-1])
    labels = names or [f"record {n}" for n in range(len(starts))]
    return [labels[n] for n in sorted(failed)]
