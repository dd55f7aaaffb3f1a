"""``production/PRODUCTION_STATE.md``: the progress tracker, rewritten by the production run itself.

It follows the original specification's tracker: the current phase, task and status (``in_progress``,
``blocked`` or ``completed``), MB of each dataset against its target, the next action, progress metrics,
blockers, and a log line per run. Rows of datasets a run does not touch (a ``--device=cuda`` run after the CPU
one) and the log are kept from the previous file.
"""

from __future__ import annotations

from pathlib import Path

from .writer import atomic_write_bytes

LOG_HEADER = "## Log"
STATUSES = ("in_progress", "blocked", "completed")
HEADER = ("| dataset | phase | task | status | MB | target MB | progress | records | records/s | ETA |",
          "|---|---|---|---|---|---|---|---|---|---|")


def _old_log(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    if LOG_HEADER not in lines:
        return []
    return [line for line in lines[lines.index(LOG_HEADER) + 1:] if line.startswith("- ")]


def _old_rows(path: Path) -> dict[str, tuple[str, str]]:
    """The dataset rows of the current tracker by dataset name (``cpu_code``...): (line, status)."""
    if not path.exists():
        return {}
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].endswith("_code"):
            status = next((c for c in cells if c in STATUSES), "in_progress")
            rows[cells[0]] = (line, status)
    return rows


def overall(statuses: list[str]) -> str:
    if "blocked" in statuses:
        return "blocked"
    return "completed" if statuses and all(s == "completed" for s in statuses) else "in_progress"


def write_state(path: Path, rows: dict[str, dict], next_action: str, log_line: str | None = None,
                metrics: dict[str, str] | None = None, blockers: list[str] | None = None) -> None:
    """``rows``: device -> {phase, task, status, mb, target_mb, records, rate, eta}; ``status`` is one of
    :data:`STATUSES`. ``metrics``: label -> value of this run's progress; ``blockers``: what stops progress."""
    for device, r in rows.items():
        if r["status"] not in STATUSES:
            raise ValueError(f"status of {device} must be one of {STATUSES}; got {r['status']!r}")
    log = _old_log(path)
    if log_line:
        log.append(f"- {log_line}")
    table = _old_rows(path)
    for device, r in rows.items():
        progress = f"{100 * r['mb'] / r['target_mb']:.1f}%" if r["target_mb"] else "-"
        table[f"{device}_code"] = (f"| {device}_code | {r['phase']} | {r['task']} | {r['status']} | {r['mb']:.2f} | "
                                   f"{r['target_mb']:.2f} | {progress} | {r['records']} | {r['rate']:.1f} | "
                                   f"{r['eta']} |", r["status"])
    current = next(iter(rows.values()), None)
    status = overall([s for _, s in table.values()])
    out = ["# Production state", "",
           "Written by the production run (`pytest -m production ...`); do not edit by hand.", "",
           f"**Phase:** {current['phase'] if current else '-'}  ",
           f"**Task:** {current['task'] if current else '-'}  ",
           f"**Status:** {status}", "", "## Datasets", "", *HEADER, *(table[name][0] for name in sorted(table)),
           "", "## Next action", "", next_action, "", "## Progress metrics", ""]
    out += [f"- {k}: {v}" for k, v in (metrics or {}).items()] or ["- (none reported by this run)"]
    out += ["", "## Blockers", ""] + ([f"- {b}" for b in blockers] if blockers else ["- none"])
    out += ["", LOG_HEADER, *log, ""]
    atomic_write_bytes(path, "\n".join(out).encode("utf-8"))
