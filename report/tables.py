"""The report's tables, each a function of the numbers computed by :mod:`report.stats` and the side inputs of
:mod:`report.inputs`. Tests recompute every cell from the data (``tests/test_report.py``)."""

from __future__ import annotations

from .fmt import mb, n, pct, plural, sig, table

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
    "record_error": "the record's own code did not rebuild alone (g++ / NVRTC), or its schema failed",
    "assemble_error": "ptxas refused the PTX NVRTC produced",
    "compile_timeout": "NVRTC or ptxas gave no answer within its time limit (killed)",
    "over_budget": "longer than the token budget (16,384 cl100k tokens of Python + generated code)",
    "duplicate": "the same program earlier in the same chunk",
    "duplicate_exact": "dedup: same content as an earlier record",
    "duplicate_structural": "dedup: same structure as an earlier record",
}


DEVICES = ("cpu", "cuda")


def _ds(nums: dict, d: str) -> dict:
    return nums["datasets"][d]


def core_seconds(x) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:,.0f}"


def summary_table(nums: dict) -> str:
    """The executive summary's one table."""
    o = nums["overlap"]

    def col(x: dict) -> list[str]:
        t, c, v = x["tokens"], x["cost"], x["verification"]
        where = ", ".join(f"{k} build: {n(m)}" if k == "cpu" else f"GPU: {n(m)}" for k, m in v["numerics_device"].items())
        return [n(x["records"]), n(x["records"] - x["quality"]["duplicate_structures"]),
                f"{mb(x['bytes_raw'])} / {mb(x['bytes_compressed'])}", n(t["total"]),
                pct(x["adjoint"]["backward_bytes"] + x["adjoint"]["adjoint_helper_bytes"], x["adjoint"]["record_bytes"]),
                "; ".join(f"{k} ({n(m)})" for k, m in x["stages"].items()), where,
                f"{n(v['gradient_checked'])} ({pct(v['gradient_checked'], x['records'])})",
                core_seconds(c["per_record"]) if c["per_record"] else "not logged",
                core_seconds(c["per_mtok"]) if c["per_mtok"] else "not logged"]
    labels = ["records", "distinct programs (structural hashes)", "MB as JSON / as zstd Parquet",
              "cl100k tokens, every record counted", "share of bytes that is adjoint code",
              "compile stages every record passed", "where the numbers ran (records)",
              "gradient-checked records", "core-seconds per record", "core-seconds per million tokens"]
    a, b = col(_ds(nums, "cpu")), col(_ds(nums, "cuda"))
    rows = [[lab, x, y] for lab, x, y in zip(labels, a, b)]
    rows.insert(2, ["kernels in both datasets, identical statement bodies", n(o["in_both"]), n(o["in_both"])])
    return table(["summary", "`cpu_code`", "`cuda_code`"], rows)


def families_table(nums: dict, catalog: dict) -> str:
    cpu, cuda = _ds(nums, "cpu"), _ds(nums, "cuda")
    rows = []
    for f in sorted(set(cpu["families"]) | set(cuda["families"])):
        a, b = cpu["families"].get(f, {}), cuda["families"].get(f, {})
        desc = catalog.get(f, {}).get("description", "")
        desc = desc.split(":", 1)[-1].strip() if desc.startswith(f) else desc
        rows.append([f"`{f}`", desc.replace("|", "\\|"), n(a.get("records", 0)), n(b.get("records", 0)),
                     n(a.get("gradient_checked", 0)), n(cpu["tokens"]["per_family"].get(f, {}).get("p50", 0))])
    rows.append(["**total**", "", n(cpu["records"]), n(cuda["records"]), n(cpu["verification"]["gradient_checked"]),
                 n(cpu["tokens"]["pair"]["p50"])])
    return table(["family", "what its generator writes", "CPU records", "CUDA records", "CPU gradient-checked",
                  "CPU median tokens"], rows, "llrrrr")


def rejects_table(nums: dict) -> str:
    cpu, cuda = _ds(nums, "cpu")["rejects"], _ds(nums, "cuda")["rejects"]
    reasons = list(dict.fromkeys(list(cpu["by_reason"]) + list(cuda["by_reason"])))
    rows = [[f"`{r}`", REASONS.get(r, r), n(cpu["by_reason"].get(r, 0)), n(cuda["by_reason"].get(r, 0))]
            for r in reasons]
    drops = list(dict.fromkeys(list(cpu["dedup_drops"]) + list(cuda["dedup_drops"])))
    rows += [[f"`{r}`", REASONS.get(r, r), n(cpu["dedup_drops"].get(r, 0)), n(cuda["dedup_drops"].get(r, 0))]
             for r in drops]
    if not rows:
        return "No kernel was rejected and no record was dropped as a duplicate."
    return table(["reason (rejects.jsonl)", "meaning", "`cpu_code`", "`cuda_code`"], rows, "llrr")


def production_table(nums: dict) -> str:
    def col(x: dict) -> list[str]:
        p, c, r = x["production"], x["cost"], x["rejects"]
        top = sorted(p["stage_share"].items(), key=lambda kv: -kv[1])[:3]
        return [n(p["workers"] or 0), f"{p['wall_seconds']:,.0f}" if p["wall_seconds"] else "not logged",
                n(p["records_written"]), sig(p["records_per_second"]) if p["records_per_second"] else "not logged",
                ", ".join(f"{k} {100 * v:.0f}%" for k, v in top) or "not logged",
                f"{n(r['written'])} of {n(r['attempted'])} ({100 * r['acceptance']:.1f}%)" if r["acceptance"] else "-",
                core_seconds(c["per_record"]) if c["per_record"] else "not logged"]
    labels = ["worker processes (one core each)", "wall seconds of the logged run(s)",
              "records written (before dedup and the cut)", "records written per second",
              "worker time, largest stages", "kernels accepted in the dataset's chunks", "core-seconds per record"]
    a, b = col(_ds(nums, "cpu")), col(_ds(nums, "cuda"))
    return table(["production", "`cpu_code`", "`cuda_code`"], [[lab, x, y] for lab, x, y in zip(labels, a, b)])


def resources_table(nums: dict) -> str:
    res = _ds(nums, "cuda")["resources"]
    if not res.get("records"):
        return "The CUDA records carry no machine-code resources (`ir.resources`)."
    rows = []
    for f, e in list(res["per_family"].items()) + [("**all**", res["all"])]:
        fw, bw = e.get("forward"), e.get("backward")
        rows.append([f"`{f}`" if not f.startswith("**") else f, n(fw["entries"]),
                     f"{fw['registers_p50']:.0f} / {fw['registers_max']}",
                     f"{bw['registers_p50']:.0f} / {bw['registers_max']}" if bw else "-",
                     n(fw["spilling"] + (bw["spilling"] if bw else 0)), n(fw["stack"] + (bw["stack"] if bw else 0)),
                     f"{fw['shared_max']:,}"])
    return table(["family", "records", "forward registers p50 / max", "backward registers p50 / max",
                  "entries spilling", "entries with a stack frame", "shared bytes max (forward)"], rows)


def context_table(nums: dict) -> str:
    from .stats import CONTEXTS

    rows = []
    for d in DEVICES:
        x = _ds(nums, d)
        t = x["tokens"]
        rows.append([f"`{x['dataset']}`", n(t["pair"]["p50"]), n(t["pair"]["p95"]), n(t["pair"]["max"])]
                    + [pct(t["fit"][str(c)], x["records"]) for c in CONTEXTS[:-1]])
    return table(["dataset", "median tokens", "p95", "max"] + [f"fit in {c // 1024}k" for c in CONTEXTS[:-1]], rows)


def verification_table(nums: dict) -> str:
    def col(x: dict) -> list[str]:
        v = x["verification"]
        total = v["elements_masked"] + v["elements_compared"]
        return [n(v["elements_compared"]), f"{n(v['elements_masked'])} ({pct(v['elements_masked'], total, 2)})",
                n(v["records_with_masked"]), n(v["records_error_zero"]), n(v["records_exact_tolerance"]),
                n(v["loose_tolerance"]["records"]),
                f"{sig(v['max_rel_err']['p50'])} / {sig(v['max_rel_err']['p95'])} / {sig(v['max_rel_err']['max'])}"]
    labels = ["output elements compared", "output elements masked (share)", "records with any masked element",
              "records with zero error (max abs error 0)", "records compared exactly (integer outputs)",
              "records checked with atol > 1 (Section 7.1)", "max relative error per record, p50 / p95 / max"]
    a, b = col(_ds(nums, "cpu")), col(_ds(nums, "cuda"))
    return table(["verification", "`cpu_code`", "`cuda_code`"], [[lab, x, y] for lab, x, y in zip(labels, a, b)])


def quality_table(nums: dict) -> str:
    def col(x: dict) -> list[str]:
        q = x["quality"]
        nd = q["near_duplicates"]
        return [n(nd["with_neighbour_ge_0.8"]), n(nd["with_neighbour_ge_0.9"]),
                f"{n(q['records_with_unused_helpers'])} of {n(q['records_with_helpers'])}",
                f"{x['compression_ratio']:.1f}x"]
    labels = ["records whose nearest other program shares >= 80% of its token 5-grams (exact all-pairs)",
              "the same at >= 90%", "records defining a `@wp.func` the kernel never calls (of those defining one)",
              "JSON bytes / Parquet bytes"]
    a, b = col(_ds(nums, "cpu")), col(_ds(nums, "cuda"))
    return table(["quality", "`cpu_code`", "`cuda_code`"], [[lab, x, y] for lab, x, y in zip(labels, a, b)])


def saturation_table(sat: dict) -> str:
    """Distinct structures at 100, 1,000 and each family's own N (``-`` past what a family was run for)."""
    fams = sorted(sat["families"].items())
    show = sorted({c for _, v in fams for c in _curve(sat, v)[0] if c in (100, 1000)} | {_curve(sat, v)[0][-1]
                                                                                         for _, v in fams})
    rows = []
    for f, v in fams:
        cp, distinct = _curve(sat, v)
        cells = [n(distinct[cp.index(c)]) if c in cp else "-" for c in show]
        rows.append([f"`{f}`"] + cells + [pct(distinct[-1], cp[-1])])
    total = [sum(_curve(sat, v)[1][_curve(sat, v)[0].index(c)] for _, v in fams) if all(c in _curve(sat, v)[0]
             for _, v in fams) else None for c in show]
    final = sum(_curve(sat, v)[1][-1] for _, v in fams)
    rows.append(["**all**"] + ["-" if x is None else n(x) for x in total]
                + [pct(final, sum(_curve(sat, v)[0][-1] for _, v in fams))])
    return table(["family"] + [f"distinct of {n(c)}" for c in show] + ["distinct share"], rows)


def _curve(sat: dict, v: dict) -> tuple[list[int], list[int]]:
    """A family's checkpoints and distinct counts (older files keep the checkpoints file-wide)."""
    return v.get("checkpoints") or sat["checkpoints"], v["distinct"]


def coverage_table(cov: dict, top: int = 12) -> str:
    """The gap of either dataset, with each construct's exception where it has one."""
    names = [s["name"] for s in cov["datasets"]]
    gaps = {s["name"]: {g["construct"]: g for g in s["gap"]} for s in cov["datasets"]}
    union = {c: g for nm in names for c, g in gaps[nm].items()}
    why = {"by design": "by design", "cuda": "not in CUDA's generated code (LTO-IR)"}
    rows = []
    for c, g in sorted(union.items(), key=lambda x: -x[1]["warp_non_test"])[:top]:
        kind = (g.get("exception") or "").split(":", 1)[0]
        rows.append([f"`{c}`", n(g["warp_non_test"])] +
                    [n(gaps[nm][c]["records"] if c in gaps[nm] else
                       next(r["records"][nm] for r in cov["rows"] if r["construct"] == c)) for nm in names]
                    + [why.get(kind, kind)])
    return table(["construct (gap)", "Warp non-test kernels using it"] + [f"`{nm}` records" for nm in names]
                 + ["exception"], rows)


def baselines_table(base: dict) -> str:
    rows = []
    for name in ("oracle", "retrieval"):
        data = base.get(name)
        if not data:
            continue
        for device, s in sorted(data["datasets"].items()):
            for task, t in sorted(s["tasks"].items()):
                outcomes = ", ".join(f"{o} {n(c)}" for o, c in sorted(t["outcomes"].items(), key=lambda kv: -kv[1]))
                only = t["outcomes"].get("compiled_only", 0)
                score = ("not run (no GPU)" if only == t["predictions"] else
                         f"{100 * t['pass@1']:.1f}% ({n(only)} not run)" if only else f"{100 * t['pass@1']:.1f}%")
                rows.append([name, f"`{task}`", n(t["predictions"]), score, f"{100 * t['compile_rate']:.1f}%",
                             outcomes])
    m = base.get("mutants")
    if m:
        rows.append(["mutants (single mutation of the forward)", "`py2cpp`", n(m["mutants"]),
                     f"{100 * (1 - m['killed_share']):.1f}%", "-",
                     ", ".join(f"{o} {n(c)}" for o, c in sorted(m["outcomes"].items(), key=lambda kv: -kv[1]))])
    if not rows:
        return "No baseline results are committed (`report/benchmark/*.json`)."
    return table(["baseline", "task", "predictions", "pass@1", "compile rate", "outcomes"], rows, "llrrrl")


def mutants_table(m: dict) -> str:
    rows = [[f"`{k}`", n(c["mutants"]), n(c["killed"]), f"{100 * c['killed_share']:.1f}%"]
            for k, c in m["by_kind"].items()]
    rows.append(["**all**", n(m["mutants"]), n(m["killed"]), f"{100 * m['killed_share']:.1f}%"])
    return table(["mutation kind", "mutants", "killed (judged not pass)", "killed share"], rows)


def production_rate_cell(p: dict) -> str:
    """Appendix C's rate: the logged production's, or said absent."""
    if not p["records_per_second"]:
        return "no production rate was logged for these datasets"
    return (f"{sig(p['records_per_second_per_worker'])} records/s per worker process "
            f"({sig(p['records_per_second'])} records/s, {sig(p['mb_per_second'])} MB/s with "
            f"{plural(p['workers'], 'worker')}), compile, numerics, gradient and rebuild checks included")


def comparison_table(nums: dict) -> str:
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
         "(`module.load`), CUDA codegen only", f"yes: Clang and a g++ rebuild for every CPU record; NVRTC, PTX and ptxas SASS ({cuda['arch']}) "
         "for every CUDA record"],
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
         "every number generated from the data; `tests/test_report.py` recomputes every table"],
        ["storage", "`-891a`: 129k small JSON files; the committed `.tar.gz` files were Git LFS pointers",
         "zstd Parquet splits, manifest with the sha256 of every shard"],
        ["rate", "re-measured on this project's 2-core machine with Warp 1.19: `fast_batch_generator.py` (10 kernels "
         "per module, CPU compile, no numerics) 12.7 pairs/s = 0.127 MB/s on one core; one kernel per module "
         "(`pipeline.py`) 0.68 pairs/s. `-45d0` states 10.4 pairs/s",
         production_rate_cell(cpu["production"])],
    ]
    return table(["aspect", "earlier pipeline (XinShuo-ph/warp_jit_synthesize_code, branches `-891a`, `-45d0`)",
                  "this project"], rows, "lll")
