"""The technical report (report/REPORT.md) agrees with the committed datasets (production/*_code).

Recomputes the key numbers straight from each dataset's ``manifest.json``, ``data/*.parquet`` and ``rejects.jsonl``
(independently of ``report/stats.py``) and compares them with the tables and summary of REPORT.md: records and bytes
per dataset, Parquet files and splits, records per family, where the numbers were computed, how many gradients were
checked, element comparisons, rejects by reason, the production rates of the logged runs (or that none is claimed),
the median token length of a pair with the real ``cl100k_base`` BPE, and the benchmark speed-ups when the report
quotes a benchmark JSON. Skips, saying why, until both datasets and the report exist. No network.
``WKF_REPORT_DATA`` / ``WKF_REPORT_OUT`` point it at other folders (default ``production`` and ``report``), e.g. to
check a report built with ``python -m report.build --data DIR --out OUT``.

The last tests exercise the builder's handling of incomplete inputs (no logged runs, runs without stage times, old
and new stage names) on synthetic manifests; they need no data and always run.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

pq = pytest.importorskip("pyarrow.parquet")

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / os.environ.get("WKF_REPORT_OUT", "report")
REPORT = OUT / "REPORT.md"
NUMBERS = OUT / "numbers.json"
DATA = ROOT / os.environ.get("WKF_REPORT_DATA", "production")
DEVICES = ("cpu", "cuda")
SPLITS = ("train", "validation", "test")
DEDUP_DROPS = ("duplicate_exact", "duplicate_structural")     # records dropped by dedup, not failed kernels


def _missing() -> list[str]:
    wanted = [DATA / f"{d}_code" / "manifest.json" for d in DEVICES] + [REPORT]
    return [str(p) for p in wanted if not p.exists()]


needs_report = pytest.mark.skipif(bool(_missing()), reason=f"report consistency: not present yet: {_missing()} "
                                  "(produce the datasets, then run: python -m report.build)")


def n(x) -> str:
    return f"{int(x):,}"


def mb(b) -> str:
    return f"{b / 1e6:,.2f}"


def truth_for(device: str) -> dict:
    root = DATA / f"{device}_code"
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    families, numerics, splits = Counter(), Counter(), Counter()
    grad_by_family, stages = Counter(), Counter()
    records = elements = tokens = 0
    files = []
    for shard in manifest["shards"]:
        path = root / shard["file"]
        assert path.exists(), f"{path} is named in {root / 'manifest.json'} but missing"
        files.append(path)
        columns = ["family", "verification"] + (["tokens"] if "tokens" in manifest else [])
        table = pq.read_table(path, columns=columns)
        rows = table.to_pylist()
        assert len(rows) == shard["records"], f"{path}: {len(rows)} rows, manifest says {shard['records']}"
        records += len(rows)
        splits[shard["split"]] += len(rows)
        for row in rows:
            families[row["family"]] += 1
            numerics[row["verification"]["numerics_device"]] += 1
            elements += row["verification"]["elements_compared"]
            stages[" -> ".join(row["verification"].get("stages") or []) or "unrecorded"] += 1
            tokens += row["tokens"]["total"] if row.get("tokens") else 0
            if row["verification"]["gradient_checked"]:
                grad_by_family[row["family"]] += 1
    assert records == manifest["records"], f"{root}: {records} Parquet rows, manifest says {manifest['records']}"
    assert dict(sorted(families.items())) == manifest["per_family"], f"{root}: per-family counts differ from manifest"
    if "tokens" in manifest:      # the card's length and compile-stage lines come from these
        assert tokens == manifest["tokens"]["total"], f"{root}: {tokens} tokens, manifest says {manifest['tokens']}"
        assert dict(stages) == manifest["stages"], f"{root}: stages {dict(stages)}, manifest {manifest['stages']}"
    rejects = []
    if (root / "rejects.jsonl").exists():
        rejects = [json.loads(line) for line in (root / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
                   if line.strip()]
    return {
        "root": root, "manifest": manifest, "elements_compared": elements,
        "rejects": Counter(r["reason"] for r in rejects if r["reason"] not in DEDUP_DROPS),
        "dataset": root.name, "records": records, "bytes_raw": manifest["bytes_raw"],
        "bytes_compressed": sum(p.stat().st_size for p in files), "parquet_files": len(files),
        "splits": splits, "families": families, "numerics": numerics, "grad_by_family": grad_by_family,
        "gradient_checked": sum(grad_by_family.values()),
    }


@pytest.fixture(scope="module")
def truth() -> dict:
    return {d: truth_for(d) for d in DEVICES}


@pytest.fixture(scope="module")
def report_text() -> str:
    return REPORT.read_text(encoding="utf-8")


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table of the text as (header cells, body rows of cells)."""
    found, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            if len(block) >= 2:
                found.append((block[0], block[2:]))
            block = []
    return found


def find_table(text: str, first_cells: list[str]) -> list[list[str]]:
    matches = [rows for header, rows in tables(text) if header[:len(first_cells)] == first_cells]
    assert matches, f"REPORT.md has no table whose header starts with {first_cells}"
    return matches[0]


def row_of(rows: list[list[str]], label: str) -> list[str]:
    hits = [r for r in rows if label in r[0]]
    assert hits, f"no row labelled {label!r} in table rows {[r[0] for r in rows]}"
    return hits[0]


@needs_report
def test_totals_table(report_text, truth):
    rows = find_table(report_text, ["dataset", "records", "JSON MB", "Parquet MB", "Parquet files",
                                    "train / validation / test", "families"])
    for d, t in truth.items():
        row = row_of(rows, f"`{t['dataset']}`")
        expected = [n(t["records"]), mb(t["bytes_raw"]), mb(t["bytes_compressed"]), n(t["parquet_files"]),
                    " / ".join(n(t["splits"].get(s, 0)) for s in SPLITS), n(len(t["families"]))]
        assert row[1:7] == expected, f"{d}: REPORT.md says {row[1:7]}, the data says {expected}"


@needs_report
def test_family_balance_table(report_text, truth):
    rows = find_table(report_text, ["family", "CPU records", "CPU share", "CUDA records", "CUDA share"])
    families = sorted(set(truth["cpu"]["families"]) | set(truth["cuda"]["families"]))
    listed = [r[0].strip("`") for r in rows if not r[0].startswith("**")]
    assert listed == families, f"REPORT.md lists families {listed}, the data has {families}"
    for fam in families:
        row = row_of(rows, f"`{fam}`")
        expected = [n(truth["cpu"]["families"].get(fam, 0)), n(truth["cuda"]["families"].get(fam, 0))]
        assert [row[1], row[3]] == expected, f"{fam}: REPORT.md says {[row[1], row[3]]}, the data says {expected}"
        grads = [n(truth["cpu"]["grad_by_family"].get(fam, 0)), n(truth["cuda"]["grad_by_family"].get(fam, 0))]
        assert row[5:7] == grads, f"{fam}: gradient-checked {row[5:7]} in REPORT.md, {grads} in the data"
    total = row_of(rows, "**total**")
    assert [total[1], total[3]] == [n(truth["cpu"]["records"]), n(truth["cuda"]["records"])]


@needs_report
def test_verification_table(report_text, truth):
    rows = find_table(report_text, ["verification", "`cpu_code`", "`cuda_code`"])
    checks = {
        "records verified on the CPU build": lambda t: n(t["numerics"].get("cpu", 0)),
        "records verified on a GPU": lambda t: n(t["numerics"].get("cuda", 0)),
        "records whose gradient was checked": lambda t: n(t["gradient_checked"]),
    }
    for label, fn in checks.items():
        row = row_of(rows, label)
        expected = [fn(truth["cpu"]), fn(truth["cuda"])]
        assert row[1:3] == expected, f"{label}: REPORT.md says {row[1:3]}, the data says {expected}"


@needs_report
def test_summary_and_numbers_json(report_text, truth):
    summary = report_text.split("## 1 Background")[0]
    for d, label in (("cpu", "CPU"), ("cuda", "CUDA")):
        t = truth[d]
        phrase = f"{n(t['records'])} {label} records ({mb(t['bytes_raw'])} MB"
        assert phrase in summary, f"the executive summary does not say {phrase!r}"
    gpu = truth["cuda"]["numerics"].get("cuda", 0)
    if gpu == 0:
        assert "None of the" in summary and "CUDA records ran on a GPU" in summary, \
            "the summary must say that no CUDA record's numbers came from a GPU"
    if NUMBERS.exists():
        numbers = json.loads(NUMBERS.read_text(encoding="utf-8"))
        for d, t in truth.items():
            got = numbers["datasets"][d]
            assert (got["records"], got["bytes_raw"]) == (t["records"], t["bytes_raw"]), \
                f"report/numbers.json is stale for {d}: rebuild with python -m report.build"


@needs_report
def test_no_placeholders_left(report_text):
    prose = re.sub(r"^```.*?^```", "", report_text, flags=re.S | re.M)     # generated code may use braces
    for marker in ("{{", "}}", "TODO", "TBD", "FIXME"):
        assert marker not in prose, f"REPORT.md contains {marker!r} outside code blocks"


def _numbers_json() -> dict:
    return json.loads(NUMBERS.read_text(encoding="utf-8")) if NUMBERS.exists() else {}


@needs_report
def test_elements_compared_in_summary(report_text, truth):
    summary = report_text.split("## 1 Background")[0]
    phrase = f"({n(truth['cpu']['elements_compared'])} element comparisons behind the CPU dataset)"
    assert phrase in summary, f"the executive summary does not say {phrase!r}"


@needs_report
def test_rejects_table(report_text, truth):
    expected = {d: t["rejects"] for d, t in truth.items()}
    if not any(expected.values()):
        assert "No kernel was rejected" in report_text
        return
    rows = find_table(report_text, ["reason (rejects.jsonl)", "meaning", "`cpu_code`", "`cuda_code`"])
    listed = {r[0].strip("`"): r for r in rows}
    for reason in set(expected["cpu"]) | set(expected["cuda"]):
        assert reason in listed, f"rejects.jsonl has reason {reason!r}, REPORT.md's rejects table does not"
        got = listed[reason][2:4]
        want = [n(expected["cpu"].get(reason, 0)), n(expected["cuda"].get(reason, 0))]
        assert got == want, f"rejects {reason}: REPORT.md says {got}, rejects.jsonl says {want}"


def _logged_rate(manifest: dict) -> tuple[float | None, int]:
    """Records per second over the logged runs that finished chunks, and how many such runs there are."""
    runs = [r for r in manifest.get("runs") or [] if (r.get("chunks") or 0) > 0 and (r.get("wall_seconds") or 0) > 0]
    wall = sum(r["wall_seconds"] for r in runs)
    records = sum(r.get("records") or 0 for r in runs)
    return (records / wall if wall and records else None), len(runs)


@needs_report
def test_production_rates_are_the_logged_ones(report_text, truth):
    rows = find_table(report_text, ["production", "`cpu_code`", "`cuda_code`"])
    row = row_of(rows, "records written per second")
    for i, d in enumerate(DEVICES, 1):
        rate, measured = _logged_rate(truth[d]["manifest"])
        if rate is None:
            assert row[i] == "not measured", f"{d}: no logged run wrote chunks, yet REPORT.md gives a rate {row[i]!r}"
        else:
            got = float(row[i].replace(",", ""))
            assert abs(got - rate) <= 0.006 * rate, f"{d}: REPORT.md says {got} records/s, the runs say {rate:.4g}"
    kept = row_of(rows, "records kept in the dataset")
    assert kept[1:3] == [n(truth[d]["records"]) for d in DEVICES]
    if all(_logged_rate(truth[d]["manifest"])[0] is None for d in DEVICES):
        summary = report_text.split("## 1 Background")[0]
        assert "No production rate was measured" in summary, "the summary must say that no rate was measured"


@needs_report
def test_median_pair_tokens(report_text, truth):
    """The median token length of a CPU pair, recounted with the real cl100k_base BPE on the report's sample."""
    bpe = pytest.importorskip("bpe_openai")
    enc = bpe.get_encoding("cl100k_base")
    sample = _numbers_json().get("report", {}).get("tokenizer", {}).get("sample_per_dataset", 2000)
    rows = []
    for shard in truth["cpu"]["manifest"]["shards"]:
        rows += pq.read_table(truth["cpu"]["root"] / shard["file"], columns=["id", "python_source", "ir"]).to_pylist()
    rows = sorted(rows, key=lambda r: r["id"])[:sample]
    pairs = sorted(len(enc.encode_ordinary(r["python_source"]))
                   + sum(len(enc.encode_ordinary(r["ir"][k])) for k in ("forward", "backward", "support") if r["ir"][k])
                   for r in rows)
    mid = len(pairs) // 2
    median = pairs[mid] if len(pairs) % 2 else (pairs[mid - 1] + pairs[mid]) / 2
    phrase = f"a whole pair is {n(median)} tokens at the median"
    assert phrase in report_text.split("## 1 Background")[0], f"the executive summary does not say {phrase!r}"


@needs_report
def test_bench_speedups(report_text):
    bench = _numbers_json().get("bench")
    if not bench:
        assert "No stage benchmark JSON was given" in report_text
        return
    path = Path(bench["path"])
    path = path if path.is_absolute() else ROOT / path
    if not path.exists():
        pytest.skip(f"the benchmark JSON the report was built from ({path}) is not here")
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = find_table(report_text, ["stage", "variant", "families", "kernels/s (median)"])
    for b in data["benchmarks"]:
        info = b.get("extra_info") or {}
        if info.get("batched_speedup") and info.get("variant"):
            hits = [r for r in rows if r[0] == b["group"] and r[1] == info["variant"]]
            assert hits, f"REPORT.md's stage table has no row for {b['group']} / {info['variant']}"
            if hits[0][2].startswith("`"):         # one family: its own speed-up, not a median
                assert hits[0][6] == f"{info['batched_speedup']:.1f}x", (b["name"], hits[0])


# -- the builder on incomplete inputs (synthetic manifests; no data needed) ----------------------------------


def _run(chunks=3, wall=100.0, records=90, stages=None, started="2026-01-01T00:00:00+00:00"):
    return {"started": started, "wall_seconds": wall, "chunks": chunks, "records": records, "bytes": records * 20_000,
            "workers": 2, "stage_seconds": stages or {}, "exitstatus": 0}


def test_production_numbers_without_runs_claim_nothing():
    from report.stats import production_numbers

    for manifest in ({}, {"runs": []}, {"runs": [_run(chunks=0, wall=3.7, records=0)], "records_per_second": 0.0}):
        p = production_numbers(manifest, 100)
        assert p["records_per_second"] is None and p["mb_per_second"] is None and p["stage_share"] == {}
        assert p["measured_runs"] == 0 and not p["log_covers_dataset"]


def test_production_numbers_read_old_and_new_stage_names():
    from report.stats import production_numbers

    old = _run(stages={"generate": 1.0, "compile": 6.0, "verify": 2.0, "record": 1.0})
    new = _run(stages={"generate": 1.0, "define": 1.0, "compile_cpu": 4.0, "compile_cuda": 2.0, "verify": 1.0,
                       "record": 1.0}, started="2026-01-02T00:00:00+00:00")
    idle = _run(chunks=0, wall=2.0, records=0, started="2026-01-03T00:00:00+00:00")
    p = production_numbers({"runs": [old, new, idle]}, 150)
    assert p["measured_runs"] == 2 and p["idle_runs"] == 1 and p["timed_runs"] == 2
    assert p["records_per_second"] == pytest.approx(180 / 200) and p["log_covers_dataset"]
    assert list(p["stage_share"]) == ["generate", "define", "compile", "compile_cpu", "compile_cuda", "verify",
                                      "record"]
    assert p["compile_share"] == pytest.approx(12 / 20) and p["stage_naming"] == "mixed"
    assert production_numbers({"runs": [new]})["stage_naming"] == "split"
    untimed = production_numbers({"runs": [_run()]}, 90)
    assert untimed["records_per_second"] == pytest.approx(0.9) and untimed["stage_share"] == {}


def test_production_figure_only_with_data(tmp_path):
    from report.figures import fig_production
    from report.stats import production_numbers

    empty = {d: {"production": production_numbers({"runs": []})} for d in DEVICES}
    assert fig_production(empty, tmp_path) is None and not list(tmp_path.iterdir())
    rated = {d: {"production": production_numbers({"runs": [_run()]}, 90)} for d in DEVICES}
    assert fig_production(rated, tmp_path) == "production.png" and (tmp_path / "production.png").stat().st_size
    timed = {d: {"production": production_numbers({"runs": [_run(stages={"compile_cpu": 3.0, "verify": 1.0})]})}
             for d in DEVICES}
    assert fig_production(timed, tmp_path) == "production.png"


def test_production_sentence_says_when_nothing_was_measured():
    from report.render import production_sentence, speed_sentence
    from report.stats import production_numbers

    def ds(manifest, records=100):
        return {"production": production_numbers(manifest, records), "records": records, "dropped": {}}

    idle = {"runs": [_run(chunks=0, wall=3.7, records=0)]}
    text = production_sentence(ds(idle), ds(idle))
    assert "no measured production rate" in text and "records/s" not in text
    assert "No production run is logged" in production_sentence(ds({}), ds({}))
    assert speed_sentence(ds(idle), ds(idle), None).startswith("No production rate was measured")
    partial = {"runs": [_run(records=40)]}
    assert "not in the log" in production_sentence(ds(partial), ds(partial))
