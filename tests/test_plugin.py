"""Black-box tests of the plugin: runs of a throwaway project read back through the written records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.schema import validate_record
from harness.writer import load_records, read_jsonl
from tests.conftest import TINY_FAMILY, add_family


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*args)


def records(out: Path) -> list[dict]:
    rows = load_records(out)
    for row in rows:
        validate_record(row)
    return sorted(rows, key=lambda r: r["id"])


def test_quick_run_writes_valid_records_for_both_devices(factory_project):
    out = factory_project.path / "out"
    result = run(factory_project, "-p", "no:xdist", "--out", str(out), "--quick-kernels", "3")
    result.assert_outcomes(passed=3)
    cpu, cuda = records(out / "cpu_code"), records(out / "cuda_code")
    assert {r["device"] for r in cpu} == {"cpu"} and {r["device"] for r in cuda} == {"cuda"}
    assert len(cpu) == len(cuda) >= 2
    assert {r["kernel_name"] for r in cpu} == {r["kernel_name"] for r in cuda}
    for r in cpu:
        assert r["ir"]["language"] == "cpp" and "_cpu_kernel_forward(" in r["ir"]["forward"]
        assert "_cpu_kernel_backward(" in r["ir"]["backward"]
        assert r["verification"]["numerics_device"] == "cpu"
    for r in cuda:
        assert r["ir"]["arch"] == "sm_90"
        assert r["ir"]["forward"].startswith('extern "C" __global__ void ')
        assert r["verification"]["numerics_device"] in ("cpu", "cuda")


def test_xdist_and_single_process_write_the_same_records(factory_project):
    a, b = factory_project.path / "a", factory_project.path / "b"
    run(factory_project, "-n", "2", "--out", str(a), "--device", "cpu", "--quick-kernels", "4").assert_outcomes(passed=4)
    run(factory_project, "-p", "no:xdist", "--out", str(b), "--device", "cpu", "--quick-kernels", "4").assert_outcomes(passed=4)
    ra, rb = records(a), records(b)
    assert len(ra) >= 2
    assert [json.dumps(r, sort_keys=True) for r in ra] == [json.dumps(r, sort_keys=True) for r in rb]


def test_same_seed_same_records_other_seed_other_records(factory_project):
    outs = {}
    for name, seed in (("s1", "7"), ("s2", "7"), ("s3", "8")):
        outs[name] = factory_project.path / name
        run(factory_project, "-p", "no:xdist", "--device", "cpu", "--out", str(outs[name]),
            "--factory-seed", seed, "--quick-kernels", "3").assert_outcomes(passed=3)
    s1, s2, s3 = (records(outs[n]) for n in ("s1", "s2", "s3"))
    assert s1 == s2
    shard1 = sorted((outs["s1"] / "records").glob("*.jsonl"))
    shard2 = sorted((outs["s2"] / "records").glob("*.jsonl"))
    assert [p.read_bytes() for p in shard1] == [p.read_bytes() for p in shard2]
    assert {r["provenance"]["seed"] for r in s1}.isdisjoint({r["provenance"]["seed"] for r in s3})


def test_wrong_reference_fails_naming_family_seed_device_and_error(factory_project):
    wrong = TINY_FAMILY.replace("    return out\n", "    return out + 1.0\n").replace('name="tiny"', 'name="wrongref"')
    (factory_project.path / "kernels" / "tiny.py").unlink()
    add_family(factory_project, "wrongref", wrong)
    out = factory_project.path / "out"
    result = run(factory_project, "-p", "no:xdist", "--out", str(out), "--device", "cpu", "--quick-kernels", "2")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*family=wrongref seed=* device=cpu chunk=q000 index=0 reason=mismatch: output 'out'*got*expected*rtol=*",
    ])
    rejects = read_jsonl(out / "rejects.jsonl")
    assert {r["reason"] for r in rejects} == {"mismatch"}
    assert all(r["family"] == "wrongref" and isinstance(r["seed"], int) for r in rejects)
    assert load_records(out) == []


def test_generator_error_is_rejected_and_reported(factory_project):
    broken = TINY_FAMILY.replace("def generate(rng):\n", "def generate(rng):\n    raise RuntimeError('boom')\n")
    (factory_project.path / "kernels" / "tiny.py").write_text(broken)
    out = factory_project.path / "out"
    result = run(factory_project, "-p", "no:xdist", "--out", str(out), "--device", "cpu", "--quick-kernels", "1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*family=tiny seed=* reason=generator_error: generator raised RuntimeError: boom*"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--device", "gpu"), "*--device must be one of cpu, cuda, all; got 'gpu'*"),
        (("--target-mb", "-3"), "*--target-mb must be a positive finite number of megabytes; got '-3'*"),
        (("--target-mb", "lots"), "*--target-mb must be a positive number of megabytes; got 'lots'*"),
        (("--factory-seed", "x"), "*--factory-seed must be a non-negative integer; got 'x'*"),
        (("--cuda-arch", "sm_x"), "*--cuda-arch must be a compute capability*"),
    ],
)
def test_bad_options_are_usage_errors(factory_project, option, message):
    result = run(factory_project, *option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_production_reaches_target_and_resumes_without_redoing_work(factory_project):
    out = factory_project.path / "prod"
    args = ("-m", "production", "--device", "cpu", "--target-mb", "0.35", "--out", str(out), "-p", "no:xdist")
    first = run(factory_project, *args)
    assert first.ret == 0, first.stdout.str()
    summary = json.loads((out / "records" / "summary.json").read_text())
    assert 0.99 * 350_000 <= summary["bytes"] <= 1.01 * 350_000
    assert summary["bytes"] == sum(p.stat().st_size for p in (out / "records").glob("shard-*.jsonl"))
    before = records(out)
    second = run(factory_project, *args)
    assert second.ret == 0
    second.stdout.no_fnmatch_line("*production?c0*PASSED*")
    assert records(out) == before
    assert len({r["structural_hash"] for r in before}) == len(before)


def test_plain_run_does_not_run_production_items(factory_project):
    result = run(factory_project, "-p", "no:xdist", "--device", "cpu", "--quick-kernels", "1", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["kernels/tiny.py::quick?q000?"])
    result.stdout.no_fnmatch_line("*production*")


def test_out_outside_the_project_resumes_like_any_other(factory_project, tmp_path_factory):
    """An existing ``--out DIR`` elsewhere is the option's value on a rerun, not a test path that moves the
    rootdir away from the project (the plugin is loaded by its entry point before the command line is read)."""
    out = tmp_path_factory.mktemp("elsewhere") / "prod"
    args = ("-m", "production", "--device", "cpu", "--target-mb", "0.1", "--out", str(out), "-p", "no:xdist")
    first = run(factory_project, *args)
    assert first.ret == 0, first.stdout.str()
    assert out.is_dir() and records(out)
    second = run(factory_project, *args)
    assert second.ret == 0, second.stdout.str() + second.stderr.str()
    second.stdout.fnmatch_lines(["*nothing left to do*"])
