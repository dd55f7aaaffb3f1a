"""Text of the report: the sentences, and the context that fills ``report/template.md`` with them, the tables
(:mod:`report.tables`) and the sample records (:mod:`report.samples`).

The template holds the prose with ``{{key}}`` placeholders; :func:`context` computes every key as finished
Markdown, and :func:`fill` refuses to write a report with an unknown key, a leftover placeholder or a TODO.
"""

from __future__ import annotations

import re

import numpy as np

from . import tables as T
from .fmt import counts_inline, figure, kb, mb, n, pct, plural, sig
from .samples import sample_records

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
#: text that must not reach the report: placeholders, to-do markers, and Python values leaking into prose/tables
FORBIDDEN = re.compile(r"\{\{|\}\}|\bTODO\b|\bTBD\b|\bFIXME\b|\bXXX\b|\bnan\b|\binf\b|n/a%|"
                       r"\bNone(?=\s*[|%,;)\]])|(?<=[(\[=:] )None\b")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


class RenderError(Exception):
    """The template and the computed context do not fit (unknown key, leftover placeholder, forbidden text)."""


def context(nums: dict, catalog: dict, drawn: dict, datasets: dict, meta: dict) -> dict[str, str]:
    cpu, cuda = nums["datasets"]["cpu"], nums["datasets"]["cuda"]
    bench, div, overlap = nums.get("bench"), nums["diversity"], nums.get("overlap", {})
    ctx: dict[str, str] = {}
    tools = cpu["tools"]
    ctx["meta.command"] = meta["command"]
    ctx["meta.data_dir"] = meta["data_dir"]
    ctx["meta.bench_source"] = f" and the stage benchmark `{meta['bench']}`" if bench else \
        " (no stage benchmark results were given, so Sections 3.1.1 and 3.1.4 quote no measured stage rates)"
    ctx["meta.warp"] = tools.get("warp", "?")
    ctx["meta.cuda_toolkit"] = tools.get("cuda_toolkit") or "not available"
    ctx["meta.numpy"] = tools.get("numpy", "?")
    ctx["meta.python"] = tools.get("python", "?")
    ctx["meta.bpe_version"] = meta["bpe_version"]
    ctx["cuda.arch"] = cuda["arch"] or "n/a"
    ctx["table.totals"] = T.totals_table(nums, catalog)

    # -- executive summary --------------------------------------------------------------------------
    ctx["summary.sizes"] = (f"{n(cpu['records'])} CPU records ({mb(cpu['bytes_raw'])} MB of JSON, "
                            f"{mb(cpu['bytes_compressed'])} MB as zstd Parquet) and {n(cuda['records'])} CUDA records "
                            f"({mb(cuda['bytes_raw'])} MB, {mb(cuda['bytes_compressed'])} MB).")
    fams = sorted(set(cpu["families"]) | set(cuda["families"]))
    ctx["summary.families"] = (f"{len(fams)} kernel families ({', '.join(f'`{f}`' for f in fams)}), each a seeded "
                               "random program generator with a NumPy reference and tolerances.")
    input_sets = sorted({int(k) for d in (cpu, cuda) for k in d["verification"]["input_sets"]})
    ctx["summary.input_sets"] = " or ".join(str(k) for k in input_sets)
    ctx["cpu.elements_compared"] = n(cpu["verification"]["elements_compared"])
    acc = cpu["rejects"]
    ctx["summary.acceptance"] = (
        f"Of the {n(acc['attempted'])} kernels generated in the {n(acc['chunks'])} chunks the CPU dataset is made "
        f"of, {n(acc['written'])} ({100 * acc['acceptance']:.1f}%) passed every check; every reject is kept with "
        "its reason in `rejects.jsonl`." if acc["attempted"] else "No chunk contributed records.")
    ctx["summary.numerics"] = numerics_sentence(cpu, cuda)
    ctx["cuda.numerics_detail"] = numerics_sentence(cpu, cuda, detail=True)
    ctx["summary.gradients"] = gradient_sentence(cpu, cuda)
    t = cpu["tokens"]
    ctx["summary.tokens"] = (
        f"With OpenAI's `cl100k_base` BPE (the real tokenizer, run offline through the `bpe-openai` package, which "
        f"ships the vocabulary in its wheel), a CPU record's Python source is {n(t['python']['p50'])} tokens at the "
        f"median and its generated code {n(t['generated']['p50'])} ({t['expansion']['p50']:.1f}x the Python); a whole "
        f"pair is {n(t['pair']['p50'])} tokens at the median and {n(t['pair']['p95'])} at the 95th percentile. "
        f"Estimated totals: {tokens_total(cpu)} tokens (CPU) and {tokens_total(cuda)} (CUDA)"
        + (f", extrapolated from samples of {n(t['sample'])} and {n(cuda['tokens']['sample'])} records."
           if t["sample"] < t["of"] or cuda["tokens"]["sample"] < cuda["tokens"]["of"] else ", counted on every record."))
    ctx["summary.tokens_short"] = (f"median pair {n(t['pair']['p50'])} tokens on the CPU side, "
                                   f"{n(cuda['tokens']['pair']['p50'])} on the CUDA side")
    ctx["cpu.over_8192"] = f"{n(t['over_8192'])} of the {n(t['sample'])}"
    ctx["summary.speed"] = speed_sentence(cpu, cuda, bench)
    ctx["summary.limitations"] = limitations_short(cpu, cuda)

    # -- methodology ----------------------------------------------------------------------------------
    ctx["approach.bench_sentence"] = approach_bench_sentence(bench)
    ctx["approach.naive_cost"] = naive_cost(bench)
    ctx["cpu.factory_seed"] = str(cpu["factory_seed"])
    wc = nums.get("warp_corpus", {})
    ctx["approach.warp_corpus"] = (
        f"the installed `warp-lang` {tools.get('warp', '')} package holds {n(wc.get('kernels', 0))} `@wp.kernel` "
        f"definitions in {n(wc.get('files', 0))} files ({n(wc.get('tests', 0))} in its tests, "
        f"{n(wc.get('examples', 0))} in its examples)")
    sizes = sorted({v["chunk_size"] for v in catalog.values()}) or [32]
    ctx["catalog.chunk_size"] = " or ".join(str(s) for s in sizes)
    ctx["table.families"] = T.families_table(nums, catalog)
    ctx["table.constructs"] = T.constructs_table(nums)
    cov = cpu["coverage"]
    ctx["cpu.launch_ndim"] = counts_inline({f"{k}D": v for k, v in cov["launch_ndim"].items()}, cpu["records"])
    ctx["cpu.tiled"] = f"{n(cov['tiled'])} ({pct(cov['tiled'], cpu['records'])})"
    ctx["cpu.arg_dtypes"] = counts_inline({f"`{k}`": v for k, v in cov["arg_dtypes"].items()}, None, 14)
    ctx["cpu.distinct_builtins"] = n(cov["distinct_builtins"])
    ctx["cpu.builtin_table_size"] = n(cov["builtin_table_size"])
    ctx["cpu.top_builtins"] = counts_inline({f"`wp.{k}`": v for k, v in cov["top_builtins"].items()}, None, 12)
    ctx["table.production"] = T.production_table(nums)
    ctx["fig.production"] = figure(drawn, "production", "Production rate per dataset and share of worker time "
                                                        "per stage (from manifest.json runs)",
                                   "No production figure: no logged run measured a rate or stage times.")
    ctx["production.sentence"] = production_sentence(cpu, cuda)
    ctx["bench.section"] = T.bench_section(bench, drawn, ctx["catalog.chunk_size"])
    ctx["table.rejects"] = T.rejects_table(nums)
    ctx["fig.rejects"] = figure(drawn, "rejects", "Rejected kernels by family and reason (rejects.jsonl)")
    ctx["overlap.sentence"] = overlap_sentence(overlap)
    ctx["overlap.in_both"] = n(overlap.get("in_both", 0))
    ctx["table.code_patterns"] = T.code_patterns_table(nums)
    ctx["cuda.production_sentence"] = cuda_production_sentence(cpu, cuda)
    ctx["cuda.with_ptx"] = n(cuda["sizes"]["with_ptx"])
    ctx["records.entry_names"] = entry_names_sentence(cpu, cuda)
    ctx["cpu.opt_levels"] = " and ".join(f"`-O{k}`" for k in cpu["optimization_levels"]) or "(none recorded)"
    ctx["cuda.frame"] = cuda_frame(cuda)

    # -- structure, characteristics ----------------------------------------------------------------------
    ctx["table.quality"] = T.quality_table(nums)
    ctx["quality.sentence"] = quality_sentence(cpu, cuda)
    ctx["table.sizes"] = T.sizes_table(nums)
    ctx["fig.sizes"] = figure(drawn, "sizes", "Record size distribution (left) and the share of record bytes "
                                              "taken by each text field (right)")
    ctx["table.tokens"] = T.tokens_table(nums)
    ctx["fig.tokens"] = figure(drawn, "tokens", "cl100k_base token lengths of the Python source and of the "
                                                "generated code (left); generated vs Python tokens per record (right)")
    ctx["cpu.analysis_sentence"] = cpu_analysis_sentence(cpu)
    ctx["table.verification"] = T.verification_table(nums)
    ctx["fig.verification"] = figure(drawn, "verification", "Distribution of each record's largest relative error "
                                                            "(left) and of its share of masked output elements (right)")
    ctx["verification.sentence"] = verification_sentence(cpu, cuda)
    ctx["cuda.analysis_sentence"] = cuda_analysis_sentence(cpu, cuda, overlap)
    ctx["table.family_balance"] = T.family_balance_table(nums)
    ctx["fig.family_balance"] = figure(drawn, "family_balance", "Records per kernel family in each dataset")
    ctx["diversity.sentence"] = diversity_sentence(cpu, cuda, div, catalog)
    ctx["table.diversity"] = T.diversity_table(div)

    # -- closing ---------------------------------------------------------------------------------------
    ctx["limitations.list"] = limitations_list(cpu, cuda, bench, nums)
    ctx["conclusion.text"] = conclusion(cpu, cuda, fams)
    ctx["appendix.samples"] = sample_records(datasets)
    ctx["table.comparison"] = T.comparison_table(nums, bench)
    return ctx


# -- sentences --------------------------------------------------------------------------------------------


def tokens_total(x: dict) -> str:
    t = x["tokens"]["estimated_total_tokens"]
    return f"{t / 1e6:.1f} M" if t >= 1e6 else n(t)


def numerics_sentence(cpu: dict, cuda: dict, detail: bool = False) -> str:
    c = cuda["verification"]["numerics_device"]
    on_gpu, on_cpu = c.get("cuda", 0), c.get("cpu", 0)
    total = cuda["records"]
    if on_gpu == 0:
        core = (f"All {n(cpu['records'])} CPU records were checked on the CPU build they contain. None of the "
                f"{n(total)} CUDA records ran on a GPU (no GPU was available to the production): their "
                "`verification.numerics_device` is `cpu`, meaning the numbers were computed by the CPU build of the "
                "very same kernel source, while the CUDA code in the record was compiled by NVRTC and never launched.")
        if detail:
            core += (" The CUDA records therefore certify that the CUDA code compiles for the target and that the "
                     "program computes its reference on the CPU; they do not certify GPU execution of that code.")
        return core
    if on_cpu == 0:
        return (f"All {n(cpu['records'])} CPU records were checked on the CPU build, and all {n(total)} CUDA records "
                "were launched on a GPU and checked there (`verification.numerics_device` = `cuda`).")
    return (f"All {n(cpu['records'])} CPU records were checked on the CPU build. Of the {n(total)} CUDA records, "
            f"{n(on_gpu)} ({pct(on_gpu, total)}) were launched on a GPU and checked there (`numerics_device` = `cuda`); "
            f"the other {n(on_cpu)} took their numbers from the CPU build of the same kernel (`numerics_device` = "
            "`cpu`): their CUDA code was compiled by NVRTC but not run.")


def gradient_sentence(cpu: dict, cuda: dict) -> str:
    g, t = cpu["verification"]["gradient_checked"], cpu["records"]
    none = [f for f, v in cpu["families"].items() if v["gradient_checked"] == 0]
    text = (f"Warp's backward kernel was compared with central finite differences of the reference for "
            f"{n(g)} of {n(t)} CPU records ({pct(g, t)}; `verification.gradient_checked`) and "
            f"{n(cuda['verification']['gradient_checked'])} of {n(cuda['records'])} CUDA records. The others carry "
            "backward code that compiled but was not compared: either their generator does not mark them "
            "differentiable (integer and float16 programs, and constructs whose derivative the finite-difference check "
            "cannot follow), or they lack a float array input and a float output, or they update an array in place.")
    if none:
        text += f" Families with no gradient-checked record: {', '.join(f'`{f}`' for f in none)}."
    return text


def speed_sentence(cpu: dict, cuda: dict, bench: dict | None) -> str:
    p, q = cpu["production"], cuda["production"]
    if p["records_per_second"]:
        text = (f"The CPU production wrote {sig(p['records_per_second'])} records/s ({sig(p['mb_per_second'])} MB/s) "
                f"with {n(p['workers'])} worker process{'' if p['workers'] == 1 else 'es'}, compile, numerics and "
                "gradient checks included"
                + (f"; the CUDA production {sig(q['records_per_second'])} records/s." if q["records_per_second"]
                   else "; no CUDA production rate was logged."))
    else:
        text = ("No production rate was measured for these datasets: no logged production run wrote a chunk "
                "(Section 3.1.4).")
    sp = (bench or {}).get("speedups", {})
    best = sp.get("pipeline:naive") or sp.get("compile-cpu:naive-O2")
    if best:
        which = "whole chunk pipeline" if sp.get("pipeline:naive") else "CPU compile"
        text += (f" Building {bench['K']} kernels per Warp module instead of one was {best:.1f}x faster "
                 f"({which}, stage benchmark).")
    elif not bench:
        text += " No stage benchmark was given to this build, so no per-stage rate is quoted either."
    return text


def naive_cost(bench: dict | None) -> str:
    rows = {(r["group"], r["variant"]): r for r in (bench or {}).get("rows", []) if r.get("ms_per_kernel")}
    naive, batched = rows.get(("compile-cpu", "naive-O2")), rows.get(("compile-cpu", "batched"))
    if naive and batched:
        return (f"the stage benchmark measured {sig(naive['ms_per_kernel'])} ms per kernel for a CPU compile of one "
                f"module per kernel at Warp's default `-O2`, against {sig(batched['ms_per_kernel'])} ms per kernel for "
                f"{bench['K']} kernels in one module at `-O0` (backward code included in both)")
    return "every kernel pays the whole per-module compile cost, a sizeable fraction of a second on a CPU core"


def approach_bench_sentence(bench: dict | None) -> str:
    if not bench:
        return "No stage benchmark was given to this report, so the batching gain is not quantified here."
    sp = bench["speedups"]
    parts = []
    for key, label in [("compile-cpu:naive-O2", "CPU compile vs one module per kernel at Warp's default -O2"),
                       ("compile-cpu:naive-O0", "CPU compile vs one module per kernel at -O0"),
                       ("compile-nvrtc:naive", "NVRTC compile vs one module per kernel"),
                       ("pipeline:naive", "whole chunk (generate, compile, verify, record) vs one kernel per chunk")]:
        if sp.get(key):
            parts.append(f"{sp[key]:.1f}x for the {label}")
    if not parts:
        return "The stage benchmark given to this report has no batched-vs-naive rows."
    return (f"Measured by the stage benchmark with K = {bench['K']} kernels per module, batching gives "
            + "; ".join(parts) + ".")


def shared_runs(cpu: dict, cuda: dict) -> bool:
    """True when both datasets were written by the same production runs (``--device all``)."""
    a, b = cpu["production"]["started"], cuda["production"]["started"]
    return bool(a) and a == b


def _stage_phrase(share: dict) -> str:
    from .stats import STAGE_LABELS

    return ", ".join(f"`{k}` {100 * v:.0f}%" if k in STAGE_LABELS else f"{k} {100 * v:.0f}%"
                     for k, v in sorted(share.items(), key=lambda kv: -kv[1]))


def production_sentence(cpu: dict, cuda: dict) -> str:
    p = cpu["production"]
    if p["runs"] == 0:
        return ("No production run is logged in the manifests (`runs` is empty: the datasets were packed without "
                "their `work/runs.jsonl`), so this report has no measured production rate and no stage times; the "
                "tables above describe the data, and the rejects below come from `rejects.jsonl`.")
    if p["measured_runs"] == 0:
        return (f"The manifests log {plural(p['runs'], 'run')} of `pytest -m production`, and "
                + ("it finished no chunk" if p["runs"] == 1 else "none of them finished a chunk")
                + " (a rerun that finds every chunk already written logs such a run). The runs "
                f"that wrote these {n(cpu['records'])} CPU and {n(cuda['records'])} CUDA records are not in the log, "
                "so this report has no measured production rate and no stage times for them; it quotes none.")
    shared = shared_runs(cpu, cuda)
    parts = [f"The production ran as {plural(p['measured_runs'], 'logged run')} of `pytest -m production` with "
             f"{plural(p['workers'], 'pytest-xdist worker')}"
             + (", writing both datasets at once (`--device all`): every chunk was compiled by Clang (code and "
                "numerics) and by NVRTC, so the times and rates of the two columns are those of the same runs."
                if shared else ", one production per dataset.")]
    if p["idle_runs"]:
        parts.append(f"{plural(p['idle_runs'], 'further logged run')} finished no chunk and "
                     f"{'is' if p['idle_runs'] == 1 else 'are'} left out of the rates.")
    if not p["log_covers_dataset"]:
        parts.append(f"The logged runs wrote {n(p['records_written'])} CPU records, fewer than the "
                     f"{n(cpu['records'])} the dataset holds: some of the runs that made it are not in the log, so "
                     "the rates are those of the logged runs only.")
    share = p["stage_share"]
    if share:
        head = (f"Worker time by stage, summed over workers ({plural(p['timed_runs'], 'timed run')}): "
                + _stage_phrase(share))
        if not shared and cuda["production"]["stage_share"]:
            head += ("; in the CUDA production, where every chunk is compiled twice (Clang for the numerics, NVRTC "
                     "for the code): " + _stage_phrase(cuda["production"]["stage_share"]))
        parts.append(head + ".")
        if p["stage_naming"] in ("combined", "mixed"):
            parts.append("Runs logged before the harness timed Clang and NVRTC separately record one `compile` "
                         "stage for both.")
    else:
        parts.append("The logged runs recorded no per-stage times.")
    written, kept = p["records_written"], cpu["records"]
    if written > kept:
        dups = {f"`{k}`": v for k, v in cpu["dropped"].items() if k.startswith("duplicate")}
        parts.append(f"The workers wrote {n(written)} CPU records and {n(kept)} were kept: the others came from "
                     "chunks that finished after the size target was reached (workers stay busy until the controller "
                     "sees the target) or were dropped as duplicates ("
                     + (counts_inline(dups) if dups else "none") + ").")
    return " ".join(parts)


def overlap_sentence(o: dict) -> str:
    if not o:
        return "the overlap of the two datasets could not be measured."
    return (f"{n(o['in_both'])} kernels are in both datasets (with identical Python source for "
            f"{n(o['in_both_same_source'])} of them), {n(o['cpu_only'])} only in the CPU dataset and "
            f"{n(o['cuda_only'])} only in the CUDA dataset.")


def cuda_production_sentence(cpu: dict, cuda: dict) -> str:
    a, b = cpu["production"], cuda["production"]
    if not b["records_per_second"]:
        text = "No production rate was logged for the CUDA dataset either (Section 3.1.4)"
    elif shared_runs(cpu, cuda):
        one = b["measured_runs"] == 1
        runs = "production run" if one else f"{n(b['measured_runs'])} production runs"
        whose = "that run's" if one else "that of those runs"
        text = (f"Both datasets came from the same {runs} (`--device all`), so the CUDA "
                f"dataset's rate is {whose}: "
                f"{sig(b['records_per_second'])} CUDA records/s "
                f"({sig(b['mb_per_second'])} MB/s) alongside the CPU records")
    else:
        ratio = (a["records_per_second"] / b["records_per_second"]) if a["records_per_second"] else None
        text = (f"It wrote {sig(b['records_per_second'])} records/s ({sig(b['mb_per_second'])} MB/s) with "
                f"{plural(b['workers'], 'worker')}")
        if ratio:
            text += (f", {ratio:.1f}x {'slower' if ratio >= 1 else 'faster'} than the CPU production in records "
                     "per second (each chunk is compiled by Clang for the numerics and by NVRTC for the code)")
    r = cuda["rejects"]
    text += (f". Of the {n(r['attempted'])} kernels generated in the {n(r['chunks'])} chunks the CUDA dataset is "
             f"made of, {n(r['written'])} ({100 * (r['acceptance'] or 0):.1f}%) passed; compile errors (code "
             f"generation, Clang or NVRTC) over all finished chunks: {n(r['by_reason'].get('compile_error', 0))}.")
    return text


def quality_sentence(cpu: dict, cuda: dict) -> str:
    probs = [x["quality"] for x in (cpu, cuda)]
    if not all(q["validated"] for q in probs):
        head = "`wkf-validate` was not run for this report (`--no-validate`)."
    elif all(q["validate_problems"] == 0 for q in probs):
        head = ("`wkf-validate` found no problem in either dataset: every shard matches its sha256 in the manifest, "
                "every record matches the JSON Schema, ids and structural hashes are unique, every record is in the "
                "split its structural hash assigns, and counts and bytes agree with the manifest.")
    else:
        examples = [e for q in probs for e in q["validate_examples"]][:3]
        head = ("`wkf-validate` reported problems: " + "; ".join(f"`{e}`" for e in examples) + ".")
    text = head + (" Beyond these checks, every record was verified numerically before it was written (Section 5.1); "
                   "the verification fields are data-quality metrics per record.")
    q = cpu["quality"]
    if q["records_with_unused_helpers"]:
        text += (f" One defect the checks do not catch: {n(q['records_with_unused_helpers'])} CPU records define a "
                 "`@wp.func` helper that their kernel never calls, so Warp emits no code for it and the Python source "
                 "carries dead text (" + counts_inline({f"`{k}`": v for k, v in q["unused_helpers_by_family"].items()})
                 + ").")
    return text


def cpu_analysis_sentence(cpu: dict) -> str:
    s, t = cpu["sizes"], cpu["tokens"]
    fs = s["field_share"]
    gen_share = fs["forward"] + fs["backward"] + fs["support"]
    return (f"A CPU record is {kb(s['record_bytes']['p50'])} KB at the median. The generated code dominates: "
            f"forward, backward and support code take {100 * gen_share:.0f}% of the bytes and the Python source "
            f"{100 * fs['python_source']:.0f}%; the backward function alone is {100 * fs['backward']:.0f}%, because the "
            "adjoint replays the forward statements before its reverse sweep. A Python source of "
            f"{n(s['python_lines']['p50'])} lines (median) becomes {n(s['generated_lines']['p50'])} lines of C++; in "
            f"tokens the expansion is {t['expansion']['p50']:.1f}x at the median and {t['expansion']['p95']:.1f}x at "
            f"the 95th percentile. cl100k_base packs {t['chars_per_token']:.2f} characters per token on this text "
            f"(token statistics on {n(t['sample'])} of {n(t['of'])} records, the sample being those with the smallest "
            "ids, which are sha256 digests and so a uniform draw).")


def verification_sentence(cpu: dict, cuda: dict) -> str:
    v = cpu["verification"]
    eps32 = float(np.finfo(np.float32).eps)
    nz = v["max_rel_err_nonzero"]
    text = (f"{n(v['records_error_zero'])} CPU records ({pct(v['records_error_zero'], cpu['records'])}) reproduced "
            f"their reference exactly ({n(v['records_exact_tolerance'])} of them were compared exactly by design: "
            "integer outputs). ")
    floats = {dt: d for dt, d in v["by_dtype"].items() if dt in ("float16", "float32", "float64")}
    if nz.get("n") and floats:
        text += (f"Where the error is not zero, the median of the per-record maximum relative error is "
                 f"{sig(nz['p50'])} and its 95th percentile {sig(nz['p95'])}; by the kernel's main dtype "
                 "(`features.dtype`): " + "; ".join(
                     f"`{dt}` {n(d['records'])} records, {n(d['zero_error'])} exact, median non-zero "
                     f"{sig(d['max_rel_err_nonzero_p50'])}" + (f" ({d['max_rel_err_nonzero_p50'] / eps32:.1f} float32 "
                                                               "eps)" if dt == "float32" else "")
                     + f", max {sig(d['max_rel_err_max'])}"
                     for dt, d in floats.items())
                 + ". Most errors sit at the rounding level of each precision; the largest stay inside the tolerances set per family and "
                 f"dtype (most commonly {next(iter(v['float_tolerances']), 'none')} for float outputs). ")
    text += (f"{n(v['records_with_masked'])} records ({pct(v['records_with_masked'], cpu['records'])}) had at least "
             f"one output element masked as ill-conditioned; over all comparisons "
             f"{pct(v['elements_masked'], v['elements_masked'] + v['elements_compared'], 2)} of the elements were "
             "masked.")
    return text


GRID_STRIDE = "grid-stride loop over `_idx`"
LEAN = "one thread per index (early `return` when `_idx >= dim.size`)"
CONTIGUOUS = "contiguous-array specialisation (`wp_contiguous_args`: 1-D launch over 1-D arrays)"


def cuda_frame(cuda: dict) -> str:
    """How the CUDA entry points walk the launch, as counted in the records (grid-stride loop or lean path)."""
    pats, total = cuda["coverage"]["code_patterns"], cuda["records"]
    gs, lean = pats.get(GRID_STRIDE, 0), pats.get(LEAN, 0)
    if gs == total:
        return "wraps the body in a grid-stride loop over `_idx` (Warp's default, `wp.config.default_grid_stride`)"
    if lean == total:
        return "computes one `_idx` per thread and returns early past the launch size (`grid_stride=False`)"
    return (f"wraps the body in a grid-stride loop over `_idx` in {n(gs)} records and uses the one-thread-per-index "
            f"form in {n(lean)}")


def entry_names_sentence(cpu: dict, cuda: dict) -> str:
    """What the generated entry points are called, as found in the records' ``ir.forward``."""
    e = {d: x["entry_names"] for d, x in (("cpu", cpu), ("cuda", cuda))}
    total = {d: x["records"] for d, x in (("cpu", cpu), ("cuda", cuda))}
    if all(e[d]["plain"] == total[d] for d in e):
        return ("The generated entry points carry the kernel's own content-addressed name, with no hash suffix "
                "added by Warp: `<kernel_name>_cpu_kernel_forward` / `_cpu_kernel_backward` and "
                "`<kernel_name>_cuda_kernel_forward` / `_cuda_kernel_backward` (e.g. "
                f"`{e['cpu']['examples'].get('plain')}`), because the harness builds every module with Warp's "
                "`strip_hash` option (Section 2.2); this holds for every record of both datasets.")
    if all(e[d]["hash_suffix"] == total[d] for d in e):
        return ("In these records the generated entry points carry Warp's default kernel-hash suffix after the "
                "kernel name, `<kernel_name>_<hash[:8]>_cpu_kernel_forward` and so on (e.g. "
                f"`{e['cpu']['examples'].get('hash_suffix')}`): they were produced before the harness switched to "
                "Warp's `strip_hash` module option, which drops the suffix (Section 2.2).")
    parts = []
    for d, label in (("cpu", "CPU"), ("cuda", "CUDA")):
        parts.append(f"{label}: {n(e[d]['plain'])} records named `<kernel_name>_{d}_kernel_forward`, "
                     f"{n(e[d]['hash_suffix'])} with Warp's 8-hex kernel-hash suffix after the kernel name"
                     + (f", {n(e[d]['other'])} otherwise" if e[d]["other"] else ""))
    return ("The generated entry points' names depend on whether the module was built with Warp's `strip_hash` "
            "option (Section 2.2); in these records: " + "; ".join(parts) + ".")


def cuda_analysis_sentence(cpu: dict, cuda: dict, overlap: dict) -> str:
    cpu_contig = cpu["coverage"]["code_patterns"].get(CONTIGUOUS, 0)
    s, c = cuda["sizes"], cpu["sizes"]
    t, tc = cuda["tokens"], cpu["tokens"]
    text = (f"The CUDA records hold the same kinds of programs as the CPU records (tables of Section 5.1, CUDA "
            f"columns). A CUDA record is {kb(s['record_bytes']['p50'])} KB at the median against "
            f"{kb(c['record_bytes']['p50'])} KB for CPU; its forward code is "
            f"{n(s['forward_chars']['p50'])} characters at the median against {n(c['forward_chars']['p50'])} on the "
            f"CPU, and its generated code {n(t['generated']['p50'])} tokens against {n(tc['generated']['p50'])}. "
            "The backends differ in the frame around the statements: the CUDA entry point takes every parameter by "
            f"value and {cuda_frame(cuda)}, while the CPU one reads its parameters from an argument struct "
            "(`wp_args_<kernel>`, which the CPU support code holds) through a pointer, and "
            f"{n(cpu_contig)} CPU records ({pct(cpu_contig, cpu['records'])}) add the contiguous-array "
            "specialisation Warp emits for 1-D launches over 1-D arrays.")
    both = overlap.get("in_both", 0)
    if both:
        fwd, bwd = overlap["forward_statements_identical"], overlap["backward_statements_identical"]
        text += (f" Inside the frame, for the {n(both)} kernels present in both datasets, the statements from the "
                 f"`// forward` marker on (comments, braces and the final `return;`/`continue;` ignored) are identical "
                 f"in {n(fwd)} forward functions ({pct(fwd, both)}) and {n(bwd)} backward functions ({pct(bwd, both)})")
        differ = overlap.get("forward_statements_differ_by_family", {})
        text += (f"; the forward statements differ in {counts_inline({f'`{k}`': v for k, v in differ.items()})}."
                 if differ else ".")
    text += (" Their verification numbers (Section 5.1, `cuda_code` column) are "
             + ("CPU-build numbers, as Section 3.2.1 explains."
                if cuda["verification"]["numerics_device"].get("cuda", 0) == 0
                else "from GPU runs where `numerics_device` is `cuda`, as Section 3.2.1 explains."))
    return text


def diversity_sentence(cpu: dict, cuda: dict, div: dict, catalog: dict) -> str:
    o = div["overall"]
    fams = sorted(set(cpu["families"]) | set(cuda["families"]))
    shares = [v["share"] for v in cpu["families"].values()]
    weights = {catalog[f]["weight"] for f in fams if f in catalog}
    order = (f"Every family has the same weight ({weights.pop():.1f}) in the canonical chunk order, so chunks alternate "
             "over the families" if len(weights) == 1 else
             "Chunks interleave the families in one canonical order" if not weights else
             "Chunks interleave the families by their weights (" + ", ".join(
                 f"`{f}` {catalog[f]['weight']:g}" for f in fams if f in catalog) + ")")
    text = (f"{order}; the CPU dataset's family shares range from {100 * min(shares):.1f}% to "
            f"{100 * max(shares):.1f}% because families differ in reject rates and record sizes and the run stops at a "
            "byte target (the family whose chunk is cut last has fewer records). Within each dataset, "
            "every record has a distinct structural hash (dedup by construction), and across the families the "
            f"records call {cpu['coverage']['distinct_builtins']} distinct Warp builtins by name. ")
    if o:
        text += (f"Generator diversity, measured independently of the datasets by `{div['source']}` (the same "
                 "structural hash over fresh programs of every family, no compiling): "
                 f"{n(o['structural_unique'])} of {n(o['programs'])} programs "
                 f"({100 * o['structural_unique_fraction']:.1f}%) are structurally unique.")
    missing = [f for f in div["per_family"] if f not in fams]
    if missing:
        text += (f" The generator table also lists families with no records in these datasets: "
                 f"{', '.join(f'`{f}`' for f in missing)}.")
    return text


def limitations_short(cpu: dict, cuda: dict) -> str:
    on_gpu = cuda["verification"]["numerics_device"].get("cuda", 0)
    gpu = ("CUDA code compiled but not run on a GPU" if on_gpu == 0 else
           f"CUDA numerics on a GPU for {pct(on_gpu, cuda['records'])} of CUDA records only") \
        if on_gpu < cuda["records"] else "CUDA numerics ran on a GPU"
    warp = sorted(cpu["tool_versions"]["warp"])
    return (f"{gpu}; gradients checked for {pct(cpu['verification']['gradient_checked'], cpu['records'])} of CPU "
            "records; synthetic programs from grammars (not real-world code); "
            + (f"one Warp version ({warp[0]})" if len(warp) == 1 else f"{len(warp)} Warp versions mixed")
            + (f", one CUDA architecture ({cuda['arch']})." if cuda["arch"] else "."))


def limitations_list(cpu: dict, cuda: dict, bench: dict | None, nums: dict) -> str:
    items = []
    c = cuda["verification"]["numerics_device"]
    if c.get("cpu", 0):
        items.append(f"**CUDA numerics.** {n(c.get('cpu', 0))} of {n(cuda['records'])} CUDA records "
                     f"({pct(c.get('cpu', 0), cuda['records'])}) have `numerics_device` = `cpu`: the CUDA code was "
                     "compiled by NVRTC and cut from the generated module, but the numbers that passed verification "
                     "came from the CPU build of the same source. What only GPU execution would show (NVRTC's machine code "
                     "and floating-point contraction, CUDA math-library results, the order of atomics, block-cooperative "
                     "tile execution on real threads) is not exercised for these records.")
    g = cpu["verification"]["gradient_checked"]
    items.append(f"**Gradients.** Only {n(g)} of {n(cpu['records'])} CPU records ({pct(g, cpu['records'])}) and "
                 f"{n(cuda['verification']['gradient_checked'])} of {n(cuda['records'])} CUDA records have "
                 "`gradient_checked` = true. Every other backward function was compiled but its numbers were never "
                 "compared with anything.")
    items.append("**Dead code inside kernels.** The degeneracy checks look at inputs and outputs only (constant "
                 "output, copied input, ignored inputs); a statement whose result never reaches an output is not "
                 "detected, so some kernels carry computations that do not affect their outputs. One measured case: "
                 f"{n(cpu['quality']['records_with_unused_helpers'])} CPU records define a `@wp.func` their kernel "
                 "never calls.")
    items.append("**Synthetic programs.** The kernels come from grammars written per family; they are valid, in-domain "
                 "and varied, but their distribution is not that of human-written Warp code (no physics-simulation "
                 "code, no kernels spread over several modules, no hand-tuned idioms), and structural uniqueness is a "
                 "syntactic, not a semantic, measure of diversity.")
    items.append(f"**Sampled inputs and tolerances.** Verification covers "
                 f"{' or '.join(sorted(cpu['verification']['input_sets']))} random input sets from each argument's "
                 "declared range; behaviour outside those ranges (overflow, NaN propagation, extreme magnitudes) is "
                 f"not covered, and {pct(cpu['verification']['elements_masked'], cpu['verification']['elements_masked'] + cpu['verification']['elements_compared'], 2)} "
                 "of the output elements were masked as ill-conditioned rather than compared.")
    versions = {k: sorted(set(cpu["tool_versions"][k]) | set(cuda["tool_versions"][k]))
                for k in ("warp", "cuda_toolkit")}
    levels = {d: ", ".join(f"`-O{k}`" for k in x["optimization_levels"]) for d, x in (("cpu", cpu), ("cuda", cuda))}
    items.append(f"**One toolchain.** All code is from Warp {' and '.join(versions['warp'])} with NVRTC "
                 f"{' and '.join(versions['cuda_toolkit'])} for {cuda['arch']}; other Warp versions generate different "
                 "code (names, templates, launch structure) and other architectures different PTX. PTX is included "
                 f"only with `--ptx` ({n(cuda['sizes']['with_ptx'])} records here). `provenance.optimization_level` "
                 f"is {levels['cpu']} in the CPU records and {levels['cuda']} in the CUDA records. Warp's generated "
                 "C++ and CUDA text does not depend on the level; the machine code that ran the numerics does, so "
                 "other levels could round differently.")
    sampled = any(x["tokens"]["sample"] < x["tokens"]["of"] for x in (cpu, cuda))
    items.append("**Token counts** use one tokenizer (`cl100k_base`)"
                 + (f" on a sample of {n(cpu['tokens']['sample'])} CPU and {n(cuda['tokens']['sample'])} CUDA records; "
                    "totals are extrapolations" if sampled else ", counted on every record")
                 + "; other tokenizers split C++ differently.")
    measured = cpu["production"]["records_per_second"] or cuda["production"]["records_per_second"]
    where = "the production manifests" if measured else ""
    if bench:
        where = (where + " and " if where else "") + (
            "the stage benchmark, run in one process on a machine with "
            f"{bench['machine'].get('cores') or 'an unknown number of'} CPU cores{', ' + bench['machine']['cpu'] if bench['machine'].get('cpu') else ''}")
    if where:
        items.append(f"**Rates** come from {where}, on shared machines with other jobs running; they are "
                     "indicative, not a controlled benchmark."
                     + ("" if measured else " No production run that wrote these datasets was logged, so there is "
                        "no measured production rate."))
    else:
        items.append("**Rates** are not reported: no logged production run wrote these datasets and no stage "
                     "benchmark JSON was given to this build.")
    return "\n".join(f"{i}. {text}" for i, text in enumerate(items, 1))


def conclusion(cpu: dict, cuda: dict, fams: list[str]) -> str:
    gaps = []
    not_on_gpu = cuda["verification"]["numerics_device"].get("cpu", 0)
    if not_on_gpu:
        gaps.append((f"GPU execution of the CUDA code ({pct(not_on_gpu, cuda['records'])} of CUDA records took their "
                     "numbers from the CPU build)", "rerunning the same command on a machine with a GPU"))
    g = cpu["verification"]["gradient_checked"]
    if g < cpu["records"]:
        gaps.append((f"broader gradient checks ({pct(g, cpu['records'])} of CPU records checked)",
                     "adding differentiable references"))
    text = (f"The factory produced {n(cpu['records'])} CPU and {n(cuda['records'])} CUDA records from {len(fams)} "
            f"kernel families, {mb(cpu['bytes_raw'])} MB and {mb(cuda['bytes_raw'])} MB of JSON, in which every "
            "record is a distinct program that Warp compiled with a real compiler and that matched a float64 "
            "reference on fresh inputs, with its forward and backward code and the evidence of its verification in "
            "the record. Compared with the earlier pipeline, the gain is not in volume but in what each record "
            "certifies and in how cheaply that certification scales: many kernels per module, bisection for the bad "
            "ones, and pytest-xdist for parallelism turn verification from a luxury into the default.")
    if gaps:
        text += (" The main gaps, " + " and ".join(g for g, _ in gaps) + ", are measured in this report and are "
                 "closed by " + " and by ".join(fix for _, fix in gaps) + ".")
    return text


def fill(template: str, ctx: dict[str, str]) -> str:
    missing = sorted({m.group(1) for m in PLACEHOLDER.finditer(template)} - set(ctx))
    if missing:
        raise RenderError(f"template placeholders without a value: {missing}")
    text = PLACEHOLDER.sub(lambda m: ctx[m.group(1)], template)
    prose = FENCE.sub("", text)          # generated code in the appendix may legitimately say None or nan
    bad = sorted({m.group(0) for m in FORBIDDEN.finditer(prose)})
    if bad:
        where = [line for line in prose.splitlines() if FORBIDDEN.search(line)][:3]
        raise RenderError(f"rendered report contains {bad}, e.g. in: {where}")
    return text
