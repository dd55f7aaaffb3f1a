"""The report's tables, each a function of the numbers computed by :mod:`report.stats`."""

from __future__ import annotations

import numpy as np

from .fmt import DEVICE_NAMES, figure, mb, n, pct, plural, secs, sig, table

REASONS = {
    "generator_error": "the generator or input sampler raised",
    "compile_error": "code generation, Clang or NVRTC failed (isolated by bisection)",
    "reference_error": "the NumPy reference raised or returned the wrong outputs/shapes",
    "nonfinite": "an output was NaN or infinite",
    "mismatch": "an output element was outside the tolerance",
    "ill_conditioned": "more than half of the output elements were ill-conditioned (masked)",
    "degenerate_constant": "an output was the same constant on every input set",
    "degenerate_copy": "an output was a copy of an input",
    "degenerate_dead_inputs": "the outputs ignored at least half of the inputs",
    "gradient_mismatch": "Warp's adjoint disagreed with finite differences of the reference",
    "record_error": "code extraction or schema validation of the record failed",
    "duplicate": "the same program earlier in the same chunk",
    "duplicate_exact": "dedup: same content as an earlier record",
    "duplicate_structural": "dedup: same structure as an earlier record",
}


def _both(numbers: dict, fn) -> list[str]:
    return [fn(numbers["datasets"][d]) for d in ("cpu", "cuda")]


def totals_table(nums: dict, catalog: dict) -> str:
    rows = []
    for d in ("cpu", "cuda"):
        x = nums["datasets"][d]
        split = x["per_split"]
        rows.append([f"`{x['dataset']}` ({DEVICE_NAMES[d]})", n(x["records"]), mb(x["bytes_raw"]),
                     mb(x["bytes_compressed"]), n(x["parquet_files"]),
                     " / ".join(n(split.get(s, 0)) for s in ("train", "validation", "test")),
                     n(len(x["families"]))])
    return table(["dataset", "records", "JSON MB", "Parquet MB", "Parquet files", "train / validation / test",
                  "families"], rows)


def family_balance_table(nums: dict) -> str:
    cpu, cuda = nums["datasets"]["cpu"], nums["datasets"]["cuda"]
    fams = sorted(set(cpu["families"]) | set(cuda["families"]))
    rows = []
    for f in fams:
        a, b = cpu["families"].get(f, {}), cuda["families"].get(f, {})
        rows.append([f"`{f}`", n(a.get("records", 0)), pct(a.get("records", 0), cpu["records"]),
                     n(b.get("records", 0)), pct(b.get("records", 0), cuda["records"]),
                     n(a.get("gradient_checked", 0)), n(b.get("gradient_checked", 0))])
    rows.append(["**total**", n(cpu["records"]), "100.0%", n(cuda["records"]), "100.0%",
                 n(cpu["verification"]["gradient_checked"]), n(cuda["verification"]["gradient_checked"])])
    return table(["family", "CPU records", "CPU share", "CUDA records", "CUDA share", "CPU gradient-checked",
                  "CUDA gradient-checked"], rows)


def families_table(nums: dict, catalog: dict) -> str:
    present = set(nums["datasets"]["cpu"]["families"]) | set(nums["datasets"]["cuda"]["families"])
    rows = []
    for name in sorted(set(catalog) | present):
        info = catalog.get(name)
        if info:
            desc = info["description"].split(":", 1)[-1].strip() if info["description"].startswith(name) \
                else info["description"]
            covers = ", ".join(info["covers"]) or "-"
        else:
            desc, covers = "(family no longer defined in `kernels/`)", "-"
        if name not in present:
            desc += " *(no records in these datasets: the size target was reached before its first chunk)*"
        rows.append([f"`{name}`", desc.replace("|", "\\|"), covers.replace("|", "\\|")])
    return table(["family", "what its generator writes", "covers"], rows, "lll")


def constructs_table(nums: dict) -> str:
    cpu, cuda = nums["datasets"]["cpu"], nums["datasets"]["cuda"]
    rows = []
    for label, c in cpu["coverage"]["constructs"].items():
        k = cuda["coverage"]["constructs"].get(label, 0)
        rows.append([label, n(c), pct(c, cpu["records"]), n(k), pct(k, cuda["records"])])
    return table(["construct in the Python source", "CPU records", "CPU %", "CUDA records", "CUDA %"], rows)


def code_patterns_table(nums: dict) -> str:
    from .stats import CODE_PATTERNS

    cpu, cuda = nums["datasets"]["cpu"], nums["datasets"]["cuda"]
    rows = []
    for label, cpp_rx, cuda_rx in CODE_PATTERNS:
        a = cpu["coverage"]["code_patterns"].get(label)
        b = cuda["coverage"]["code_patterns"].get(label)
        rows.append([label, "n/a" if cpp_rx is None else f"{n(a)} ({pct(a, cpu['records'])})",
                     "n/a" if cuda_rx is None else f"{n(b)} ({pct(b, cuda['records'])})"])
    return table(["pattern in the generated code", "CPU records", "CUDA records"], rows)


NOT_MEASURED = "not measured"


def production_table(nums: dict) -> str:
    from .stats import STAGE_LABELS

    def rate(v):
        return sig(v) if v else NOT_MEASURED

    def col(x):
        p, r = x["production"], x["rejects"]
        runs = n(p["runs"]) + (f" ({n(p['measured_runs'])} wrote chunks)" if p["measured_runs"] != p["runs"] else "")
        share = ", ".join(f"{STAGE_LABELS.get(k, k)} {100 * v:.0f}%"
                          for k, v in sorted(p["stage_share"].items(), key=lambda kv: -kv[1]))
        return [runs, n(p["workers"]) if p["workers"] else "-",
                secs(p["wall_seconds"]) if p["wall_seconds"] else NOT_MEASURED, n(p["chunks"]),
                n(p["records_written"]), n(x["records"]), rate(p["records_per_second"]), rate(p["mb_per_second"]),
                rate(p["records_per_second_per_worker"]), share or "not logged",
                n(r["failed"]), f"{n(r['written'])} of {n(r['attempted'])} ({100 * r['acceptance']:.1f}%)"
                if r["acceptance"] is not None else "-",
                f"{mb(x['bytes_raw'])} of {mb(x['target_bytes'])}" if x.get("target_bytes") else mb(x["bytes_raw"])]
    labels = ["production runs logged (`runs` in manifest.json)", "worker processes",
              "wall time (sum over runs that wrote chunks)", "chunks finished by the logged runs",
              "records written by the logged runs (before dedup and cut)", "records kept in the dataset",
              "records written per second", "MB of records written per second", "records per second per worker",
              "worker time by stage", "kernels rejected (all finished chunks)",
              "kernels accepted in the chunks the dataset is made of",
              "dataset MB of target MB"]
    cpu, cuda = _both(nums, col)
    return table(["production", "`cpu_code`", "`cuda_code`"], [[lab, a, b] for lab, a, b in zip(labels, cpu, cuda)])


def rejects_table(nums: dict) -> str:
    cpu, cuda = nums["datasets"]["cpu"]["rejects"], nums["datasets"]["cuda"]["rejects"]
    reasons = list(dict.fromkeys(list(cpu["by_reason"]) + list(cuda["by_reason"])))
    drops = list(dict.fromkeys(list(cpu["dedup_drops"]) + list(cuda["dedup_drops"])))
    rows = [[f"`{r}`", REASONS.get(r, r), n(cpu["by_reason"].get(r, 0)), n(cuda["by_reason"].get(r, 0))]
            for r in reasons]
    rows += [[f"`{r}`", REASONS.get(r, r), n(cpu["dedup_drops"].get(r, 0)), n(cuda["dedup_drops"].get(r, 0))]
             for r in drops]
    if not rows:
        return "No kernel was rejected and no record was dropped as a duplicate."
    return table(["reason (rejects.jsonl)", "meaning", "`cpu_code`", "`cuda_code`"], rows, "llrr")


def quality_table(nums: dict) -> str:
    def col(x):
        q, s = x["quality"], x["sizes"]
        validated = ("not run (`--no-validate`)" if not q["validated"] else
                     ("0 problems" if q["validate_problems"] == 0 else f"{n(q['validate_problems'])} problems"))
        target = x.get("target_bytes")
        nd = q["near_duplicates"]
        near = (f"{n(nd['with_neighbour_ge_0.8'])} ({pct(nd['with_neighbour_ge_0.8'], x['records'])}); "
                f"{n(nd['with_neighbour_ge_0.9'])} at 0.9")
        return [validated, n(q["duplicate_ids"]), n(q["duplicate_structures"]), near,
                "yes" if s["bytes_recomputed"] == x["bytes_raw"] else
                f"no ({n(s['bytes_recomputed'])} vs {n(x['bytes_raw'])})",
                "yes" if x["records"] == x["manifest_records"] else "no",
                f"{100 * x['bytes_raw'] / target:.2f}%" if target else "n/a",
                f"{n(s['with_backward'])} ({pct(s['with_backward'], x['records'])})",
                ", ".join(f"O{k}: {n(v)}" for k, v in sorted(x["optimization_levels"].items())),
                f"{x['compression_ratio']:.1f}x",
                f"{n(q['records_with_unused_helpers'])} of {n(q['records_with_helpers'])}"]
    labels = ["`wkf-validate` (schema, shard sha256, splits, counts, bytes)", "duplicate ids",
              "duplicate structural hashes",
              "near-duplicates: records whose closest other program shares >= 80% of its token 5-grams (Jaccard)",
              "JSON bytes recomputed from Parquet = manifest",
              "Parquet rows = manifest records", "size / target", "records with backward code",
              "records by optimisation level", "JSON bytes / Parquet bytes",
              "records defining a `@wp.func` the kernel never calls (of records defining one)"]
    cpu, cuda = _both(nums, col)
    return table(["check", "`cpu_code`", "`cuda_code`"], [[lab, a, b] for lab, a, b in zip(labels, cpu, cuda)])


def sizes_table(nums: dict) -> str:
    rows = []
    fields = [("record_bytes", "record (JSON bytes)"), ("python_chars", "Python source (chars)"),
              ("python_lines", "Python source (lines)"), ("forward_chars", "forward code (chars)"),
              ("backward_chars", "backward code (chars)"), ("support_chars", "support code (chars)"),
              ("generated_lines", "generated code, all three (lines)")]
    for key, label in fields:
        a, b = nums["datasets"]["cpu"]["sizes"][key], nums["datasets"]["cuda"]["sizes"][key]
        rows.append([label, n(a["p50"]), n(a["p95"]), n(a["max"]), n(b["p50"]), n(b["p95"]), n(b["max"])])
    return table(["per record", "CPU p50", "CPU p95", "CPU max", "CUDA p50", "CUDA p95", "CUDA max"], rows)


def tokens_table(nums: dict) -> str:
    rows = []
    for key, label in [("python", "Python source"), ("forward", "forward"), ("backward", "backward"),
                       ("support", "support"), ("generated", "generated code (all three)"),
                       ("pair", "pair (Python + generated)")]:
        a, b = nums["datasets"]["cpu"]["tokens"][key], nums["datasets"]["cuda"]["tokens"][key]
        rows.append([label, n(a["p50"]), n(a["mean"]), n(a["p95"]), n(b["p50"]), n(b["mean"]), n(b["p95"])])
    a, b = nums["datasets"]["cpu"]["tokens"]["expansion"], nums["datasets"]["cuda"]["tokens"]["expansion"]
    rows.append(["expansion (generated / Python tokens)", f"{a['p50']:.1f}x", f"{a['mean']:.1f}x",
                 f"{a['p95']:.1f}x", f"{b['p50']:.1f}x", f"{b['mean']:.1f}x", f"{b['p95']:.1f}x"])
    return table(["cl100k_base tokens per record", "CPU p50", "CPU mean", "CPU p95", "CUDA p50", "CUDA mean",
                  "CUDA p95"], rows)


def verification_table(nums: dict) -> str:
    def col(x):
        v = x["verification"]
        masked_total = v["elements_masked"] + v["elements_compared"]
        tol = next(iter(v["float_tolerances"].items()), ("none", 0))
        return [n(v["numerics_device"].get("cpu", 0)), n(v["numerics_device"].get("cuda", 0)),
                n(v["gradient_checked"]), "; ".join(f"{k} ({n(c)} records)" for k, c in v["input_sets"].items()),
                n(v["elements_compared"]), f"{n(v['elements_masked'])} ({pct(v['elements_masked'], masked_total, 2)})",
                n(v["records_with_masked"]), n(v["records_error_zero"]), n(v["records_exact_tolerance"]),
                f"{sig(v['max_rel_err']['p50'])} / {sig(v['max_rel_err']['p95'])} / {sig(v['max_rel_err']['max'])}",
                f"{sig(v['max_abs_err']['p50'])} / {sig(v['max_abs_err']['p95'])} / {sig(v['max_abs_err']['max'])}",
                f"{tol[0]} ({n(tol[1])} records)"]
    labels = ["records verified on the CPU build", "records verified on a GPU", "records whose gradient was checked",
              "input sets per kernel", "output elements compared", "output elements masked (share)",
              "records with any masked element", "records with zero error", "records compared exactly (integers)",
              "max relative error p50 / p95 / max", "max absolute error p50 / p95 / max", "most common float tolerance"]
    cpu, cuda = _both(nums, col)
    return table(["verification", "`cpu_code`", "`cuda_code`"], [[lab, a, b] for lab, a, b in zip(labels, cpu, cuda)])


def diversity_table(div: dict) -> str:
    rows = []
    for f, v in sorted(div["per_family"].items()):
        if "error" in v:
            rows.append([f"`{f}`", n(v["programs"]), f"generator failed: {v['error']}".replace("|", "\\|"), "-"])
        else:
            rows.append([f"`{f}`", n(v["programs"]), n(v["structural_unique"]),
                         f"{100 * v['structural_unique_fraction']:.1f}%"])
    o = div["overall"]
    if o:
        rows.append(["**all**", n(o["programs"]), n(o["structural_unique"]),
                     f"{100 * o['structural_unique_fraction']:.1f}%"])
    return table(["family", "programs generated", "structurally unique", "unique share"], rows)


def bench_table(bench: dict) -> str:
    from .figures import stage_key

    rows = []
    for group in sorted(bench["groups"], key=stage_key):
        for variant, g in bench["groups"][group].items():
            ms = [r["ms_per_kernel"] for r in bench["rows"]
                  if r["group"] == group and r["variant"] == variant and r["ms_per_kernel"]]
            speed = bench["speedups"].get(f"{group}:{variant}")
            span = (f"{sig(g['min_kernels_per_s'])} - {sig(g['max_kernels_per_s'])}" if g["families"] > 1 else "-")
            fams = sorted({r["family"] for r in bench["rows"] if r["group"] == group and r["variant"] == variant
                           and r["family"]})
            rows.append([group, variant, n(g["families"]) if g["families"] > 1 else f"`{fams[0]}`" if fams else "-",
                         sig(g["median_kernels_per_s"]), span, sig(float(np.median(ms))) if ms else "-",
                         f"{speed:.1f}x" if speed else "-"])
    return table(["stage", "variant", "families", "kernels/s (median)", "range over families", "ms/kernel (median)",
                  "batched speed-up"], rows, "lllrrrr")


def _bench_coverage(bench: dict) -> str:
    """Which families each benchmark group ran for, as the JSON says (``-k`` or ``WKF_BENCH_FAMILIES`` select)."""
    from .figures import stage_key

    fams = {g: sorted({r["family"] for r in bench["rows"] if r["group"] == g and r["family"]})
            for g in sorted(bench["groups"], key=stage_key)}
    everywhere = sorted({f for v in fams.values() for f in v})
    if len(everywhere) == 1:
        return f"Every stage ran for one family, `{everywhere[0]}`."
    parts = [f"`{g}` for {len(v)} families" if len(v) > 1 else f"`{g}` for `{v[0]}`" if v else f"`{g}`"
             for g, v in fams.items()]
    return "Stages ran for: " + ", ".join(parts) + "."


def bench_section(bench: dict | None, drawn: dict, chunk_sizes: str) -> str:
    from .stats import STAGE_LABELS

    if not bench:
        return ("No stage benchmark JSON was given to this build (`--bench`), so per-stage rates are not reported; "
                "run `pytest tests/bench -p no:xdist --benchmark-only --benchmark-json=report/bench/stages.json`.")
    m = bench["machine"]
    where = ", ".join(x for x in (f"{m['cores']} CPU cores" if m.get("cores") else "", m.get("cpu") or "",
                                  f"Python {m['python']}" if m.get("python") else "") if x)
    k = bench["K"]
    k_text = (f"with K = {k} kernels per chunk (production chunks hold {chunk_sizes})" if k != "(not recorded)" else
              f"(the JSON records no chunk size K; production chunks hold {chunk_sizes})")
    naive = any(r["variant"].startswith("naive") for r in bench["rows"])
    text = (f"`tests/bench/test_stages.py` timed each stage with pytest-benchmark {bench.get('pytest_benchmark') or ''} "
            f"in one process, without xdist, on {where or 'the build machine'}, {k_text}, a fresh Warp kernel cache "
            f"and fresh kernels in every timed round. {_bench_coverage(bench)}"
            + (" \"naive\" means one Warp module per kernel (`naive-O2`: at Warp's default CPU level, `-O2`; "
               "`naive-O0`: at the factory's level, so batching alone), and for `pipeline` K one-kernel chunks at "
               "`-O2`." if naive else ""))
    warm = []
    if bench.get("warmup_cpu_s"):
        warm.append(f"the first CPU compile of a process, which builds the precompiled header, took "
                    f"{bench['warmup_cpu_s']:.1f} s")
    if bench.get("warmup_nvrtc_s"):
        warm.append(f"the first NVRTC compile {bench['warmup_nvrtc_s']:.1f} s")
    if warm:
        text += " One-off costs, paid before timing: " + "; ".join(warm) + "."
    pipe = [r for r in bench["rows"] if r["group"] == "pipeline" and r["variant"] == "batched"
            and r.get("stage_seconds_per_round")]
    if pipe:
        st = pipe[0]["stage_seconds_per_round"]
        total = sum(st.values()) or 1
        text += (" Inside a batched chunk, time splits " + ", ".join(
            f"{STAGE_LABELS.get(k, k)} {100 * v / total:.0f}%" for k, v in sorted(st.items(), key=lambda kv: -kv[1]))
            + ".")
    return text + "\n\n" + bench_table(bench) + "\n\n" + figure(
        drawn, "stage_rates", "Kernels per second per stage in one process (pytest-benchmark)")


def production_rate_cell(p: dict, bench: dict | None) -> str:
    """Appendix C's rate: the logged production's, else the stage benchmark's whole-chunk rate, else said absent."""
    if p["records_per_second"]:
        return (f"{sig(p['records_per_second_per_worker'])} records/s per worker process "
                f"({sig(p['records_per_second'])} records/s, {sig(p['mb_per_second'])} MB/s with "
                f"{plural(p['workers'], 'worker')}), compile, numerics and gradient checks included")
    pipe = [r for r in (bench or {}).get("rows", []) if r["group"] == "pipeline" and r["variant"] == "batched"
            and r.get("kernels_per_s")]
    text = "no production rate was logged for these datasets (Section 3.1.4)"
    if pipe:
        r = pipe[0]
        text += (f"; the stage benchmark's whole chunk (`{r['family']}`, K = {r['K']}, one process) ran at "
                 f"{sig(r['kernels_per_s'])} kernels/s" + (f", {sig(r['records_per_s'])} records/s"
                                                              if r.get("records_per_s") else "")
                 + ", compile, numerics and gradient checks included")
    return text


def comparison_table(nums: dict, bench: dict | None) -> str:
    """Appendix C. Facts about the earlier pipeline are those read from its repository (cited in the text), by
    branch where they belong to one; nothing is claimed where no fact was established."""
    cpu, cuda = nums["datasets"]["cpu"], nums["datasets"]["cuda"]
    fams = len(set(cpu["families"]) | set(cuda["families"]))
    sets = " or ".join(sorted(cpu["verification"]["input_sets"]))
    rows = [
        ["kernel source", "`-891a`: 11 hand-written f-string templates with random 6-letter names",
         f"{fams} seeded generator families, each with a NumPy reference and tolerances; content-addressed names"],
        ["distinct programs", "`-891a`: 69,000 CPU files = 1,000 distinct files x 69 (every chunk reset the seed); "
         "465 distinct programs after removing names and line comments. `-45d0`: about 21k CPU pairs (209 MB)",
         f"{n(cpu['records'])} CPU records with {n(cpu['records'] - cpu['quality']['duplicate_structures'])} distinct "
         "structural hashes (exact and structural duplicates removed)"],
        ["compiled by a real compiler", "`-891a`: no (`ModuleBuilder(...).codegen` only). `-45d0`: CPU yes "
         "(`module.load`), CUDA codegen only", f"yes: Clang for every CPU record, NVRTC ({cuda['arch']}) for every "
         "CUDA record"],
        ["launched and compared with a reference", "no (neither branch)",
         f"yes: {sets} input sets per kernel against a float64 NumPy reference; degenerate kernels rejected"],
        ["dead or trivial kernels", "`-891a`: 16 of 88 `expression_tree` kernels return their input unchanged",
         "rejected when constant, a copy of an input or blind to most inputs (`degenerate_*`)"],
        ["backward code", "`-891a`: not kept. `-45d0`: kept, not checked",
         f"kept in {pct(cpu['sizes']['with_backward'], cpu['records'])} of CPU records; compared with finite "
         f"differences for {pct(cpu['verification']['gradient_checked'], cpu['records'])}"],
        ["CUDA code", "`-891a`: forward only, `extern \"C\" __global__` dropped. `-45d0`: about 20k pairs (231 MB), "
         "codegen only", "forward, backward and support code as compiled by NVRTC"],
        ["rejects", "not recorded (`-891a`)", f"recorded with reasons ({n(cpu['rejects']['failed'])} CPU, "
                                             f"{n(cuda['rejects']['failed'])} CUDA)"],
        ["report vs data", "`-891a`: per-type table and \"100% compilation rate\" did not match the data",
         "every number generated from the data; `tests/test_report.py` checks the key ones"],
        ["storage", "`-891a`: 129k small JSON files; the committed `.tar.gz` files were Git LFS pointers",
         "zstd Parquet splits, manifest with the sha256 of every shard"],
        ["rate", "re-measured on this project's 2-core machine with Warp 1.19: `fast_batch_generator.py` (10 kernels "
         "per module, CPU compile, no numerics) 12.7 pairs/s = 0.127 MB/s on one core; one kernel per module "
         "(`pipeline.py`) 0.68 pairs/s. `-45d0` states 10.4 pairs/s",
         production_rate_cell(cpu["production"], bench)],
    ]
    return table(["aspect", "earlier pipeline (XinShuo-ph/warp_jit_synthesize_code, branches `-891a`, `-45d0`)",
                  "this project"], rows, "lll")
