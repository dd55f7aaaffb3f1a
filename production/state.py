"""``production/PRODUCTION_STATE.md``: the progress tracker, rewritten by the production run itself."""

from __future__ import annotations

from pathlib import Path

from harness.writer import atomic_write_bytes

LOG_HEADER = "## Log"


def _old_log(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    if LOG_HEADER not in lines:
        return []
    return [line for line in lines[lines.index(LOG_HEADER) + 1:] if line.startswith("- ")]


def _old_rows(path: Path) -> dict[str, str]:
    """The table rows of the current tracker by dataset name (``cpu_code``...), as written."""
    if not path.exists():
        return {}
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].endswith("_code"):
            rows[cells[0]] = line
    return rows


def write_state(path: Path, rows: dict[str, dict], next_action: str, log_line: str | None = None) -> None:
    """``rows``: device -> {phase, status, mb, target_mb, records, rate, eta}. Datasets this run does not
    touch (a ``--device=cuda`` run after the CPU one) keep their rows."""
    log = _old_log(path)
    if log_line:
        log.append(f"- {log_line}")
    table = _old_rows(path)
    for device, r in rows.items():
        table[f"{device}_code"] = (f"| {device}_code | {r['phase']} | {r['status']} | {r['mb']:.2f} | "
                                   f"{r['target_mb']:.2f} | {r['records']} | {r['rate']:.1f} | {r['eta']} |")
    out = ["# Production state", "",
           "Written by the production run (`pytest -m production ...`); do not edit by hand.", "",
           "| dataset | phase | status | MB | target MB | records | records/s | ETA |",
           "|---|---|---|---|---|---|---|---|", *(table[name] for name in sorted(table))]
    out += ["", f"**Next action:** {next_action}", "", LOG_HEADER, *log, ""]
    atomic_write_bytes(path, "\n".join(out).encode("utf-8"))
