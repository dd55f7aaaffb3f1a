"""Per-stage throughput of the factory (pytest-benchmark): how many kernels per second each stage handles.

Run on its own, WITHOUT xdist (pytest-benchmark switches itself off under xdist)::

    pytest tests/bench -p no:xdist --benchmark-only --benchmark-json=report/bench/stages.json
    tox -e bench                      # the same, writes report/bench/stages.json

The module is skipped unless benchmarks are asked for (``--benchmark-only``, or ``WKF_BENCH=1`` in the
environment) and never runs in an xdist worker, so the default ``pytest -n 2`` only reports it as skipped.
The folder of ``--benchmark-json`` is created if missing.

Stages (benchmark groups; every row carries its rates in ``extra_info``: ``kernels_per_s``, ``ms_per_kernel``
and, where it applies, records and record bytes per second):

* ``generate``   ``harness.pipeline.generate_specs`` (``Family.spec`` + de-duplication), every family
* ``codegen``    exec of the sources into one Warp module + module hash + C++/CUDA code generation, every family
* ``compile-cpu``  ``harness.build`` on the Warp CPU backend: K kernels in one module, block_dim 1, O0
  (``batched``) next to the naive baseline, one module per kernel (``naive-O2``: Warp's default CPU level;
  ``naive-O0``: batching alone)
* ``compile-nvrtc``  ``harness.build`` with ``want_cuda`` (``wp.compile_aot_module``, PTX for sm_90),
  batched and one module per kernel
* ``verify``     ``harness.verify.verify`` on CPU (run + NumPy reference + comparison), every family
* ``record``     extract + ``make_record`` + ``validate_record`` for the cpu and cuda records, every family
* ``pipeline``   ``harness.pipeline.run_chunk`` on a chunk of K kernels (``batched``) next to K one-kernel
  chunks at Warp's default CPU level (``naive``)

Warp caches compiled modules on disk, so every compile round builds kernels it has never seen: each round
takes a fresh chunk name (hence fresh seeds and sources), and the whole run uses a fresh temporary kernel cache.
The one-off costs of a process (CPU precompiled header, first NVRTC compile) are paid in a warm-up before any
timed round and reported as ``warmup_*_s`` in the compile rows.

Knobs (environment): ``WKF_BENCH_K`` kernels per chunk (default 32); ``WKF_BENCH_FAMILIES`` families for the
expensive stages (compile, pipeline): a comma list or ``all`` (default: ``arithmetic``, else the first family);
``WKF_BENCH_MIN_ROUNDS`` raises every expensive stage's rounds to at least this many (default: 3 batched, 1-2
naive, to keep a plain ``tox -e bench`` short).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from pathlib import Path

import pytest
import warp as wp

from harness.build import CPU_BLOCK_DIM, BuildOptions, build, configure_warp, cuda_available, define_kernels
from harness.build import release_module, toolkit_version
from harness.errors import KernelRejected
from harness.extract import extract
from harness.pipeline import ChunkJob, ChunkResult, _Code, build_record, generate_specs, module_blocks, run_chunk
from harness.pipeline import _machine_code as _machine_code_stage
from harness.record import record_bytes, tool_versions
from harness.registry import all_families
from harness.verify import verify


def _bench_enabled(config: pytest.Config) -> bool:
    """True only in a plain (non-xdist) run that asked for benchmarks and where pytest-benchmark is active."""
    if hasattr(config, "workerinput") or os.environ.get("PYTEST_XDIST_WORKER"):
        return False
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled:
        return False
    return bool(config.getoption("benchmark_only", False)) or os.environ.get("WKF_BENCH") == "1"


pytestmark = pytest.mark.skipif(
    "not _bench_enabled(config)",
    reason="stage benchmarks: pytest tests/bench -p no:xdist --benchmark-only (or WKF_BENCH=1, or tox -e bench)",
)

FACTORY_SEED = 0
K = int(os.environ.get("WKF_BENCH_K", "32"))          # kernels per chunk (compile, verify, record, pipeline)
K_GEN = max(64, K)                                     # generate is cheap: more kernels per round
CUDA_ARCH = 90
NAIVE_CPU_OPT = 2        # Warp's default CPU optimisation level (optimization_level=None resolves to -O2)
BATCHED = BuildOptions()  # the harness defaults: CPU O0, CUDA O3

try:
    _FAMILIES = all_families()
    FAMILIES = sorted(_FAMILIES)
    _REGISTRY_ERROR: Exception | None = None
except Exception as exc:  # noqa: BLE001 - reported by the benchmarks that need the family, not at collection
    _FAMILIES, FAMILIES, _REGISTRY_ERROR = {}, ["registry-error"], exc


def _expensive_families() -> list[str]:
    wanted = os.environ.get("WKF_BENCH_FAMILIES", "").strip()
    if wanted == "all":
        return FAMILIES
    if wanted:
        return [name.strip() for name in wanted.split(",") if name.strip()]
    return ["arithmetic"] if "arithmetic" in FAMILIES else FAMILIES[:1]


EXPENSIVE = _expensive_families()
MIN_ROUNDS = int(os.environ.get("WKF_BENCH_MIN_ROUNDS", "1") or 1)
RATES: dict[tuple[str, str, str], float] = {}     # (group, variant, family) -> kernels/s, for speed-ups
_ROUND = itertools.count()


def _family(name: str):
    if _REGISTRY_ERROR is not None:
        raise _REGISTRY_ERROR
    if name not in _FAMILIES:
        pytest.fail(f"WKF_BENCH_FAMILIES names unknown family {name!r}; known: {FAMILIES}")
    return _FAMILIES[name]


def _fresh_chunk(stage: str) -> str:
    """A chunk name never used before in this process: new seeds, new sources, no Warp cache hit."""
    return f"bench_{stage}_{next(_ROUND):04d}"


def _job(family, chunk: str, indices, devices=("cpu",), opts: BuildOptions = BATCHED, gpu=False) -> ChunkJob:
    return ChunkJob(family=family, chunk=chunk, indices=tuple(indices), devices=tuple(devices),
                    factory_seed=FACTORY_SEED, build=opts, gpu=gpu)


def _specs(family, stage: str, n: int = K) -> list:
    job = _job(family, _fresh_chunk(stage), range(n))
    return [spec for _, spec in generate_specs(job, ChunkResult())]


def _release(built_results) -> None:
    for built in built_results:
        for module in built.modules:
            release_module(module.module)
    built_results.clear()


def _rates(benchmark, counts: list[int], key: tuple[str, str, str] | None = None, **extra) -> None:
    """Put kernels/s (total kernels over total timed seconds) and friends into the benchmark's extra_info."""
    times = list(benchmark.stats.stats.data)
    counts = counts[-len(times):]
    seconds = sum(times)
    kernels = sum(counts)
    info = benchmark.extra_info
    info["kernels_per_round"] = kernels / len(times)
    info["kernels_per_s"] = kernels / seconds if seconds else None
    info["ms_per_kernel"] = 1000 * seconds / kernels if kernels else None
    info.update(extra)
    if key is not None and info["kernels_per_s"]:
        RATES[key] = info["kernels_per_s"]


# -- environment ---------------------------------------------------------------------------------------


class WarpEnv:
    def __init__(self, cache_dir: Path):
        self.cache_dir = cache_dir
        self.nvrtc = toolkit_version() is not None
        self.gpu = cuda_available()
        self.devices = ("cpu", "cuda") if self.nvrtc else ("cpu",)
        self.warmup: dict[str, float] = {}

    def info(self) -> dict:
        return {"warmup_" + k + "_s": round(v, 3) for k, v in self.warmup.items()} | {"K": K}


@pytest.fixture(scope="module")
def warp_env(tmp_path_factory, request):
    """Warp configured as the factory runs it, with a fresh kernel cache, and the one-off process costs paid."""
    json_path = request.config.getoption("benchmark_json", None)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    configure_warp()
    previous = wp.config.kernel_cache_dir
    wp.config.kernel_cache_dir = str(tmp_path_factory.mktemp("warp-kernel-cache"))
    env = WarpEnv(Path(wp.config.kernel_cache_dir))
    family = _family(EXPENSIVE[0] if EXPENSIVE else FAMILIES[0])
    backends = [("cpu", BuildOptions(want_cpu=True))]
    if env.nvrtc:
        backends.append(("nvrtc", BuildOptions(want_cpu=False, want_cuda=True)))
    for label, opts in backends:
        specs = _specs(family, f"warmup_{label}", 1)
        t0 = time.perf_counter()
        built = build(specs, f"wkf_bench_warmup_{label}", opts)
        env.warmup[label] = time.perf_counter() - t0
        _release([built])
    try:
        yield env
    finally:
        wp.config.kernel_cache_dir = previous


@pytest.fixture(scope="module")
def prepared(warp_env):
    """Per family: K kernels built once (CPU, and CUDA when NVRTC is there) and verified once, for the
    verify and record benchmarks, which time only their own stage."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            family = _family(name)
            specs = _specs(family, "prepared")
            built = build(specs, f"wkf_bench_prepared_{name}",
                          BuildOptions(want_cpu=True, want_cuda=warp_env.nvrtc, cuda_arch=CUDA_ARCH))
            entries = []
            for module in built.modules:
                for spec in module.specs:
                    kernel = module.kernels[spec.kernel_name]
                    try:
                        verification = verify(family, spec, kernel, "cpu", module.namespaces[spec.kernel_name])
                    except KernelRejected as rej:
                        verification = rej
                    entries.append((module, spec, kernel, verification))
            cache[name] = {"family": family, "built": built, "entries": entries, "specs": specs}
        return cache[name]

    yield get
    _release([c["built"] for c in cache.values()])


# -- generate and codegen: every family ------------------------------------------------------------------


@pytest.mark.parametrize("family_name", FAMILIES)
def test_generate(benchmark, warp_env, family_name):
    family = _family(family_name)
    job = _job(family, "bench_generate", range(K_GEN))
    counts: list[int] = []
    last: dict = {}

    def run():
        result = ChunkResult()
        specs = generate_specs(job, result)
        counts.append(len(job.indices))
        last.update(specs=len(specs), rejects=len(result.rejects),
                    source_bytes=sum(len(s.source.encode()) for _, s in specs))

    benchmark.group = "generate"
    benchmark.pedantic(run, rounds=5)
    _rates(benchmark, counts, ("generate", "batched", family_name), family=family_name,
           distinct_specs=last["specs"], generator_rejects=last["rejects"],
           mean_source_bytes=last["source_bytes"] / max(1, last["specs"]))


def _codegen(specs, module_name: str, backend: str) -> tuple[object, int]:
    """What Module.load / compile_aot_module do before the compiler runs: exec, hash, generate the source."""
    module = None
    try:
        kernels = define_kernels(specs, module_name)
        module = next(iter(kernels.values())).module
        module.options["optimization_level"] = 0
        block_dim = CPU_BLOCK_DIM if backend == "cpu" else None
        options = module.resolve_options(wp.config, block_dim=block_dim)
        module.get_module_identifier(block_dim=options["block_dim"])      # hashes the module, as load() does
        options = options | {"output_arch": None if backend == "cpu" else CUDA_ARCH}
        builder = wp._src.context.ModuleBuilder(module, options, hasher=module.hashers.get(options["block_dim"]),
                                                target=backend)
        return module, len(builder.codegen(backend))
    except BaseException:
        if module is not None:
            release_module(module)
        else:   # exec failed part-way: drop whatever landed in the Warp module of that name
            wp._src.context.user_modules.pop(module_name, None)
        raise


def _codegen_ok(specs, backend: str, rejected: Counter) -> list:
    """The specs whose code generation succeeds alone (harness.build would bisect the others out)."""
    good = []
    for spec in specs:
        try:
            module, _ = _codegen([spec], f"wkf_bench_screen_{next(_ROUND):04d}", backend)
        except Exception as exc:  # noqa: BLE001 - a kernel that fails codegen is data, as in harness.build
            rejected[type(exc).__name__] += 1
            continue
        release_module(module)
        good.append(spec)
    return good


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
@pytest.mark.parametrize("family_name", FAMILIES)
def test_codegen(benchmark, warp_env, family_name, backend):
    family = _family(family_name)
    counts: list[int] = []
    sizes: list[int] = []
    modules: list = []
    rejected: Counter = Counter()

    def setup():
        specs = _codegen_ok(_specs(family, f"codegen_{backend}"), backend, rejected)
        return (specs, f"wkf_bench_codegen_{next(_ROUND):04d}"), {}

    def run(specs, name):
        module, size = _codegen(specs, name, backend)
        modules.append(module)
        counts.append(len(specs))
        sizes.append(size)

    def teardown(*_):
        while modules:
            release_module(modules.pop())

    benchmark.group = "codegen"
    benchmark.pedantic(run, setup=setup, teardown=teardown, rounds=3)
    _rates(benchmark, counts, ("codegen", backend, family_name), family=family_name, backend=backend,
           source_bytes_per_kernel=sum(sizes) / max(1, sum(counts)),
           codegen_rejected_in_screening=dict(sorted(rejected.items())))


# -- compile: batched (as harness.build does) vs one module per kernel ---------------------------------------


def _compile_bench(benchmark, env, family_name, *, group, variant, opts, per_kernel: bool, rounds: int):
    family = _family(family_name)
    counts: list[int] = []
    failures: list[int] = []
    compiles: list[int] = []
    built_results: list = []

    def setup():
        return (_specs(family, f"{group}_{variant}"), f"wkf_bench_{next(_ROUND):04d}"), {}

    def run(specs, name):
        if per_kernel:
            results = [build([spec], f"{name}_{i}", opts) for i, spec in enumerate(specs)]
        else:
            results = [build(specs, name, opts)]
        built_results.extend(results)
        counts.append(len(specs))
        failures.append(sum(len(r.failures) for r in results))
        compiles.append(sum(r.compiles for r in results))

    benchmark.group = group
    benchmark.pedantic(run, setup=setup, teardown=lambda *_: _release(built_results),
                       rounds=max(rounds, MIN_ROUNDS))
    extra = {"family": family_name, "variant": variant, "modules_per_round": sum(compiles) / len(compiles),
             "compile_failures": sum(failures), **env.info()}
    batched = RATES.get((group, "batched", family_name))
    _rates(benchmark, counts, (group, variant, family_name), **extra)
    if batched and variant != "batched" and benchmark.extra_info["kernels_per_s"]:
        benchmark.extra_info["batched_kernels_per_s"] = batched
        benchmark.extra_info["batched_speedup"] = batched / benchmark.extra_info["kernels_per_s"]


CPU_VARIANTS = [
    pytest.param("batched", BuildOptions(want_cpu=True), False, 3, id="batched"),
    pytest.param("naive-O2", BuildOptions(want_cpu=True, cpu_optimization_level=NAIVE_CPU_OPT), True, 2,
                 id="naive-O2"),
    pytest.param("naive-O0", BuildOptions(want_cpu=True, cpu_optimization_level=0), True, 1, id="naive-O0"),
]


@pytest.mark.parametrize("variant, opts, per_kernel, rounds", CPU_VARIANTS)
@pytest.mark.parametrize("family_name", EXPENSIVE)
def test_compile_cpu(benchmark, warp_env, family_name, variant, opts, per_kernel, rounds):
    _compile_bench(benchmark, warp_env, family_name, group="compile-cpu", variant=variant, opts=opts,
                   per_kernel=per_kernel, rounds=rounds)


NVRTC = BuildOptions(want_cpu=False, want_cuda=True, cuda_arch=CUDA_ARCH)


@pytest.mark.parametrize("variant, per_kernel, rounds", [("batched", False, 3), ("naive", True, 1)],
                         ids=["batched", "naive"])
@pytest.mark.parametrize("family_name", EXPENSIVE)
def test_compile_nvrtc(benchmark, warp_env, family_name, variant, per_kernel, rounds):
    if not warp_env.nvrtc:
        pytest.skip("NVRTC is not available to Warp here")
    _compile_bench(benchmark, warp_env, family_name, group="compile-nvrtc", variant=variant, opts=NVRTC,
                   per_kernel=per_kernel, rounds=rounds)


# -- verify and record: every family ---------------------------------------------------------------------


@pytest.mark.parametrize("family_name", FAMILIES)
def test_verify(benchmark, prepared, family_name):
    chunk = prepared(family_name)
    family, entries = chunk["family"], chunk["entries"]
    if not entries:
        pytest.skip(f"no kernel of {family_name} compiled")
    counts: list[int] = []
    reasons: Counter = Counter()

    def run():
        reasons.clear()
        for module, spec, kernel, _ in entries:
            try:
                verify(family, spec, kernel, "cpu", module.namespaces[spec.kernel_name])
                reasons["accepted"] += 1
            except KernelRejected as rej:
                reasons[rej.reason] += 1
        counts.append(len(entries))

    benchmark.group = "verify"
    benchmark.pedantic(run, rounds=3)
    _rates(benchmark, counts, ("verify", "cpu", family_name), family=family_name, device="cpu",
           outcomes=dict(sorted(reasons.items())))


def _machine_code(job: ChunkJob, entries) -> dict[str, dict]:
    """What production's NVRTC and ptxas stage (:func:`harness.pipeline._machine_code`) hands the record stage,
    per kernel: resources and PTX (run once here, not timed)."""
    out: dict[str, dict] = {}
    for module in {id(m): m for m, *_ in entries}.values():
        blocks = module_blocks(module)
        codes = {s.kernel_name: _Code({"cuda": extract(blocks["cuda"], module.kernels[s.kernel_name].get_mangled_name(),
                                                        "cuda")}) for s in module.specs}
        _machine_code_stage(job, ChunkResult(), module, codes, {s.kernel_name: 0 for s in module.specs}, {})
        out.update({name: {"resources": c.resources, "ptx": c.ptx} for name, c in codes.items()})
    return out


def _records(job: ChunkJob, entries, devices, machine: dict[str, dict]) -> tuple[int, int]:
    """The record stage of harness.pipeline: split once per module, then extract, make and validate."""
    versions = tool_versions()
    count = size = 0
    blocks_of = {}
    for module, spec, kernel, verification in entries:
        if id(module) not in blocks_of:
            blocks_of[id(module)] = module_blocks(module)
        mangled = module.kernels[spec.kernel_name].get_mangled_name()
        codes = _Code({device: extract(blocks_of[id(module)][device], mangled, device) for device in devices},
                      **machine.get(spec.kernel_name, {}))
        for device in devices:
            record = build_record(job, codes, spec, 0, device, verification, versions)
            count += 1
            size += record_bytes(record)
    return count, size


@pytest.mark.parametrize("family_name", FAMILIES)
def test_record(benchmark, prepared, warp_env, family_name):
    chunk = prepared(family_name)
    entries = [e for e in chunk["entries"] if not isinstance(e[3], KernelRejected)]
    if not entries:
        pytest.skip(f"no kernel of {family_name} passed verification")
    job = _job(chunk["family"], "bench_record", range(len(entries)), warp_env.devices)
    machine = _machine_code(job, entries) if "cuda" in warp_env.devices else {}
    counts: list[int] = []
    out: list[tuple[int, int]] = []

    def run():
        out.append(_records(job, entries, warp_env.devices, machine))
        counts.append(len(entries))

    benchmark.group = "record"
    benchmark.pedantic(run, rounds=5)
    records, size = out[-1]
    seconds = benchmark.stats.stats.mean
    _rates(benchmark, counts, ("record", "batched", family_name), family=family_name,
           devices=list(warp_env.devices), records_per_round=records, record_bytes_per_round=size,
           records_per_s=records / seconds, record_mb_per_s=size / seconds / 1e6)


# -- the whole chunk pipeline: one chunk of K vs K chunks of one at Warp's default CPU level ----------------


def _pipeline_bench(benchmark, env, family_name, *, variant, rounds):
    family = _family(family_name)
    opts = BuildOptions(cuda_arch=CUDA_ARCH) if variant == "batched" else \
        BuildOptions(cuda_arch=CUDA_ARCH, cpu_optimization_level=NAIVE_CPU_OPT)
    counts: list[int] = []
    totals = {"records": 0, "record_bytes": 0, "compiles": 0}
    rejects: Counter = Counter()
    stage_seconds: Counter = Counter()

    def setup():
        chunk = _fresh_chunk(f"pipeline_{variant}")
        if variant == "batched":
            jobs = [_job(family, chunk, range(K), env.devices, opts, env.gpu)]
        else:
            jobs = [_job(family, f"{chunk}_{i}", [i], env.devices, opts, env.gpu) for i in range(K)]
        return (jobs,), {}

    def run(jobs):
        for job in jobs:
            result = run_chunk(job)
            totals["records"] += len(result.records)
            totals["record_bytes"] += sum(record_bytes(r) for r in result.records)
            totals["compiles"] += result.compiles
            rejects.update(r["reason"] for r in result.rejects)
            stage_seconds.update(result.seconds)
        counts.append(sum(len(job.indices) for job in jobs))

    benchmark.group = "pipeline"
    benchmark.pedantic(run, setup=setup, rounds=max(rounds, MIN_ROUNDS))
    seconds = sum(benchmark.stats.stats.data)
    n_rounds = len(benchmark.stats.stats.data)
    extra = {
        "family": family_name, "variant": variant, "devices": list(env.devices), "gpu_numerics": env.gpu,
        "records_per_s": totals["records"] / seconds,
        "record_bytes_per_s": totals["record_bytes"] / seconds,
        "records_per_round": totals["records"] / n_rounds,
        "module_compiles_per_round": totals["compiles"] / n_rounds,
        "rejects": dict(sorted(rejects.items())),
        "stage_seconds_per_round": {k: round(v / n_rounds, 4) for k, v in sorted(stage_seconds.items())},
        **env.info(),
    }
    batched = RATES.get(("pipeline", "batched", family_name))
    _rates(benchmark, counts, ("pipeline", variant, family_name), **extra)
    if batched and variant != "batched" and benchmark.extra_info["kernels_per_s"]:
        benchmark.extra_info["batched_kernels_per_s"] = batched
        benchmark.extra_info["batched_speedup"] = batched / benchmark.extra_info["kernels_per_s"]


@pytest.mark.parametrize("variant, rounds", [("batched", 3), ("naive", 1)], ids=["batched", "naive"])
@pytest.mark.parametrize("family_name", EXPENSIVE)
def test_pipeline(benchmark, warp_env, family_name, variant, rounds):
    _pipeline_bench(benchmark, warp_env, family_name, variant=variant, rounds=rounds)
