"""Kernel source -> Warp module -> compiled code, many kernels per module.

One compile serves every kernel of a module. A kernel that breaks its module (codegen or compiler error) is
isolated by bisection: the module is rebuilt from halves until the bad kernel stands alone and is rejected,
so it costs only itself and a few extra compiles.
"""

from __future__ import annotations

import linecache
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import warp as wp

from .family import KernelSpec

CPU_BLOCK_DIM = 1


@dataclass(frozen=True, slots=True)
class BuildOptions:
    want_cpu: bool = True                # compile with Warp's CPU backend (also needed for CPU numerics)
    want_cuda: bool = False              # compile with NVRTC ahead of time for ``arch``
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
    ptx: str | None = None


@dataclass(slots=True)
class BuildFailure:
    spec: KernelSpec
    stage: str            # "define" | "cpu" | "cuda"
    message: str


@dataclass(slots=True)
class BuildResult:
    modules: list[BuiltModule] = field(default_factory=list)
    failures: list[BuildFailure] = field(default_factory=list)
    compiles: int = 0     # how many module compiles it took (bisection shows up here)


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
            counts.pop(stripped[4:].split("(", 1)[0].strip(), None)


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
        linecache.cache[fname] = (len(spec.source), None, spec.source.splitlines(True), fname)
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


def _compile(specs: list[KernelSpec], module_name: str, opts: BuildOptions, block_dim: int) -> BuiltModule:
    namespaces: dict[str, dict] = {}
    kernels = define_kernels(specs, module_name, namespaces)
    module = next(iter(kernels.values())).module
    built = BuiltModule(specs=specs, module=module, kernels=kernels, namespaces=namespaces, block_dim=block_dim)
    if block_dim != CPU_BLOCK_DIM:
        module.options["block_dim"] = block_dim       # tiled: the CUDA build uses the same block width
    try:
        if opts.want_cpu:
            module.options["optimization_level"] = opts.cpu_optimization_level
            module.load(wp.get_device("cpu"), block_dim=block_dim)
            built.cpu_source = cpu_source_path(module, block_dim).read_text(encoding="utf-8")
        if opts.want_cuda:
            module.options["optimization_level"] = opts.cuda_optimization_level
            out_dir = tempfile.mkdtemp(prefix="wkf_aot_")
            try:
                paths = wp.compile_aot_module(module, arch=opts.cuda_arch, module_dir=out_dir, use_ptx=True)
                cu = next(Path(out_dir).glob("*.cu"))
                built.cuda_source = cu.read_text(encoding="utf-8")
                if opts.with_ptx:
                    built.ptx = Path(paths[0]).read_bytes().rstrip(b"\0").decode("utf-8")
            finally:
                shutil.rmtree(out_dir, ignore_errors=True)
            module.options["optimization_level"] = opts.cpu_optimization_level
            # the CUDA build hashed the module with its own options; forget that hash so the CPU build loaded
            # above still matches at launch (otherwise a tiled module, same block_dim on both, recompiles)
            module.hashers.pop(block_dim, None)
    except BaseException:
        release_module(module)
        raise
    return built


def build(specs: list[KernelSpec], module_name: str, opts: BuildOptions) -> BuildResult:
    """Compile ``specs`` as one module per block width, bisecting on failure. Never raises for a bad kernel."""
    result = BuildResult()
    widths = sorted({block_dim_of(s) for s in specs})
    for width in widths:
        group = [s for s in specs if block_dim_of(s) == width]
        _build_into(result, group, module_name if width == CPU_BLOCK_DIM else f"{module_name}_b{width}", opts, width)
    return result


def _build_into(result: BuildResult, specs: list[KernelSpec], module_name: str, opts: BuildOptions,
                block_dim: int) -> None:
    if not specs:
        return
    result.compiles += 1
    try:
        result.modules.append(_compile(specs, module_name, opts, block_dim))
        return
    except Exception as exc:  # noqa: BLE001 - any failure of a generated kernel is data, not a crash
        if len(specs) == 1:
            result.failures.append(BuildFailure(specs[0], _stage_of(exc), _short(exc)))
            return
    half = len(specs) // 2
    _build_into(result, specs[:half], module_name + "_a", opts, block_dim)
    _build_into(result, specs[half:], module_name + "_b", opts, block_dim)


def _stage_of(exc: BaseException) -> str:
    text = f"{type(exc).__name__} {exc}"
    if "nvrtc" in text.lower() or "cuda" in text.lower():
        return "cuda"
    return "compile"


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
