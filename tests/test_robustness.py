"""Bad input and faults: each gives a clear error, a rejects-log entry or a clean stop, and never a partial record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from harness.seeds import derive_seed
from harness.writer import load_records, read_jsonl
from tests.conftest import TINY_FAMILY

PROD = ("-m", "production", "--device", "cpu", "-p", "no:xdist")


def run(pytester, *args):
    return pytester.runpytest_subprocess(*args)


def twisted(body: str, name: str = "tiny") -> str:
    """The tiny family with its kernel line replaced (``{expr}`` is the original expression)."""
    return TINY_FAMILY.replace('f"    out[i] = {expr} + b[i]\\n"', body).replace('name="tiny"', f'name="{name}"')


def reasons(out) -> dict:
    counts = {}
    for r in read_jsonl(out / "rejects.jsonl"):
        counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    return counts


def test_a_kernel_that_fails_to_compile_costs_only_itself(factory_project):
    # every third kernel calls a builtin that does not exist; the rest of its module must still compile
    body = '+ (f"    out[i] = wp.no_such_builtin({expr})\\n" if len(terms) % 3 == 0 else f"    out[i] = {expr} + b[i]\\n")'
    (factory_project.path / "kernels" / "tiny.py").write_text(twisted(body))
    out = factory_project.path / "out"
    result = run(factory_project, *PROD, "--target-mb", "0.05", "--out", str(out))
    result.stdout.fnmatch_lines(["*tiny*"])
    rejects = [r for r in read_jsonl(out / "rejects.jsonl") if r["reason"] == "compile_error"]
    assert rejects and all("no_such_builtin" in r["message"] and isinstance(r["seed"], int) for r in rejects)
    kept = load_records(out)
    assert kept and all("no_such_builtin" not in r["python_source"] for r in kept)


def test_quick_run_fails_on_compile_error_naming_the_test(factory_project):
    body = 'f"    out[i] = wp.no_such_builtin({expr})\\n"'
    (factory_project.path / "kernels" / "tiny.py").write_text(twisted(body))
    result = run(factory_project, "-p", "no:xdist", "--device", "cpu", "--quick-kernels", "1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*in kernels/tiny.py::quick?q000?*",
                                 "*family=tiny seed=* device=cpu * reason=compile_error*",
                                 "*Could not find function wp.no_such_builtin*"])


@pytest.mark.parametrize(
    ("body", "ref", "reason"),
    [
        ('f"    out[i] = wp.log(-1.0 - {expr} * {expr})\\n"', "out", "nonfinite"),
        ('"    out[i] = 2.5\\n"', "np.full_like(out, 2.5)", "degenerate_constant"),
        ('"    out[i] = b[i]\\n"', "b", "degenerate_copy"),
        ('"    out[i] = a[i] * 0.0 + b[i] * 0.5\\n"', "0.5 * b", "degenerate_dead_inputs"),
    ],
)
def test_bad_outputs_are_rejected_with_reason_and_the_run_goes_on(factory_project, body, ref, reason):
    source = twisted(body).replace("def REFERENCE_TWIST(out, a, b):\n    return out\n",
                                   f"def REFERENCE_TWIST(out, a, b):\n    return {ref}\n")
    (factory_project.path / "kernels" / "tiny.py").write_text(source)
    out = factory_project.path / "out"
    result = run(factory_project, "-p", "no:xdist", "--device", "cpu", "--quick-kernels", "1", "--out", str(out))
    result.assert_outcomes(passed=1)          # not a family bug: logged, not failed
    assert reasons(out) == {reason: 1}
    assert load_records(out) == []


def test_corrupt_chunk_found_on_resume_is_redone(factory_project):
    out = factory_project.path / "out"
    args = (*PROD, "--target-mb", "0.05", "--out", str(out))
    assert run(factory_project, *args).ret == 0
    before = load_records(out)
    chunk = sorted((out / "work" / "chunks" / "tiny").glob("*.jsonl"))[0]
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])      # truncated mid-line
    again = run(factory_project, *args)
    assert again.ret == 0
    again.stdout.fnmatch_lines([f"redoing chunk tiny/{chunk.stem}: *truncated line*"])
    assert load_records(out) == before


def test_unwritable_output_stops_cleanly_without_partial_records(factory_project):
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    out = factory_project.path / "ro"
    (out / "work" / "chunks").mkdir(parents=True)
    os.chmod(out / "work" / "chunks", 0o555)
    try:
        result = run(factory_project, *PROD, "--target-mb", "0.05", "--out", str(out))
    finally:
        os.chmod(out / "work" / "chunks", 0o755)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*cannot write chunk tiny/c00000*nothing partial was written*"])
    assert not list(out.rglob("*.jsonl*"))


def test_failed_write_stops_cleanly_without_partial_records(factory_project):
    """A write that fails (here: the chunks folder is a file, so nothing can be created in it)."""
    out = factory_project.path / "bad"
    (out / "work").mkdir(parents=True)
    (out / "work" / "chunks").write_text("not a directory")
    result = run(factory_project, *PROD, "--target-mb", "0.05", "--out", str(out))
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*cannot write chunk tiny/c00000*nothing partial was written*"])
    assert (out / "work" / "chunks").is_file()            # untouched: no chunk and no temp file was created
    assert not (out / "records").exists() and not (out / "data").exists()


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(factory_project):
    project = factory_project.path
    target = ("--target-mb", "0.12")
    ref = project / "ref"
    assert run(factory_project, *PROD, *target, "--out", str(ref)).ret == 0
    out = project / "killed"
    cmd = [sys.executable, "-m", "pytest", *PROD, *target, "--out", str(out), "-q"]
    for attempt in range(4):
        delay = 1.0 + (derive_seed("kill", attempt) % 3000) / 1000.0       # 1-4 s, fixed by sha256
        proc = subprocess.Popen(cmd, cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for tmp in out.rglob(".*.tmp*"):          # a kill mid-write leaves at most an unrenamed temp file
            assert not tmp.name.endswith(".jsonl")
    final = subprocess.run(cmd, cwd=project, capture_output=True, text=True)
    assert final.returncode == 0, final.stdout[-2000:]
    assert load_records(out) == load_records(ref)
    for chunk in (out / "work" / "chunks" / "tiny").glob("*.jsonl"):
        read_jsonl(chunk)                          # every chunk file is whole
