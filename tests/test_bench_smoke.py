"""The stage benchmark still runs against the harness it measures.

``tests/bench/test_stages.py`` is skipped in the normal test run (benchmarks need a process of their own), so an
API change in the pipeline can break it unseen, as happened to its record stage. This runs its cheap stages for
one family with two kernels per chunk in a child pytest, exactly as ``tox -e bench`` would, and checks that every
selected benchmark produced its rates. It asserts no timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_stage_benchmark_runs_its_cheap_stages(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS"))}
    env.update(WKF_BENCH="1", WKF_BENCH_K="2", WKF_BENCH_FAMILIES="arithmetic")
    out = tmp_path / "stages.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/bench/test_stages.py", "-p", "no:xdist", "-p", "no:cacheprovider",
         "-q", "--benchmark-only", f"--benchmark-json={out}",
         "-k", "arithmetic and (generate or codegen or verify or record)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    rows = json.loads(out.read_text())["benchmarks"]
    assert {b["group"] for b in rows} == {"codegen", "generate", "record", "verify"}
    for b in rows:
        assert b["extra_info"]["kernels_per_s"] > 0, b["name"]
    record = next(b for b in rows if b["group"] == "record")
    assert record["extra_info"]["records_per_round"] > 0
