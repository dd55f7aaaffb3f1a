"""The worker side of one chunk: seeds -> specs -> one compiled module -> verified records and rejects.

Runs inside a pytest-xdist worker (or in-process without xdist). It returns plain dicts only, which ride
to the controller on the test report; it never writes the dataset.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from .build import BuildOptions, build, release_module
from .errors import KernelRejected
from .extract import ExtractionError, extract, extract_ptx, split_blocks
from .family import Family, KernelSpec
from .record import make_record, tool_versions
from .schema import RecordInvalid, validate_record
from .seeds import kernel_seed, rng_for
from .verify import verify


@dataclass(frozen=True, slots=True)
class ChunkJob:
    family: Family
    chunk: str                      # "c000012" (production) or "q003" (quick)
    indices: tuple[int, ...]        # kernel indices inside the chunk
    devices: tuple[str, ...]        # requested backends, subset of ("cpu", "cuda")
    factory_seed: int
    build: BuildOptions
    gpu: bool = False               # a CUDA device is present: run CUDA numerics on it

    def seed(self, index: int) -> int:
        return kernel_seed(self.factory_seed, self.family.name, self.chunk, index)


@dataclass(slots=True)
class ChunkResult:
    records: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    seconds: Counter = field(default_factory=Counter)   # stage -> wall seconds
    compiles: int = 0

    def as_dict(self) -> dict:
        return {"records": self.records, "rejects": self.rejects, "seconds": dict(self.seconds),
                "compiles": self.compiles}


def _reject_entry(job: ChunkJob, index: int, seed: int, device: str | None, reason: str, message: str,
                  kernel_name: str | None = None) -> dict:
    return {"family": job.family.name, "chunk": job.chunk, "index": index, "seed": seed, "device": device,
            "reason": reason, "message": message, "kernel_name": kernel_name}


def generate_specs(job: ChunkJob, result: ChunkResult) -> list[tuple[int, KernelSpec]]:
    specs: list[tuple[int, KernelSpec]] = []
    seen: set[str] = set()
    t0 = time.perf_counter()
    for index in job.indices:
        seed = job.seed(index)
        try:
            spec = job.family.spec(seed, rng_for(seed))
        except Exception as exc:  # noqa: BLE001 - a generator bug is reported, the run goes on
            for device in job.devices:
                result.rejects.append(_reject_entry(job, index, seed, device, "generator_error",
                                                    f"generator raised {type(exc).__name__}: {exc}"))
            continue
        if spec.kernel_name in seen:
            for device in job.devices:
                result.rejects.append(_reject_entry(job, index, seed, device, "duplicate",
                                                    "identical program earlier in this chunk", spec.kernel_name))
            continue
        seen.add(spec.kernel_name)
        specs.append((index, spec))
    result.seconds["generate"] += time.perf_counter() - t0
    return specs


def run_chunk(job: ChunkJob) -> ChunkResult:
    result = ChunkResult()
    indexed = generate_specs(job, result)
    index_of = {spec.kernel_name: index for index, spec in indexed}
    specs = [spec for _, spec in indexed]
    cpu_numerics = not job.gpu
    opts = BuildOptions(
        want_cpu="cpu" in job.devices or cpu_numerics,
        want_cuda="cuda" in job.devices,
        cuda_arch=job.build.cuda_arch,
        with_ptx=job.build.with_ptx,
        cpu_optimization_level=job.build.cpu_optimization_level,
        cuda_optimization_level=job.build.cuda_optimization_level,
    )
    built = build(specs, f"wkf_{job.family.name}", opts)
    result.seconds.update(built.seconds)
    result.compiles = built.compiles
    lost: dict[str, set[str]] = {}       # kernel name -> requested devices it cannot have a record for
    for failure in built.failures:
        spec = failure.spec
        # without a GPU, CUDA records take their numbers from the CPU build: no CPU build, no CUDA record
        blocked = set(failure.devices) | ({"cuda"} if "cpu" in failure.devices and cpu_numerics else set())
        lost[spec.kernel_name] = blocked
        for device in job.devices:
            if device in blocked:
                result.rejects.append(_reject_entry(job, index_of[spec.kernel_name], spec.seed, device,
                                                    "compile_error", f"{failure.stage}: {failure.message}",
                                                    spec.kernel_name))
    versions = tool_versions()
    for module in built.modules:
        try:
            blocks = module_blocks(module)
            for spec in module.specs:
                devices = tuple(d for d in job.devices if d not in lost.get(spec.kernel_name, ()))
                _records_for(job, result, module, blocks, spec, index_of[spec.kernel_name], versions, devices)
        finally:
            release_module(module.module)
    return result


def _records_for(job, result, module, blocks, spec, index, versions, devices) -> None:
    kernel = module.kernels[spec.kernel_name]
    checked: dict[str, object] = {}
    for device in devices:
        numerics = device if (device == "cpu" or job.gpu) else "cpu"
        t0 = time.perf_counter()
        try:
            if numerics not in checked:
                checked[numerics] = verify(job.family, spec, kernel, numerics, module.namespaces[spec.kernel_name])
            verification = checked[numerics]
        except KernelRejected as rej:
            checked[numerics] = rej
            verification = rej
        finally:
            result.seconds["verify"] += time.perf_counter() - t0
        if isinstance(verification, KernelRejected):
            message = verification.detail if numerics == device else f"(numerics on {numerics}) {verification.detail}"
            result.rejects.append(_reject_entry(job, index, spec.seed, device, verification.reason, message,
                                                spec.kernel_name))
            continue
        t0 = time.perf_counter()
        try:
            record = build_record(job, module, blocks, spec, index, device, verification, versions)
        except (ExtractionError, RecordInvalid) as exc:
            result.rejects.append(_reject_entry(job, index, spec.seed, device, "record_error", str(exc),
                                                spec.kernel_name))
            continue
        finally:
            result.seconds["record"] += time.perf_counter() - t0
        result.records.append(record)


def build_record(job: ChunkJob, module, blocks: dict, spec: KernelSpec, index: int, device: str, verification,
                 versions: dict) -> dict:
    """Extract ``spec``'s code for ``device`` from its built module and make the validated record."""
    mangled = module.kernels[spec.kernel_name].get_mangled_name()
    record = make_record(
        spec, device, extract(blocks[device], mangled, device), verification,
        factory_seed=job.factory_seed, chunk=job.chunk, index=index,
        arch=None if device == "cpu" else f"sm_{job.build.cuda_arch}",
        optimization_level=(job.build.cpu_optimization_level if device == "cpu"
                            else job.build.cuda_optimization_level),
        ptx=extract_ptx(module.ptx, mangled) if device == "cuda" and module.ptx else None,
        versions=versions,
    )
    validate_record(record)
    return record


def module_blocks(module) -> dict:
    """The generated sources of a built module split into named blocks, once per device."""
    return {"cpu": split_blocks(module.cpu_source) if module.cpu_source else {},
            "cuda": split_blocks(module.cuda_source) if module.cuda_source else {}}
