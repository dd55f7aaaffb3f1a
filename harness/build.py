"""Kernel source -> Warp module -> compiled code, many kernels per module.

One compile serves every kernel of a module. A kernel that breaks its module (codegen or compiler error) is
isolated by bisection: the module is rebuilt from halves until the bad kernel stands alone and is rejected,
so it costs only itself and a few extra compiles.
"""

from __future__ import annotations

import hashlib
import io
import linecache
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import warp as wp

from .family import KernelSpec

CPU_BLOCK_DIM = 1


@dataclass(frozen=True, slots=True)
class BuildOptions:
    want_cpu: bool = True                # compile with Warp's CPU backend (also needed for CPU numerics)
    want_cuda: bool = False              # generate CUDA code (compiled by NVRTC for ``arch`` in harness.sass)
    cuda_arch: int = 90
    with_ptx: bool = False               # keep the PTX text in records
    cpu_optimization_level: int = 0      # the emitted C++ does not depend on it; recorded in provenance
    cuda_optimization_level: int = 3


@dataclass(slots=True)
class BuiltModule:
    """A module that compiled on every requested backend, with the generated code to extract from."""

    specs: list[KernelSpec]
    module: object
    kernels: dict[str, object]
    namespaces: dict[str, dict]          # kernel name -> the namespace its source ran in (structs, funcs)
    block_dim: int                       # CPU block_dim it was built for (1 unless tiled)
    cpu_source: str | None = None
    cuda_source: str | None = None
    cuda_meta: dict | None = None        # Warp's loader metadata for the CUDA build (shared memory per entry)
    cuda_block_dim: int | None = None    # block width the CUDA code was generated for


@dataclass(slots=True)
class BuildFailure:
    spec: KernelSpec
    stage: str                       # "define" | "cpu" | "cuda"
    message: str
    devices: tuple[str, ...] = ("cpu", "cuda")   # backends the kernel has no build for


@dataclass(slots=True)
class BuildResult:
    modules: list[BuiltModule] = field(default_factory=list)
    failures: list[BuildFailure] = field(default_factory=list)
    compiles: int = 0     # how many module compiles it took (bisection shows up here)
    seconds: Counter = field(default_factory=Counter)   # define / compile_cpu / codegen_cuda wall seconds


def _forget_function_names(source: str) -> None:
    """Warp numbers user functions by a process-wide counter per name (``name_0``, ``name_1``...).

    Generated helper names are content-addressed and unique, so the first definition gets ``_0``; a rebuild in
    the same process (bisection) would get ``_1`` and the emitted code would depend on history. Forgetting the
    count keeps the emitted code a function of the source alone.
    """
    counts = getattr(wp._src.context, "function_key_counts", None)
    if counts is None:
        return
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("def "):
            name = stripped[4:].split("(", 1)[0].strip()
            counts.pop(name, None)
            # a closure's key is its qualified name (``factory__locals__inner``)
            for key in [k for k in counts if k.startswith(f"{name}__locals__")]:
                counts.pop(key, None)


def define_kernels(specs: list[KernelSpec], module_name: str,
                   namespaces: dict[str, dict] | None = None) -> dict[str, object]:
    """Exec each spec's source so that its kernel lands in Warp module ``module_name``.

    Each source gets its own fake file name (so ``inspect.getsource`` works and the emitted ``// file:line``
    comments depend on the kernel alone), and runs in a namespace whose ``__name__`` is the module name:
    ``@wp.kernel`` without a ``module=`` argument registers the kernel in that Warp module.
    """
    kernels = {}
    for spec in specs:
        fname = f"<wkf:{spec.kernel_name}>"
        # lines as Python's compiler counts them (str.splitlines also breaks at U+2028, form feeds...; then the
        # line numbers Warp looks its source up by would point elsewhere)
        lines = io.StringIO(spec.source, newline="").readlines()
        linecache.cache[fname] = (len(spec.source), None, lines, fname)
        _forget_function_names(spec.source)
        namespace = {"__name__": module_name}
        exec(compile(spec.source, fname, "exec", dont_inherit=True), namespace)  # noqa: S102 - generated kernel source
        kernel = namespace.get(spec.kernel_name)
        if not isinstance(kernel, wp.Kernel):
            raise TypeError(f"source of {spec.kernel_name} does not define a @wp.kernel of that name")
        kernels[spec.kernel_name] = kernel
        if namespaces is not None:
            namespaces[spec.kernel_name] = namespace
    return kernels


def release_module(module) -> None:
    """Unload a module and drop it from Warp's registry so long-lived workers do not grow."""
    try:
        module.unload()
    finally:
        wp._src.context.user_modules.pop(module.name, None)


def cpu_source_path(module, block_dim: int = CPU_BLOCK_DIM) -> Path:
    ident = module.get_module_identifier(block_dim)
    return Path(wp.config.kernel_cache_dir) / ident / f"{ident}.cpp"


def block_dim_of(spec: KernelSpec) -> int:
    """The block size a kernel is built and launched with on the CPU: 1, or its tile width when tiled."""
    return spec.program.block_dim if spec.program.tiled and spec.program.block_dim else CPU_BLOCK_DIM


def module_name_for(prefix: str, specs: list[KernelSpec], opts: BuildOptions, block_dim: int) -> str:
    """A Warp module name that is a function of everything that determines the module's code and binary.

    Modules are built with Warp's ``strip_hash`` option, so the kernel cache directory is named after the
    module alone: the name must change whenever the kernels or the build options do. Kernel names are
    already content hashes of their source.
    """
    parts = [*sorted(s.kernel_name for s in specs), f"block_dim={block_dim}", f"mode={wp.config.mode}",
             f"cpu_O{opts.cpu_optimization_level}", f"cuda_O{opts.cuda_optimization_level}",
             f"backward={wp.config.enable_backward}", f"cpu_blocks={wp.config.enable_cpu_blocks}"]
    digest = hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]
    name = f"{prefix}_{digest}"
    live = wp._src.context.user_modules
    if name not in live:
        return name
    n = 1                                  # another live copy of this module in this process: keep it apart
    while f"{name}_{n}" in live:
        n += 1
    return f"{name}_{n}"


def _load_cpu(module, opts: BuildOptions, block_dim: int) -> str:
    wp.set_module_options({"optimization_level": opts.cpu_optimization_level}, module=module)
    module.load(wp.get_device("cpu"), block_dim=block_dim)
    return cpu_source_path(module, block_dim).read_text(encoding="utf-8")


def _codegen_cuda(module, opts: BuildOptions) -> tuple[str, dict, int]:
    """Warp's CUDA source for the module and the metadata its loader needs, without compiling.

    The NVRTC compile happens on the records' own code (:mod:`harness.sass`): one build that proves each
    record rebuilds from its fields and gives the PTX, the machine code and, on a GPU host, the binary the
    numerics run on. The block width is the module's (Warp's CUDA default 256, or the tile width).
    """
    block_dim = module.options["block_dim"]
    options = module.resolve_options(wp.config, block_dim) | {"output_arch": opts.cuda_arch,
                                                              "optimization_level": opts.cuda_optimization_level}
    source, _ext, meta, _ltoirs, _fatbins = module._run_codegen(options, False)
    return source, meta, block_dim


class _StageFailed(Exception):
    """A module failed on one backend; ``built`` holds what succeeded before (the CPU build, if any)."""

    def __init__(self, stage: str, cause: BaseException, built: BuiltModule | None):
        super().__init__(str(cause))
        self.stage = stage
        self.cause = cause
        self.built = built


def _compile(specs: list[KernelSpec], module_name: str, opts: BuildOptions, block_dim: int,
             seconds: Counter) -> BuiltModule:
    """Define ``specs`` as one Warp module and compile it on each requested backend, CPU first."""
    namespaces: dict[str, dict] = {}
    t0 = time.perf_counter()
    try:
        kernels = define_kernels(specs, module_name, namespaces)
    except Exception as exc:  # noqa: BLE001
        partial = wp._src.context.user_modules.get(module_name)
        if partial is not None:
            release_module(partial)
        raise _StageFailed("define", exc, None) from exc
    finally:
        seconds["define"] += time.perf_counter() - t0
    module = next(iter(kernels.values())).module
    # strip_hash: generated names are the kernels' own (content-addressed) names, the same whichever backend
    # is built first; otherwise Warp's hash suffix can differ between a build and a later rebuild of the module
    wp.set_module_options({"strip_hash": True}, module=module)
    if block_dim != CPU_BLOCK_DIM:
        wp.set_module_options({"block_dim": block_dim}, module=module)   # tiled: CUDA uses the same block width
    built = BuiltModule(specs=specs, module=module, kernels=kernels, namespaces=namespaces, block_dim=block_dim)
    stage = "cpu"
    try:
        if opts.want_cpu:
            t0 = time.perf_counter()
            try:
                built.cpu_source = _load_cpu(module, opts, block_dim)
            finally:
                seconds["compile_cpu"] += time.perf_counter() - t0
        if opts.want_cuda:
            stage = "cuda"
            t0 = time.perf_counter()
            try:
                built.cuda_source, built.cuda_meta, built.cuda_block_dim = _codegen_cuda(module, opts)
            finally:
                seconds["codegen_cuda"] += time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001
        if stage == "cuda" and built.cpu_source is not None:
            raise _StageFailed("cuda", exc, built) from exc
        release_module(module)
        raise _StageFailed(stage, exc, None) from exc
    except BaseException:
        release_module(module)
        raise
    return built


def build(specs: list[KernelSpec], module_name: str, opts: BuildOptions) -> BuildResult:
    """Compile ``specs`` as one module per block width, bisecting on failure. Never raises for a bad kernel.

    ``module_name`` is a prefix; each module is named after its content (:func:`module_name_for`).
    """
    result = BuildResult()
    widths = sorted({block_dim_of(s) for s in specs})
    for width in widths:
        group = [s for s in specs if block_dim_of(s) == width]
        _build_into(result, group, module_name if width == CPU_BLOCK_DIM else f"{module_name}_b{width}", opts, width)
    return result


def _build_into(result: BuildResult, specs: list[KernelSpec], prefix: str, opts: BuildOptions,
                block_dim: int) -> None:
    if not specs:
        return
    result.compiles += 1
    try:
        result.modules.append(_compile(specs, module_name_for(prefix, specs, opts, block_dim), opts, block_dim,
                                       result.seconds))
        return
    except _StageFailed as failed:
        if len(specs) == 1:
            # a kernel that compiled for the CPU but not for CUDA keeps its CPU build and CPU record
            if failed.built is not None:
                result.modules.append(failed.built)
            devices = ("cuda",) if failed.built is not None else ("cpu", "cuda")
            result.failures.append(BuildFailure(specs[0], failed.stage, _short(failed.cause), devices))
            return
        if failed.built is not None:
            release_module(failed.built.module)
    half = len(specs) // 2
    _build_into(result, specs[:half], prefix, opts, block_dim)
    _build_into(result, specs[half:], prefix, opts, block_dim)


def _short(exc: BaseException, limit: int = 600) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= limit else text[:limit] + " ..."


def toolkit_version() -> str | None:
    """The CUDA toolkit (NVRTC) version Warp compiles with, e.g. ``"13.4"``."""
    version = getattr(wp._src.context.runtime, "toolkit_version", None)
    return None if version is None else ".".join(str(v) for v in version)


def cuda_available() -> bool:
    return bool(wp.is_cuda_available())


def configure_warp(cache_dir: str | os.PathLike | None = None) -> None:
    """Process-wide Warp settings for the factory (quiet, no MathDx GEMM, optional cache location)."""
    wp.config.quiet = True
    wp.config.enable_mathdx_gemm = False
    wp.config.enable_cpu_blocks = True      # tiled kernels run with their real block width on the CPU too
    if cache_dir is not None:
        wp.config.kernel_cache_dir = os.fspath(cache_dir)
    wp.init()
