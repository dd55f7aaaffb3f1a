"""Scale-out: sharded runs for batch schedulers, merged, equal a single-machine run."""

from __future__ import annotations

import pytest

from harness.writer import load_records
from production.merge import merge

PROD = ("-m", "production", "--device", "cpu", "-p", "no:xdist", "--target-mb", "0.1")


def test_union_of_shards_equals_a_single_machine_run(factory_project):
    project = factory_project.path
    single = project / "single"
    assert factory_project.runpytest_subprocess(*PROD, "--out", str(single)).ret == 0
    shard_dirs = []
    for i in range(3):
        out = project / f"shard{i}"
        result = factory_project.runpytest_subprocess(*PROD, "--shard", f"{i}/3", "--out", str(out))
        assert result.ret == 0
        result.stdout.fnmatch_lines([f"shard {i}/3: * chunks written under *; combine all shards with: wkf-merge*"])
        assert not (out / "records").exists()
        shard_dirs.append(out)
    names = [sorted(p.name for p in (d / "work" / "chunks" / "tiny").glob("*.jsonl")) for d in shard_dirs]
    assert all(names) and not set(names[0]) & set(names[1]) and not set(names[1]) & set(names[2])
    merged = project / "merged"
    merge(merged, shard_dirs, 100_000, rootdir=project)
    assert load_records(merged) == load_records(single)
    assert (merged / "manifest.json").exists() and list((merged / "data").glob("train-*.parquet"))


@pytest.mark.parametrize("value", ["3/3", "x/2", "1"])
def test_bad_shard_is_a_usage_error(factory_project, value):
    result = factory_project.runpytest_subprocess("--shard", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--shard must be I/N with 0 <= I < N (e.g. 0/4); got '{value}'*"])
