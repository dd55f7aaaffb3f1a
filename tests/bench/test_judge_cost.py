"""Cost of judging one prediction against compiling it alone (pytest-benchmark; skipped unless WKF_BENCH=1).

    WKF_BENCH=1 pytest tests/bench/test_judge_cost.py -p no:xdist --benchmark-only

``compile`` is Warp's codegen for the record's module plus the Clang build of it (what any judge must pay);
``judge`` is the whole in-process verdict of an oracle py2cpp completion (regenerate, codegen, replace, compile,
load, production's 3-input-set check). The ratio judge/compile is in each row's ``extra_info``.
"""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("WKF_BENCH") != "1" or bool(os.environ.get("PYTEST_XDIST_WORKER")),
                                reason="judge cost benchmark: WKF_BENCH=1 pytest tests/bench -p no:xdist")

FAMILIES = ("arithmetic", "control_flow", "vector")


@pytest.fixture(scope="module")
def records():
    from harness.build import BuildOptions, configure_warp
    from harness.pipeline import ChunkJob, run_chunk
    from harness.registry import all_families

    configure_warp()
    fams = all_families()
    out = []
    for name in FAMILIES:
        job = ChunkJob(family=fams[name], chunk="bench-judge", indices=(0, 1), devices=("cpu",), factory_seed=0,
                       build=BuildOptions())
        out.extend(run_chunk(job).records)
    return out


def _compile_only(record):
    from harness.judge import _Module, _opt_level, regenerate

    _family, spec = regenerate(record)
    with _Module(spec, _opt_level("cpu")) as mod:
        source, meta, options = mod.codegen(None)
        mod.compile_cpu(source, meta, options)


def _judge(record):
    from harness.baselines import code_completion
    from harness.judge import judge

    verdict = judge(record, "py2cpp", code_completion(record), gpu=False)
    assert verdict.outcome == "pass", verdict


@pytest.mark.parametrize("stage", ["compile", "judge"])
def test_judge_cost(benchmark, records, stage):
    fn = _compile_only if stage == "compile" else _judge
    benchmark.group = "judge-cost"

    def run():
        for r in records:
            fn(r)
    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    benchmark.extra_info["predictions_per_round"] = len(records)
    benchmark.extra_info["ms_per_prediction"] = 1000 * benchmark.stats.stats.mean / len(records)
