"""The report's figures (matplotlib, Agg backend), drawn from :mod:`report.stats` numbers and series.

Each ``fig_*`` function writes one PNG and returns its file name; :func:`draw_all` draws every figure whose data
is present and returns ``{name: file name}``. PNGs carry no software/date metadata, so a rerun on the same data
gives the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLORS = {"cpu": "#1f77b4", "cuda": "#76b900"}        # CPU blue, CUDA (NVIDIA) green
LABELS = {"cpu": "CPU (C++)", "cuda": "CUDA C++"}
STYLES = {"cpu": "-", "cuda": "--"}
REASON_COLORS = plt.get_cmap("tab10").colors
DPI = 110


def _save(fig, out: Path, name: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / name, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return name


def _log_bins(values_list, n=40):
    parts = [np.asarray(v, float)[np.asarray(v, float) > 0] for v in values_list if len(v)]
    vals = np.concatenate(parts) if parts else np.zeros(0)
    if vals.size == 0:
        return np.linspace(0, 1, n)
    lo, hi = np.log10(vals.min()), np.log10(vals.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return np.logspace(lo, hi, n)


def fig_verification(series: dict, out: Path) -> str:
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    nonzero = {d: s["max_rel_err"][s["max_abs_err"] > 0] for d, s in series.items()}
    bins = _log_bins(list(nonzero.values()))
    for d, s in series.items():
        zeros = int(np.count_nonzero(s["max_abs_err"] == 0))      # the verification table's definition
        a.hist(nonzero[d], bins=bins, histtype="step", lw=1.8, color=COLORS[d], ls=STYLES[d],
               label=f"{LABELS[d]} ({zeros:,} records with zero error, not drawn)")
    a.axvline(np.finfo(np.float32).eps, color="k", ls=":", lw=1)
    a.text(np.finfo(np.float32).eps, a.get_ylim()[1] * 0.95, " float32 eps", fontsize=7, va="top")
    a.set_xscale("log")
    a.set_xlabel("max relative error per record vs float64 NumPy reference (log scale)")
    a.set_ylabel("records")
    a.set_title("Verification error")
    a.legend(fontsize=7)
    edges = np.linspace(0, 0.5, 26)
    for d, s in series.items():
        masked = s["masked_fraction"]
        b.hist(masked[masked > 0], bins=edges, histtype="step", lw=1.8, color=COLORS[d], ls=STYLES[d],
               label=f"{LABELS[d]} ({int(np.count_nonzero(masked == 0))} records with none masked)")
    b.set_xlabel("fraction of output elements masked as ill-conditioned (> 0 only)")
    b.set_ylabel("records")
    b.set_title("Masked elements")
    b.legend(fontsize=7)
    return _save(fig, out, "verification.png")


def fig_lengths(series: dict, out: Path) -> str:
    """Record length (cl100k tokens of Python + generated code) per family, both datasets, against contexts."""
    from .stats import CONTEXTS

    fams = sorted(set(series["cpu"]["family"].tolist()) | set(series["cuda"]["family"].tolist()))
    fig, ax = plt.subplots(figsize=(11, 5))
    x = np.arange(len(fams))
    s = series["cpu"]        # before the budget: the CPU records with the CPU kernels rejected over_budget
    before = [np.concatenate([s["pair_tokens"][s["family"] == f],
                              s.get("over_budget_tokens", np.zeros(0, dtype=np.int64))[
                                  s.get("over_budget_family", np.zeros(0, dtype=object)) == f]]) for f in fams]
    groups = [("before", before, "0.6", "CPU kernels before the budget (records + over_budget rejects)")]
    groups += [(d, [series[d]["pair_tokens"][series[d]["family"] == f] for f in fams], COLORS[d],
                f"{LABELS[d]} records (box: p25-p75, whiskers: p5-p95)") for d in ("cpu", "cuda")]
    for k, (_key, data, color, label) in enumerate(groups):
        bp = ax.boxplot(data, positions=x + (k - 1) * 0.28, widths=0.25, whis=(5, 95), showfliers=False,
                        patch_artist=True, manage_ticks=False)
        for box in bp["boxes"]:
            box.set(facecolor=color, alpha=0.55)
        for med in bp["medians"]:
            med.set(color="k")
        ax.plot([], [], "s", color=color, alpha=0.55, label=label)
    for c, style in zip(CONTEXTS, (":", "-.", "--", "-")):
        ax.axhline(c, color="0.35", ls=style, lw=1)
        ax.plot([], [], color="0.35", ls=style, lw=1, label=f"{c // 1024}k context")
    ax.set_yscale("log")
    ax.set_xticks(x, fams, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("cl100k tokens per record (log scale)")
    ax.set_title("Record length per family against common context sizes")
    ax.legend(fontsize=7, ncol=3, loc="lower right")
    return _save(fig, out, "lengths.png")


def fig_rejects(numbers: dict, out: Path) -> str | None:
    """Rejects by reason, CPU and CUDA side by side in one panel (they share their generators and checks)."""
    reasons = sorted({r for d in numbers for r in numbers[d]["rejects"]["by_reason"]},
                     key=lambda r: -sum(numbers[d]["rejects"]["by_reason"].get(r, 0) for d in numbers))
    if not reasons:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(reasons) + 1.5))
    y = np.arange(len(reasons))
    for k, d in enumerate(numbers):
        counts = [numbers[d]["rejects"]["by_reason"].get(r, 0) for r in reasons]
        ax.barh(y + (k - 0.5) * 0.38, counts, height=0.36, color=COLORS[d], label=LABELS[d])
        for yi, c in zip(y, counts):
            ax.text(c, yi + (k - 0.5) * 0.38, f" {c:,}", va="center", fontsize=7)
    ax.set_yticks(y, reasons, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("rejected kernels (symmetric log scale)")
    ax.set_title("Rejected kernels by reason (rejects.jsonl)")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out, "rejects.png")


def fig_resources(series: dict, out: Path) -> str | None:
    regs = series["cuda"].get("registers") or {}
    fams = sorted(regs)
    if not fams:
        return None
    fig, ax = plt.subplots(figsize=(11, 4.2))
    x = np.arange(len(fams))
    for k, (entry, color) in enumerate((("forward", "#76b900"), ("backward", "#555555"))):
        bp = ax.boxplot([regs[f][entry] for f in fams], positions=x + (k - 0.5) * 0.36, widths=0.32,
                        whis=(5, 95), showfliers=False, patch_artist=True, manage_ticks=False)
        for box in bp["boxes"]:
            box.set(facecolor=color, alpha=0.6)
        for med in bp["medians"]:
            med.set(color="k")
        ax.plot([], [], "s", color=color, alpha=0.6, label=f"{entry} entry")
    ax.axhline(255, color="#d62728", ls="--", lw=1)
    ax.plot([], [], color="#d62728", ls="--", lw=1, label="255: registers per thread on sm_90")
    ax.set_xticks(x, fams, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("registers per thread (ptxas)")
    ax.set_title("Registers of the CUDA records' SASS (sm_90), per family (box p25-p75, whiskers p5-p95)")
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, out, "resources.png")


def fig_saturation(sat: dict, out: Path) -> str:
    """Share of distinct programs against programs generated: a family that repeats falls below 100%; the ones
    that never do share one grey line (on a log-log count plot every curve sat on the diagonal)."""
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = [plt.get_cmap("tab10")(i) for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)]     # tab10 without its grey
    flat, k = False, 0
    for f, v in sorted(sat["families"].items(), key=lambda fv: fv[1]["distinct"][-1] / fv[1]["programs"]):
        cp = np.asarray(v.get("checkpoints") or sat["checkpoints"], float)
        share = 100.0 * np.asarray(v["distinct"], float) / cp
        made = cp - np.asarray([sum(e["index"] < c for e in v.get("generator_errors", [])) for c in cp], float)
        if np.all(np.asarray(v["distinct"], float) == made):
            ax.plot(cp, share, color="0.6", lw=1.0, label=None if flat else "never repeats (the other families)")
            flat = True
            continue
        ax.plot(cp, share, color=colors[k % len(colors)], lw=1.6, ls="-" if k < len(colors) else "--",
                label=f"{f}: {v['distinct'][-1]:,} of {int(cp[-1]):,}")
        k += 1
    ax.set_xscale("log")
    ax.set_xlabel("programs generated per family (log scale)")
    ax.set_ylabel("distinct structures (% of programs generated)")
    ax.set_title("Saturation: share of distinct programs as a generator runs longer (N up to "
                 f"{sat['programs_per_family']:,} per family)")
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, out, "saturation.png")


def fig_coverage(cov: dict, out: Path, top: int = 30) -> str:
    """Share of Warp's non-test kernels using each construct beside the share of records using it."""
    nt = cov["warp"]["kernels"]["non_test"]
    rows = [r for r in cov["rows"] if r["warp_non_test"] > 0][:top]
    sets = cov["datasets"]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.5))
    y = np.arange(len(rows))
    ax.barh(y - 0.2, [100 * r["warp_non_test"] / nt for r in rows], height=0.38, color="#7f7f7f",
            label=f"Warp's own non-test kernels ({nt})")
    cpu = next(s for s in sets if s["name"] == "cpu_code")
    ax.barh(y + 0.2, [100 * r["records"]["cpu_code"] / cpu["records"] for r in rows], height=0.38,
            color=COLORS["cpu"], label=f"cpu_code records ({cpu['records']:,})")
    ax.set_yticks(y, [r["construct"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("% of kernels / records using the construct")
    ax.set_title(f"The {top} constructs Warp's own kernels use most, and how often the records use them")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, out, "coverage.png")


def fig_baselines(base: dict, out: Path) -> str | None:
    bars = []
    for name in ("oracle", "retrieval"):
        for device, s in sorted((base.get(name) or {}).get("datasets", {}).items()):
            for task, t in sorted(s["tasks"].items()):
                bars.append((f"{name} {task}", 100 * t["pass@1"], 100 * t["compile_rate"]))
    m = base.get("mutants")
    if m:
        bars.append(("mutants py2cpp", 100 * (1 - m["killed_share"]), None))
    if not bars:
        return None
    panels = 2 if m else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 0.45 * len(bars) + 1.8), squeeze=False)
    a = axes[0][0]
    y = np.arange(len(bars))
    a.barh(y - 0.2, [b[1] for b in bars], height=0.38, color="#2ca02c", label="pass@1")
    a.barh(y + 0.2, [b[2] or 0 for b in bars], height=0.38, color="#9467bd", label="compile rate")
    a.set_yticks(y, [b[0] for b in bars], fontsize=8)
    a.invert_yaxis()
    a.set_xlim(0, 100)
    a.set_xlabel("% of predictions")
    a.set_title("Baselines on the test splits")
    a.legend(fontsize=7, loc="lower right")
    if m:
        b = axes[0][1]
        kinds = list(m["by_kind"])
        b.barh(np.arange(len(kinds)), [100 * m["by_kind"][k]["killed_share"] for k in kinds], color="#d62728")
        b.set_yticks(np.arange(len(kinds)), kinds, fontsize=8)
        b.invert_yaxis()
        b.set_xlim(0, 100)
        b.set_xlabel("% of mutants the judge rejects")
        b.set_title("Mutants killed, by mutation kind")
    return _save(fig, out, "baselines.png")


def draw_all(numbers: dict, series: dict, side: dict, out: Path) -> dict[str, str]:
    out = Path(out)
    drawn = {"lengths": fig_lengths(series, out), "verification": fig_verification(series, out)}
    optional = {"rejects": lambda: fig_rejects(numbers, out), "resources": lambda: fig_resources(series, out),
                "saturation": lambda: fig_saturation(side["saturation"], out) if side.get("saturation") else None,
                "coverage": lambda: fig_coverage(side["coverage"], out) if side.get("coverage") else None,
                "baselines": lambda: fig_baselines(side["baselines"], out)}
    for name, draw in optional.items():
        drawn_name = draw()
        if drawn_name:
            drawn[name] = drawn_name
    return drawn
