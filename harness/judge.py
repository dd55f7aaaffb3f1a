"""Judge one translation by execution, exactly as production judges Warp's own code.

Runs inside the judge child process (:mod:`harness.judge_worker`), never in pytest's own process: a prediction
is untrusted code. A record's ``family@version`` and seed regenerate its program, inputs and NumPy reference.

* ``py2cpp`` / ``py2cuda``: Warp generates the module for the record's Python source (one kernel, the build
  options production used: CPU ``block_dim`` 1 or the tile width, optimisation level 0; CUDA level 3), the
  completion's forward entry (and backward, if given) replaces Warp's own text in that source, the same
  toolchain compiles it (Clang inside Warp: ``build_cpu``; NVRTC: ``build_cuda``), and ``Module.load(...,
  binary_path=, meta_path=)`` loads the result, so Warp's normal launch path runs the completion's code.
* ``cpp2py`` / ``cuda2py``: the completion is Warp Python; it must define the record's kernel with the same
  parameter names and types; Warp builds it and production's check runs on it.

Before any of a completion runs or compiles, :mod:`harness.untrusted` checks it statically (Python that keeps to
a Warp module's vocabulary; C++ and CUDA entries without inline assembly or preprocessor directives): a
completion that fails is ``invalid`` and costs nothing.

Numerics are :func:`harness.verify.verify`: 3 input sets, the family's tolerances, masking of unstable
elements, degenerate-output checks and, where production checks it (and, for C++/CUDA, the completion gives
a backward), the gradient. Without a GPU a CUDA completion is compiled with NVRTC only: ``compiled_only``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache

import warp as wp

from .build import BuildOptions, block_dim_of, define_kernels, module_name_for, release_module
from .errors import KernelRejected
from .extract import ExtractionError, extract
from .family import Family, KernelSpec
from .predictions import TASKS, entry_name, find_entry
from .seeds import rng_for
from .untrusted import UntrustedCode, check_cpp, check_python
from .verify import verify

#: verify()'s rejection reasons -> benchmark outcomes
REASON_OUTCOME = {"mismatch": "mismatch", "nonfinite": "mismatch", "ill_conditioned": "mismatch",
                  "degenerate_constant": "degenerate", "degenerate_copy": "degenerate",
                  "degenerate_dead_inputs": "degenerate", "gradient_mismatch": "gradient_mismatch"}
PRODUCTION = BuildOptions(want_cpu=True, want_cuda=True)


class JudgeError(Exception):
    """The harness or the dataset is wrong (not the prediction): the run must say so, not score it."""


@dataclass(slots=True)
class Verdict:
    outcome: str
    message: str = ""
    device: str | None = None        # where numbers ran (None: nothing ran)
    outputs_sha256: str | None = None    # of a pass: the outputs on the verifier's inputs (harness.verify)

    def as_dict(self) -> dict:
        return {"outcome": self.outcome, "message": self.message, "device": self.device,
                "outputs_sha256": self.outputs_sha256}


@lru_cache(maxsize=1)
def _families() -> dict[str, Family]:
    from .registry import all_families

    return all_families()


def regenerate(record: dict) -> tuple[Family, KernelSpec]:
    """The record's family and program, from ``provenance.generator`` (family@version) and ``provenance.seed``."""
    prov = record["provenance"]
    family = _families().get(record["family"])
    if family is None:
        raise JudgeError(f"record {record['id']}: no installed family {record['family']!r}")
    if not family.makes_programs_of(prov.get("generator")):
        raise JudgeError(f"record {record['id']} was made by {prov.get('generator')}, the installed generator is "
                         f"{family.name}@{family.version}")
    spec = family.spec(prov["seed"], rng_for(prov["seed"]))
    if spec.kernel_name != record["kernel_name"]:
        raise JudgeError(f"record {record['id']}: seed {prov['seed']} regenerates {spec.kernel_name}, not "
                         f"{record['kernel_name']}")
    return family, spec


class _Module:
    """One kernel defined as its own Warp module with production's options; released on exit."""

    def __init__(self, spec: KernelSpec, opt_level: int):
        self.block_dim = block_dim_of(spec)
        self.namespaces: dict[str, dict] = {}
        name = module_name_for("wkf_judge", [spec], PRODUCTION, self.block_dim)
        kernels = define_kernels([spec], name, self.namespaces)   # raises for a completion that does not define it
        self.kernel = kernels[spec.kernel_name]
        self.module = self.kernel.module
        options = {"strip_hash": True, "optimization_level": opt_level}
        if self.block_dim != 1:
            options["block_dim"] = self.block_dim
        wp.set_module_options(options, module=self.module)
        self.namespace = self.namespaces[spec.kernel_name]
        self.tmp = tempfile.mkdtemp(prefix="wkf_judge_")

    def __enter__(self) -> "_Module":
        return self

    def __exit__(self, *exc) -> None:
        release_module(self.module)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def codegen(self, arch: int | None) -> tuple[str, dict, dict]:
        """Warp's generated source for the CPU (``arch`` None) or CUDA ``arch``, its metadata and options."""
        self.module.get_module_hash(self.block_dim)
        options = self.module.resolved_options[self.block_dim] | {"output_arch": arch}
        source, _ext, meta, ltoirs, fatbins = self.module._run_codegen(options, arch is None)
        if ltoirs or fatbins:
            raise JudgeError("modules with link-time inputs (MathDx) are not supported by the judge")
        return source, meta, options

    def compile_cpu(self, source: str, meta: dict, options: dict) -> tuple[str, str]:
        cpp, obj, meta_path = (os.path.join(self.tmp, f"m.{ext}") for ext in ("cpp", "o", "meta"))
        _write(cpp, source)
        runtime = wp._src.context.runtime
        wp._src.build.build_cpu(
            obj, cpp, mode=options["mode"], fast_math=options["fast_math"], verify_fp=options["verify_fp"],
            fuse_fp=options["fuse_fp"], extra_flags=options["cpu_compiler_flags"],
            optimization_level=options["optimization_level"],
            use_precompiled_headers=options["use_precompiled_headers"],
            pch_dir=runtime.get_clang_pch_dir() if options["use_precompiled_headers"] else None,
            block_dim=options["block_dim"], enable_tiles_in_stack_memory=options["enable_tiles_in_stack_memory"],
            extra_include_dirs=options["extra_cpu_include_dirs"])
        _write(meta_path, json.dumps(meta, sort_keys=True))
        return obj, meta_path

    def compile_cuda(self, source: str, meta: dict, options: dict, arch: int, cubin: bool) -> tuple[str, str]:
        cu, meta_path = os.path.join(self.tmp, "m.cu"), os.path.join(self.tmp, "m.meta")
        out = os.path.join(self.tmp, "m.cubin" if cubin else "m.ptx")
        _write(cu, source)
        wp._src.build.build_cuda(
            cu, arch, out, config=options["mode"], optimization_level=options["optimization_level"],
            verify_fp=options["verify_fp"], fast_math=options["fast_math"], fuse_fp=options["fuse_fp"],
            lineinfo=options["lineinfo"], compile_time_trace=options["compile_time_trace"],
            pch_dir=wp._src.context.runtime.get_nvrtc_pch_dir(), llvm_cuda=options["llvm_cuda"],
            use_precompiled_headers=options["use_precompiled_headers"],
            extra_include_dirs=options["extra_cuda_include_dirs"])
        _write(meta_path, json.dumps(meta, sort_keys=True))
        return out, meta_path

    def load(self, device: str, binary: str, meta_path: str, arch: int | None) -> None:
        self.module.load(wp.get_device(device), block_dim=self.block_dim, binary_path=binary, meta_path=meta_path,
                         output_arch=arch)


@contextmanager
def _native_stderr(into: list):
    """Capture what native code (Clang, NVRTC) writes to file descriptor 2; append it to ``into``."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            into.append(tmp.read().decode("utf-8", "replace"))


def _diagnostics(text: str, limit: int = 1500) -> str:
    """The compiler's error lines first (up to ``limit`` characters)."""
    errors = [line for line in text.splitlines() if "error" in line]
    body = "\n".join(errors or text.splitlines())
    return body[:limit]


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _numbers(family: Family, spec: KernelSpec, mod: _Module, device: str) -> Verdict:
    try:
        checked = verify(family, spec, mod.kernel, device, mod.namespace)
    except KernelRejected as rej:
        outcome = REASON_OUTCOME.get(rej.reason)
        if outcome is None:
            raise JudgeError(f"production's check failed for a reason no completion can cause: {rej}") from rej
        return Verdict(outcome, f"[{rej.reason}] {rej.detail}", device)
    except Exception as exc:  # noqa: BLE001 - a launch that fails is the completion's fault (types, structs)
        return Verdict("invalid", f"launch failed: {type(exc).__name__}: {exc}"[:2000], device)
    return Verdict("pass", "", device, checked.outputs_sha256)


def _replace_entries(source: str, completion: str, mangled: str, device: str) -> str | Verdict:
    """Warp's module source with the completion's forward (and backward, if given) in place of Warp's own.
    ``mangled`` is the kernel's name in generated code: its own name, or ``<factory>__locals__<name>`` for a
    kernel made by a factory function."""
    try:
        own = extract(source, mangled, device)
    except ExtractionError as exc:
        raise JudgeError(f"Warp's own entry not found in the regenerated module: {exc}") from exc
    fwd_name = entry_name(mangled, device, "forward")
    forward = find_entry(completion, fwd_name)
    if forward is None:
        return Verdict("invalid", f"completion does not define the forward entry {fwd_name}(...) {{...}}")
    backward = find_entry(completion, entry_name(mangled, device, "backward"))
    try:                                 # only these entries of the completion reach the build
        for entry in (forward, backward or ""):
            check_cpp(entry, cuda=device == "cuda")
    except UntrustedCode as exc:
        return Verdict("invalid", f"refused before compiling: {exc}")
    swaps = [(own.forward, forward, fwd_name)]
    if backward is not None and own.backward is not None:
        swaps.append((own.backward, backward, entry_name(mangled, device, "backward")))
    return _swap(source, swaps)


def _swap(source: str, swaps: list[tuple[str, str, str]]) -> str:
    """``source`` with each (Warp's own entry, the completion's, name) replaced, located in the module Warp
    generated before any replacement: what a completion's text holds cannot move another replacement."""
    spans = []
    for own, new, name in swaps:
        own_def = find_entry(own, name) or own
        if source.count(own_def) != 1:
            raise JudgeError(f"{name}: Warp's own definition is not found exactly once in the regenerated module")
        start = source.index(own_def)
        spans.append((start, start + len(own_def), new))
    for start, end, new in sorted(spans, reverse=True):
        source = source[:start] + new + source[end:]
    return source


def judge_code(record: dict, task: str, completion: str, gpu: bool, cuda_arch: int = 90) -> Verdict:
    """py2cpp / py2cuda: the completion's entry functions in Warp's module for the record's Python source."""
    family, spec = regenerate(record)
    device = TASKS[task].device
    with _Module(spec, _opt_level(device)) as mod:
        mangled = mod.kernel.get_mangled_name()
        if find_entry(completion, entry_name(mangled, device, "backward")) is None and spec.program.differentiable:
            # the backward left in place is Warp's own: checking its gradient would judge Warp, not the completion
            spec = replace(spec, program=replace(spec.program, differentiable=False))

        def transform(source: str) -> str | Verdict:
            return _replace_entries(source, completion, mangled, device)
        return _build_and_check(family, spec, mod, device, gpu, cuda_arch, transform)


def _opt_level(device: str) -> int:
    return PRODUCTION.cpu_optimization_level if device == "cpu" else PRODUCTION.cuda_optimization_level


def _build_and_check(family: Family, spec: KernelSpec, mod: _Module, device: str, gpu: bool, cuda_arch: int,
                     transform=None) -> Verdict:
    """Codegen, optional source transform, compile with Warp's toolchain, load that binary, production's check."""
    arch = None if device == "cpu" else (wp.get_device("cuda").arch if gpu else cuda_arch)
    try:
        source, meta, options = mod.codegen(arch)
    except Exception as exc:  # noqa: BLE001 - Warp's codegen rejected a lifted kernel
        return Verdict("compile_error", f"Warp codegen: {type(exc).__name__}: {exc}"[:2000])
    if transform is not None:
        source = transform(source)
        if isinstance(source, Verdict):
            return source
    log: list[str] = []
    try:
        with _native_stderr(log):
            if device == "cpu":
                binary, meta_path = mod.compile_cpu(source, meta, options)
            else:
                binary, meta_path = mod.compile_cuda(source, meta, options, arch, cubin=gpu)
    except Exception as exc:  # noqa: BLE001
        return Verdict("compile_error", f"{type(exc).__name__}: {exc}\n{_diagnostics(''.join(log))}".strip())
    if device == "cuda" and not gpu:
        return Verdict("compiled_only", f"NVRTC sm_{arch}; no GPU to run it on")
    mod.load(device, binary, meta_path, arch)
    return _numbers(family, spec, mod, device)


def _signature(kernel) -> list[tuple[str, str]]:
    return [(a.label, _type_key(a.type)) for a in kernel.adj.args]


def _type_key(t) -> str:
    if wp._src.types.is_array(t):
        return f"{type(t).__name__}(ndim={t.ndim}, dtype={_type_key(t.dtype)})"
    if isinstance(t, wp._src.codegen.Struct):
        return f"struct {t.key}"
    return wp._src.types.type_repr(t)


def judge_lifting(record: dict, task: str, completion: str, gpu: bool, cuda_arch: int = 90) -> Verdict:
    """cpp2py / cuda2py: the completion is Warp Python defining the record's kernel; build and check it.

    Numbers run on the GPU for cuda2py when there is one, otherwise on the CPU build (as the CUDA dataset's
    own records were checked without a GPU).
    """
    family, spec = regenerate(record)
    device = "cuda" if TASKS[task].device == "cuda" and gpu else "cpu"
    try:
        check_python(completion)
    except UntrustedCode as exc:
        return Verdict("invalid", f"refused before running: {exc}")
    lifted = replace(spec, program=replace(spec.program, source=completion))
    with _Module(spec, 0) as own:                    # Warp's kernel, for its signature (never compiled)
        want = _signature(own.kernel)
    try:
        mod = _Module(lifted, _opt_level(device))
    except Exception as exc:  # noqa: BLE001 - syntax errors, undefined names, no kernel of that name
        return Verdict("invalid", f"completion does not define @wp.kernel {spec.kernel_name}: "
                                  f"{type(exc).__name__}: {exc}"[:2000])
    with mod:
        got = _signature(mod.kernel)
        if got != want:
            return Verdict("invalid", f"kernel {spec.kernel_name} has signature {_show(got)}; the record's is "
                                      f"{_show(want)}")
        return _build_and_check(family, spec, mod, device, gpu, cuda_arch)


def _show(sig: list[tuple[str, str]]) -> str:
    return "(" + ", ".join(f"{n}: {t}" for n, t in sig) + ")"


def judge(record: dict, task: str, completion: str, gpu: bool, cuda_arch: int = 90) -> Verdict:
    if TASKS[task].lifting:
        return judge_lifting(record, task, completion, gpu, cuda_arch)
    return judge_code(record, task, completion, gpu, cuda_arch)
