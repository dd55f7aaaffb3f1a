"""The technical report (report/REPORT.md) agrees with the committed data.

Every number of the executive summary and of every table is recomputed here straight from the data, not from
``report/numbers.json`` and not through ``report/stats.py``: each dataset's ``data/*.parquet``, ``manifest.json`` and
``rejects.jsonl``, and the committed side inputs (``report/benchmark/*.json``, ``report/saturation.json``,
``report/coverage.json``). Each check returns the problems it finds, so ``test_an_edited_number_is_caught`` can
show that changing one number of the report makes the checks fail. Also: every figure numbered and cited, the
outline's sections present, the word count in range, missing side inputs said plainly. Skips, saying why, until
both datasets and the report exist. ``WKF_REPORT_DATA`` / ``WKF_REPORT_OUT`` point it at other folders.

The last tests exercise the builder on synthetic inputs; they need no data and always run.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

pq = pytest.importorskip("pyarrow.parquet")
from harness.pack import unflatten  # noqa: E402  (after the skip: it needs pyarrow)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / os.environ.get("WKF_REPORT_OUT", "report")
REPORT = OUT / "REPORT.md"
DATA = ROOT / os.environ.get("WKF_REPORT_DATA", "production")
SIDE = ROOT / "report"
DEVICES = ("cpu", "cuda")
DEDUP_DROPS = ("duplicate_exact", "duplicate_structural")
CONTEXTS = (4096, 8192, 16384)
WORDS = (6000, 8000)
SECTIONS = ("## Executive summary", "### 1.1", "### 1.2", "### 1.3", "## 2 NVIDIA Warp", "#### 3.1.1 Selection of approach",
            "### 3.2 CUDA dataset", "## 4 Structure and format", "## 5 Characteristics", "## 6 Applications",
            "### 7.2 Future enhancements", "### 7.3 Dataset extensions", "## 8 Conclusion", "## Appendix A",
            "## Appendix C")


def _missing() -> list[str]:
    wanted = [DATA / f"{d}_code" / "manifest.json" for d in DEVICES] + [REPORT]
    return [str(p) for p in wanted if not p.exists()]


needs_report = pytest.mark.skipif(bool(_missing()), reason=f"report consistency: not present yet: {_missing()} "
                                  "(produce the datasets, then run: wkf-report)")


def n(x) -> str:
    return f"{int(x):,}"


def pct(part, whole) -> str:
    return f"{100 * part / whole:.1f}%"


def canonical_bytes(row: dict) -> int:
    from harness.record import canonical_json

    return len(canonical_json(row).encode("utf-8")) + 1


def statements(code: str | None) -> list[str]:
    lines = (code or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "// forward"), len(lines))
    return [s for s in (x.strip() for x in lines[start + 1:])
            if s and not s.startswith("//") and s not in ("}", "{", "return;", "continue;")]


def truth_for(device: str) -> dict:
    from harness.extract import split_blocks

    root = DATA / f"{device}_code"
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    rows, files = [], []
    for shard in manifest["shards"]:
        path = root / shard["file"]
        files.append(path)
        part = pq.read_table(path).to_pylist()
        assert len(part) == shard["records"], f"{path}: {len(part)} rows, manifest says {shard['records']}"
        rows += [unflatten(row) for row in part]
    rejects = [json.loads(line) for line in (root / "rejects.jsonl").read_text(encoding="utf-8").splitlines()
               if line.strip()] if (root / "rejects.jsonl").exists() else []
    adjoint = 0
    for r in rows:
        adjoint += len((r["ir"]["backward"] or "").encode("utf-8"))
        adjoint += sum(len(b.text.encode("utf-8")) for b in split_blocks(r["ir"]["support"] or "")
                       if re.search(r"\badj_\w+\s*\(", b.signature))
    runs = [r for r in manifest.get("runs", []) if r.get("chunks") and r.get("wall_seconds")]
    core = sum(r["wall_seconds"] * r["workers"] for r in runs)
    written = sum(r["records"] for r in runs)
    tokens = sum(r["tokens"]["total"] for r in rows)
    return {"root": root, "manifest": manifest, "rows": rows, "rejects": rejects, "dataset": root.name,
            "bytes_raw": manifest["bytes_raw"], "record_bytes": sum(canonical_bytes(r) for r in rows),
            "bytes_compressed": sum(p.stat().st_size for p in files), "adjoint": adjoint, "tokens": tokens,
            "core_per_record": core / written if written else None,
            "core_per_mtok": core / written / (tokens / len(rows)) * 1e6 if written else None, "runs": runs}


@pytest.fixture(scope="module")
def truth() -> dict:
    t = {d: truth_for(d) for d in DEVICES}
    cpu = {(r["family"], r["provenance"]["seed"]): r for r in t["cpu"]["rows"]}
    cuda = {(r["family"], r["provenance"]["seed"]): r for r in t["cuda"]["rows"]}
    both = sorted(set(cpu) & set(cuda))
    t["both"] = both
    t["identical"] = sum(statements(cpu[k]["ir"]["forward"]) == statements(cuda[k]["ir"]["forward"]) and
                         statements(cpu[k]["ir"]["backward"]) == statements(cuda[k]["ir"]["backward"]) for k in both)
    t["distinct"] = len({r["structural_hash"] for d in DEVICES for r in t[d]["rows"]})
    return t


@pytest.fixture(scope="module")
def report_text() -> str:
    return REPORT.read_text(encoding="utf-8")


def tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    found, block = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            if len(block) >= 2:
                found.append((block[0], block[2:]))
            block = []
    return found


def find_table(text: str, first_cells: list[str]) -> list[list[str]] | None:
    matches = [rows for header, rows in tables(text) if header[:len(first_cells)] == first_cells]
    return matches[0] if matches else None


def compare(problems: list, what: str, got, want) -> None:
    if got != want:
        problems.append(f"{what}: REPORT.md says {got!r}, the data says {want!r}")


def rows_by_label(rows: list[list[str]]) -> dict[str, list[str]]:
    return {r[0]: r for r in rows}


def by_label(text: str, header: list[str]) -> dict[str, list[str]]:
    """The table whose header starts with ``header``, rows by their first cell; {} when there is none (every
    check then reports each expected row as missing)."""
    return rows_by_label(find_table(text, header) or [])


# -- the checks: each returns the problems it found ----------------------------------------------------------


def check_summary(text: str, t: dict) -> list[str]:
    p: list[str] = []
    rows = find_table(text, ["summary", "`cpu_code`", "`cuda_code`"])
    if rows is None:
        return ["no executive summary table"]
    got = rows_by_label(rows)
    for i, d in enumerate(DEVICES, 1):
        x = t[d]
        rs = x["rows"]
        numerics = Counter(r["verification"]["numerics_device"] for r in rs)
        stages = Counter(" -> ".join(r["verification"]["stages"]) for r in rs)
        grad = sum(r["verification"]["gradient_checked"] for r in rs)
        want = {
            "records": n(len(rs)),
            "distinct programs (structural hashes)": n(len({r["structural_hash"] for r in rs})),
            "kernels in both datasets, identical statement bodies": n(t["identical"]),
            "MB as JSON / as zstd Parquet": f"{x['bytes_raw'] / 1e6:,.2f} / {x['bytes_compressed'] / 1e6:,.2f}",
            "cl100k tokens, every record counted": n(x["tokens"]),
            "share of bytes that is adjoint code": pct(x["adjoint"], x["record_bytes"]),
            "compile stages every record passed": "; ".join(f"{k} ({n(v)})" for k, v in stages.items()),
            "where the numbers ran (records)": ", ".join(f"cpu build: {n(v)}" if k == "cpu" else f"GPU: {n(v)}"
                                                          for k, v in sorted(numerics.items())),
            "gradient-checked records": f"{n(grad)} ({pct(grad, len(rs))})",
            "core-seconds per record": f"{x['core_per_record']:.3f}",
            "core-seconds per million tokens": f"{x['core_per_mtok']:,.0f}",
        }
        for label, value in want.items():
            compare(p, f"summary {label} ({d})", got.get(label, [None] * 3)[i], value)
    summary = text.split("## 1 Background")[0]
    phrases = [f"{n(t['distinct'])} distinct Warp programs", f"{n(len(t['both']))} kernels are in both datasets",
               f"{n(t['cpu']['tokens'])} cl100k tokens", f"{n(t['cuda']['tokens'])} tokens)",
               f"{pct(t['cpu']['adjoint'], t['cpu']['record_bytes'])} of the CPU bytes",
               f"({n(sum(r['verification']['elements_compared'] for r in t['cpu']['rows']))} comparisons)",
               f"a verified CPU record cost {t['cpu']['core_per_record']:.3f} core-seconds",
               f"({t['cpu']['core_per_mtok']:,.0f} per million tokens)"]
    if not any(r["verification"]["numerics_device"] == "cuda" for r in t["cuda"]["rows"]):
        phrases.append("No GPU was available")
    p += [f"the executive summary does not say {ph!r}" for ph in phrases if ph not in summary]
    return p


def check_families(text: str, t: dict) -> list[str]:
    got = by_label(text, ["family", "what its generator writes", "CPU records", "CUDA records"])
    p: list[str] = []
    cpu, cuda = t["cpu"]["rows"], t["cuda"]["rows"]
    fams = sorted({r["family"] for r in cpu + cuda})
    compare(p, "families listed", [k.strip("`") for k in got if not k.startswith("**")], fams)
    for f in fams:
        tok = [r["tokens"]["total"] for r in cpu if r["family"] == f]
        want = [n(sum(r["family"] == f for r in cpu)), n(sum(r["family"] == f for r in cuda)),
                n(sum(r["verification"]["gradient_checked"] for r in cpu if r["family"] == f)), n(np.median(tok))]
        compare(p, f"family {f}", got.get(f"`{f}`", [None] * 6)[2:6], want)
    return p


def check_rejects(text: str, t: dict) -> list[str]:
    rows = find_table(text, ["reason (rejects.jsonl)", "meaning", "`cpu_code`", "`cuda_code`"])
    if rows is None:
        return ["no rejects table"]
    p: list[str] = []
    got = {r[0].strip("`"): r[2:4] for r in rows}
    counts = {d: Counter(r["reason"] for r in t[d]["rejects"]) for d in DEVICES}
    for reason in set(counts["cpu"]) | set(counts["cuda"]):
        compare(p, f"rejects {reason}", got.get(reason), [n(counts[d].get(reason, 0)) for d in DEVICES])
    return p


def check_production(text: str, t: dict) -> list[str]:
    got = by_label(text, ["production", "`cpu_code`", "`cuda_code`"])
    p: list[str] = []
    for i, d in enumerate(DEVICES, 1):
        runs = t[d]["runs"]
        wall = sum(r["wall_seconds"] for r in runs)
        written = sum(r["records"] for r in runs)
        compare(p, f"wall ({d})", got["wall seconds of the logged run(s)"][i], f"{wall:,.0f}")
        compare(p, f"written ({d})", got["records written (before dedup and the cut)"][i], n(written))
        rate = float(got["records written per second"][i].replace(",", ""))
        if abs(rate - written / wall) > 0.006 * written / wall:
            p.append(f"rate ({d}): REPORT.md says {rate}, the runs say {written / wall:.4g}")
        compare(p, f"core-seconds per record ({d})", got["core-seconds per record"][i], f"{t[d]['core_per_record']:.3f}")
    return p


def check_resources(text: str, t: dict) -> list[str]:
    got = by_label(text, ["family", "records", "forward registers p50 / max"])
    p: list[str] = []
    per = defaultdict(lambda: defaultdict(list))
    for r in t["cuda"]["rows"]:
        res = r["ir"]["resources"]
        for key in (r["family"], "all"):
            for e in ("forward", "backward"):
                if res[e] is not None:          # a kernel built with enable_backward=False has no backward entry
                    per[key][e].append(res[e])
    for fam, e in per.items():
        label = "**all**" if fam == "all" else f"`{fam}`"
        fw = [x["registers"] for x in e["forward"]]
        bw = [x["registers"] for x in e["backward"]]
        spill = sum(bool(x["spill_store_bytes"] + x["spill_load_bytes"]) for x in e["forward"] + e["backward"])
        stack = sum(bool(x["stack_frame_bytes"]) for x in e["forward"] + e["backward"])
        want = [n(len(fw)), f"{np.median(fw):.0f} / {max(fw)}", f"{np.median(bw):.0f} / {max(bw)}" if bw else "-",
                n(spill), n(stack), f"{max(x['shared_bytes'] for x in e['forward']):,}"]
        compare(p, f"resources {fam}", got.get(label, [None] * 7)[1:7], want)
    return p


def check_context(text: str, t: dict) -> list[str]:
    got = by_label(text, ["dataset", "median tokens", "p95", "max"])
    p: list[str] = []
    for d in DEVICES:
        tok = np.asarray([r["tokens"]["total"] for r in t[d]["rows"]])
        want = [n(np.median(tok)), n(np.percentile(tok, 95)), n(tok.max())] + [pct(np.count_nonzero(tok <= c), tok.size)
                                                                              for c in CONTEXTS]
        compare(p, f"context {d}", got.get(f"`{d}_code`", [None])[1:], want)
    return p


def check_verification(text: str, t: dict) -> list[str]:
    got = by_label(text, ["verification", "`cpu_code`", "`cuda_code`"])
    p: list[str] = []
    for i, d in enumerate(DEVICES, 1):
        v = [r["verification"] for r in t[d]["rows"]]
        compared = sum(x["elements_compared"] for x in v)
        compare(p, f"compared ({d})", got["output elements compared"][i], n(compared))
        compare(p, f"masked records ({d})", got["records with any masked element"][i],
                n(sum(x["elements_masked"] > 0 for x in v)))
        compare(p, f"zero error ({d})", got["records with zero error (max abs error 0)"][i],
                n(sum(x["max_abs_err"] == 0 for x in v)))
        compare(p, f"exact ({d})", got["records compared exactly (integer outputs)"][i],
                n(sum(x["rtol"] == 0 and x["atol"] == 0 for x in v)))
        compare(p, f"loose tolerance ({d})", got["records checked with atol > 1 (Section 7.1)"][i],
                n(sum(x["atol"] > 1 for x in v)))
    return p


def check_quality(text: str, t: dict) -> list[str]:
    got = by_label(text, ["quality", "`cpu_code`", "`cuda_code`"])
    p: list[str] = []
    for i, d in enumerate(DEVICES, 1):
        compare(p, f"compression ({d})", got["JSON bytes / Parquet bytes"][i],
                f"{t[d]['bytes_raw'] / t[d]['bytes_compressed']:.1f}x")
    return p


def check_baselines(text: str, t: dict) -> list[str]:
    p: list[str] = []
    rows = find_table(text, ["baseline", "task", "predictions", "pass@1"]) or []
    got = {(r[0], r[1]): r for r in rows}
    for name in ("oracle", "retrieval", "mutants"):
        path = SIDE / "benchmark" / f"{name}.json"
        if not path.exists():
            if f"`report/benchmark/{name}.json`" not in text:
                p.append(f"{path} is missing and the report does not say so")
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if name == "mutants":
            row = next((r for r in rows if r[0].startswith("mutants")), None)
            compare(p, "mutants", row[2:4] if row else None,
                    [n(data["mutants"]), f"{100 * (1 - data['killed_share']):.1f}%"])
            continue
        for _, s in sorted(data["datasets"].items()):
            for task, v in s["tasks"].items():
                only = v["outcomes"].get("compiled_only", 0)
                score = f"{100 * v['pass@1']:.1f}%"       # what ran; what only compiled is said, never a pass
                score = "not run (no GPU)" if only == v["predictions"] else \
                    f"{score} ({n(only)} not run)" if only else score
                compare(p, f"{name} {task}", got.get((name, f"`{task}`"), [None] * 5)[2:5],
                        [n(v["predictions"]), score, f"{100 * v['compile_rate']:.1f}%"])
    return p


def side_input(text: str, name: str) -> tuple[dict | None, list[str]]:
    """A committed side input, or the problem that it is missing and the report does not say so."""
    path = SIDE / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8")), []
    said = f"`report/{name}.json` is not committed" in text
    return None, [] if said else [f"{path} is missing and the report does not say so"]


def check_saturation(text: str, t: dict) -> list[str]:
    sat, p = side_input(text, "saturation")
    if sat is None:
        return p
    rows = find_table(text, ["family", f"distinct of {n(100)}"]) or []
    header = next((h for h, body in tables(text) if h[:2] == ["family", f"distinct of {n(100)}"]), [])
    got = {r[0]: r for r in rows}
    for f, v in sat["families"].items():
        programs = (v.get("checkpoints") or sat["checkpoints"])[-1]
        column = header.index(f"distinct of {n(programs)}") if f"distinct of {n(programs)}" in header else None
        cell = got.get(f"`{f}`", [None] * len(header))[column] if column is not None else None
        compare(p, f"saturation {f} at {programs}", cell, n(v["distinct"][-1]))
    return p


def check_coverage(text: str, t: dict) -> list[str]:
    cov, p = side_input(text, "coverage")
    if cov is None:
        return p
    rows = find_table(text, ["construct (gap)", "Warp non-test kernels using it"]) or []
    if not rows:
        return ["no coverage table"]
    gaps = {s["name"]: {g["construct"]: g for g in s["gap"]} for s in cov["datasets"]}
    union = {c: g[c]["warp_non_test"] for g in gaps.values() for c in g}
    top = sorted(union, key=lambda c: -union[c])[:12]
    compare(p, "coverage gap constructs", sorted(r[0] for r in rows), sorted(f"`{c}`" for c in top))
    counts = {r["construct"]: r for r in cov["rows"]}
    for row in rows:
        c = row[0].strip("`")
        warp = next((g[c]["warp_non_test"] for g in gaps.values() if c in g), None)
        records = [g[c]["records"] if c in g else counts[c]["records"][name] for name, g in gaps.items()]
        compare(p, f"coverage {c}", row[1:4], [n(warp)] + [n(x) for x in records])
    return p


def check_batching(text: str, t: dict) -> list[str]:
    """Section 3.1.1's cost of one kernel per module, recomputed from the stage benchmark's compile-cpu group."""
    path = SIDE / "bench" / "stages.json"
    if not path.exists():
        return [] if "`report/bench/stages.json` missing" in text else [f"{path} is missing and the report does not say so"]
    rows = [b for b in json.loads(path.read_text(encoding="utf-8"))["benchmarks"] if b["group"] == "compile-cpu"]
    ms = {b["name"].rsplit("[", 1)[-1].rstrip("]"): b["extra_info"]["ms_per_kernel"] for b in rows}
    ks = "/".join(str(k) for k in sorted({int(b["extra_info"]["K"]) for b in rows
                                           if b["name"].endswith("-batched]")}))
    families = sorted(k.split("-")[0] for k in ms if k.endswith("-batched"))
    said = []
    for level in ("O0", "O2"):
        ratios = [ms[f"{f}-naive-{level}"] / ms[f"{f}-batched"] for f in families]
        lo, hi = f"{min(ratios):.1f}", f"{max(ratios):.1f}"
        said.append(f"{lo}x" if lo == hi else f"{lo}-{hi}x")
    want = f"one module each was {said[0]} slower than {ks} per module at the same `-O0` (batching alone) and {said[1]}"
    return [] if want in text else [f"batching: the report does not say {want!r}"]


CHECKS = (check_summary, check_families, check_rejects, check_production, check_resources, check_context,
          check_verification, check_quality, check_baselines, check_saturation, check_coverage,
          check_batching)


@needs_report
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_report_agrees_with_the_data(check, report_text, truth):
    problems = check(report_text, truth)
    assert not problems, "\n".join(problems)


@needs_report
def test_an_edited_number_is_caught(report_text, truth):
    tokens = n(truth["cpu"]["tokens"])
    edited = report_text.replace(f"| {tokens} |", f"| {n(truth['cpu']['tokens'] + 1)} |", 1)
    assert edited != report_text
    assert check_summary(edited, truth), "changing the token total in the summary table went unnoticed"
    fam_rows = find_table(report_text, ["family", "what its generator writes", "CPU records", "CUDA records"])
    line = next(line for line in report_text.splitlines() if line.startswith(f"| {fam_rows[0][0]} |"))
    cells = line.split("|")
    cells[3] = f" {n(int(cells[3].strip().replace(',', '')) + 1)} "
    assert check_families(report_text.replace(line, "|".join(cells)), truth), "an edited family count went unnoticed"


@needs_report
def test_figures_are_numbered_and_cited(report_text):
    prose = re.sub(r"^```.*?^```", "", report_text, flags=re.S | re.M)
    captions = re.findall(r"^\*Figure (\d+): ", prose, re.M)
    assert captions == [str(i) for i in range(1, len(captions) + 1)], f"figures out of order: {captions}"
    body = re.sub(r"^\*Figure \d+: .*$", "", prose, flags=re.M)
    for number in captions:
        assert re.search(rf"\bFigure {number}\b", body), f"Figure {number} is never cited in the text"
    images = re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", prose)
    assert len(images) == len(captions)
    for image in images:
        assert (OUT / image).exists(), f"{image} is referenced but not there"


@needs_report
def test_outline_and_length(report_text):
    for section in SECTIONS:
        assert section in report_text, f"REPORT.md lacks section {section!r}"
    words = len(re.sub(r"^```.*?^```", "", report_text, flags=re.S | re.M).split())
    assert WORDS[0] <= words <= WORDS[1], f"REPORT.md has {words} words outside code, want {WORDS}"
    for marker in ("{{", "}}", "TODO", "TBD", "FIXME", "@@"):
        assert marker not in re.sub(r"^```.*?^```", "", report_text, flags=re.S | re.M), marker


@needs_report
def test_stored_token_counts_are_cl100k(truth):
    """A spot check of the records' own token counts with the real BPE (the report sums them)."""
    bpe = pytest.importorskip("bpe_openai")
    enc = bpe.get_encoding("cl100k_base")
    for r in sorted(truth["cpu"]["rows"], key=lambda r: r["id"])[:20]:
        assert r["tokens"]["python"] == len(enc.encode_ordinary(r["python_source"])), r["id"]


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


def test_cost_numbers_count_core_seconds_of_runs_that_wrote_chunks():
    from report.stats import cost_numbers

    runs = [_run(wall=100.0, records=50), _run(chunks=0, wall=5.0, records=0)]
    c = cost_numbers({"runs": runs}, {"total": 1_000_000}, 100)
    assert c["per_record"] == pytest.approx(200 / 50) and c["per_mtok"] == pytest.approx(4 / 10_000 * 1e6)
    assert cost_numbers({}, {"total": 0}, 0)["per_record"] is None


def test_uncited_or_dangling_figures_refuse_to_render():
    from report.render import RenderError, fill

    with pytest.raises(RenderError, match="never cited"):
        fill("*@@FIG:a@@: caption*", {})
    with pytest.raises(RenderError, match="cited but not drawn"):
        fill("see @@REF:b@@", {})
    assert fill("![x](figures/a.png)\n\n*@@FIG:a@@: c* as @@REF:a@@ shows", {}).endswith("Figure 1 shows")


def test_lengths_before_the_budget_add_the_over_budget_rejects_of_the_same_device():
    from report.stats import budget_numbers

    tokens = {"per_family": {"a": {"p50": 150.0}}}
    series = {"pair_tokens": np.asarray([100, 200])}
    rejects = [{"family": "a", "device": "cpu", "reason": "over_budget", "message": "20000 cl100k tokens (...)"},
               {"family": "a", "device": "cuda", "reason": "over_budget", "message": "30000 cl100k tokens (...)"},
               {"family": "b", "device": "cpu", "reason": "over_budget", "message": "40000 cl100k tokens (...)"},
               {"family": "a", "device": "cpu", "reason": "mismatch", "message": "12 cl100k tokens"}]
    numbers, s = budget_numbers(tokens, series, np.asarray(["a", "a"]), rejects, "cpu")
    assert numbers["over_budget"] == 2 and numbers["generated"] == 4
    assert numbers["per_family"]["a"] == {"generated": 3, "over_budget": 1, "p50_before": 200.0,
                                          "p95_before": pytest.approx(18020.0), "p50_after": 150.0}
    assert numbers["per_family"]["b"]["p50_after"] is None
    assert s["over_budget_tokens"].tolist() == [20000, 40000]


def test_saturation_sentence_counts_a_generator_error_as_no_repeat():
    from report.render import saturation_sentence

    fam = {"checkpoints": [1, 2, 4], "programs": 4, "generator": "g@1"}
    sat = {"runs": [{"families": ["a", "b", "c"], "programs": 4, "workers": 1, "wall_seconds": 3.0}],
           "families": {"a": {**fam, "distinct": [1, 2, 4], "generator_errors": []},
                        "b": {**fam, "distinct": [1, 2, 3], "generator_errors": [{"index": 3}]},
                        "c": {**fam, "distinct": [1, 1, 2], "generator_errors": []}}}
    text = saturation_sentence(sat)
    assert "2 of 3 families never repeat a structure; distinct of 4: `c` 2." in text
    assert "Programs not made (generator errors, production's `generator_error` rejects): `b` 1." in text


def test_saturation_merge_runs_some_families_longer_and_keeps_the_others(tmp_path):
    from report import saturation, tables

    out = tmp_path / "sat.json"
    assert saturation.main(["--programs", "5", "--workers", "1", "--out", str(out),
                            "--families", "reduction", "spatial"]) == 0
    assert saturation.main(["--programs", "20", "--workers", "1", "--out", str(out), "--merge",
                            "--families", "spatial"]) == 0
    sat = json.loads(out.read_text())
    fams = sat["families"]
    assert fams["reduction"]["programs"] == 5 and fams["reduction"]["checkpoints"] == [1, 2, 5]
    assert fams["spatial"]["programs"] == 20 and fams["spatial"]["checkpoints"] == [1, 2, 5, 10, 20]
    assert len(fams["spatial"]["distinct"]) == 5 and sat["programs_per_family"] == 20
    assert [r["families"] for r in sat["runs"]] == [["reduction", "spatial"], ["spatial"]]
    text = tables.saturation_table(sat)
    row = next(line for line in text.splitlines() if "`reduction`" in line)
    assert row.split("|")[-3].strip() == "-"          # not run to 20
    assert saturation.main(["--programs", "10", "--workers", "1", "--out", str(out), "--merge",
                            "--families", "reduction"]) == 0
    runs = json.loads(out.read_text())["runs"]        # the first run measures nothing now: its time goes
    assert [r["families"] for r in runs] == [["spatial"], ["reduction"]]
