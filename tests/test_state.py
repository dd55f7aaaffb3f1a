"""production/PRODUCTION_STATE.md: the original tracker's fields, one row per dataset kept across runs."""

from __future__ import annotations

import pytest

from harness.state import write_state


def _row(status: str, mb: float, phase: str = "generation") -> dict:
    return {"phase": phase, "task": "generate, compile and verify chunks", "status": status, "mb": mb,
            "target_mb": 200.0, "records": 7, "rate": 1.5, "eta": "3.0 min"}


def test_a_run_of_one_dataset_keeps_the_other_datasets_row_and_the_log(tmp_path):
    path = tmp_path / "PRODUCTION_STATE.md"
    write_state(path, {"cpu": _row("completed", 200.0, "packed")}, "next", "cpu run finished")
    write_state(path, {"cuda": _row("in_progress", 12.5)}, "wait", None, {"chunks finished by this run": "3"})
    text = path.read_text()
    assert "**Status:** in_progress" in text and "- chunks finished by this run: 3" in text
    write_state(path, {"cuda": _row("completed", 200.0, "packed")}, "validate", "cuda run finished")
    text = path.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| c")]
    assert rows == ["| cpu_code | packed | generate, compile and verify chunks | completed | 200.00 | 200.00 | 100.0% | "
                    "7 | 1.5 | 3.0 min |",
                    "| cuda_code | packed | generate, compile and verify chunks | completed | 200.00 | 200.00 | 100.0% | "
                    "7 | 1.5 | 3.0 min |"]
    assert text.index("- cpu run finished") < text.index("- cuda run finished")
    for heading in ("**Phase:** packed", "**Task:**", "**Status:** completed", "## Next action", "validate",
                    "## Progress metrics", "## Blockers", "- none", "## Log"):
        assert heading in text, heading


def test_a_blocked_dataset_blocks_the_whole_and_names_its_blocker(tmp_path):
    path = tmp_path / "PRODUCTION_STATE.md"
    write_state(path, {"cpu": _row("completed", 200.0)}, "next")
    write_state(path, {"cuda": _row("blocked", 90.0)}, "rerun", None, None, ["the run ended before the size target"])
    text = path.read_text()
    assert "**Status:** blocked" in text and "- the run ended before the size target" in text
    assert "| 45.0% |" in text


def test_status_outside_the_vocabulary_is_refused(tmp_path):
    with pytest.raises(ValueError, match="in_progress"):
        write_state(tmp_path / "s.md", {"cpu": _row("done", 1.0)}, "x")
