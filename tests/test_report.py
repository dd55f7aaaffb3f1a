"""The technical report (report/REPORT.md) agrees with the committed datasets (production/*_code).

Recomputes the key numbers straight from each dataset's ``manifest.json`` and ``data/*.parquet`` (independently of
``report/stats.py``) and compares them with the tables and summary of REPORT.md: records and bytes per dataset,
Parquet files and splits, records per family, where the numbers were computed and how many gradients were checked.
Skips, saying why, until both datasets and the report exist. Reads two small Parquet columns only; no network.
``WKF_REPORT_DATA`` / ``WKF_REPORT_OUT`` point it at other folders (default ``production`` and ``report``), e.g. to
check a report built with ``python -m report.build --data DIR --out OUT``.
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


def _missing() -> list[str]:
    wanted = [DATA / f"{d}_code" / "manifest.json" for d in DEVICES] + [REPORT]
    return [str(p) for p in wanted if not p.exists()]


pytestmark = pytest.mark.skipif(bool(_missing()), reason=f"report consistency: not present yet: {_missing()} "
                                "(produce the datasets, then run: python -m report.build)")


def n(x) -> str:
    return f"{int(x):,}"


def mb(b) -> str:
    return f"{b / 1e6:,.2f}"


def truth_for(device: str) -> dict:
    root = DATA / f"{device}_code"
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    families, numerics, splits = Counter(), Counter(), Counter()
    grad_by_family = Counter()
    records = 0
    files = []
    for shard in manifest["shards"]:
        path = root / shard["file"]
        assert path.exists(), f"{path} is named in {root / 'manifest.json'} but missing"
        files.append(path)
        table = pq.read_table(path, columns=["family", "verification"])
        rows = table.to_pylist()
        assert len(rows) == shard["records"], f"{path}: {len(rows)} rows, manifest says {shard['records']}"
        records += len(rows)
        splits[shard["split"]] += len(rows)
        for row in rows:
            families[row["family"]] += 1
            numerics[row["verification"]["numerics_device"]] += 1
            if row["verification"]["gradient_checked"]:
                grad_by_family[row["family"]] += 1
    assert records == manifest["records"], f"{root}: {records} Parquet rows, manifest says {manifest['records']}"
    assert dict(sorted(families.items())) == manifest["per_family"], f"{root}: per-family counts differ from manifest"
    return {
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


def test_totals_table(report_text, truth):
    rows = find_table(report_text, ["dataset", "records", "JSON MB", "Parquet MB", "Parquet files",
                                    "train / validation / test", "families"])
    for d, t in truth.items():
        row = row_of(rows, f"`{t['dataset']}`")
        expected = [n(t["records"]), mb(t["bytes_raw"]), mb(t["bytes_compressed"]), n(t["parquet_files"]),
                    " / ".join(n(t["splits"].get(s, 0)) for s in SPLITS), n(len(t["families"]))]
        assert row[1:7] == expected, f"{d}: REPORT.md says {row[1:7]}, the data says {expected}"


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


def test_no_placeholders_left(report_text):
    prose = re.sub(r"^```.*?^```", "", report_text, flags=re.S | re.M)     # generated code may use braces
    for marker in ("{{", "}}", "TODO", "TBD", "FIXME"):
        assert marker not in prose, f"REPORT.md contains {marker!r} outside code blocks"
