"""production/PRODUCTION_STATE.md: one row per dataset, kept across runs that touch only one of them."""

from __future__ import annotations

from production.state import write_state


def _row(status: str, mb: float) -> dict:
    return {"phase": "generate", "status": status, "mb": mb, "target_mb": 200.0, "records": 7, "rate": 1.5,
            "eta": "3.0 min"}


def test_a_run_of_one_dataset_keeps_the_other_datasets_row_and_the_log(tmp_path):
    path = tmp_path / "PRODUCTION_STATE.md"
    write_state(path, {"cpu": _row("done", 200.0)}, "next", "cpu run finished")
    write_state(path, {"cuda": _row("running", 12.5)}, "wait", None)
    write_state(path, {"cuda": _row("done", 200.0)}, "validate", "cuda run finished")
    text = path.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| c")]
    assert rows == ["| cpu_code | generate | done | 200.00 | 200.00 | 7 | 1.5 | 3.0 min |",
                    "| cuda_code | generate | done | 200.00 | 200.00 | 7 | 1.5 | 3.0 min |"]
    assert text.index("- cpu run finished") < text.index("- cuda run finished")
    assert "**Next action:** validate" in text
