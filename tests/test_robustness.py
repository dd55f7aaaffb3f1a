"""Bad input and faults: each gives a clear error, a rejects-log entry or a clean stop, and never a partial record."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from harness.seeds import derive_seed
from harness.writer import load_records, read_jsonl
from tests.conftest import TINY_FAMILY, add_family

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


def test_chunks_of_an_older_generator_version_are_redone_on_resume(factory_project):
    """A generator changed (its version bumped) between two runs: the old chunks would not regenerate, so a
    resume redoes them rather than mixing two versions of the family in one dataset."""
    out = factory_project.path / "out"
    args = (*PROD, "--target-mb", "0.05", "--out", str(out))
    assert run(factory_project, *args).ret == 0
    assert {r["provenance"]["generator"] for r in load_records(out)} == {"tiny@1"}
    family = factory_project.path / "kernels" / "tiny.py"
    family.write_text(family.read_text().replace('name="tiny"', 'name="tiny", version=2'))
    again = run(factory_project, *args)
    assert again.ret == 0
    again.stdout.fnmatch_lines(["redoing chunk tiny/c00000: its records were made by tiny@1 *now tiny@2*"])
    assert {r["provenance"]["generator"] for r in load_records(out)} == {"tiny@2"}


def test_chunks_of_a_version_with_the_same_programs_are_kept_only_when_asked(factory_project):
    """Version 2 makes version 1's programs (``same_programs_as``): ``--keep-earlier-versions`` keeps the finished
    chunks (a committed dataset grows without remaking them) and the manifest says which version made what."""
    out = factory_project.path / "out"
    args = (*PROD, "--target-mb", "0.05", "--out", str(out))
    assert run(factory_project, *args).ret == 0
    family = factory_project.path / "kernels" / "tiny.py"
    family.write_text(family.read_text().replace('name="tiny"', 'name="tiny", version=2, same_programs_as=(1,)'))
    kept = run(factory_project, *args, "--keep-earlier-versions", "-v")
    assert kept.ret == 0 and "redoing chunk" not in kept.stdout.str()
    assert {r["provenance"]["generator"] for r in load_records(out)} == {"tiny@1"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generators"] == {"tiny@1": manifest["records"]}
    assert "| `tiny` | %d | `tiny@1` |" % manifest["records"] in (out / "README.md").read_text()
    again = run(factory_project, *args)
    again.stdout.fnmatch_lines(["redoing chunk tiny/c00000: its records were made by tiny@1 *now tiny@2*"])
    assert {r["provenance"]["generator"] for r in load_records(out)} == {"tiny@2"}


def test_write_failing_mid_run_stops_cleanly_and_a_rerun_resumes(factory_project):
    """A write that fails after other chunks were written, even as root: the folder the writer needs for the
    second family's first chunk is a regular file, so creating anything under it raises an OSError."""
    tinz = twisted('f"    out[i] = {expr} * b[i]\\n"', name="tinz").replace(
        "def REFERENCE_TWIST(out, a, b):\n    return out\n", "def REFERENCE_TWIST(out, a, b):\n    return (out - b) * b\n")
    add_family(factory_project, "tinz", tinz)
    project = factory_project.path
    args = (*PROD, "--target-mb", "0.04")
    ref = project / "ref"
    assert run(factory_project, *args, "--out", str(ref)).ret == 0
    out = project / "bad"
    blocker = out / "work" / "rejects" / "tinz"      # the writer writes a chunk's rejects first, its records last
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a directory")
    result = run(factory_project, *args, "--out", str(out))
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines([f"*cannot write chunk tinz/c00000 to {out}: *File exists: *{blocker}*; "
                                 "nothing partial was written; fix the output directory and rerun the same "
                                 "command to resume*"])
    first = out / "work" / "chunks" / "tiny" / "c00000.jsonl"
    assert read_jsonl(first)                           # mid-run: the chunk before it was written, whole
    assert blocker.read_text() == "not a directory"
    assert not [p for p in out.rglob("*") if "tinz" in p.name and p != blocker]    # nothing of the failed chunk
    assert not list(out.rglob(".*.tmp*"))               # and no temporary file
    assert not (out / "records").exists() and not (out / "data").exists()
    written = first.stat()
    blocker.unlink()                                    # fix the directory, rerun the same command
    again = run(factory_project, *args, "--out", str(out), "-v")
    assert again.ret == 0, again.stdout.str()[-3000:]
    assert "tiny.py::production[c00000]" not in again.stdout.str()      # resumed: not redone
    again.stdout.fnmatch_lines(["*kernels/tinz.py::production?c00000? PASSED*"])
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    assert load_records(out) == load_records(ref)
    assert {r["family"] for r in load_records(out)} == {"tiny", "tinz"}


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


CRASHY = TINY_FAMILY.replace('name="tiny"', 'name="crashy"').replace("def generate(rng):\n", """def generate(rng):
    import os, signal
    # kill the xdist worker, as a fatal signal in compiled code would, in one chunk only (the first one)
    if os.environ.get("PYTEST_XDIST_WORKER") and "crashy.py::production[c00000]" in os.environ.get("PYTEST_CURRENT_TEST", ""):
        os.kill(os.getpid(), signal.SIGKILL)
""")

WAIT_FOR_REPLACEMENT = """
import os, time
from pathlib import Path

import pytest

STARTED = Path(__file__).parent / "replacement-started"


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER") not in (None, "gw0", "gw1"):
        STARTED.touch()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    # the worker that did not crash waits for the one xdist starts in place of the dead one, so that the
    # replacement is sure to be sent chunks (otherwise the survivor may finish them all first)
    if os.environ.get("PYTEST_XDIST_WORKER") and "crashy.py::production[c00000]" not in item.nodeid:
        deadline = time.monotonic() + 60
        while not STARTED.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
"""


def test_a_chunk_that_kills_its_worker_is_logged_as_crashed_and_not_retried(factory_project):
    add_family(factory_project, "crashy", CRASHY)
    conftest = factory_project.path / "conftest.py"
    conftest.write_text(conftest.read_text() + WAIT_FOR_REPLACEMENT)
    out = factory_project.path / "out"
    args = ("-m", "production", "--device", "cpu", "-n", "2", "--target-mb", "0.08", "--out", str(out), "-v")
    result = factory_project.runpytest_subprocess(*args, timeout=180)
    assert result.ret == 0, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*node down*", "*FAILED kernels/crashy.py::production?c00000?*",
                                 "*replacing crashed worker*",
                                 "*1 chunk(s) crashed their worker: logged as 'crashed' rejects, not retried*"])
    # the replacement worker ran chunks, and only chunks of the plan it shares with the others
    result.stdout.re_match_lines([r"\[gw2\] \[ *\d+%\] PASSED kernels/\w+\.py::production\[c\d+\]"])
    assert "INTERNALERROR" not in result.stdout.str()
    crashed = [r for r in read_jsonl(out / "rejects.jsonl") if r["reason"] == "crashed"]
    assert len(crashed) == 1
    assert crashed[0]["family"] == "crashy" and crashed[0]["chunk"] == "c00000"
    assert "kernels/crashy.py::production[c00000]" in crashed[0]["message"]
    assert read_jsonl(out / "work" / "chunks" / "crashy" / "c00000.jsonl") == []     # done, with no records
    records = load_records(out)
    assert {r["family"] for r in records} == {"crashy", "tiny"}
    assert not [r for r in records if r["family"] == "crashy" and r["provenance"]["chunk"] == "c00000"]
    assert (out / "manifest.json").exists() and list((out / "data").glob("train-*.parquet"))
    again = factory_project.runpytest_subprocess(*args, timeout=180)
    assert again.ret == 0, again.stdout.str()[-3000:]
    assert "crashy.py::production[c00000]" not in again.stdout.str()
    # nothing was lost to the crash: no chunk of the finished prefix is left for the rerun (chunks beyond the
    # target may be collected again, and are skipped)
    outcomes = again.parseoutcomes()
    assert not outcomes.get("passed") and not outcomes.get("failed"), again.stdout.str()[-3000:]
    assert load_records(out) == records


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
