"""The gate every kernel family passes in CI: it is a complete family, its programs are diverse, and its
generated source and IR are snapshotted so changes in generation or in Warp's code generator show in review.

The numerics gate itself is the quick run of ``kernels/<family>.py`` that a plain ``pytest`` collects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.build import BuildOptions, build, configure_warp, release_module
from harness.extract import extract
from harness.family import Family
from harness.record import structural_hash
from harness.registry import REQUIRED, all_families, family_from_module, is_family_file
from harness.seeds import kernel_seed, rng_for

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
FAMILIES = all_families()
UNIQUE_SAMPLE = 400
UNIQUE_MIN = 0.95


def family_files() -> list[Path]:
    return sorted(p for p in KERNELS.glob("*.py") if is_family_file(p))


def test_every_kernels_module_is_a_complete_family():
    names = [p.stem for p in family_files()]
    assert names, "no families found in kernels/"
    assert sorted(FAMILIES) == names
    for family in FAMILIES.values():
        for attr in REQUIRED:
            assert callable(getattr(family, attr)), f"{family.name} lacks {attr}"
        assert family.description and family.covers, f"{family.name}: describe what it covers"


def test_an_incomplete_family_is_refused(tmp_path):
    import types

    module = types.ModuleType("kernels.broken")
    module.__file__ = str(tmp_path / "broken.py")
    with pytest.raises(Exception, match="must define FAMILY"):
        family_from_module(module)
    module.FAMILY = Family(name="other", description="d", generate=lambda rng: None, reference=lambda s, i: {},
                           tolerance=lambda s: None)
    with pytest.raises(Exception, match="must equal the file name"):
        family_from_module(module)


def undefined_names(source: str) -> set[str]:
    """Names a generated module's functions read as globals that neither the module nor Python defines (Warp
    would refuse them at build time: ``Referencing undefined symbol``)."""
    import builtins
    import dis
    import types

    code = compile(source, "<generated>", "exec")
    defined = set(dir(builtins)) | {i.argval for i in dis.get_instructions(code) if i.opname in ("STORE_NAME",
                                                                                               "STORE_GLOBAL")}
    missing, todo = set(), [c for c in code.co_consts if isinstance(c, types.CodeType)]
    while todo:
        fn = todo.pop()
        todo += [c for c in fn.co_consts if isinstance(c, types.CodeType)]
        missing |= {i.argval for i in dis.get_instructions(fn) if i.opname == "LOAD_GLOBAL"} - defined
    return missing


def test_undefined_names_are_found():
    assert undefined_names("import warp as wp\ndef k(a):\n    if lane == 0:\n        wp.x(a)\n") == {"lane"}
    assert not undefined_names("import warp as wp\ndef f(a):\n    return a\ndef k(a):\n    i, lane = wp.tid()\n"
                               "    if lane == 0:\n        f(a)\n")


def test_reduction_single_block_max_has_no_lane():
    """Regression: a one-block (``whole``) reduction drawn a max/min atomic wrote ``if lane == 0`` without a lane."""
    family = FAMILIES["reduction"]
    seed = 4090140931693690347
    assert not undefined_names(family.spec(seed, rng_for(seed)).source)


def test_random_tolerance_is_set_by_float_values_only():
    """Regression: random@2 let a uint32 rng state (up to 2**32) set atol to 8 eps 2**32 = 4096, a check no wrong
    output could fail (the benchmark's mutants survived it). Float values set it, with a cap."""
    family = FAMILIES["random"]
    for i in range(20):
        seed = kernel_seed(0, "random", "tolerance", i)
        tol = family.tolerance(family.spec(seed, rng_for(seed)))
        assert tol.atol <= 1e-3 and tol.rtol == 1e-4, f"random seed {seed}: {tol}"


def test_atomic_checks_each_output_with_its_own_tolerance():
    """Regression: atomic@2 checked every output of a kernel with the atol of its largest accumulator (2.13 in one
    record, on outputs near 1). Here ``sums`` accumulates (atol 1.8e-3) beside ``lo_val`` (1e-5): an error of 1e-3
    passes in ``sums`` and is a mismatch named in ``lo_val``."""
    import jsonschema
    import numpy as np

    from harness.errors import KernelRejected
    from harness.schema import validator
    from harness.verify import screen

    family = FAMILIES["atomic"]
    seed = 7741681602269787255
    spec = family.spec(seed, rng_for(seed))
    tol = family.tolerance(spec)
    assert tol.of("sums").atol > 1e-3 > tol.of("lo_val").atol and tol.atol == tol.of("sums").atol

    def observe_off_by(name):
        def observe(inputs):
            out = {k: np.ma.getdata(v).astype(np.float32) for k, v in family.reference(spec, inputs).items()}
            out[name] = out[name] + np.float32(1e-3)
            return out
        return observe

    passed = screen(family, spec, observe_off_by("sums"))
    assert passed.elements_compared
    stated = passed.as_dict()                 # what a record states: each output's own, and the loosest
    assert stated["tolerance_per_output"]["lo_val"] == {"rtol": 1e-4, "atol": 1e-5}
    assert stated["atol"] == tol.of("sums").atol
    schema = validator().schema["properties"]["verification"]
    jsonschema.validate({**stated, "numerics_device": "cpu"}, schema)
    with pytest.raises(KernelRejected, match="output 'lo_val'.*atol=1e-05"):
        screen(family, spec, observe_off_by("lo_val"))


def test_combined_folds_an_unread_vec3_into_a_float_result_through_its_length():
    """Regression: combined@2 raised IRTypeError (tanh of a vec3f) on these two seeds of the saturation run; version 3
    folds the vec3 in through its length, and the kernel passes the same numerics check as production's."""
    from harness.verify import verify

    configure_warp()
    family = FAMILIES["combined"]
    specs = [family.spec(seed, rng_for(seed)) for seed in (174417269727747091, 9177393738958293401)]
    assert all("wp.tanh(wp.length(" in spec.source and not undefined_names(spec.source) for spec in specs)
    result = build(specs, "wkf_test_combined_length", BuildOptions(want_cpu=True))
    assert not result.failures, result.failures
    for module in result.modules:
        try:
            for spec in module.specs:
                kernel = module.kernels[spec.kernel_name]
                assert verify(family, spec, kernel, "cpu", module.namespaces[spec.kernel_name]).elements_compared
        finally:
            release_module(module.module)


# no_cover: 400 programs per family only run generator code again; coverage's tracer doubled the time of these
# tests (control_flow: 36 s -> 78 s) for a few more generator lines of kernels/ marked covered
@pytest.mark.no_cover
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_programs_are_structurally_diverse(name):
    family = FAMILIES[name]
    hashes = set()
    for i in range(UNIQUE_SAMPLE):
        seed = kernel_seed(0, name, "unique", i)
        source = family.spec(seed, rng_for(seed)).source
        assert not undefined_names(source), f"{name} seed {seed}: reads undefined {undefined_names(source)}"
        hashes.add(structural_hash(source))
    assert len(hashes) / UNIQUE_SAMPLE >= UNIQUE_MIN, f"{name}: {len(hashes)} of {UNIQUE_SAMPLE} structures unique"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_generation_is_deterministic(name):
    family = FAMILIES[name]
    seed = kernel_seed(0, name, "determinism", 0)
    assert family.spec(seed, rng_for(seed)) .source == family.spec(seed, rng_for(seed)).source


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_snapshot_of_source_and_ir(name, snapshot):
    """One fixed kernel per family: its Python source and the CPU and CUDA code Warp generates for it (the CPU
    code alone for a family whose records are CPU-only)."""
    configure_warp()
    family = FAMILIES[name]
    cuda_too = "cuda" in family.backends
    seed = kernel_seed(0, name, "snapshot", 0)
    spec = family.spec(seed, rng_for(seed))
    result = build([spec], f"wkf_snapshot_{name}", BuildOptions(want_cpu=True, want_cuda=cuda_too))
    assert not result.failures, result.failures
    module = result.modules[0]
    try:
        mangled = module.kernels[spec.kernel_name].get_mangled_name()
        cpu = extract(module.cpu_source, mangled, "cpu")
        cuda = extract(module.cuda_source, mangled, "cuda") if cuda_too else None
    finally:
        release_module(module.module)
    assert spec.source == snapshot(name="python_source")
    assert {"forward": cpu.forward, "backward": cpu.backward, "support": cpu.support} == snapshot(name="cpu")
    if cuda is not None:
        assert {"forward": cuda.forward, "backward": cuda.backward, "support": cuda.support} == snapshot(name="cuda")


def test_generation_does_not_depend_on_the_hash_seed():
    """Same seeds, different PYTHONHASHSEED, separate processes: identical programs for every family."""
    import hashlib
    import os
    import subprocess
    import sys

    script = (
        "import hashlib\n"
        "from harness.registry import all_families\n"
        "from harness.seeds import kernel_seed, rng_for\n"
        "h = hashlib.sha256()\n"
        "for name, family in all_families().items():\n"
        "    for i in range(25):\n"
        "        seed = kernel_seed(0, name, 'hashseed', i)\n"
        "        h.update(family.spec(seed, rng_for(seed)).source.encode())\n"
        "print(h.hexdigest())\n"
    )
    digests = set()
    for hashseed in ("0", "1"):                    # 2 x 26 x 25 programs (81 s at 40 a family; 3 x 80 took 190 s)
        # no coverage measurement in the children (coverage's subprocess patch passes COVERAGE_PROCESS_*): it
        # tripled their time and measures nothing the in-process tests do not
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE_PROCESS", "COV_CORE"))}
        env["PYTHONHASHSEED"] = hashseed
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        digests.add(hashlib.sha256(out.stdout.strip().encode()).hexdigest())
    assert len(digests) == 1
