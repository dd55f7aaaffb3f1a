"""Building modules: one compile per module, generated names that do not depend on build history, and a
kernel that fails on one backend costing only that backend's record."""

from __future__ import annotations

import numpy as np
import pytest

import harness.build as hb
from harness.build import BuildOptions, build, configure_warp, release_module
from harness.extract import extract
from harness.family import Arg, Family, Program, Tolerance
from harness.pipeline import ChunkJob, run_chunk

# A real vector-family program: Warp's codegen discovers types (wp.vec3 from a constructor call) that its
# first module hash did not see, so a CUDA build after the CPU build used to rehash the kernel under another
# name and the CPU code no longer matched (record_error "no ..._cpu_kernel_forward in generated cpu source")
# and the module was compiled a second time at launch.
VEC_SOURCE = '''import warp as wp


@wp.kernel
def wkf_kernel(vals: wp.array(dtype=wp.vec2), y: wp.array(dtype=float), gain: float,
               y_out: wp.array(dtype=wp.vec2)):
    i = wp.tid()
    xvals = vals[i]
    xy = y[i]
    d = wp.normalize((wp.vec3(xy, xy, xy) + wp.vec3(0.5, 0.0, 0.0)))
    e = (d - wp.min((d - wp.vec3(gain, gain, d[2])), wp.where(gain < (-2.3), d, wp.vec3(xy, gain, gain))))
    y_out[i] = xvals * (gain / ((e.x * e.x) + 2.0))
'''
N = 8


def _vec_reference(spec, inputs):
    xy = inputs["y"].astype(np.float64)
    gain = float(inputs["gain"])
    d = np.stack([xy + 0.5, xy, xy], axis=-1)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    other = np.where(gain < np.float32(-2.3), d, np.stack([xy, np.full_like(xy, gain), np.full_like(xy, gain)], -1))
    first = d - np.stack([np.full_like(xy, gain), np.full_like(xy, gain), d[:, 2]], -1)
    e = d - np.minimum(first, other)
    return {"y_out": inputs["vals"].astype(np.float64) * (gain / (e[:, 0] * e[:, 0] + spec.meta))[:, None]}


VEC_ARGS = (Arg("vals", "vec2f", "in", (N,)), Arg("y", "float32", "in", (N,)), Arg("gain", "float32", "scalar"),
            Arg("y_out", "vec2f", "out", (N,)))


def _family(sources: list[str]) -> Family:
    """A family that hands out ``sources`` in order (the constant in the last line is the reference's meta)."""
    programs = iter(sources)

    def generate(rng):
        source = next(programs)
        return Program(source, VEC_ARGS, (N,), meta=float(source.rsplit("+ ", 1)[1].split(")")[0]))

    return Family(name="buildcheck", description="test family", generate=generate,
                  reference=_vec_reference, tolerance=lambda spec: Tolerance(1e-4, 1e-5), chunk_size=len(sources))


def _variants(k: int) -> list[str]:
    return [VEC_SOURCE.replace("+ 2.0)", f"+ {2.0 + j})") for j in range(k)]


@pytest.fixture(scope="module", autouse=True)
def _warp(tmp_path_factory):
    configure_warp(tmp_path_factory.mktemp("warp-cache"))


def test_cpu_and_cuda_code_carry_the_kernels_own_name_and_the_module_compiles_once(monkeypatch):
    loads = []
    real_load = hb._load_cpu
    monkeypatch.setattr(hb, "_load_cpu", lambda *a: loads.append(a[0].name) or real_load(*a))
    job = ChunkJob(family=_family(_variants(1)), chunk="c00000", indices=(0,), devices=("cpu", "cuda"),
                   factory_seed=0, build=BuildOptions())
    result = run_chunk(job)
    assert not result.rejects, result.rejects
    by_device = {r["device"]: r for r in result.records}
    assert set(by_device) == {"cpu", "cuda"}
    name = by_device["cpu"]["kernel_name"]
    assert f"void {name}_cpu_kernel_forward(" in by_device["cpu"]["ir"]["forward"]
    assert f"void {name}_cuda_kernel_forward(" in by_device["cuda"]["ir"]["forward"]
    assert len(loads) == 1
    assert result.compiles == 1


def test_module_names_follow_content_and_options():
    family = _family(_variants(2))
    specs = [family.spec(i, np.random.default_rng(i)) for i in range(2)]
    o0, o2 = BuildOptions(), BuildOptions(cpu_optimization_level=2)
    assert hb.module_name_for("p", specs, o0, 1) == hb.module_name_for("p", specs[::-1], o0, 1)
    assert hb.module_name_for("p", specs, o0, 1) != hb.module_name_for("p", specs[:1], o0, 1)
    assert hb.module_name_for("p", specs, o0, 1) != hb.module_name_for("p", specs, o2, 1)
    assert hb.module_name_for("p", specs, o0, 1) != hb.module_name_for("p", specs, o0, 64)


def _fail_nvrtc_for(monkeypatch, bad: str, *, in_warp_module: bool = True):
    """NVRTC fails on any translation unit holding ``bad`` (optionally not on Warp's own module source)."""
    import harness.pipeline as hp
    import harness.sass as hs

    real = hs.compile_cuda

    def fake(source, arch, out_path, level=3, **kw):
        if f"{bad}_cuda_kernel_forward" in source and (in_warp_module or "wkf_record_" in source):
            raise RuntimeError("NVRTC error: simulated failure")
        return real(source, arch, out_path, level, **kw)

    monkeypatch.setattr(hs, "compile_cuda", fake)
    monkeypatch.setattr(hp, "compile_cuda", fake)


@pytest.mark.parametrize(("in_warp_module", "reason"), [(True, "compile_error"), (False, "record_error")])
def test_a_kernel_that_fails_only_on_nvrtc_keeps_its_cpu_record(monkeypatch, in_warp_module, reason):
    sources = _variants(4)
    bad = _family([sources[2]]).spec(0, np.random.default_rng(0)).kernel_name     # the third program
    _fail_nvrtc_for(monkeypatch, bad, in_warp_module=in_warp_module)
    job = ChunkJob(family=_family(sources), chunk="c00000", indices=(0, 1, 2, 3), devices=("cpu", "cuda"),
                   factory_seed=0, build=BuildOptions())
    result = run_chunk(job)
    # Warp's own module failing too means the kernel does not compile; only the records' code failing means
    # the record would not rebuild from its own fields
    assert [(r["device"], r["reason"], r["kernel_name"]) for r in result.rejects] == [("cuda", reason, bad)]
    assert "NVRTC error: simulated failure" in result.rejects[0]["message"]
    kept = sorted((r["kernel_name"] == bad, r["device"]) for r in result.records)
    assert kept.count((True, "cpu")) == 1 and (True, "cuda") not in kept
    assert len(result.records) == 7
    for record in result.records:
        if record["device"] == "cuda":
            assert record["verification"]["stages"] == ["nvrtc", "ptx", "sass", "rebuild"]
            assert record["ir"]["resources"]["forward"]["registers"] > 0


def test_ptx_that_ptxas_refuses_is_an_assemble_error(monkeypatch):
    import harness.pipeline as hp
    from harness.sass import AssembleError

    sources = _variants(3)
    bad = _family([sources[1]]).spec(0, np.random.default_rng(0)).kernel_name
    real = hp.assemble

    def fake(irs, block_dim, arch, level=3):
        if any(f"{bad}_cuda_kernel_forward" in ir["forward"] for ir in irs):
            raise AssembleError("ptxas: simulated failure")
        return real(irs, block_dim, arch, level)

    monkeypatch.setattr(hp, "assemble", fake)
    job = ChunkJob(family=_family(sources), chunk="c00000", indices=(0, 1, 2), devices=("cuda",),
                   factory_seed=0, build=BuildOptions())
    result = run_chunk(job)
    assert [(r["device"], r["reason"], r["kernel_name"]) for r in result.rejects] == [("cuda", "assemble_error", bad)]
    assert len(result.records) == 2


def test_a_kernel_nvrtc_hangs_on_is_a_compile_timeout_found_one_by_one(monkeypatch):
    """NVRTC that never answers is killed at its time limit; the group is then checked kernel by kernel (not
    halved: each level of halving would wait for the limit again), and only the hanging kernel is lost."""
    import harness.pipeline as hp
    import harness.sass as hs
    from harness.nvrtc import CompileTimeout

    sources = _variants(4)
    bad = _family([sources[1]]).spec(0, np.random.default_rng(0)).kernel_name
    real, calls = hs.compile_cuda, []

    def hang(source, arch, out_path, level=3, **kw):
        calls.append(source.count("_cuda_kernel_forward("))
        if f"{bad}_cuda_kernel_forward" in source:
            raise CompileTimeout("NVRTC gave no answer within 80 s (killed)")
        return real(source, arch, out_path, level, **kw)

    monkeypatch.setattr(hs, "compile_cuda", hang)
    monkeypatch.setattr(hp, "compile_cuda", hang)
    job = ChunkJob(family=_family(sources), chunk="c00000", indices=(0, 1, 2, 3), devices=("cuda",),
                   factory_seed=0, build=BuildOptions())
    result = run_chunk(job)
    assert [(r["device"], r["reason"], r["kernel_name"]) for r in result.rejects] == [("cuda", "compile_timeout", bad)]
    assert "no answer within" in result.rejects[0]["message"]
    assert calls == [4, 1, 1, 1, 1]                 # the module, then each kernel once; Warp's module not retried
    assert len(result.records) == 3


def test_the_nvrtc_child_is_killed_past_its_limit_and_the_next_compile_gets_a_fresh_one(tmp_path):
    """The real child: a limit too short for any compile raises CompileTimeout; the next request starts a new
    child and compiles; NVRTC's own error lines reach the caller's message."""
    from harness import nvrtc
    from harness.rebuild import _header

    source = _header("cuda", 256, "") + 'extern "C" __global__ void wkf_probe(float* a) { a[0] = 1.0f; }\n'
    nvrtc.compile_bounded(source, 90, str(tmp_path / "warm.ptx"), 3, 300.0)     # child started, PCH built
    started = nvrtc._child().started
    with pytest.raises(nvrtc.CompileTimeout, match="no answer within 0.001 s"):
        nvrtc.compile_bounded(source.replace("1.0f", "2.0f"), 90, str(tmp_path / "a.ptx"), 3, 0.001)
    nvrtc.compile_bounded(source, 90, str(tmp_path / "b.ptx"), 3, 300.0)
    assert nvrtc._child().started == started + 1
    assert "wkf_probe" in (tmp_path / "b.ptx").read_text(errors="replace")
    with pytest.raises(RuntimeError, match="error"):
        nvrtc.compile_bounded(source.replace("a[0] = 1.0f;", "a[0] = undefined_name;"), 90,
                              str(tmp_path / "c.ptx"), 3, 300.0)


def test_a_cpu_record_that_does_not_rebuild_is_a_record_error(monkeypatch):
    import harness.pipeline as hp

    sources = _variants(2)
    job = ChunkJob(family=_family(sources), chunk="c00000", indices=(0, 1), devices=("cpu",),
                   factory_seed=0, build=BuildOptions())
    real = hp.module_blocks

    def lose_helpers(module):       # an extraction that drops the argument struct: the record cannot compile
        blocks = real(module)
        blocks["cpu"] = [b for b in blocks["cpu"] if not b.name.startswith("wp_args_")]
        return blocks

    monkeypatch.setattr(hp, "module_blocks", lose_helpers)
    result = run_chunk(job)
    assert not result.records
    assert {r["reason"] for r in result.rejects} == {"record_error"}
    assert all("does not rebuild from its own fields" in r["message"] for r in result.rejects)


def test_records_over_the_token_budget_are_rejected():
    job = ChunkJob(family=_family(_variants(1)), chunk="c00000", indices=(0,), devices=("cpu",),
                   factory_seed=0, build=BuildOptions(), token_budget=50)
    result = run_chunk(job)
    assert not result.records
    (reject,) = result.rejects
    assert reject["reason"] == "over_budget" and "> budget 50" in reject["message"]


def test_a_kernel_that_fails_on_the_cpu_loses_both_records_without_a_gpu():
    sources = _variants(3)
    sources[1] = sources[1].replace("xvals * (gain", "xvals * (undefined_name")
    job = ChunkJob(family=_family(sources), chunk="c00000", indices=(0, 1, 2), devices=("cpu", "cuda"),
                   factory_seed=0, build=BuildOptions())
    result = run_chunk(job)
    assert sorted((r["device"], r["reason"], r["index"]) for r in result.rejects) == [
        ("cpu", "compile_error", 1), ("cuda", "compile_error", 1)]
    assert len(result.records) == 4


def test_build_releases_every_module_it_gave_up_on():
    import warp as wp

    sources = _variants(2)
    sources[0] = sources[0].replace("xvals * (gain", "xvals * (undefined_name")
    family = _family(sources)
    specs = [family.spec(i, np.random.default_rng(i)) for i in range(2)]
    before = set(wp._src.context.user_modules)
    result = build(specs, "wkf_release", BuildOptions())
    try:
        assert len(result.failures) == 1 and len(result.modules) == 1
        live = set(wp._src.context.user_modules) - before
        assert live == {result.modules[0].module.name}
        mangled = result.modules[0].kernels[specs[1].kernel_name].get_mangled_name()
        assert mangled == specs[1].kernel_name
        assert extract(result.modules[0].cpu_source, mangled, "cpu").forward
    finally:
        for module in result.modules:
            release_module(module.module)


def _gpu_present() -> bool:
    import warp as wp

    return bool(wp.is_cuda_available())


@pytest.mark.skipif(not _gpu_present(), reason="no CUDA GPU on this machine: the GPU path (numerics on the GPU, one "
                                              "NVRTC build for record and launch) runs only where one is present")
def test_on_a_gpu_one_nvrtc_build_serves_the_record_and_the_launch(monkeypatch):
    from warp._src import build as wp_build

    compiles = []
    real = wp_build.build_cuda
    monkeypatch.setattr(wp_build, "build_cuda", lambda *a, **k: compiles.append(a[0]) or real(*a, **k))
    job = ChunkJob(family=_family(_variants(3)), chunk="c00000", indices=(0, 1, 2), devices=("cuda",),
                   factory_seed=0, build=BuildOptions(), gpu=True)
    result = run_chunk(job)
    assert not result.rejects, result.rejects
    assert len(result.records) == 3
    assert len(compiles) == 1                  # the records' translation unit, loaded as the module's binary
    assert "compile_cpu" not in result.seconds  # a CUDA-only run on a GPU host builds nothing for the CPU
    for record in result.records:
        assert record["verification"]["numerics_device"] == "cuda"
        assert record["verification"]["stages"] == ["nvrtc", "ptx", "sass", "rebuild"]


def test_records_rebuild_alone_from_their_fields_with_every_compiler():
    from harness.rebuild import nvcc_path
    from production.validate import rebuild_sample

    job = ChunkJob(family=_family(_variants(1)), chunk="c00000", indices=(0,), devices=("cpu", "cuda"),
                   factory_seed=0, build=BuildOptions())
    result = run_chunk(job)
    rates, problems = rebuild_sample(result.records, 2)   # its cpu and its cuda record
    assert not problems, problems
    assert rates["buildcheck"]["g++"] == [1, 1] and rates["buildcheck"]["nvrtc"] == [1, 1]
    if nvcc_path():
        assert rates["buildcheck"]["nvcc"] == [1, 1]


def test_with_ptx_a_cuda_record_keeps_the_ptx_of_its_own_entries_only():
    job = ChunkJob(family=_family(_variants(2)), chunk="c00000", indices=(0, 1), devices=("cuda",),
                   factory_seed=0, build=BuildOptions(with_ptx=True))
    result = run_chunk(job)
    assert len(result.records) == 2
    for record in result.records:
        ptx = record["ir"]["ptx"]
        name = record["kernel_name"]
        assert f".visible .entry {name}_cuda_kernel_forward(" in ptx
        assert f".visible .entry {name}_cuda_kernel_backward(" in ptx
        assert ptx.count(".visible .entry") == 2


def test_programs_that_share_a_short_name_are_built_apart_and_each_keeps_its_own_code(monkeypatch):
    """Names carry a short content hash; with one hex digit, two of these eleven programs share a name, and each
    record must still hold the code of its own program (its constant), built in a module of its own round."""
    import harness.family as hf

    monkeypatch.setattr(hf, "NAME_HASH_DIGITS", 1)
    sources = _variants(11)
    names = [_family([s]).spec(0, np.random.default_rng(0)).kernel_name for s in sources]
    assert len(set(names)) < len(names)
    job = ChunkJob(family=_family(sources), chunk="c00000", indices=tuple(range(11)), devices=("cpu",),
                   factory_seed=0, build=BuildOptions())
    result = run_chunk(job)
    assert not result.rejects
    assert sorted(r["provenance"]["index"] for r in result.records) == list(range(11))
    for record in result.records:
        constant = sources[record["provenance"]["index"]].rsplit("+ ", 1)[1].split(")")[0]
        assert f"+ {constant})" in record["python_source"]
        assert constant in record["ir"]["forward"]
