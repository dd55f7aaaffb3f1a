"""pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code") and the benchmark summary."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

#: outcomes in the order they are reported; only ``pass`` counts as correct
OUTCOMES = ("pass", "compile_error", "mismatch", "degenerate", "gradient_mismatch", "crashed", "timeout", "invalid",
            "compiled_only")
#: outcomes of predictions that compiled (for the compile rate)
COMPILED = frozenset({"pass", "mismatch", "degenerate", "gradient_mismatch", "crashed", "timeout", "compiled_only"})


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of pass@k from ``n`` samples of which ``c`` are correct: ``1 - C(n-c, k) / C(n, k)``.

    Computed as ``1 - prod(1 - k / arange(n - c + 1, n + 1))``, which never forms the binomials.
    """
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and k >= 1; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _scores(rows: list[dict], ks: tuple[int, ...]) -> dict:
    """pass@k averaged over problems (id) of ``rows``; a k larger than a problem's sample count is omitted."""
    per_problem: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        per_problem[r["id"]].append(r["outcome"] == "pass")
    out = {"predictions": len(rows), "problems": len(per_problem),
           "compile_rate": sum(r["outcome"] in COMPILED for r in rows) / len(rows) if rows else 0.0,
           "outcomes": {o: sum(r["outcome"] == o for r in rows) for o in OUTCOMES
                        if any(r["outcome"] == o for r in rows)}}
    for k in ks:
        if per_problem and all(len(v) >= k for v in per_problem.values()):
            out[f"pass@{k}"] = float(np.mean([pass_at_k(len(v), sum(v), k) for v in per_problem.values()]))
    return out


def summarize(rows: list[dict], ks: tuple[int, ...] = (1, 5, 10)) -> dict:
    """Per task, and per task and family: pass@k, compile rate, outcome counts; devices judged on."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)
    tasks = {}
    for task, task_rows in sorted(by_task.items()):
        families: dict[str, list[dict]] = defaultdict(list)
        for r in task_rows:
            families[r["family"]].append(r)
        tasks[task] = {**_scores(task_rows, ks),
                       "families": {f: _scores(fr, ks) for f, fr in sorted(families.items())}}
    devices: dict[str, int] = defaultdict(int)
    for r in rows:
        devices[r.get("device") or "none"] += 1
    return {"predictions": len(rows), "devices": dict(sorted(devices.items())), "tasks": tasks}


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def summary_markdown(summary: dict) -> str:
    """The summary as Markdown tables (per task, then per task and family)."""
    lines = [f"Predictions judged: {summary['predictions']} on the {summary.get('split', 'test')} split (by numerics device: "
             + ", ".join(f"{d} {n}" for d, n in summary["devices"].items()) + ")", "",
             "| task | predictions | pass@1 | pass@5 | pass@10 | compile rate | outcomes |",
             "|---|---|---|---|---|---|---|"]
    for task, s in summary["tasks"].items():
        outcomes = ", ".join(f"{o} {n}" for o, n in s["outcomes"].items())
        lines.append(f"| {task} | {s['predictions']} | {_pct(s.get('pass@1'))} | {_pct(s.get('pass@5'))} | "
                     f"{_pct(s.get('pass@10'))} | {_pct(s['compile_rate'])} | {outcomes} |")
    lines += ["", "| task | family | predictions | pass@1 | compile rate |", "|---|---|---|---|---|"]
    for task, s in summary["tasks"].items():
        for family, f in s["families"].items():
            lines.append(f"| {task} | {family} | {f['predictions']} | {_pct(f.get('pass@1'))} | "
                         f"{_pct(f['compile_rate'])} |")
    return "\n".join(lines) + "\n"
