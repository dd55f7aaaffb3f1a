"""Every number of the technical report, computed from the inputs; no figures, no prose.

Inputs: a packed dataset directory per device (``<data>/cpu_code``, ``<data>/cuda_code``: ``data/*.parquet``,
``manifest.json``, ``rejects.jsonl``); the side inputs (benchmark, saturation, coverage) are read by
:mod:`report.inputs`.

:func:`dataset_numbers` returns two things per dataset: ``numbers`` (JSON-able, written to ``numbers.json`` and
used by the text) and ``series`` (per-record arrays the figures are drawn from).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from harness.pack import unflatten
from harness.record import canonical_json

DEVICES = ("cpu", "cuda")
CODE_FIELDS = ("forward", "backward", "support")
#: reasons in rejects.jsonl that are not failed kernels but verified records dropped by de-duplication
SELECTION_DROPS = frozenset({"duplicate_exact", "duplicate_structural"})

#: Python constructs counted in every record's source (label, regex over ``python_source``)
PY_CONSTRUCTS: tuple[tuple[str, str], ...] = (
    ("`if`/`elif` statements", r"^\s*(if|elif)\s"),
    ("conditional expressions (`a if c else b`, `wp.where`)", r"\sif\s.+\selse\s|wp\.where\("),
    ("`for` loops", r"^\s*for\s"),
    ("`while` loops", r"^\s*while\s"),
    ("`break` / `continue`", r"^\s*(break|continue)\s*$"),
    ("`@wp.func` helpers", r"^@wp\.func"),
    ("`@wp.struct` types", r"^@wp\.struct"),
    ("generic `Any` parameters", r"\bAny\b"),
    ("multi-dimensional `wp.tid()`", r"^\s*\w+\s*,\s*\w+.*=\s*wp\.tid\(\)"),
    ("atomics (`wp.atomic_*`)", r"wp\.atomic_\w+\("),
    ("augmented array updates (`a[i] += ...`)", r"^\s*\w+\[[^\]]+\]\s*[-+*/|&^]=|^\s*\w+\[[^\]]+\]\s*(<<|>>)="),
    ("bitwise operators", r"[^<>=!]\s*(<<|>>|\^|&|\|)\s*[^=]|~\w"),
    ("vector / matrix / quaternion / transform types", r"wp\.(vec\w*|mat\w*|quat\w*|transform\w*|spatial_\w+)\b"),
    ("transcendental math builtins", r"wp\.(sin|cos|tan|asin|acos|atan|atan2|sinh|cosh|tanh|exp|log|log2|log10|pow|"
                                     r"sqrt|cbrt|erf|erfc|erfinv|erfcinv)\("),
    ("random numbers (`wp.rand*`)", r"wp\.(rand_init|randf|randi|randn|randu|sample_\w+|poisson)\("),
    ("tiles (`wp.tile_*`)", r"wp\.tile\w*\("),
    ("spatial queries (hash grid, BVH, mesh)", r"wp\.(hash_grid_query|bvh_query|mesh_query)\w*\("),
    ("float16", r"float16|wp\.half"),
    ("float64", r"float64|vec3d|wp\.mat\d\dd"),
)

#: Patterns in the generated code (label, regex for cpp, regex for cuda); None: not applicable to that backend
CODE_PATTERNS: tuple[tuple[str, str | None, str | None], ...] = (
    ("backward (adjoint) entry point", r"_cpu_kernel_backward\(", r"_cuda_kernel_backward\("),
    ("argument struct `wp_args_<kernel>` (CPU ABI)", r"^struct wp_args_", None),
    ("contiguous-array specialisation (`wp_contiguous_args`: 1-D launch over 1-D arrays)", r"\bwp_contiguous_args\b",
     None),
    ("grid-stride loop over `_idx`", None, r"_idx \+= static_cast<size_t>\(blockDim\.x\)"),
    ("one thread per index (early `return` when `_idx >= dim.size`)", None, r"if \(_idx >= dim\.size\) return;"),
    ("`__launch_bounds__` on the entry point", None, r"__launch_bounds__"),
    ("tile operations (`wp::tile_*`, shared/register tiles)", r"wp::tile_(?!shared_storage_t)\w+\(",
     r"wp::tile_(?!shared_storage_t)\w+\("),
    ("atomic read-modify-write (`wp::atomic_*`)", r"wp::atomic_\w+\(", r"wp::atomic_\w+\("),
    ("helper functions (`@wp.func` bodies and `adj_` adjoints)", r"^static .*\badj_\w+\(", r"CUDA_CALLABLE void adj_\w+\("),
    ("user structs", r"^struct (?!wp_args_)\w+", r"^struct \w+"),
    ("loops kept as loops (`start_for_N:` / `start_while_N:` labels and `goto`)", r"\bstart_(for|while)_\d+:",
     r"\bstart_(for|while)_\d+:"),
)

WP_CALL = re.compile(r"\bwp\.([A-Za-z_]\w*)\s*\(")
FUNC_DEF = re.compile(r"^@wp\.func[^\n]*\n(?:@[^\n]*\n)*def\s+(\w+)", re.M)


def body_calls(source: str) -> list[str]:
    """``wp.<name>(`` calls outside ``def`` lines (signatures spell array types as ``wp.array(dtype=...)``)."""
    return WP_CALL.findall("\n".join(line for line in source.splitlines() if not line.lstrip().startswith("def ")))


def unused_helpers(row: dict) -> list[str]:
    """``@wp.func`` helpers defined in the source that none of the generated code contains (dead helpers)."""
    code = generated_text(row)
    return [name for name in FUNC_DEF.findall(row["python_source"]) if not re.search(rf"\b{name}_\d+\(", code)]


class ReportInputError(Exception):
    """An input of the report is missing or malformed; the message names the path and what was expected."""


@dataclass(slots=True)
class Dataset:
    device: str
    root: Path
    manifest: dict
    rows: list[dict]            # the Parquet rows, ``features`` parsed back from its JSON string
    rejects: list[dict]
    parquet_files: list[Path]


def dist(values) -> dict:
    """Summary of a distribution: n, min, p5, p25, p50, mean, p75, p95, p99, max (empty dict when empty)."""
    a = np.asarray(list(values), dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    q = np.percentile(a, [5, 25, 50, 75, 95, 99])
    return {"n": int(a.size), "min": float(a.min()), "p5": float(q[0]), "p25": float(q[1]), "p50": float(q[2]),
            "mean": float(a.mean()), "p75": float(q[3]), "p95": float(q[4]), "p99": float(q[5]), "max": float(a.max())}


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ReportInputError(f"{path}:{lineno}: corrupt JSON ({exc.msg})") from None
    return rows


def load_dataset(root: Path, device: str) -> Dataset:
    root = Path(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.exists():
        raise ReportInputError(f"{root}: no manifest.json; expected a packed {device} dataset "
                               f"(pytest -m production --device={device} ... writes one)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("device") != device:
        raise ReportInputError(f"{manifest_path}: device is {manifest.get('device')!r}, expected {device!r}")
    files = [root / s["file"] for s in manifest["shards"]]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ReportInputError(f"{root}: Parquet files named in manifest.json are missing: {missing[:3]}")
    rows: list[dict] = []
    for path in files:
        rows += [unflatten(row) for row in pq.read_table(path).to_pylist()]
    rejects_path = root / "rejects.jsonl"
    rejects = read_jsonl(rejects_path) if rejects_path.exists() else []
    return Dataset(device, root, manifest, rows, rejects, files)


def record_bytes(row: dict) -> int:
    """Bytes of the record's canonical JSON line, as the writer counted it (harness.record.record_bytes)."""
    return len(canonical_json(row).encode("utf-8")) + 1


def generated_text(row: dict) -> str:
    ir = row["ir"]
    return "".join(ir[k] or "" for k in CODE_FIELDS)


def _lines(text: str | None) -> int:
    return 0 if not text else text.count("\n") + (0 if text.endswith("\n") else 1)


#: context windows the report measures record lengths against (cl100k tokens of a whole record's text)
CONTEXTS = (4096, 8192, 16384, 32768)


def token_numbers(rows: list[dict]) -> tuple[dict, dict]:
    """Exact token statistics from every record's own ``tokens`` field (cl100k_base, counted when the record was
    made): totals, distributions, and the share of records that fit each context in :data:`CONTEXTS`."""
    py = np.asarray([r["tokens"]["python"] for r in rows], dtype=np.int64)
    code = np.asarray([r["tokens"]["code"] for r in rows], dtype=np.int64)
    total = np.asarray([r["tokens"]["total"] for r in rows], dtype=np.int64)
    fams = np.asarray([r["family"] for r in rows])
    per_family = {}
    for f in sorted(set(fams.tolist())):
        t = total[fams == f]
        per_family[f] = {"records": int(t.size), "p50": float(np.median(t)), "p95": float(np.percentile(t, 95)),
                         "max": int(t.max()), "total": int(t.sum()),
                         "fit": {str(c): int(np.count_nonzero(t <= c)) for c in CONTEXTS}}
    numbers = {
        "records": len(rows), "total": int(total.sum()), "python_total": int(py.sum()), "code_total": int(code.sum()),
        "python": dist(py), "code": dist(code), "pair": dist(total),
        "expansion": dist(code / np.maximum(py, 1)),
        "fit": {str(c): int(np.count_nonzero(total <= c)) for c in CONTEXTS},
        "per_family": per_family,
    }
    return numbers, {"pair_tokens": total, "python_tokens": py, "generated_tokens": code}


OVER_BUDGET = re.compile(r"^(\d+) cl100k tokens")


def budget_numbers(tokens: dict, token_series: dict, families: np.ndarray, rejects: list[dict],
                   device: str) -> tuple[dict, dict]:
    """Lengths before the token budget: the records plus the kernels rejected ``over_budget`` (their length is
    in the reject's message), per family."""
    over_f, over_t = [], []
    for rej in rejects:
        m = OVER_BUDGET.match(rej.get("message", "")) if rej.get("reason") == "over_budget" else None
        if m and rej.get("device", device) == device:
            over_f.append(rej["family"])
            over_t.append(int(m.group(1)))
    over_f, over_t = np.asarray(over_f, dtype=object), np.asarray(over_t, dtype=np.int64)
    kept = token_series["pair_tokens"]
    per_family = {}
    for f in sorted(set(families.tolist()) | set(over_f.tolist())):
        before = np.concatenate([kept[families == f], over_t[over_f == f]])
        per_family[f] = {"generated": int(before.size), "over_budget": int(np.count_nonzero(over_f == f)),
                         "p50_before": float(np.median(before)), "p95_before": float(np.percentile(before, 95)),
                         "p50_after": tokens["per_family"].get(f, {}).get("p50")}
    numbers = {"over_budget": int(over_t.size), "generated": int(kept.size + over_t.size),
               "per_family": per_family}
    return numbers, {"over_budget_tokens": over_t, "over_budget_family": over_f}


def adjoint_numbers(rows: list[dict]) -> dict:
    """Bytes of adjoint code: each record's backward entry plus the ``adj_*`` helper functions in its support,
    against the bytes of its JSON line (what the 200 MB target counts)."""
    from harness.extract import split_blocks

    backward = helpers = 0
    for r in rows:
        backward += len((r["ir"]["backward"] or "").encode("utf-8"))
        for block in split_blocks(r["ir"]["support"] or ""):
            if ADJ_DEF.search(block.signature):
                helpers += len(block.text.encode("utf-8"))
    total = sum(record_bytes(r) for r in rows)
    return {"backward_bytes": backward, "adjoint_helper_bytes": helpers, "record_bytes": total,
            "share": (backward + helpers) / total if total else 0.0,
            "backward_share": backward / total if total else 0.0}


ADJ_DEF = re.compile(r"\badj_\w+\s*\(")


def cost_numbers(manifest: dict, tokens: dict, records: int) -> dict:
    """Core-seconds per record and per million tokens of the logged runs that wrote chunks: wall time x worker
    processes (each worker holds one core for the whole run), divided by the records those runs wrote; per
    million tokens through the dataset's mean tokens per record."""
    runs = [r for r in manifest.get("runs") or [] if (r.get("chunks") or 0) > 0 and (r.get("wall_seconds") or 0) > 0]
    core = sum(float(r["wall_seconds"]) * int(r.get("workers") or 1) for r in runs)
    written = sum(int(r.get("records") or 0) for r in runs)
    busy = sum(sum((r.get("stage_seconds") or {}).values()) for r in runs)
    if not core or not written or not records:
        return {"runs": len(runs), "core_seconds": None, "per_record": None, "per_mtok": None}
    per_record = core / written
    mean_tokens = tokens["total"] / records
    return {"runs": len(runs), "core_seconds": core, "records_written": written, "busy_seconds": busy,
            "per_record": per_record, "per_mtok": per_record / mean_tokens * 1e6,
            "workers": max(int(r.get("workers") or 1) for r in runs), "wall_seconds": sum(r["wall_seconds"] for r in runs)}


RESOURCE_KEYS = ("registers", "spill_store_bytes", "spill_load_bytes", "stack_frame_bytes", "shared_bytes",
                 "local_bytes", "constant_bytes")


def resource_numbers(rows: list[dict]) -> dict:
    """CUDA records' machine-code resources (``ir.resources``, ptxas and cuobjdump on the record's own SASS) per
    family and entry; empty for a dataset without them."""
    per: dict = defaultdict(lambda: {"forward": defaultdict(list), "backward": defaultdict(list)})
    with_res = 0
    for r in rows:
        res = r["ir"].get("resources")
        if not res:
            continue
        with_res += 1
        for entry in ("forward", "backward"):
            for k in RESOURCE_KEYS:
                if res.get(entry):
                    per[r["family"]][entry][k].append(res[entry][k])
                    per["_all"][entry][k].append(res[entry][k])

    def summary(d: dict) -> dict:
        regs = np.asarray(d["registers"])
        spill = np.asarray(d["spill_store_bytes"]) + np.asarray(d["spill_load_bytes"])
        return {"entries": int(regs.size), "registers_p50": float(np.median(regs)),
                "registers_p95": float(np.percentile(regs, 95)), "registers_max": int(regs.max()),
                "spilling": int(np.count_nonzero(spill)), "stack": int(np.count_nonzero(d["stack_frame_bytes"])),
                "local": int(np.count_nonzero(d["local_bytes"])), "shared": int(np.count_nonzero(d["shared_bytes"])),
                "shared_max": int(max(d["shared_bytes"]))}
    fams = {f: {e: summary(v) for e, v in kinds.items() if v["registers"]} for f, kinds in per.items()}
    registers = {f: {e: per[f][e]["registers"] for e in ("forward", "backward")} for f in per if f != "_all"}
    return {"records": with_res, "all": fams.pop("_all", {}), "per_family": dict(sorted(fams.items())),
            "series": registers}


#: an absolute tolerance above this is wider than most outputs' values: a check a wrong output hardly fails
LOOSE_ATOL = 1.0


def verification_numbers(rows: list[dict]) -> tuple[dict, dict]:
    v = [r["verification"] for r in rows]
    rel = np.asarray([x["max_rel_err"] for x in v], float)
    abs_ = np.asarray([x["max_abs_err"] for x in v], float)
    masked = np.asarray([x["elements_masked"] / max(1, x["elements_masked"] + x["elements_compared"]) for x in v])
    exact = [x for x in v if x["rtol"] == 0 and x["atol"] == 0]
    tol = Counter(f"rtol={x['rtol']:g}, atol={x['atol']:g}" for x in v)
    float_tol = Counter(f"rtol={x['rtol']:g}, atol={x['atol']:g}" for x in v if x["rtol"] or x["atol"])
    grad_by_family = Counter(r["family"] for r in rows if r["verification"]["gradient_checked"])
    by_dtype = {}
    dtypes = [str(r["features"].get("dtype", "other")) for r in rows]
    for dt in sorted(set(dtypes)):
        sel = np.asarray([d == dt for d in dtypes])
        r_ = rel[sel]
        nz = r_[r_ > 0]
        by_dtype[dt] = {"records": int(sel.sum()), "zero_error": int(np.count_nonzero(abs_[sel] == 0)),
                        "max_rel_err_nonzero_p50": float(np.median(nz)) if nz.size else 0.0,
                        "max_rel_err_p95": float(np.percentile(r_, 95)), "max_rel_err_max": float(r_.max())}
    numbers = {
        "by_dtype": by_dtype,
        "numerics_device": dict(sorted(Counter(x["numerics_device"] for x in v).items())),
        "input_sets": dict(sorted((str(k), n) for k, n in Counter(x["input_sets"] for x in v).items())),
        "elements_compared": int(sum(x["elements_compared"] for x in v)),
        "elements_masked": int(sum(x["elements_masked"] for x in v)),
        "elements_compared_per_record": dist(x["elements_compared"] for x in v),
        "max_rel_err": dist(rel),
        "max_rel_err_nonzero": dist(rel[rel > 0]),
        "max_abs_err": dist(abs_),
        "records_error_zero": int(np.count_nonzero(abs_ == 0)),
        "records_exact_tolerance": len(exact),
        "masked_fraction": dist(masked),
        "records_with_masked": int(np.count_nonzero(masked > 0)),
        "gradient_checked": int(sum(1 for x in v if x["gradient_checked"])),
        "gradient_checked_by_family": dict(sorted(grad_by_family.items())),
        "loose_tolerance": {
            "atol_over": LOOSE_ATOL,
            "records": sum(1 for x in v if x["atol"] > LOOSE_ATOL),
            "atol_max": max((x["atol"] for x in v), default=0.0),
            "by_generator": dict(sorted(Counter(r["provenance"]["generator"] for r in rows
                                                if r["verification"]["atol"] > LOOSE_ATOL).items())),
        },
        "tolerances": dict(tol.most_common()),
        "float_tolerances": dict(float_tol.most_common()),
    }
    return numbers, {"max_rel_err": rel, "max_abs_err": abs_, "masked_fraction": masked}


def reject_numbers(ds: Dataset, chunk_sizes: dict[str, int] | None = None) -> dict:
    """Rejects by reason and family, and the acceptance rate over the chunks the dataset is made of.

    Every kernel index of a chunk ends as a record or as a reject, so over the chunks that contributed records,
    ``attempted = chunk size x chunks`` and ``accepted = attempted - rejects of those chunks`` (exact, and
    independent of how many production runs were recorded). Chunks finished after the size target are left out.
    """
    failed = [r for r in ds.rejects if r["reason"] not in SELECTION_DROPS]
    by_family: dict[str, Counter] = defaultdict(Counter)
    for r in failed:
        by_family[r["family"]][r["reason"]] += 1
    kept_chunks = {(r["family"], r["provenance"]["chunk"]) for r in ds.rows}
    sizes = dict(chunk_sizes or {})
    for fam, chunk in kept_chunks:   # a family no longer defined: the largest index seen in its chunks
        if fam not in sizes:
            seen = [r["provenance"]["index"] for r in ds.rows if r["family"] == fam] + \
                   [r["index"] for r in ds.rejects if r["family"] == fam]
            sizes[fam] = max(seen) + 1
    attempted = sum(sizes[fam] for fam, _ in kept_chunks)
    failed_kept = sum(1 for r in failed if (r["family"], r["chunk"]) in kept_chunks)
    examples = {}
    for r in failed:
        examples.setdefault(r["reason"], {"family": r["family"], "seed": r["seed"], "message": r["message"][:240]})
    return {
        "failed": len(failed),
        "by_reason": dict(Counter(r["reason"] for r in failed).most_common()),
        "by_family": {f: dict(c.most_common()) for f, c in sorted(by_family.items())},
        "examples": dict(sorted(examples.items())),
        "dedup_drops": dict(sorted(Counter(r["reason"] for r in ds.rejects if r["reason"] in SELECTION_DROPS).items())),
        "chunks": len(kept_chunks),
        "attempted": attempted,
        "failed_in_dataset_chunks": failed_kept,
        "written": attempted - failed_kept,
        "acceptance": (attempted - failed_kept) / attempted if attempted else None,
    }


#: the stages a production run times (``stage_seconds`` of ``work/runs.jsonl``), in pipeline order. Runs logged
#: before the harness split the compile stage record one ``compile`` (Clang and NVRTC together); both are read.
RUN_STAGES = ("generate", "define", "compile", "compile_cpu", "codegen_cuda", "compile_cuda", "assemble_cuda",
              "verify", "record", "rebuild_cpu")
COMPILE_STAGES = frozenset({"compile", "compile_cpu", "compile_cuda", "assemble_cuda"})
STAGE_LABELS = {"generate": "generate", "define": "define (exec into a Warp module)",
                "compile": "compile (Clang and NVRTC, not split)", "compile_cpu": "compile_cpu (Clang)",
                "codegen_cuda": "codegen_cuda (Warp's CUDA source)", "compile_cuda": "compile_cuda (NVRTC)",
                "assemble_cuda": "assemble_cuda (ptxas to SASS)", "verify": "verify", "record": "record",
                "rebuild_cpu": "rebuild_cpu (g++ on the records alone)"}


def stage_order(name: str) -> tuple:
    return (RUN_STAGES.index(name) if name in RUN_STAGES else len(RUN_STAGES), name)


def production_numbers(manifest: dict, records_kept: int = 0) -> dict:
    """What the logged production runs (``manifest.json`` ``runs``, from ``work/runs.jsonl``) measured.

    Only runs that finished at least one chunk in measurable wall time count towards rates (a rerun that finds
    every chunk written logs a run with no chunks). Nothing is estimated: where no run measured something the
    value is ``None`` and the report says so. ``log_covers_dataset`` is False when the logged runs wrote fewer
    records than the dataset holds, i.e. some of the runs that made it were not logged.
    """
    runs = [r for r in (manifest.get("runs") or []) if isinstance(r, dict)]
    measured = [r for r in runs if int(r.get("chunks") or 0) > 0 and float(r.get("wall_seconds") or 0) > 0]
    stages: Counter = Counter()
    timed = 0
    for run in measured:
        st = {k: float(v) for k, v in (run.get("stage_seconds") or {}).items() if v}
        if st:
            timed += 1
            stages.update(st)
    wall = sum(float(r["wall_seconds"]) for r in measured)
    records = sum(int(r.get("records") or 0) for r in measured)
    size = sum(int(r.get("bytes") or 0) for r in measured)
    workers = max((int(r.get("workers") or 1) for r in measured), default=None)
    total_stage = sum(stages.values())
    rps = records / wall if wall and records else None
    names = set(stages)
    naming = ("none" if not names & COMPILE_STAGES else "split" if "compile" not in names else
              "combined" if not names & {"compile_cpu", "compile_cuda"} else "mixed")
    written_all = sum(int(r.get("records") or 0) for r in runs)
    return {
        "runs": len(runs),
        "measured_runs": len(measured),
        "idle_runs": sum(1 for r in runs if int(r.get("chunks") or 0) == 0),
        "timed_runs": timed,
        "workers": workers,
        "wall_seconds": wall,
        "chunks": sum(int(r.get("chunks") or 0) for r in runs),
        "records_written": written_all,
        "bytes_written": sum(int(r.get("bytes") or 0) for r in runs),
        "log_covers_dataset": written_all >= records_kept,
        "records_per_second": rps,
        "mb_per_second": size / 1e6 / wall if wall and size else None,
        "records_per_second_per_worker": rps / workers if rps and workers else None,
        "manifest_records_per_second": manifest.get("records_per_second"),
        "stage_seconds": {k: round(stages[k], 1) for k in sorted(stages, key=stage_order)},
        "stage_share": {k: stages[k] / total_stage for k in sorted(stages, key=stage_order)} if total_stage else {},
        "compile_share": (sum(v for k, v in stages.items() if k in COMPILE_STAGES) / total_stage
                          if total_stage else None),
        "stage_naming": naming,
        "started": [r.get("started") for r in measured],
    }


def coverage_numbers(rows: list[dict], language: str) -> dict:
    from warp._src.context import builtin_functions  # the builtin table of the installed Warp

    constructs = {}
    for label, pattern in PY_CONSTRUCTS:
        rx = re.compile(pattern, re.M)
        constructs[label] = sum(1 for r in rows if rx.search(r["python_source"]))
    code = {}
    texts = [generated_text(r) for r in rows]
    for label, cpp, cuda in CODE_PATTERNS:
        pattern = cpp if language == "cpp" else cuda
        if pattern is None:
            continue
        rx = re.compile(pattern, re.M)
        code[label] = sum(1 for t in texts if rx.search(t))
    calls: Counter = Counter()
    for r in rows:
        calls.update(set(body_calls(r["python_source"])))
    builtins = {k: n for k, n in calls.items() if k in builtin_functions}
    per_family_builtins = defaultdict(set)
    for r in rows:
        per_family_builtins[r["family"]].update(k for k in body_calls(r["python_source"]) if k in builtin_functions)
    arg_dtypes: Counter = Counter()
    for r in rows:
        arg_dtypes.update({a["dtype"] for a in r["args"]})
    return {
        "constructs": constructs,
        "code_patterns": code,
        "launch_ndim": dict(sorted((str(k), n) for k, n in Counter(len(r["launch"]["dim"]) for r in rows).items())),
        "tiled": sum(1 for r in rows if r["launch"]["tiled"]),
        "block_dims": dict(sorted((str(k), n) for k, n in Counter(r["launch"]["block_dim"] for r in rows).items())),
        "feature_dtype": dict(Counter(str(r["features"].get("dtype", "n/a")) for r in rows).most_common()),
        "arg_dtypes": dict(arg_dtypes.most_common()),
        "distinct_builtins": len(builtins),
        "builtin_table_size": len(builtin_functions),
        "top_builtins": dict(Counter(builtins).most_common(25)),
        "builtins_per_family": {f: len(s) for f, s in sorted(per_family_builtins.items())},
        "args_per_kernel": dist(len(r["args"]) for r in rows),
        "with_helpers": sum(1 for r in rows if "@wp.func" in r["python_source"]),
    }


ENTRY = {"cpu": re.compile(r"^static void (\w+)_cpu_kernel_forward\(", re.M),
         "cuda": re.compile(r"__global__ void (?:\w+\(\w+\) )?(\w+)_cuda_kernel_forward\(", re.M)}
HASH_SUFFIX = re.compile(r"_[0-9a-f]{8}$")


def entry_name_numbers(rows: list[dict], device: str) -> dict:
    """How the generated forward entry point is named relative to the record's ``kernel_name``: ``plain``
    (``<kernel_name>_cpu_kernel_forward``, Warp's ``strip_hash`` module option), ``hash_suffix``
    (``<kernel_name>_<8 hex>_cpu_kernel_forward``, Warp's default) or ``other``."""
    counts = Counter()
    example = {}
    for r in rows:
        m = ENTRY[device].search(r["ir"]["forward"] or "")
        mangled = m.group(1) if m else None
        kind = ("plain" if mangled == r["kernel_name"] else
                "hash_suffix" if mangled and mangled.startswith(r["kernel_name"])
                and HASH_SUFFIX.fullmatch(mangled[len(r["kernel_name"]):]) else "other")
        counts[kind] += 1
        example.setdefault(kind, f"{mangled}_{device}_kernel_forward" if mangled else None)
    return {"plain": counts["plain"], "hash_suffix": counts["hash_suffix"], "other": counts["other"],
            "examples": dict(sorted(example.items()))}


def size_numbers(rows: list[dict]) -> tuple[dict, dict]:
    sizes = [record_bytes(r) for r in rows]
    py = [len(r["python_source"]) for r in rows]
    fields = {k: [len(r["ir"][k] or "") for r in rows] for k in CODE_FIELDS}
    numbers = {
        "record_bytes": dist(sizes),
        "bytes_recomputed": int(sum(sizes)),
        "python_chars": dist(py),
        "python_lines": dist(_lines(r["python_source"]) for r in rows),
        **{f"{k}_chars": dist(v) for k, v in fields.items()},
        "generated_lines": dist(sum(_lines(r["ir"][k]) for k in CODE_FIELDS) for r in rows),
        "with_backward": sum(1 for r in rows if r["ir"]["backward"]),
        "with_ptx": sum(1 for r in rows if r["ir"].get("ptx")),
        "field_share": {  # share of the record's bytes taken by each text field
            "python_source": sum(py) / max(1, sum(sizes)),
            **{k: sum(v) / max(1, sum(sizes)) for k, v in fields.items()},
        },
    }
    return numbers, {"record_bytes": np.asarray(sizes), "python_chars": np.asarray(py),
                     "generated_chars": np.asarray([sum(x) for x in zip(*fields.values())])}


def family_numbers(rows: list[dict]) -> dict:
    fams: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        fams[r["family"]].append(r)
    out = {}
    for name, rs in sorted(fams.items()):
        ver = [r["verification"] for r in rs]
        out[name] = {
            "records": len(rs),
            "share": len(rs) / len(rows),
            "record_bytes_mean": float(np.mean([record_bytes(r) for r in rs])),
            "python_lines_p50": float(np.median([_lines(r["python_source"]) for r in rs])),
            "generated_lines_p50": float(np.median([sum(_lines(r["ir"][k]) for k in CODE_FIELDS) for r in rs])),
            "gradient_checked": sum(1 for x in ver if x["gradient_checked"]),
            "max_rel_err_p95": float(np.percentile([x["max_rel_err"] for x in ver], 95)),
            "masked_mean": float(np.mean([x["elements_masked"] / max(1, x["elements_masked"] + x["elements_compared"])
                                          for x in ver])),
            "exact_compare": sum(1 for x in ver if x["rtol"] == 0 and x["atol"] == 0),
            "generators": sorted({r["provenance"]["generator"] for r in rs}),
        }
    return out


def quality_numbers(ds: Dataset, run_validate: bool) -> dict:
    from production.hygiene import summarize
    from production.neardup import near_duplicate_numbers

    ids = Counter(r["id"] for r in ds.rows)
    structs = Counter(r["structural_hash"] for r in ds.rows)
    splits_by_file = Counter()
    for shard in ds.manifest["shards"]:
        splits_by_file[shard["split"]] += shard["records"]
    dead = Counter(r["family"] for r in ds.rows if unused_helpers(r))
    out = {
        "records_with_unused_helpers": sum(dead.values()),
        "unused_helpers_by_family": dict(dead.most_common()),
        "records_with_helpers": sum(1 for r in ds.rows if FUNC_DEF.search(r["python_source"])),
        "duplicate_ids": sum(1 for n in ids.values() if n > 1),
        "duplicate_structures": sum(1 for n in structs.values() if n > 1),
        "near_duplicates": near_duplicate_numbers(ds.rows),
        "hygiene": summarize({"all": [r["python_source"] for r in ds.rows]})["overall"],
        "splits": dict(splits_by_file),
        "validated": run_validate,
        "validate_problems": None,
        "validate_examples": [],
    }
    if run_validate:
        from production.validate import validate

        problems = validate(ds.root)
        out["validate_problems"] = len(problems)
        out["validate_examples"] = problems[:5]
    return out


def dataset_numbers(ds: Dataset, run_validate: bool = True,
                    chunk_sizes: dict[str, int] | None = None) -> tuple[dict, dict]:
    m = ds.manifest
    rows = ds.rows
    language = "cpp" if ds.device == "cpu" else "cuda"
    sizes, size_series = size_numbers(rows)
    tokens, token_series = token_numbers(rows)
    families = np.asarray([r["family"] for r in rows])
    tokens["budget"], budget_series = budget_numbers(tokens, token_series, families, ds.rejects, ds.device)
    resources = resource_numbers(rows)
    verification, ver_series = verification_numbers(rows)
    compressed = sum(p.stat().st_size for p in ds.parquet_files)
    numbers = {
        "dataset": ds.root.name,
        "device": ds.device,
        "language": language,
        "path": str(ds.root),
        "records": len(rows),
        "manifest_records": m["records"],
        "bytes_raw": m["bytes_raw"],
        "bytes_compressed": compressed,
        "compression_ratio": m["bytes_raw"] / compressed if compressed else None,
        "target_bytes": m.get("target_bytes"),
        "parquet_files": len(ds.parquet_files),
        "per_split": m.get("per_split", {}),
        "per_family_manifest": m.get("per_family", {}),
        "arch": m.get("arch"),
        "tools": m.get("tools", {}),
        "factory_seed": m.get("factory_seed"),
        "dropped": m.get("dropped", {}),
        "optimization_levels": dict(sorted((str(k), n) for k, n in
                                           Counter(r["provenance"]["optimization_level"] for r in rows).items())),
        "generator_versions": sorted({r["provenance"]["generator"] for r in rows}),
        "families": family_numbers(rows),
        "sizes": sizes,
        "tokens": tokens,
        "verification": verification,
        "rejects": reject_numbers(ds, chunk_sizes),
        "production": production_numbers(m, len(rows)),
        "cost": cost_numbers(m, tokens, len(rows)),
        "adjoint": adjoint_numbers(rows),
        "resources": {k: v for k, v in resources.items() if k != "series"},
        "stages": dict(Counter(" -> ".join(r["verification"].get("stages") or []) or "unrecorded" for r in rows)),
        "block_dims": dict(sorted((str(k), n) for k, n in Counter(r["launch"]["block_dim"] for r in rows).items())),
        "tile_matmul": sum(1 for r in rows if "wp.tile_matmul(" in r["python_source"]),
        "entry_names": entry_name_numbers(rows, ds.device),
        "tool_versions": {k: dict(sorted(Counter(str(r["provenance"].get(k)) for r in rows).items()))
                          for k in ("warp", "cuda_toolkit", "numpy", "python")},
        "coverage": coverage_numbers(rows, language),
        "quality": quality_numbers(ds, run_validate),
    }
    series = {**size_series, **token_series, **budget_series, **ver_series, "family": families,
              "registers": resources["series"]}
    return numbers, series


def statements(code: str | None) -> list[str]:
    """The statements of a generated function from its ``// forward`` marker on: comments, braces and the final
    ``return;``/``continue;`` (CPU vs CUDA grid-stride loop) dropped, whitespace stripped."""
    if not code:
        return []
    lines = code.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "// forward"), None)
    if start is None:
        return []
    return [s for s in (line.strip() for line in lines[start + 1:])
            if s and not s.startswith("//") and s not in ("}", "{", "return;", "continue;")]


def program_key(row: dict) -> tuple[str, int]:
    """What makes a record's program the same in both datasets: its family and seed (kernel names carry a short
    hash and may repeat)."""
    return row["family"], row["provenance"]["seed"]


def overlap_numbers(datasets: dict[str, Dataset]) -> dict:
    """How the two datasets relate: the same programs compiled for two backends, in the same splits, and how
    much of their generated statements the two backends share."""
    if not all(d in datasets for d in DEVICES):
        return {}
    cpu = {program_key(r): r for r in datasets["cpu"].rows}
    cuda = {program_key(r): r for r in datasets["cuda"].rows}
    both = sorted(set(cpu) & set(cuda))
    same_source = sum(1 for k in both if cpu[k]["python_source"] == cuda[k]["python_source"])
    same_structure = sum(1 for k in both if cpu[k]["structural_hash"] == cuda[k]["structural_hash"])
    same_forward = sum(1 for k in both if statements(cpu[k]["ir"]["forward"]) == statements(cuda[k]["ir"]["forward"]))
    same_backward = sum(1 for k in both
                        if statements(cpu[k]["ir"]["backward"]) == statements(cuda[k]["ir"]["backward"]))
    differ = Counter(cpu[k]["family"] for k in both
                     if statements(cpu[k]["ir"]["forward"]) != statements(cuda[k]["ir"]["forward"]))
    return {"cpu_kernels": len(cpu), "cuda_kernels": len(cuda), "in_both": len(both),
            "in_both_same_source": same_source, "in_both_same_structural_hash": same_structure,
            "forward_statements_identical": same_forward, "backward_statements_identical": same_backward,
            "forward_statements_differ_by_family": dict(differ.most_common()),
            "cpu_only": len(set(cpu) - set(cuda)), "cuda_only": len(set(cuda) - set(cpu)),
            "distinct_programs": len({r["structural_hash"] for ds in datasets.values() for r in ds.rows})}


# -- generators -------------------------------------------------------------------------------------------


def family_catalog() -> dict:
    """Description, coverage tags, weight and chunk size of every family the project defines now (empty when the
    families cannot be loaded: the report then describes families from the data alone)."""
    from harness.registry import all_families

    try:
        families = all_families()
    except Exception as exc:  # noqa: BLE001 - a broken family file must not stop the report
        print(f"[report] could not load kernels/ families ({type(exc).__name__}: {exc})", flush=True)
        return {}
    out = {}
    for name, f in families.items():
        out[name] = {"description": f.description, "covers": list(f.covers), "weight": f.weight,
                     "chunk_size": f.chunk_size, "version": f.version,
                     "generators": sorted(f.generators)}
    return out
