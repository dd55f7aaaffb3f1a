"""The worker side of one chunk: seeds -> specs -> one compiled module -> verified records and rejects.

Runs inside a pytest-xdist worker (or in-process without xdist). It returns plain dicts only, which ride
to the controller on the test report; it never writes the dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace

from .build import BuildOptions, build, release_module
from .errors import KernelRejected
from .extract import ExtractionError, KernelCode, extract, extract_ptx, split_blocks
from .family import Family, KernelSpec
from .rebuild import check_cpu, compile_cuda
from .record import make_record, tool_versions
from .nvrtc import CompileTimeout
from .sass import AssembleError, assemble
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
    token_budget: int | None = None  # records longer than this (cl100k tokens) are rejected as over_budget

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
        digest = hashlib.sha256(spec.source.encode("utf-8")).digest()
        if digest in seen:
            for device in job.devices:
                result.rejects.append(_reject_entry(job, index, seed, device, "duplicate",
                                                    "identical program earlier in this chunk", spec.kernel_name))
            continue
        seen.add(digest)
        specs.append((index, spec))
    result.seconds["generate"] += time.perf_counter() - t0
    return specs


def name_rounds(indexed: list[tuple[int, KernelSpec]]) -> list[list[tuple[int, KernelSpec]]]:
    """Split a chunk's programs into rounds in which kernel names are unique.

    Names carry a short content hash (:meth:`harness.family.Family.spec`), so two different programs of one
    chunk may share a name (about one chunk in a hundred); they cannot live in one Warp module, so the later
    one is built in a later round. The split depends on the programs alone: the same chunk splits the same way.
    """
    rounds: list[list[tuple[int, KernelSpec]]] = []
    names: list[set[str]] = []
    for item in indexed:
        for r, taken in zip(rounds, names):
            if item[1].kernel_name not in taken:
                r.append(item)
                taken.add(item[1].kernel_name)
                break
        else:
            rounds.append([item])
            names.append({item[1].kernel_name})
    return rounds


def run_chunk(job: ChunkJob) -> ChunkResult:
    result = ChunkResult()
    if any(d not in job.family.backends for d in job.devices):     # a CPU-only family in a CUDA run
        job = replace(job, devices=tuple(d for d in job.devices if d in job.family.backends))
        if not job.devices:
            return result
    rounds = name_rounds(generate_specs(job, result))
    for indexed in rounds:
        _run_round(job, result, indexed)
    return result


def _run_round(job: ChunkJob, result: ChunkResult, indexed: list[tuple[int, KernelSpec]]) -> None:
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
    result.compiles += built.compiles
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
            _module_records(job, result, module, index_of, lost, versions)
        finally:
            release_module(module.module)


@dataclass(slots=True)
class _Code:
    """A kernel's extracted code per device, and what its CUDA code became (stages, resources, PTX)."""

    code: dict[str, KernelCode] = field(default_factory=dict)
    resources: dict | None = None
    ptx: str | None = None


def _module_records(job: ChunkJob, result: ChunkResult, module, index_of: dict, lost: dict, versions: dict) -> None:
    blocks = module_blocks(module)
    codes: dict[str, _Code] = {}
    for spec in module.specs:
        entry = codes[spec.kernel_name] = _Code()
        mangled = module.kernels[spec.kernel_name].get_mangled_name()
        for device in job.devices:
            if device in lost.get(spec.kernel_name, ()) or not blocks[device]:
                continue
            try:
                entry.code[device] = extract(blocks[device], mangled, device)
            except ExtractionError as exc:
                lost.setdefault(spec.kernel_name, set()).add(device)
                result.rejects.append(_reject_entry(job, index_of[spec.kernel_name], spec.seed, device,
                                                    "record_error", str(exc), spec.kernel_name))
    if "cuda" in job.devices and module.cuda_source is not None:
        _machine_code(job, result, module, codes, index_of, lost)     # times its NVRTC and ptxas stages
    made: list[dict] = []
    for spec in module.specs:
        devices = tuple(d for d in job.devices if d in codes[spec.kernel_name].code
                        and d not in lost.get(spec.kernel_name, ()))
        made.extend(_records_for(job, result, module, codes[spec.kernel_name], spec, index_of[spec.kernel_name],
                                 versions, devices))
    cpu_records = [r for r in made if r["device"] == "cpu"]
    if cpu_records:
        t0 = time.perf_counter()
        try:
            bad = _rebuild_cpu(cpu_records, module.block_dim)
        finally:
            result.seconds["rebuild_cpu"] += time.perf_counter() - t0
        for record, message in bad:
            result.rejects.append(_reject_entry(job, record["provenance"]["index"], record["provenance"]["seed"],
                                                "cpu", "record_error",
                                                f"does not rebuild from its own fields: {message}",
                                                record["kernel_name"]))
        dropped = {id(r) for r, _ in bad}
        made = [r for r in made if id(r) not in dropped]
    result.records.extend(made)


def _bisect(items: list, check) -> tuple[list[tuple[list, object]], list[tuple[object, Exception]]]:
    """Run ``check`` on ``items``, halving on failure: ([(passing group, its result)], [(item, error)]).

    A group that timed out is checked item by item instead: halving would pay the time limit again at every
    level on the way down to the one item that hangs, while one item normally takes a second."""
    try:
        return [(items, check(items))], []
    except Exception as exc:  # noqa: BLE001 - the compiler's verdict on this group
        if len(items) == 1:
            return [], [(items[0], exc)]
        half = len(items) // 2
        parts = [[item] for item in items] if isinstance(exc, CompileTimeout) else [items[:half], items[half:]]
        ok, bad = [], []
        for part in parts:
            ok_part, bad_part = _bisect(part, check)
            ok, bad = ok + ok_part, bad + bad_part
        return ok, bad


def _rebuild_cpu(records: list[dict], block_dim: int) -> list[tuple[dict, str]]:
    """CPU records that do not compile from their own fields (system C++ compiler, one call per module)."""
    _, bad = _bisect(records, lambda group: check_cpu([r["ir"] for r in group], block_dim,
                                                      [r["kernel_name"] for r in group]))
    return [(record, str(exc)) for record, exc in bad]


def _machine_code(job: ChunkJob, result: ChunkResult, module, codes: dict, index_of: dict, lost: dict) -> None:
    """NVRTC -> PTX -> ptxas -> SASS on the module's CUDA records' own code; reject what does not assemble.

    A kernel whose code fails here while Warp's whole module compiles is an extraction defect
    (``record_error``); one that fails in Warp's module too is a ``compile_error``; PTX that ptxas refuses is
    an ``assemble_error``; one on which NVRTC or ptxas hangs past its time limit, a ``compile_timeout``
    (bisection then checks the kernels one by one). On a GPU host the cubin is loaded as the module's CUDA
    binary, so the numerics run on exactly this build and nothing is compiled twice.
    """
    names = [s.kernel_name for s in module.specs if "cuda" in codes[s.kernel_name].code]
    if not names:
        return
    arch, level = job.build.cuda_arch, job.build.cuda_optimization_level
    irs = {name: _ir_fields(codes[name].code["cuda"], "cuda") for name in names}
    ok, bad = _bisect(names, lambda group: assemble([irs[n] for n in group], module.cuda_block_dim, arch, level))
    for group, assembled in ok:
        result.seconds["compile_cuda"] += assembled.seconds.get("nvrtc", 0.0)
        result.seconds["assemble_cuda"] += assembled.seconds.get("ptxas", 0.0)
        for name in group:
            mangled = module.kernels[name].get_mangled_name()
            codes[name].resources = {kind: assembled.resources.get(f"{mangled}_cuda_kernel_{kind}")
                                     for kind in ("forward", "backward")}
            if job.build.with_ptx:
                codes[name].ptx = extract_ptx(assembled.ptx, mangled)
    whole_module_compiles: bool | None = None
    spec_of = {s.kernel_name: s for s in module.specs}
    for name, exc in bad:
        if isinstance(exc, CompileTimeout):
            reason = "compile_timeout"
        elif isinstance(exc, AssembleError):
            reason = "assemble_error"
        else:
            if whole_module_compiles is None:
                whole_module_compiles = _warp_module_compiles(module.cuda_source, arch, level)
            reason = "record_error" if whole_module_compiles else "compile_error"
        lost.setdefault(name, set()).add("cuda")
        spec = spec_of[name]
        result.rejects.append(_reject_entry(job, index_of[name], spec.seed, "cuda", reason, f"cuda: {exc}", name))
    if job.gpu and ok:
        good = [n for group, _ in ok for n in group]
        cubin = ok[0][1].cubin if len(ok) == 1 else assemble([irs[n] for n in good], module.cuda_block_dim,
                                                              arch, level).cubin
        load_cuda_binary(module, cubin, arch)


def _warp_module_compiles(source: str, arch: int, level: int) -> bool:
    with tempfile.TemporaryDirectory(prefix="wkf_module_") as tmp:
        try:
            compile_cuda(source, arch, os.path.join(tmp, "module.ptx"), level)
        except Exception:  # noqa: BLE001
            return False
    return True


def load_cuda_binary(module, cubin: bytes, arch: int) -> None:
    """Make ``cubin`` (the records' own build) the module's CUDA binary on the GPU, with Warp's metadata."""
    import warp as wp

    with tempfile.TemporaryDirectory(prefix="wkf_load_") as tmp:
        binary = os.path.join(tmp, "module.cubin")
        meta = os.path.join(tmp, "module.meta")
        with open(binary, "wb") as f:
            f.write(cubin)
        with open(meta, "w", encoding="utf-8") as f:
            json.dump(module.cuda_meta, f)
        module.module.load(wp.get_device("cuda:0"), block_dim=module.cuda_block_dim, binary_path=binary,
                           output_arch=arch, meta_path=meta)


def _ir_fields(code: KernelCode, device: str) -> dict:
    return {"language": "cpp" if device == "cpu" else "cuda", "forward": code.forward, "backward": code.backward,
            "support": code.support}


def _records_for(job, result, module, codes: _Code, spec, index, versions, devices) -> list[dict]:
    kernel = module.kernels[spec.kernel_name]
    checked: dict[str, object] = {}
    made = []
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
            record = build_record(job, codes, spec, index, device, verification, versions)
        except (ExtractionError, RecordInvalid) as exc:
            result.rejects.append(_reject_entry(job, index, spec.seed, device, "record_error", str(exc),
                                                spec.kernel_name))
            continue
        finally:
            result.seconds["record"] += time.perf_counter() - t0
        if job.token_budget is not None and record["tokens"]["total"] > job.token_budget:
            result.rejects.append(_reject_entry(job, index, spec.seed, device, "over_budget",
                                                f"{record['tokens']['total']} cl100k tokens (Python "
                                                f"{record['tokens']['python']} + code {record['tokens']['code']}) "
                                                f"> budget {job.token_budget}", spec.kernel_name))
            continue
        made.append(record)
    return made


def build_record(job: ChunkJob, codes: _Code, spec: KernelSpec, index: int, device: str, verification,
                 versions: dict) -> dict:
    """Make the validated record of ``spec`` on ``device`` from its extracted code."""
    cuda = device == "cuda"
    record = make_record(
        spec, device, codes.code[device], verification,
        factory_seed=job.factory_seed, chunk=job.chunk, index=index,
        arch=f"sm_{job.build.cuda_arch}" if cuda else None,
        optimization_level=job.build.cuda_optimization_level if cuda else job.build.cpu_optimization_level,
        ptx=codes.ptx if cuda else None,
        resources=codes.resources if cuda else None,
        stages=["nvrtc", "ptx", "sass", "rebuild"] if cuda else ["clang", "rebuild"],
        versions=versions,
    )
    validate_record(record)
    return record


def module_blocks(module) -> dict:
    """The generated sources of a built module split into blocks, once per device."""
    return {"cpu": split_blocks(module.cpu_source) if module.cpu_source else [],
            "cuda": split_blocks(module.cuda_source) if module.cuda_source else []}
