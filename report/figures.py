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
from matplotlib.ticker import NullFormatter  # noqa: E402

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


def fig_sizes(series: dict, numbers: dict, out: Path) -> str:
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    bins = _log_bins([series[d]["record_bytes"] / 1e3 for d in series])
    for d, s in series.items():
        a.hist(s["record_bytes"] / 1e3, bins=bins, histtype="step", lw=1.8, color=COLORS[d], ls=STYLES[d],
               label=f"{LABELS[d]}: median {np.median(s['record_bytes']) / 1e3:.1f} KB")
    a.set_xscale("log")
    a.set_xlabel("record size (KB of JSON, log scale)")
    a.set_ylabel("records")
    a.set_title("Record size")
    a.legend(fontsize=8)
    fields = ["python_source", "forward", "backward", "support"]
    left = {d: 0.0 for d in series}
    ys = np.arange(len(series))
    for i, f in enumerate(fields):
        widths = [numbers[d]["sizes"]["field_share"][f] * 100 for d in series]
        b.barh(ys, widths, left=[left[d] for d in series], color=plt.get_cmap("Set2").colors[i], label=f)
        for d, w in zip(series, widths):
            left[d] += w
    b.set_yticks(ys, [LABELS[d] for d in series])
    b.set_xlabel("% of record bytes (rest: ids, args, verification, provenance)")
    b.set_xlim(0, 100)
    b.set_title("Where the bytes are")
    b.legend(fontsize=8, loc="lower right")
    return _save(fig, out, "sizes.png")


def fig_tokens(series: dict, out: Path) -> str:
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    bins = _log_bins([s[k] for s in series.values() for k in ("python_tokens", "generated_tokens")])
    for d, s in series.items():
        a.hist(s["python_tokens"], bins=bins, histtype="step", lw=1.8, color=COLORS[d], ls=STYLES[d],
               label=f"{LABELS[d]}: Python source")
        a.hist(s["generated_tokens"], bins=bins, histtype="stepfilled", alpha=0.25, color=COLORS[d],
               label=f"{LABELS[d]}: generated code")
    a.set_xscale("log")
    a.set_xlabel("cl100k_base tokens per record (log scale)")
    a.set_ylabel("records (token sample)")
    a.set_title("Token lengths")
    a.legend(fontsize=7)
    for d, s in series.items():
        b.scatter(s["python_tokens"], s["generated_tokens"], s=5, alpha=0.35, color=COLORS[d], label=LABELS[d])
    b.set_xscale("log")
    b.set_yscale("log")
    b.xaxis.set_minor_formatter(NullFormatter())
    b.yaxis.set_minor_formatter(NullFormatter())
    b.set_xlabel("Python tokens")
    b.set_ylabel("generated tokens (forward + backward + support)")
    b.set_title("Expansion from Python to generated code")
    b.legend(fontsize=8)
    return _save(fig, out, "tokens.png")


def fig_family_balance(numbers: dict, out: Path) -> str:
    families = sorted({f for d in numbers for f in numbers[d]["families"]})
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(families) + 1.5))
    y = np.arange(len(families))
    h = 0.8 / max(1, len(numbers))
    for i, d in enumerate(numbers):
        counts = [numbers[d]["families"].get(f, {}).get("records", 0) for f in families]
        ax.barh(y + i * h, counts, height=h, color=COLORS[d], label=LABELS[d])
    ax.set_yticks(y + h * (len(numbers) - 1) / 2, families)
    ax.invert_yaxis()
    ax.set_xlabel("records")
    ax.set_title("Records per kernel family")
    ax.legend(fontsize=8)
    return _save(fig, out, "family_balance.png")


def fig_verification(series: dict, out: Path) -> str:
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    nonzero = {d: s["max_rel_err"][s["max_rel_err"] > 0] for d, s in series.items()}
    bins = _log_bins(list(nonzero.values()))
    for d, s in series.items():
        zeros = int(np.count_nonzero(s["max_rel_err"] == 0))
        a.hist(nonzero[d], bins=bins, histtype="step", lw=1.8, color=COLORS[d], ls=STYLES[d],
               label=f"{LABELS[d]} ({zeros} records exactly 0)")
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


STAGE_ORDER = ("generate", "codegen", "compile-cpu", "compile-nvrtc", "verify", "record", "pipeline")


def stage_key(group: str) -> tuple:
    return (STAGE_ORDER.index(group) if group in STAGE_ORDER else len(STAGE_ORDER), group)


def fig_stage_rates(bench: dict, out: Path) -> str:
    labels, values, colors = [], [], []
    for group in sorted(bench["groups"], key=stage_key):
        variants = bench["groups"][group]
        for variant, g in variants.items():
            suffix = f" [{variant}]" if len(variants) > 1 or variant not in ("batched", "cpu") else ""
            span = f" (median of {g['families']} families)" if g["families"] > 1 else ""
            labels.append(f"{group}{suffix}{span}")
            values.append(g["median_kernels_per_s"])
            colors.append("#d62728" if variant.startswith("naive") else COLORS.get(variant, "#2ca02c"))
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(labels) + 1.5))
    y = np.arange(len(labels))
    ax.barh(y, values, color=colors)
    for yi, v in zip(y, values):
        ax.text(v, yi, f" {v:,.1f}", va="center", fontsize=7)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("kernels per second, one process (log scale); red: one kernel per module")
    ax.set_title(f"Stage rates (pytest-benchmark, K={bench['K']} kernels per chunk)")
    return _save(fig, out, "stage_rates.png")


def fig_production(numbers: dict, out: Path) -> str | None:
    """Production rate per dataset (left) and worker time per stage (right), from the logged runs; a panel
    without data is left out, and no figure is drawn when the runs measured neither (None)."""
    from .stats import STAGE_LABELS, stage_order

    devices = list(numbers)
    prod = {d: numbers[d]["production"] for d in devices}
    rated = [d for d in devices if prod[d]["records_per_second"]]
    timed = [d for d in devices if prod[d]["stage_share"]]
    panels = (["rate"] if rated else []) + (["stages"] if timed else [])
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels) + 0.5, 3.6), squeeze=False)
    axes = dict(zip(panels, axes[0]))
    if "rate" in axes:
        a = axes["rate"]
        x = np.arange(len(rated))
        a.bar(x - 0.2, [prod[d]["records_per_second"] for d in rated], 0.4, color=[COLORS[d] for d in rated])
        a2 = a.twinx()
        a2.bar(x + 0.2, [prod[d]["mb_per_second"] or 0 for d in rated], 0.4, color=[COLORS[d] for d in rated],
               alpha=0.45, hatch="//")
        a.set_xticks(x, [LABELS[d] for d in rated])
        a.set_ylabel("records written per second (solid)")
        a2.set_ylabel("MB of records per second (hatched)")
        workers = sorted({prod[d]["workers"] for d in rated if prod[d]["workers"]})
        a.set_title("Production rate" + (f" ({'/'.join(map(str, workers))} worker processes)" if workers else ""))
    if "stages" in axes:
        b = axes["stages"]
        stages = sorted({k for d in timed for k in prod[d]["stage_share"]}, key=stage_order)
        y = np.arange(len(timed))
        left = np.zeros(len(timed))
        for i, st in enumerate(stages):
            w = np.asarray([prod[d]["stage_share"].get(st, 0) * 100 for d in timed])
            b.barh(y, w, left=left, color=plt.get_cmap("Set2").colors[i % 8], label=STAGE_LABELS.get(st, st))
            left += w
        b.set_yticks(y, [LABELS[d] for d in timed])
        b.set_xlim(0, 100)
        b.set_xlabel("% of worker time per stage")
        b.set_title("Where production time goes")
        b.legend(fontsize=7, ncol=min(3, len(stages)), loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return _save(fig, out, "production.png")


def fig_rejects(numbers: dict, out: Path) -> str | None:
    devices = [d for d in numbers if numbers[d]["rejects"]["failed"]]
    if not devices:
        return None
    reasons = sorted({r for d in devices for r in numbers[d]["rejects"]["by_reason"]})
    families = sorted({f for d in devices for f in numbers[d]["rejects"]["by_family"]})
    fig, axes = plt.subplots(1, len(devices), figsize=(5.5 * len(devices), 0.35 * len(families) + 2), squeeze=False)
    for ax, d in zip(axes[0], devices):
        y = np.arange(len(families))
        left = np.zeros(len(families))
        for i, reason in enumerate(reasons):
            w = np.asarray([numbers[d]["rejects"]["by_family"].get(f, {}).get(reason, 0) for f in families], float)
            ax.barh(y, w, left=left, color=REASON_COLORS[i % len(REASON_COLORS)], label=reason)
            left += w
        ax.set_yticks(y, families, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("rejected kernels")
        ax.set_title(f"Rejects by reason, {LABELS[d]}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=min(4, len(reasons)), frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.03 * ((len(reasons) - 1) // 4), 1, 1))
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "rejects.png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return "rejects.png"


def draw_all(numbers: dict, series: dict, bench: dict | None, out: Path) -> dict[str, str]:
    out = Path(out)
    drawn = {
        "sizes": fig_sizes(series, numbers, out),
        "tokens": fig_tokens(series, out),
        "family_balance": fig_family_balance(numbers, out),
        "verification": fig_verification(series, out),
    }
    for name, fig in (("production", fig_production), ("rejects", fig_rejects)):
        drawn_name = fig(numbers, out)
        if drawn_name:
            drawn[name] = drawn_name
    if bench and bench["groups"]:
        drawn["stage_rates"] = fig_stage_rates(bench, out)
    return drawn
