"""The benchmark judge, black-box: ``pytest -m eval`` on a small dataset made by the production pipeline.

One kernel of every family is built for cpu and cuda (quick seeds), packed as a test split, and judged: the
oracle (each record's own code) passes every numerics-checked task, a wrong constant fails naming the element,
a crashing and a hanging completion cost only themselves, and bad input stops the run naming the line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.baselines import code_completion
from harness.mutate import MUTATIONS
from harness.passk import pass_at_k, summarize
from harness.predictions import find_entry

KERNELS_PER_FAMILY_TRIED = 2


def _records(tmp_path_factory) -> dict[str, list[dict]]:
    from harness.build import BuildOptions, configure_warp, cuda_available
    from harness.pipeline import ChunkJob, run_chunk
    from harness.registry import all_families

    configure_warp(str(tmp_path_factory.getbasetemp() / "warp-cache-judge"))
    out: dict[str, list[dict]] = {"cpu": [], "cuda": []}
    for family in all_families().values():
        job = ChunkJob(family=family, chunk="q000", indices=tuple(range(KERNELS_PER_FAMILY_TRIED)),
                       devices=("cpu", "cuda"), factory_seed=0, build=BuildOptions(), gpu=cuda_available())
        result = run_chunk(job)
        by_name: dict[str, dict] = {}
        for r in result.records:
            by_name.setdefault(r["kernel_name"], {})[r["device"]] = r
        for device in ("cpu", "cuda"):      # prefer a kernel with both records; any record will do
            have = sorted(by_name.values(), key=lambda d: -len(d))
            out[device].extend(next(([d[device]] for d in have if device in d), []))
    return out


def _pack(root, records: list[dict]) -> None:
    (root / "data").mkdir(parents=True)
    rows = [{**r, "features": json.dumps(r["features"], sort_keys=True)} for r in records]
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "test-00000-of-00001.parquet", compression="zstd")


@pytest.fixture(scope="module")
def quick_datasets(tmp_path_factory):
    """``cpu_code`` and ``cuda_code`` test splits of one production-made kernel per family."""
    base = tmp_path_factory.mktemp("judge-datasets")
    records = _records(tmp_path_factory)
    for device, rows in records.items():
        _pack(base / f"{device}_code", rows)
    return base, records


def _write(path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def _run_eval(pytester, preds, dataset, *extra):
    pytester.makefile(".jsonl", preds="")
    _write(pytester.path / "preds.jsonl", preds)
    out = pytester.path / "eval_out"
    result = pytester.runpytest_subprocess("-m", "eval", "--predictions", "preds.jsonl", "--dataset", str(dataset),
                                           "--eval-out", str(out), "-p", "no:xdist", *extra)
    rows = ([json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
            if (out / "results.jsonl").exists() else [])
    return result, rows, out


def _digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def _wrong_constant(forward: str) -> str | None:
    m = re.search(r"(const wp::float32 var_\w+ = )(-?[0-9.]+(?:e-?[0-9]+)?);", forward)
    return None if m is None else forward.replace(m.group(0), f"{m.group(1)}{float(m.group(2)) + 1.0};", 1)


LEAK = ("{ static bool wkf_leaked = false; if (!wkf_leaked) { wkf_leaked = true; "
        "volatile char* wkf_p = (volatile char*)malloc((size_t)5 << 29); if (!wkf_p) *(volatile int*)0 = 1; wkf_p[0] = 1; } }\n")


@pytest.fixture(scope="module")
def cpu_eval(quick_datasets, tmp_path_factory):
    """One judge run on the CPU split: the oracle for both tasks, then a wrong, a crashing, a hanging completion
    and the oracle again (it must still pass after the judge process was replaced)."""
    base, records = quick_datasets
    preds = []
    for r in records["cpu"]:
        preds.append({"id": r["id"], "task": "py2cpp", "completion": code_completion(r)})
        preds.append({"id": r["id"], "task": "cpp2py", "completion": r["python_source"]})
    # a kernel with a named float constant to get wrong (arithmetic first; the family's quick seed may have none)
    arith = next(r for r in sorted(records["cpu"], key=lambda r: (r["family"] != "arithmetic", r["family"]))
                 if r["family"] not in ("tiles", "reduction") and _wrong_constant(r["ir"]["forward"]))
    fwd = arith["ir"]["forward"]
    marker = "//---------"
    extra = {
        "wrong": _wrong_constant(fwd),
        "crash": fwd.replace(marker, "*(volatile int*)0 = 1;\n" + marker, 1),
        "hang": fwd.replace(marker, "for (;;) { task_index += 1; }\n" + marker, 1),
        "no_forward": "int main() { return 0; }",
        # 2.5 GB never freed, twice: over the judge's 4 GB address-space margin if both ran in one process
        "leak_a": fwd.replace(marker, LEAK + marker, 1),
        "leak_b": fwd.replace(marker, LEAK + marker, 1),
        "after": fwd,
        "asm": fwd.replace(marker, 'asm volatile("" ::: "memory");\n' + marker, 1),
    }
    first = len(preds) + 1
    for sample, text in enumerate(extra.values(), start=1):
        preds.append({"id": arith["id"], "task": "py2cpp", "completion": text, "sample": sample})
    escaped = tmp_path_factory.mktemp("escape") / "escaped"
    preds.append({"id": arith["id"], "task": "cpp2py", "sample": 2,
                  "completion": f"import os\nos.system('touch {escaped}')\n" + arith["python_source"]})
    preds.append({"id": arith["id"], "task": "cpp2py", "sample": 1,
                  "completion": arith["python_source"].replace(f"def {arith['kernel_name']}(",
                                                               f"def {arith['kernel_name']}(extra: float, ", 1)})
    work = tmp_path_factory.mktemp("cpu-eval")
    digest = _digest(base / "cpu_code")
    _write(work / "preds.jsonl", preds)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "eval", "--predictions", "preds.jsonl",
                           "--dataset", str(base / "cpu_code"), "--eval-out", "out", "--eval-timeout", "20",
                           "-p", "no:xdist", "-p", "no:cacheprovider"], cwd=work, capture_output=True, text=True)
    rows = [json.loads(line) for line in (work / "out" / "results.jsonl").read_text().splitlines()]
    named = dict(zip(extra, rows[first - 1:first - 1 + len(extra)]))
    return {"proc": proc, "rows": rows, "oracle": rows[:first - 1], "named": named, "signature": rows[-1],
            "escape": rows[-2], "escaped": escaped.exists(), "work": work,
            "unchanged": digest == _digest(base / "cpu_code")}


def test_oracle_passes_every_family_on_cpu(cpu_eval):
    assert cpu_eval["proc"].returncode == 0, cpu_eval["proc"].stdout[-3000:]
    failed = [r for r in cpu_eval["oracle"] if r["outcome"] != "pass"]
    assert not failed, failed
    assert {r["task"] for r in cpu_eval["oracle"]} == {"py2cpp", "cpp2py"}
    assert len({r["family"] for r in cpu_eval["oracle"]}) >= 21


def test_wrong_completion_fails_naming_the_element(cpu_eval):
    wrong = cpu_eval["named"]["wrong"]
    assert wrong["outcome"] == "mismatch"
    assert re.search(r"output '\w+' input set \d flat index \d+: got .* expected", wrong["message"])
    assert wrong["outputs_sha256"] is None


def test_a_pass_carries_the_digest_of_its_outputs(cpu_eval):
    """The same code judged twice has the same outputs digest; different kernels have different ones; a
    mismatch has none."""
    named, oracle = cpu_eval["named"], cpu_eval["oracle"]
    first = next(r for r in oracle if r["id"] == named["after"]["id"] and r["task"] == "py2cpp")
    assert re.fullmatch(r"[0-9a-f]{64}", first["outputs_sha256"])
    assert named["after"]["outputs_sha256"] == first["outputs_sha256"]
    digests = {r["id"]: r["outputs_sha256"] for r in oracle if r["task"] == "py2cpp"}
    assert len(set(digests.values())) == len(digests)
    assert named["wrong"]["outputs_sha256"] is None


def test_crash_and_hang_are_contained(cpu_eval):
    named = cpu_eval["named"]
    assert named["crash"]["outcome"] == "crashed" and "SIGSEGV" in named["crash"]["message"]
    assert named["hang"]["outcome"] == "timeout"
    assert named["after"]["outcome"] == "pass"            # the run went on with a fresh judge process


def test_what_a_completion_does_to_the_judge_process_dies_with_it(cpu_eval):
    """Each prediction is judged in a fork of the judge process: memory one completion leaks (or a heap it
    corrupts) is not there for the next. Two completions that each leak 2.5 GB both pass under a 4 GB margin."""
    named = cpu_eval["named"]
    assert named["leak_a"]["outcome"] == "pass", named["leak_a"]
    assert named["leak_b"]["outcome"] == "pass", named["leak_b"]


def test_content_errors_are_invalid_naming_the_line(cpu_eval):
    no_fwd = cpu_eval["named"]["no_forward"]
    assert no_fwd["outcome"] == "invalid" and "forward entry" in no_fwd["message"]
    assert re.match(r"line \d+: ", no_fwd["message"])
    sig = cpu_eval["signature"]
    assert sig["outcome"] == "invalid" and "signature" in sig["message"] and "extra" in sig["message"]


def test_a_completion_that_reaches_outside_is_refused_before_it_runs(cpu_eval):
    """Python that imports ``os`` and C++ with inline assembly are ``invalid`` without running: the file the
    Python would have made does not exist."""
    escape, asm = cpu_eval["escape"], cpu_eval["named"]["asm"]
    assert escape["outcome"] == "invalid" and "refused before running" in escape["message"], escape
    assert "import of 'os'" in escape["message"] and escape["device"] is None
    assert not cpu_eval["escaped"]
    assert asm["outcome"] == "invalid" and "inline assembly" in asm["message"], asm
    assert cpu_eval["named"]["after"]["outcome"] == "pass"


def test_summary_written_and_dataset_untouched(cpu_eval):
    summary = json.loads((cpu_eval["work"] / "out" / "summary.json").read_text())
    assert summary["predictions"] == len(cpu_eval["rows"])
    assert summary["tasks"]["cpp2py"]["pass@1"] < 1.0 and summary["devices"]["cpu"] > 0
    assert "| py2cpp |" in (cpu_eval["work"] / "out" / "summary.md").read_text()
    assert "warp-kernel-factory benchmark" in cpu_eval["proc"].stdout
    assert cpu_eval["unchanged"]


def test_cuda_oracle(quick_datasets, pytester, monkeypatch, tmp_path):
    """py2cuda is compiled by NVRTC (run on the GPU when there is one); cuda2py runs its numbers. NVRTC's
    precompiled-header files (one per compiling process, 77 MB or more) do not outlive the judge's forks."""
    from harness.build import cuda_available

    base, records = quick_datasets
    preds = [{"id": r["id"], "task": task, "completion": r["python_source"] if task == "cuda2py"
              else code_completion(r)} for r in records["cuda"] for task in ("py2cuda", "cuda2py")]
    monkeypatch.setenv("TMPDIR", str(tmp_path))             # where NVRTC writes them, in the judge's processes
    result, rows, _ = _run_eval(pytester, preds, base / "cuda_code", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()[-3000:]
    expected = "pass" if cuda_available() else "compiled_only"
    assert [r for r in rows if r["task"] == "py2cuda" and r["outcome"] != expected] == []
    assert [r for r in rows if r["task"] == "cuda2py" and r["outcome"] != "pass"] == []
    assert list(tmp_path.glob("__nvrtc_auto_pch_*")) == []


def test_nvrtc_header_files_of_dead_processes_are_removed(monkeypatch, tmp_path):
    import subprocess
    import sys

    from harness.isolation import remove_auto_pch

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    mine = tmp_path / f"__nvrtc_auto_pch_{os.getpid()}_0"
    other = tmp_path / "__nvrtc_auto_pch_not_a_pid"
    for path in (tmp_path / f"__nvrtc_auto_pch_{dead}_0", tmp_path / f"__nvrtc_auto_pch_{dead}_1", mine, other):
        path.mkdir()                                       # NVRTC's is a directory of header files
        (path / "pch").write_bytes(b"pch")
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    assert remove_auto_pch() == 2                          # a live process's stays, and what is not NVRTC's
    assert sorted(tmp_path.iterdir()) == sorted([mine, other])
    assert remove_auto_pch(os.getpid()) == 1 and not mine.exists()


def test_bad_input_stops_the_run_naming_each_line(quick_datasets, pytester):
    base, records = quick_datasets
    good = records["cpu"][0]
    lines = [
        {"id": good["id"], "task": "py2cpp", "completion": "x"},
        '{"id": "not json',
        {"id": "0" * 64, "task": "py2cpp", "completion": "x"},
        {"id": good["id"], "task": "py2java", "completion": "x"},
        {"id": good["id"], "task": "py2cuda", "completion": "x"},
    ]
    result, rows, out = _run_eval(pytester, lines, base / "cpu_code")
    assert result.ret != 0 and rows == [] and not out.exists()
    result.stderr.fnmatch_lines(["*4 bad line(s)*", "*line 2: malformed JSON*", "*line 3: unknown id*",
                                 "*line 4: unknown task 'py2java'*", "*line 5: task py2cuda is about cuda code*"])


def test_eval_split_selects_the_records_predictions_refer_to(quick_datasets, pytester, tmp_path):
    """``--eval-split validation`` judges against the validation records; by default an id of that split is
    unknown, and the error names the split."""
    _base, records = quick_datasets
    test_record, held_out = records["cpu"][0], records["cpu"][1]
    dataset = tmp_path / "cpu_code"
    _pack(dataset, [test_record])
    rows = [{**held_out, "features": json.dumps(held_out["features"], sort_keys=True)}]
    pq.write_table(pa.Table.from_pylist(rows), dataset / "data" / "validation-00000-of-00001.parquet")
    pred = [{"id": held_out["id"], "task": "py2cpp", "completion": code_completion(held_out)}]
    result, rows, _out = _run_eval(pytester, pred, dataset)
    assert result.ret != 0 and rows == []
    result.stderr.fnmatch_lines(["*line 1: unknown id*not in the dataset's test split*"])
    result, rows, out = _run_eval(pytester, pred, dataset, "--eval-split", "validation")
    assert result.ret == 0, result.stdout.str()[-2000:]
    assert [r["outcome"] for r in rows] == ["pass"]
    assert json.loads((out / "summary.json").read_text())["split"] == "validation"


def test_a_record_of_an_earlier_version_with_the_same_programs_is_judged():
    """A family version that changed only its verification (random@3: the tolerance) still regenerates its
    earlier version's records; a version that is not declared the same is refused."""
    from harness.judge import JudgeError, regenerate
    from harness.registry import all_families
    from harness.seeds import kernel_seed, rng_for

    family = all_families()["random"]
    assert family.version == 3 and 2 in family.same_programs_as
    seed = kernel_seed(0, "random", "c00000", 0)
    spec = family.spec(seed, rng_for(seed))
    record = {"id": "x", "family": "random", "kernel_name": spec.kernel_name,
              "provenance": {"generator": "random@2", "seed": seed}}
    assert regenerate(record)[1].source == spec.source
    with pytest.raises(JudgeError, match="made by random@1"):
        regenerate({**record, "provenance": {"generator": "random@1", "seed": seed}})


def test_reverify_checks_every_record_of_a_family_again_and_names_a_wrong_one(quick_datasets, tmp_path):
    """``wkf-validate --reverify FAMILY``: each record's own code judged again with the installed verifier; a
    record whose code no longer computes its kernel's numbers is named with the judge's verdict."""
    from production.validate import reverify

    _base, records = quick_datasets
    good = next(r for r in records["cpu"] if r["family"] == "arithmetic")
    bad = next(r for r in records["cpu"] if r["family"] not in ("tiles", "reduction", "arithmetic")
               and _wrong_constant(r["ir"]["forward"]))
    tampered = {**bad, "ir": {**bad["ir"], "forward": _wrong_constant(bad["ir"]["forward"])}}
    _pack(tmp_path / "ds", [good, tampered])
    counts, problems = reverify(tmp_path / "ds", ["arithmetic"], workers=1, work=tmp_path / "w1")
    assert counts == {"test": {"pass": 2}} and problems == []       # py2cpp and cpp2py
    counts, problems = reverify(tmp_path / "ds", [bad["family"]], workers=1, work=tmp_path / "w2")
    assert counts["test"].get("mismatch") == 1 and len(problems) == 1
    assert bad["id"] in problems[0] and "py2cpp" in problems[0] and "mismatch" in problems[0]


@pytest.mark.parametrize("option, value, message", [
    ("--eval-timeout", "-1", "--eval-timeout must be a positive"),
    ("--eval-memory-mb", "12", "--eval-memory-mb must be an integer"),
])
def test_bad_options(pytester, quick_datasets, option, value, message):
    base, records = quick_datasets
    _write(pytester.path / "p.jsonl", [{"id": records["cpu"][0]["id"], "task": "py2cpp", "completion": "x"}])
    result = pytester.runpytest_subprocess("-m", "eval", "--predictions", "p.jsonl", "--dataset",
                                           str(base / "cpu_code"), option, value)
    assert result.ret != 0
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_eval_out_inside_the_dataset_is_refused(pytester, quick_datasets):
    base, records = quick_datasets
    _write(pytester.path / "p.jsonl", [{"id": records["cpu"][0]["id"], "task": "py2cpp", "completion": "x"}])
    result = pytester.runpytest_subprocess("-m", "eval", "--predictions", "p.jsonl", "--dataset",
                                           str(base / "cpu_code"), "--eval-out", str(base / "cpu_code" / "res"))
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*must not be inside a dataset*"])


@pytest.mark.parametrize("n, c, k", [(n, c, k) for n in (1, 2, 5, 10, 20) for c in range(0, n + 1, max(1, n // 4))
                                     for k in (1, 2, 5, 10) if k <= n])
def test_pass_at_k_matches_closed_form(n, c, k):
    closed = 1.0 - math.comb(n - c, k) / math.comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12)


def test_pass_at_k_rejects_impossible_counts_and_summary_averages_problems():
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    rows = [{"id": "a", "task": "py2cpp", "family": "f", "outcome": o, "device": "cpu"}
            for o in ("pass", "mismatch")] + [{"id": "b", "task": "py2cpp", "family": "f", "outcome": "compile_error",
                                               "device": None}] * 2
    s = summarize(rows, ks=(1, 2))["tasks"]["py2cpp"]
    assert s["pass@1"] == pytest.approx(0.25) and s["pass@2"] == pytest.approx(0.5)
    assert s["compile_rate"] == pytest.approx(0.5)


def test_find_entry_and_mutations_change_one_line(quick_datasets):
    _, records = quick_datasets
    r = next(r for r in records["cpu"] if r["family"] == "nested_loops")
    name = f"{r['kernel_name']}_cpu_kernel_forward"
    fwd = r["ir"]["forward"]
    assert find_entry("// junk { \n" + fwd + "\nint x;", name).strip() == fwd.strip()
    assert find_entry(f"void {name}(int a);", name) is None
    for kind, mutate in MUTATIONS.items():
        mutated = mutate(fwd, random.Random(0))
        if mutated is None:
            continue
        changed = [(a, b) for a, b in zip(fwd.split("\n"), mutated.split("\n")) if a != b]
        assert len(changed) == 1 and len(mutated.split("\n")) == len(fwd.split("\n")), kind


def test_baseline_prediction_files_and_mutant_report(quick_datasets):
    from harness import baselines

    _base, records = quick_datasets
    cpu = {r["id"]: r for r in records["cpu"]}
    oracle = baselines.oracle_predictions(cpu, "cpu")
    assert {p["task"] for p in oracle} == {"py2cpp", "cpp2py"} and len(oracle) == 2 * len(cpu)
    preds, info = baselines.mutant_predictions(cpu)
    originals = [p for p in preds if p["sample"] == baselines.ORIGINAL_SAMPLE]
    mutants = [p for p in preds if p["sample"] != baselines.ORIGINAL_SAMPLE]
    assert mutants and all(p["completion"] != cpu[p["id"]]["ir"]["forward"] for p in mutants)
    assert all(info[(p["id"], p["sample"])]["diff"] for p in mutants)
    assert {p["id"] for p in originals} == {p["id"] for p in mutants}
    assert all(p["completion"] == cpu[p["id"]]["ir"]["forward"] for p in originals)
    # retrieval: the nearest other record's code, renamed to the test kernel
    ids = sorted(cpu)
    test, train = {ids[0]: cpu[ids[0]]}, {i: cpu[i] for i in ids[1:]}
    retrieved = baselines.retrieval_predictions(test, train, "cpu")
    assert {p["id"] for p in retrieved} == {ids[0]}
    assert all(cpu[ids[0]]["kernel_name"] in p["completion"] for p in retrieved)
    # two survivors: the first computes the original's outputs exactly, the second something within tolerance
    rows = [{"id": p["id"], "sample": p["sample"], "outcome": "pass" if n < 2 else "mismatch",
             "outputs_sha256": {0: "same", 1: "other"}.get(n)} for n, p in enumerate(mutants)]
    rows += [{"id": p["id"], "sample": p["sample"], "outcome": "pass", "outputs_sha256": "same"} for p in originals]
    report = baselines.mutant_report(rows, info)
    assert report["mutants"] == len(mutants) and report["killed"] == len(mutants) - 2
    survivors = report["survivors"]
    assert [sv["same_outputs"] for sv in survivors] == [True, False]
    assert report["survivors_with_same_outputs"] == 1
    assert report["killed_share_of_observable"] == report["killed"] / (len(mutants) - 1)
    assert report["originals_not_passing"] == []
    assert "killed" in baselines.markdown({"mutants": report})


def test_wkf_eval_runs_the_judge_from_another_directory_with_the_users_paths(quick_datasets, tmp_path):
    from harness.eval_cli import absolute_paths

    assert absolute_paths(["--dataset", "d", "--eval-out=o", "-n", "2", "--predictions", "/abs/p.jsonl"], "/home/u") \
        == ["--dataset", "/home/u/d", "--eval-out=/home/u/o", "-n", "2", "--predictions", "/abs/p.jsonl"]
    base, records = quick_datasets
    _write(tmp_path / "preds.jsonl", ['{"id": "not json'])
    proc = subprocess.run([sys.executable, "-m", "harness.eval_cli", "--predictions", "preds.jsonl",
                           "--dataset", str(base / "cpu_code"), "--eval-out", "out", "-p", "no:xdist"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert proc.returncode != 0
    assert "line 1: malformed JSON" in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()
