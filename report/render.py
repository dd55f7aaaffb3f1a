"""Text of the report: the context that fills ``report/template.md`` (finished Markdown per ``{{key}}``), the
sentences that depend on the data, and figure numbering.

:func:`fill` refuses to write a report with an unknown key, a leftover placeholder, a TODO, a figure cited but
not drawn, or a drawn figure nobody cites. Figures are numbered in order of appearance: a figure's caption holds
``@@FIG:name@@`` and a citation ``@@REF:name@@``; both become ``Figure N``.
"""

from __future__ import annotations

import re
from collections import Counter

from . import tables as T
from .fmt import counts_inline, n, pct, plural, sig
from .samples import sample_records

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
#: text that must not reach the report: placeholders, to-do markers, and Python values leaking into prose/tables
FORBIDDEN = re.compile(r"\{\{|\}\}|\bTODO\b|\bTBD\b|\bFIXME\b|\bXXX\b|\bnan\b|\binf\b|n/a%|@@|"
                       r"\bNone(?=\s*[|%,;)\]])|(?<=[(\[=:] )None\b")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
FIG = re.compile(r"@@FIG:(\w+)@@")
REF = re.compile(r"@@REF:(\w+)@@")


class RenderError(Exception):
    """The template and the computed context do not fit (unknown key, leftover placeholder, forbidden text)."""


def figure(drawn: dict, name: str, caption: str) -> str:
    if name not in drawn:
        return f"*(No figure: {caption.split(':')[0].lower()} has no input in this build.)*"
    return f"![{caption}](figures/{drawn[name]})\n\n*@@FIG:{name}@@: {caption}*"


def ref(drawn: dict, name: str) -> str:
    return f"@@REF:{name}@@" if name in drawn else "a figure this build could not draw (its input is missing)"


def context(nums: dict, catalog: dict, drawn: dict, datasets: dict, meta: dict, side: dict) -> dict[str, str]:
    cpu, cuda = nums["datasets"]["cpu"], nums["datasets"]["cuda"]
    o = nums["overlap"]
    tools = cpu["tools"]
    ctx: dict[str, str] = {}
    # -- header ---------------------------------------------------------------------------------------------
    ctx.update({
        "meta.command": meta["command"], "meta.data_dir": meta["data_dir"], "meta.date": meta["date"],
        "meta.version": meta["version"], "meta.schema": str(meta["schema"]),
        "meta.warp": tools.get("warp", "?"), "meta.cuda_toolkit": tools.get("cuda_toolkit") or "not available",
        "meta.ptxas": cuda["tools"].get("ptxas") or "not recorded", "meta.numpy": tools.get("numpy", "?"),
        "meta.python": tools.get("python", "?"), "cuda.arch": cuda["arch"] or "none",
        "meta.inputs_missing": inputs_missing(side),
    })
    for name in ("lengths", "verification", "rejects", "resources", "saturation", "coverage", "baselines"):
        ctx[f"ref.{name}"] = ref(drawn, name)
    # -- executive summary ------------------------------------------------------------------------------------
    ctx["table.summary"] = T.summary_table(nums)
    fams = sorted(set(cpu["families"]) | set(cuda["families"]))
    adj = [x["adjoint"] for x in (cpu, cuda)]
    ctx["summary.what"] = (
        f"The factory holds {n(o['distinct_programs'])} distinct Warp programs (structural hashes: names, literals "
        f"and comments normalised) from {len(fams)} seeded generator families, as two datasets of "
        f"{cpu['bytes_raw'] / 1e6:.0f} and {cuda['bytes_raw'] / 1e6:.0f} MB: "
        f"`cpu_code` ({n(cpu['records'])} records, {n(cpu['tokens']['total'])} cl100k tokens) pairs each kernel's "
        f"Python with the C++ Warp {ctx['meta.warp']} generates for its CPU backend, `cuda_code` "
        f"({n(cuda['records'])} records, {n(cuda['tokens']['total'])} tokens) with the CUDA C++ for {cuda['arch']}; "
        f"token totals are exact, summed over every record. {n(o['in_both'])} kernels are in both datasets, and "
        f"for every one of them the statements of the forward and backward functions are identical between the "
        f"two backends ({n(o['forward_statements_identical'])} and {n(o['backward_statements_identical'])} of "
        f"{n(o['in_both'])}); only the frame around them differs. That parallel corpus is a choice: a model sees "
        "the same program lowered to two ABIs, so what is backend-specific (argument struct vs by-value "
        "parameters, task loop vs grid-stride loop) is isolated from what is the program, and the splits agree "
        f"(by structural hash) across the two datasets. {pct(adj[0]['backward_bytes'] + adj[0]['adjoint_helper_bytes'], adj[0]['record_bytes'])} "
        f"of the CPU bytes and {pct(adj[1]['backward_bytes'] + adj[1]['adjoint_helper_bytes'], adj[1]['record_bytes'])} "
        "of the CUDA bytes are adjoint code (the backward entry plus `adj_` helpers): the data teaches reverse-mode "
        "differentiation as much as lowering.")
    ctx["summary.verified"] = summary_verified(cpu, cuda)
    ctx["summary.cost"] = summary_cost(cpu, cuda, side)
    # -- background -------------------------------------------------------------------------------------------
    ctx.update(ptx_context(side.get("ptx")))
    # -- methodology -------------------------------------------------------------------------------------------
    ctx["table.families"] = T.families_table(nums, catalog)
    ctx["table.production"] = T.production_table(nums)
    ctx["production.sentence"] = production_sentence(cpu, cuda)
    ctx["table.rejects"] = T.rejects_table(nums)
    ctx["fig.rejects"] = figure(drawn, "rejects", "Rejected kernels by reason, CPU and CUDA side by side")
    ctx["rejects.sentence"] = rejects_sentence(cpu, cuda)
    ctx["table.resources"] = T.resources_table(nums)
    ctx["fig.resources"] = figure(drawn, "resources", "Registers per thread of every CUDA record's forward and "
                                                      "backward entry, by family (ptxas, sm_90)")
    ctx["resources.sentence"] = resources_sentence(cuda)
    ctx["deviations"] = deviations(cpu, cuda)
    ctx["gradient.sentence"] = gradient_sentence(cpu, cuda)
    # -- characteristics -----------------------------------------------------------------------------------------
    ctx["table.context"] = T.context_table(nums)
    ctx["fig.lengths"] = figure(drawn, "lengths", "cl100k tokens per record (Python + generated code) by family, "
                                                  "both datasets, against 4k/8k/16k/32k contexts; grey: the CPU "
                                                  "kernels before the token budget")
    ctx["lengths.sentence"] = lengths_sentence(cpu, cuda)
    ctx["table.verification"] = T.verification_table(nums)
    ctx["fig.verification"] = figure(drawn, "verification", "Each record's largest relative error (records with "
                                                            "non-zero error; left) and share of masked elements (right)")
    ctx["verification.sentence"] = verification_sentence(cpu)
    ctx["table.quality"] = T.quality_table(nums)
    ctx["quality.sentence"] = quality_sentence(cpu, cuda)
    sat = side.get("saturation")
    ctx["table.saturation"] = T.saturation_table(sat) if sat else ""
    ctx["fig.saturation"] = figure(drawn, "saturation", "Share of distinct programs per family as the generator "
                                                        "runs longer (generation only, no compiles)")
    ctx["saturation.sentence"] = saturation_sentence(sat, catalog)
    cov = side.get("coverage")
    ctx["table.coverage"] = T.coverage_table(cov) if cov else ""
    ctx["fig.coverage"] = figure(drawn, "coverage", "Constructs of Warp's own non-test kernels against the "
                                                    "share of CPU records using them")
    ctx["coverage.sentence"] = coverage_sentence(cov)
    # -- applications ------------------------------------------------------------------------------------------------
    base = side.get("baselines") or {}
    ctx["table.baselines"] = T.baselines_table(base)
    ctx["table.mutants"] = T.mutants_table(base["mutants"]) if base.get("mutants") else ""
    ctx["fig.baselines"] = figure(drawn, "baselines", "Baselines of the execution-checked benchmark: pass@1 and "
                                                      "compile rate per task (left), mutants killed per kind (right)")
    ctx["baselines.sentence"] = baselines_sentence(base, side.get("judge_cost"))
    # -- limitations, appendix --------------------------------------------------------------------------------------
    ctx["errorcases.sentence"] = error_cases_sentence(cpu, cuda)
    ctx["limitations.gpu"] = limitation_gpu(cuda)
    ctx["limitations.tolerance"] = limitation_tolerance(cpu, cuda, side.get("reverify"))
    ctx["appendix.samples"] = sample_records(datasets)
    ctx["table.comparison"] = T.comparison_table(nums)
    ctx["overlap.distinct"] = n(o["distinct_programs"])
    ctx["overlap.in_both"] = n(o["in_both"])
    ctx["families.count"] = str(len(fams))
    ctx["batching.cell"] = batching_cell(side.get("batching"))
    return ctx


def batching_cell(b: dict | None) -> str:
    """Section 3.1.1's measured cost of one kernel per module, from the stage benchmark."""
    if not b:
        return "not measured in this build (`report/bench/stages.json` missing)"
    fams = b["families"]

    def span(key: str) -> str:
        lo, hi = min(v[key] for v in fams.values()), max(v[key] for v in fams.values())
        return f"{lo:.1f}x" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}-{hi:.1f}x"

    rounds = sorted({r for v in fams.values() for r in v["rounds"]})
    rounds_text = str(rounds[0]) if len(rounds) == 1 else f"{rounds[0]}-{rounds[-1]}"
    names = ", ".join(f"`{f}`" for f in fams)
    ks = sorted({int(v["k"]) for v in fams.values() if v.get("k")})
    per_module = "/".join(str(k) for k in ks) if ks else "a chunk's kernels"
    return (f"per kernel, one module each was {span('o0')} slower than {per_module} per module at the same `-O0` (batching "
            f"alone) and {span('o2')} at Warp's default `-O2` (stage benchmark: {names}; {rounds_text} rounds)")


def inputs_missing(side: dict) -> str:
    missing = [f"`report/benchmark/{k}.json`" for k, v in (side.get("baselines") or {}).items() if v is None]
    missing += [f"`report/{name}.json`" for name, key in (("saturation", "saturation"), ("coverage", "coverage"),
                                                          ("ptx_excerpt", "ptx"), ("bench/stages", "batching"))
                if not side.get(key)]
    if not missing:
        return "every side input was present."
    return ("missing side inputs, so the parts that need them say so: " + ", ".join(missing) + ".")


def summary_verified(cpu: dict, cuda: dict) -> str:
    on_gpu = cuda["verification"]["numerics_device"].get("cuda", 0)
    g = cpu["verification"]["gradient_checked"]
    where = ("No GPU was available: the numbers of every CUDA record were computed by the CPU build of the same "
             "kernel (`verification.numerics_device` = `cpu`), so the CUDA code is proven to compile and assemble, "
             "not to compute." if on_gpu == 0 else
             f"{n(on_gpu)} of {n(cuda['records'])} CUDA records ran their numbers on a GPU.")
    return (f"Every CPU record's kernel was compiled by Clang inside Warp, launched on {' or '.join(cpu['verification']['input_sets'])} "
            "sets of fresh random inputs, and every output element was compared with a float64 NumPy reference "
            f"({n(cpu['verification']['elements_compared'])} comparisons); its own fields were then rebuilt alone "
            "by g++. Every CUDA record's code went through NVRTC to PTX and ptxas to SASS for "
            f"{cuda['arch']}, from the record's own fields. {where} Gradients were checked for {n(g)} CPU records "
            f"({pct(g, cpu['records'])}) and {n(cuda['verification']['gradient_checked'])} CUDA records, and "
            "a gradient check here is one random directional derivative of Warp's backward pass against central "
            "differences of the float64 reference, within the family's tolerance (most commonly rtol 1e-4), not a "
            "full Jacobian. Kernels whose output is constant, a copy of an input or blind to most inputs were "
            "rejected, as were exact and structural duplicates.")


def _task_score(task: str, t: dict) -> str:
    """pass@1 of a task, or what ran instead where no prediction could be checked numerically (no GPU)."""
    only = t.get("outcomes", {}).get("compiled_only", 0)
    if only and only == t.get("predictions"):
        return f"`{task}` compiled only (no GPU to run it)"
    if only:
        return (f"`{task}` {100 * t['pass@1']:.1f}% ({n(only)} of {n(t['predictions'])} compiled but not run: "
                "no GPU)")
    return f"`{task}` {100 * t['pass@1']:.1f}%"


def summary_cost(cpu: dict, cuda: dict, side: dict) -> str:
    a, b = cpu["cost"], cuda["cost"]
    text = ""
    if a["per_record"] and b["per_record"]:
        text = (f"On a 2-core machine without a GPU, a verified CPU record cost {a['per_record']:.3f} core-seconds "
                f"({a['per_mtok']:,.0f} per million tokens) and a CUDA record {b['per_record']:.3f} "
                f"({b['per_mtok']:,.0f} per million tokens, NVRTC and ptxas included, and "
                + (f"{cuda['production']['stage_seconds']['compile_cpu']:,.0f} core-seconds of CPU builds for the "
                   "numbers, which the CPU run's kernel cache did not serve"
                   if cuda["production"]["stage_seconds"].get("compile_cpu", 0) > 0.2 * sum(
                       cuda["production"]["stage_seconds"].values()) else
                   "its CPU builds for the numbers from the CPU run's kernel cache")
                + "). Core-seconds are wall time times worker processes over the records the runs wrote. ")
    base = side.get("baselines") or {}
    parts = []
    if base.get("oracle"):
        for device, s in sorted(base["oracle"]["datasets"].items()):
            parts += [_task_score(t, v) for t, v in sorted(s["tasks"].items())]
        text += ("Each test split is an execution-checked benchmark (Section 6.1): the oracle, the records' own "
                 "code, scores pass@1 " + ", ".join(parts))
        if base.get("mutants"):
            text += f"; the judge rejects {100 * base['mutants']['killed_share']:.1f}% of single-mutation mutants"
        if base.get("retrieval"):
            r = [_task_score(t, v) for _, s in sorted(base["retrieval"]["datasets"].items())
                 for t, v in sorted(s["tasks"].items())]
            text += "; nearest-neighbour retrieval, the floor a model must beat, scores " + ", ".join(r)
        text += ". "
    missing = [k for k, v in base.items() if v is None]
    if missing:
        text += "Not yet committed: the " + " and ".join(missing) + " baseline results. "
    loose = sum(x["verification"]["loose_tolerance"]["records"] for x in (cpu, cuda))
    if loose:
        again = side.get("reverify")
        text += (f"{n(loose)} records state a tolerance above 1, most from a `random` tolerance bug that made "
                 "their check unable to fail" + ("; checked again with the fixed tolerance, all pass"
                                                  if again and not any(r["problems"] for r in again.values()) else "")
                 + " (Section 7.1). ")
    return text + ("The main limits: CUDA code not run on a GPU, gradients checked on a subset, synthetic rather "
                   "than real-world programs, one Warp version and one GPU architecture (Section 7).")


def ptx_context(ptx: dict | None) -> dict[str, str]:
    if not ptx:
        return {"ptx.excerpt": "*(No PTX excerpt: `report/ptx_excerpt.json` is missing; "
                               "`python -m report.ptx_excerpt` writes it.)*", "ptx.sentence": ""}
    lines = ptx["forward_entry"]
    head_end = next((i for i, line in enumerate(lines) if i > 3 and not line.strip()), 12)
    first_load = next((i for i, line in enumerate(lines) if "ld.global" in line), head_end)
    last_store = max((i for i, line in enumerate(lines[:first_load + 40]) if "st.global" in line), default=first_load)
    body = lines[first_load:last_store + 1]
    excerpt = lines[:head_end] + [f"\t// ... {first_load - head_end} lines: parameter loads, launch bounds, "
                                  "grid-stride loop set-up ..."] + body + ["\t// ..."]
    src = ptx["python_source"].split("@wp.kernel", 1)[-1].strip()
    res = ptx.get("resources") or {}
    return {
        "ptx.excerpt": ("```python\n@wp.kernel" + ("\n" if not src.startswith("\n") else "") + src + "\n```\n\n"
                        "```ptx\n" + "\n".join(lines_ for lines_ in excerpt) + "\n```"),
        "ptx.sentence": (f"The record is `{ptx['kernel_name']}` (family `{ptx['family']}`, id `{ptx['id'][:12]}...`); its "
                         f"forward entry is {n(len(lines))} lines of PTX for {ptx['arch']}, of which the excerpt keeps "
                         f"the declarations and the first loop body. ptxas gives it {res.get('registers', '?')} "
                         f"registers, {res.get('spill_store_bytes', 0)} bytes of spills and "
                         f"{res.get('shared_bytes', 0):,} bytes of shared memory (Warp's tile storage, reserved whether "
                         "or not a kernel uses tiles)"
                         + (", the same numbers its record carries in `ir.resources`." if ptx.get("matches_record_resources")
                            else ".")),
    }


def production_sentence(cpu: dict, cuda: dict) -> str:
    a, b = cpu["production"], cuda["production"]
    if not a["records_per_second"]:
        return "No production run that wrote chunks is logged in the manifests, so no rate is quoted."
    ka, kb_ = a["measured_runs"], b["measured_runs"]
    runs = (f"Each dataset was made by {'one logged run' if ka == 1 else plural(ka, 'logged run')}" if ka == kb_ else
            f"The CPU dataset was made by {plural(ka, 'logged run')} and the CUDA dataset by {plural(kb_, 'logged run')}")
    runs += " (a rerun resumes where the last stopped)" if max(ka, kb_) > 1 else ""
    return (f"{runs} of `pytest -m production -n auto` with "
            f"{plural(a['workers'], 'worker')} on the project's 2-core machine, which was shared with other work "
            "during the runs (the wall times overstate what an idle machine takes). Compiling is the floor of a "
            f"verified record: on the CPU run Clang and the g++ rebuild take "
            f"{100 * (a['stage_share'].get('compile_cpu', 0) + a['stage_share'].get('rebuild_cpu', 0)):.0f}% of the "
            f"workers' time; on the CUDA run NVRTC and ptxas take "
            f"{100 * (b['stage_share'].get('compile_cuda', 0) + b['stage_share'].get('assemble_cuda', 0)):.0f}%.")


def rejects_sentence(cpu: dict, cuda: dict) -> str:
    r = cpu["rejects"]
    over = r["by_reason"].get("over_budget", 0)
    return (f"Of the {n(r['attempted'])} kernels generated in the {n(r['chunks'])} chunks the CPU dataset is made "
            f"of, {n(r['written'])} ({100 * r['acceptance']:.1f}%) passed every check. The largest reject class is "
            f"length, not correctness: {n(over)} CPU kernels were longer than the 16,384-token budget. "
            + compiler_rejects_clause(cpu, cuda) + " The CPU and CUDA reject counts differ only "
            "where the datasets were cut at different chunks and by record length (CUDA code is shorter); the "
            "CUDA rejects' numeric verdicts are the CPU build's, like their records'.")


def resources_sentence(cuda: dict) -> str:
    res = cuda["resources"]
    if not res.get("records"):
        return ""
    a = res["all"]
    fw, bw = a["forward"], a["backward"]
    worst = max(res["per_family"].items(), key=lambda kv: kv[1]["backward"]["registers_p50"] if "backward" in kv[1]
                else 0)
    return (f"All {n(res['records'])} CUDA records carry the resources of their own SASS. A forward entry needs "
            f"{fw['registers_p50']:.0f} registers per thread at the median (max {fw['registers_max']}), a backward "
            f"entry {bw['registers_p50']:.0f} (max {bw['registers_max']}); `{worst[0]}` has the heaviest "
            f"backward entries. {n(fw['spilling'] + bw['spilling'])} entries spill to local memory and "
            f"{n(fw['stack'] + bw['stack'])} have a stack frame, so the corpus also holds register-pressure "
            "examples for cost models.")


def deviations(cpu: dict, cuda: dict) -> str:
    tm = cpu["tile_matmul"]
    levels = {d: ", ".join(f"`-O{k}`" for k in x["optimization_levels"]) for d, x in (("cpu", cpu), ("cuda", cuda))}
    blocks = counts_inline({f"block_dim {k}": v for k, v in cpu["block_dims"].items()})
    return "\n".join([
        f"- **CPU modules at block_dim 1 and {levels['cpu']}.** CPU launches use block_dim 1 (tile kernels their tile "
        f"width: {blocks}), while `Module.load` defaults to 256; Warp's default CPU level is `-O2`, the factory "
        f"compiles at {levels['cpu']} (the generated C++ does not depend on the level; the numbers that verified it "
        "came from `-O0` machine code). CUDA is compiled at Warp's default " + levels["cuda"] + ".",
        f"- **`tile_matmul` without MathDx.** {n(tm)} CPU records call `wp.tile_matmul`; they were generated with "
        "`enable_mathdx_gemm=False`, so their CUDA code holds Warp's portable tile GEMM, not the cuBLASDx (MathDx) "
        "path Warp uses by default on a GPU.",
        "- **`strip_hash` names.** Modules are built with Warp's `strip_hash` option, so generated names carry the "
        "kernel's own content-addressed name (`<kernel_name>_cpu_kernel_forward`) instead of Warp's "
        "`<key>_<hash8>` suffix.",
        f"- **One architecture, PTX not stored.** CUDA code targets {cuda['arch']} only; PTX is reproduced from a "
        "record's fields (Section 1.2 shows how) rather than stored in it.",
    ])


def gradient_sentence(cpu: dict, cuda: dict) -> str:
    g, t = cpu["verification"]["gradient_checked"], cpu["records"]
    none = [f for f, v in cpu["families"].items() if v["gradient_checked"] == 0]
    return (f"The gradient check ran for {n(g)} of {n(t)} CPU records ({pct(g, t)}) and "
            f"{n(cuda['verification']['gradient_checked'])} of {n(cuda['records'])} CUDA records: Warp's backward "
            "pass (`wp.Tape`) with random output weights gives one directional derivative along one random input "
            "direction, compared with central differences of the float64 reference (elements where the reference "
            "is not smooth within the step are not weighed). Other records carry backward code that compiled but "
            "was not compared: their family does not mark them differentiable (integer, float16, random-number and "
            "constructs whose Warp 1.19 adjoint is known to be incomplete), or they have no float input and output."
            + (f" Families with no gradient-checked record: {', '.join(f'`{f}`' for f in none)}." if none else ""))


def lengths_sentence(cpu: dict, cuda: dict) -> str:
    t, u = cpu["tokens"], cuda["tokens"]
    pf = t["per_family"]
    longest = max(pf.items(), key=lambda kv: kv[1]["p50"])
    shortest = min(pf.items(), key=lambda kv: kv[1]["p50"])
    return (f"Lengths are exact: every record carries its cl100k token counts. A CPU record is {n(t['pair']['p50'])} "
            f"tokens at the median ({n(t['python']['p50'])} of Python, {n(t['code']['p50'])} of generated code: "
            f"{t['expansion']['p50']:.1f}x), a CUDA record {n(u['pair']['p50'])}. Families differ by an order of "
            f"magnitude: `{shortest[0]}` has a median of {n(shortest[1]['p50'])} tokens, `{longest[0]}` "
            f"{n(longest[1]['p50'])}. The 16,384-token budget bounds every record, so all fit a 32k context; "
            f"{pct(t['fit']['8192'], cpu['records'])} of CPU records fit 8k and {pct(t['fit']['4096'], cpu['records'])} "
            "fit 4k." + budget_clause(t.get("budget")))


def budget_clause(b: dict | None) -> str:
    """How long the kernels were before the budget cut (the grey boxes of the lengths figure)."""
    if not b or not b["over_budget"]:
        return ""
    worst = max(b["per_family"].items(), key=lambda kv: kv[1]["over_budget"] / max(kv[1]["generated"], 1))
    return (f" Before the cut, {pct(b['over_budget'], b['generated'])} of the CPU kernels were longer (grey boxes); "
            f"most in `{worst[0]}`, {pct(worst[1]['over_budget'], worst[1]['generated'])} of its kernels, median "
            f"{n(worst[1]['p50_before'])} tokens before and {n(worst[1]['p50_after'] or 0)} after.")


def verification_sentence(cpu: dict) -> str:
    v = cpu["verification"]
    floats = {dt: d for dt, d in v["by_dtype"].items() if dt in ("float16", "float32", "float64")}
    return (f"Every record's elements are inside its tolerance by construction; the table shows how far inside. "
            f"{n(v['records_error_zero'])} CPU records ({pct(v['records_error_zero'], cpu['records'])}) reproduced "
            "their reference exactly (the same definition, maximum absolute error 0, in the table and the figure). "
            "By main dtype: " + "; ".join(f"`{dt}` {n(d['records'])} records, median non-zero relative error "
                                           f"{sig(d['max_rel_err_nonzero_p50'])}" for dt, d in floats.items())
            + ". Every record was verified on the CPU build, and no record of either dataset on a GPU.")


def quality_sentence(cpu: dict, cuda: dict) -> str:
    probs = [x["quality"] for x in (cpu, cuda)]
    ok = all(q["validated"] and q["validate_problems"] == 0 for q in probs)
    return (("`wkf-validate` found no problem in either dataset (schema, shard sha256, ids and structural hashes "
             "recomputed and unique, splits, counts and bytes against the manifest). " if ok else
             "`wkf-validate` reported problems or was not run for this build. ")
            + "No two records of a dataset share a structural hash. Near-duplicates below are measured on Python "
            "token 5-grams, every pair at or above 80% found exactly (an all-pairs similarity join with prefix "
            "filtering, not a MinHash estimate). " + hygiene_sentence(probs))


HYGIENE_WORDS = {"unused_funcs": "unused `@wp.func`", "dead_locals": "dead local",
                 "self_comparisons": "`x <= x`", "identity_ops": "`e - 0`-style identity",
                 "long_lines": "line over 120 characters", "hashed_names": "long hash in a name"}


def hygiene_sentence(probs: list[dict]) -> str:
    """What a reader would call noise in the Python (``production/hygiene.py``), counted in both datasets."""
    hy = [q.get("hygiene") for q in probs]
    if not all(hy):
        return ""
    if all(h[k]["records"] == 0 for h in hy for k in HYGIENE_WORDS):
        return "No record's Python has any of: " + ", ".join(HYGIENE_WORDS.values()) + " (`wkf-analyze`)."
    return ("Records (CPU/CUDA) whose Python has noise (`wkf-analyze`): "
            + ", ".join(f"{words} {n(hy[0][k]['records'])}/{n(hy[1][k]['records'])}"
                        for k, words in HYGIENE_WORDS.items()) + ".")


def saturation_sentence(sat: dict | None, catalog: dict | None = None) -> str:
    if not sat:
        return ("The saturation curve is missing: `report/saturation.json` is not committed "
                "(`python -m report.saturation` writes it).")
    per = {f: (v.get("checkpoints") or sat["checkpoints"])[-1] for f, v in sat["families"].items()}
    final = {f: v["distinct"][-1] for f, v in sat["families"].items()}
    errors = {f: len(v.get("generator_errors", [])) for f, v in sat["families"].items()}
    full = [f for f, d in final.items() if d == per[f] - errors[f]]        # a generator error is no repeat
    low = sorted(((d / per[f], d, f) for f, d in final.items() if d < per[f] - errors[f]))
    runs = sat.get("runs") or [{"programs": sat["programs_per_family"], "workers": sat["workers"],
                                "wall_seconds": sat["wall_seconds"], "families": sorted(per)}]
    count = Counter(per.values())                                            # families per program count
    sizes = sorted(count, reverse=True)
    how_many = "; ".join(f"{n(size)} programs for {count[size]} famil{'ies' if count[size] != 1 else 'y'}"
                         for size in sizes)
    seconds = sum(r["wall_seconds"] for r in runs)
    text = (f"`python -m report.saturation` generated {how_many} (no compiles, {seconds:,.0f} s; "
            + ("the cheaper generators ran longer, none to 10^5, " if len(sizes) > 1 else
               f"10^{len(str(sizes[0])) - 1} rather than 10^5, ")
            + f"to fit 2 cores). {len(full)} of {len(final)} families never repeat a structure"
            + (("; distinct of " + n(sizes[0]) + ": " + ", ".join(f"`{f}` {n(d)}" for _, d, f in low)
                if len(sizes) == 1 else ": " + ", ".join(f"`{f}` {n(d)} of {n(per[f])}" for _, d, f in low)
                + " are those that do") + "." if low else "."))
    if any(errors.values()):
        text += (" Programs not made (generator errors, production's `generator_error` rejects): "
                 + ", ".join(f"`{f}` {n(k)}" for f, k in sorted(errors.items()) if k) + ".")
    now = {f: set(c["generators"]) for f, c in (catalog or {}).items()}
    stale = sorted(f"`{v['generator']}`" for f, v in sat["families"].items() if f in now and v["generator"] not in now[f])
    unmeasured = sorted(f"`{f}`" for f in now if f not in sat["families"])
    if stale:
        text += f" Measured on older generators than the data's: {', '.join(stale)}."
    if unmeasured:
        text += f" Not measured: {', '.join(unmeasured)}."
    return text


def coverage_sentence(cov: dict | None) -> str:
    if not cov:
        return "The coverage comparison is missing: `report/coverage.json` is not committed (`wkf-coverage --json`)."
    w = cov["warp"]
    s = {x["name"]: x for x in cov["datasets"]}
    c = s["cpu_code"]
    return (f"`wkf-coverage` parses every `@wp.kernel` of the installed `warp-lang` package ({n(w['kernels']['all'])} "
            f"kernels, {n(w['kernels']['non_test'])} outside its tests) and every record, and counts which constructs "
            f"each uses. The records reach {c['builtin_table_entries']} entries of Warp's {w['builtin_table_size']}-entry "
            f"builtin table, against {w['builtin_table_entries']['non_test']} for Warp's non-test kernels; the "
            f"Jensen-Shannon divergence between the two construct distributions is {c['divergence_jsd_vs_non_test']:.3f} "
            f"bits for `cpu_code` and {s['cuda_code']['divergence_jsd_vs_non_test']:.3f} for `cuda_code` (0 is "
            f"identical, 1 disjoint). {plural(len(c['gap']), 'construct')} used by at least "
            f"{cov['thresholds']['min_real']} of Warp's non-test kernels {'appears' if len(c['gap']) == 1 else 'appear'} "
            f"in fewer than {cov['thresholds']['min_records']} records; the largest gaps:")


def baselines_sentence(base: dict, judge: dict | None) -> str:
    missing = [k for k, v in base.items() if v is None]
    text = ("The judge checks a completion the way production checks Warp's own code: it regenerates the record's "
            "program, inputs and reference from its generator and seed, compiles the completion with the same "
            "toolchain and compares 3 input sets with the family's tolerances. ")
    if judge and {"judge", "compile"} <= set(judge["rows"]):
        j, c = judge["rows"]["judge"], judge["rows"]["compile"]
        text += (f"A verdict costs {j['ms_per_prediction']:.0f} ms against {c['ms_per_prediction']:.0f} ms for the "
                 f"compile alone ({j['ms_per_prediction'] / c['ms_per_prediction']:.2f}x; pytest-benchmark, "
                 f"{j['rounds']} rounds of {j['predictions_per_round']} predictions). ")
    if missing:
        text += ("Missing from this build: " + ", ".join(f"`report/benchmark/{m}.json`" for m in missing)
                 + " (`wkf-eval-baselines` writes them); the table holds what is committed. ")
    limits = {d: v for b in base.values() if b for d, v in (b.get("records_per_family_limit") or {}).items() if v}
    if limits:
        text += ("The baselines judge a stratified sample of each test split, the first "
                 + " and ".join(f"{v} {d.upper()} test records" for d, v in sorted(limits.items()))
                 + " of every family by id, not the whole split. ")
    m = base.get("mutants")
    if m and m.get("survivors_with_same_outputs") is not None:
        splits = " and ".join((m.get("splits") or {}).get("cpu") or ["test"])
        survivors = m["mutants"] - m["killed"]
        text += (f"Mutants of {n(m['records'])} held-out CPU records ({splits}): {100 * m['killed_share']:.1f}% "
                 f"killed; {n(m['survivors_with_same_outputs'])} of the {n(survivors)} survivors have outputs "
                 "bit-identical to the original's (the mutation reaches no output), and "
                 f"{100 * m['killed_share_of_observable']:.1f}% of output-changing mutants are killed. ")
    if base.get("oracle"):
        cuda = base["oracle"]["datasets"].get("cuda")
        if cuda:
            text += ("Without a GPU, `py2cuda` verdicts are `compiled_only`, never a pass: its pass@1 measures "
                     "nothing until a GPU is lent. ")
    return text


COMPILER_REJECTS = ("compile_error", "record_error", "assemble_error", "compile_timeout")


def compiler_rejects_clause(cpu: dict, cuda: dict) -> str:
    """What the compilers refused (or hung on), counted per dataset from the rejects."""
    parts = []
    for name, x in (("CPU", cpu), ("CUDA", cuda)):
        kinds = {k: x["rejects"]["by_reason"].get(k, 0) for k in COMPILER_REJECTS}
        if any(kinds.values()):
            parts.append(f"{name}: " + ", ".join(f"{n(v)} `{k}`" for k, v in kinds.items() if v))
    if not parts:
        return ("No kernel failed to compile with Clang, NVRTC or ptxas, and no record failed to rebuild from its "
                "own fields (no `compile_error`, `record_error`, `assemble_error` or `compile_timeout`).")
    return ("Compiler verdicts among the rejects (" + "; ".join(parts) + "): a `compile_error` is a generator "
            "bug, a `compile_timeout` a compiler that did not finish within its time limit (a compiler bug, "
            "Section 7.3).")


def error_cases_sentence(cpu: dict, cuda: dict) -> str:
    kinds = {}
    for x in (cpu, cuda):
        for k, v in x["rejects"]["by_reason"].items():
            kinds[k] = kinds.get(k, 0) + v
    total = sum(kinds.values())
    k = sum(kinds.get(c, 0) for c in COMPILER_REJECTS)
    verdicts = f"{n(k)} {'is a compiler verdict' if k == 1 else 'are compiler verdicts'}"
    return (f"The rejects are error-case data already: {n(total)} rejected kernels over both datasets, each with "
            "its seed (it reproduces) and the checker's message: " + counts_inline({f"`{k}`": v for k, v in
                                                                                   sorted(kinds.items(), key=lambda kv: -kv[1])})
            + (". None is a compiler error: the generators emit only code Warp compiles, so compiler diagnostics "
               "(Clang, NVRTC, ptxas messages) would have to come from deliberately broken programs, for instance the "
               "benchmark's mutants, whose `compile_error` verdicts carry the compiler's message."
               if not any(kinds.get(k) for k in COMPILER_REJECTS) else
               f". {verdicts} (a refusal with the compiler's message or a hang killed at the time limit, with its "
               "program); the benchmark's mutants add `compile_error` verdicts with the compiler's message."))


def limitation_gpu(cuda: dict) -> str:
    c = cuda["verification"]["numerics_device"]
    if not c.get("cpu"):
        return "Every CUDA record's numbers ran on a GPU."
    return (f"{n(c['cpu'])} of {n(cuda['records'])} CUDA records ({pct(c['cpu'], cuda['records'])}) have "
            "`numerics_device` = `cpu`: their CUDA code was compiled to SASS but the numbers that passed came from "
            "the CPU build of the same source. GPU-only behaviour (NVRTC's machine code and floating-point "
            "contraction, CUDA math-library results, atomic ordering, tiles on real threads) is not exercised. "
            "`wkf-gpu-compare` sets a GPU run's verdicts beside these, kernel by kernel, when a GPU is lent.")


#: why a generator's records carry a loose tolerance, where the cause is known and fixed
LOOSE_CAUSES = {
    "random@2": "an integer random-number state (up to 2^32) or a min/max accumulator's 1e6 start set atol (4,096 "
                "and more), a check these kernels' wrong outputs could not fail; `random@3` counts float values only "
                "(atol <= 1e-3) and makes the same programs",
    "atomic@2": "one tolerance per kernel, scaled to its largest accumulated output, also covered small outputs; "
                "`atomic@3` gives each output its own and makes the same programs",
    "spectral@1": "not loose: FFT rounding is normwise, so an output's atol is 2e-6 log2(N) times the largest value "
                  "its complex tile holds, and tiles holding large values get a proportionally large atol",
}


def limitation_tolerance(cpu: dict, cuda: dict, reverify: dict | None) -> str:
    """Records whose stated tolerance barely constrains, per dataset, why, and what checking them again found."""
    loose = {name: x["verification"]["loose_tolerance"] for name, x in (("CPU", cpu), ("CUDA", cuda))}
    if not any(v["records"] for v in loose.values()):
        return "No record was checked with an absolute tolerance above 1."
    generators = sorted({g for v in loose.values() for g in v["by_generator"]})
    text = (" and ".join(f"{n(v['records'])} {name}" for name, v in loose.items() if v["records"])
            + " records were checked with atol above 1. ")
    text += " ".join(f"`{g}` ({n(sum(v['by_generator'].get(g, 0) for v in loose.values()))}): {LOOSE_CAUSES[g]}."
                     for g in generators if g in LOOSE_CAUSES) + " "
    if reverify:
        parts = []
        for dataset, r in sorted(reverify.items()):
            outcomes = Counter()
            for counts in r["splits"].values():
                outcomes.update(counts)
            parts.append(f"`{dataset}` " + ", ".join(f"{o} {n(c)}" for o, c in sorted(outcomes.items()))
                         + (f" ({n(len(r['problems']))} failing)" if r["problems"] else ""))
        verifier = sorted({v for r in reverify.values() for v in r.get("verifier", [])})
        text += (f"Checked again under {', '.join(f'`{v}`' for v in verifier)} (`wkf-validate --reverify`): "
                 + "; ".join(parts) + ". ")
    return text + "Regenerating them rewrites every shard, beyond the repository's data budget."


def _number_figures(text: str) -> str:
    order = list(dict.fromkeys(FIG.findall(text)))
    numbers = {name: i for i, name in enumerate(order, 1)}
    cited = set(REF.findall(text))
    dangling = sorted(cited - set(numbers))
    uncited = sorted(set(numbers) - cited)
    if dangling or uncited:
        raise RenderError(f"figures cited but not drawn: {dangling}; drawn but never cited: {uncited}")
    text = FIG.sub(lambda m: f"Figure {numbers[m.group(1)]}", text)
    return REF.sub(lambda m: f"Figure {numbers[m.group(1)]}", text)


def fill(template: str, ctx: dict[str, str]) -> str:
    missing = sorted({m.group(1) for m in PLACEHOLDER.finditer(template)} - set(ctx))
    if missing:
        raise RenderError(f"template placeholders without a value: {missing}")
    text = _number_figures(PLACEHOLDER.sub(lambda m: ctx[m.group(1)], template))
    prose = FENCE.sub("", text)          # generated code in the appendix may legitimately say None or nan
    bad = sorted({m.group(0) for m in FORBIDDEN.finditer(prose)})
    if bad:
        where = [line for line in prose.splitlines() if FORBIDDEN.search(line)][:3]
        raise RenderError(f"rendered report contains {bad}, e.g. in: {where}")
    return text
