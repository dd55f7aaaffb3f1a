"""Finished datasets: a production packs itself; wkf-validate accepts it and names every kind of damage;
wkf-analyze prints its statistics; pandas reads the Parquet shards offline."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

# imported once per process, before any pytester fixture snapshots sys.modules: a second import (after pytester
# restores the snapshot) would register its Arrow extension types again and fail
from datasets import load_dataset

from production import analyze, validate
from harness.pack import sha256_file

PROD = ("-m", "production", "--device", "cpu", "-p", "no:xdist", "--target-mb", "0.1")


@pytest.fixture
def dataset(factory_project):
    out = factory_project.path / "out"
    result = factory_project.runpytest_subprocess(*PROD, "--out", str(out))
    assert result.ret == 0
    return out


def _rewrite(path, mutate):
    """Apply ``mutate`` to the first row of a Parquet shard and write it back with the same schema."""
    table = pq.read_table(path)
    rows = table.to_pylist()
    mutate(rows[0])
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), path, compression="zstd")


def _refresh_manifest(root, shard_path):
    """Make the manifest agree with a rewritten shard, so only the record-level check can object."""
    manifest = json.loads((root / "manifest.json").read_text())
    for shard in manifest["shards"]:
        if root / shard["file"] == shard_path:
            shard["sha256"] = sha256_file(shard_path)
            shard["bytes"] = shard_path.stat().st_size
    (root / "manifest.json").write_text(json.dumps(manifest))


def test_packed_dataset_validates_loads_and_is_analyzed(dataset, capsys):
    import pandas as pd

    assert validate.validate(dataset) == []
    assert validate.main([str(dataset)]) == 0
    manifest = json.loads((dataset / "manifest.json").read_text())
    df = pd.read_parquet(dataset / "data")
    assert len(df) == manifest["records"] == sum(manifest["per_split"].values())
    assert set(df["family"]) == {"tiny"} and df["id"].is_unique
    assert 0.99e5 <= manifest["bytes_raw"] <= 1.01e5
    assert "configs:" in (dataset / "README.md").read_text()
    capsys.readouterr()
    assert analyze.main([str(dataset)]) == 0
    printed = capsys.readouterr().out
    assert "tiny" in printed and str(manifest["records"]) in printed


def test_hf_datasets_loads_the_packed_folder_offline(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    manifest = json.loads((dataset / "manifest.json").read_text())
    files = {split: str(dataset / "data" / f"{split}-*.parquet") for split in manifest["per_split"]
             if manifest["per_split"][split]}
    ds = load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf-cache"))
    assert {s: len(ds[s]) for s in files} == {s: manifest["per_split"][s] for s in files}
    row = ds["train"][0]
    assert row["ir"]["forward"] and json.loads(row["features"]) is not None
    # the folder itself, through the dataset card's YAML `configs` (no loading script)
    by_card = load_dataset(str(dataset), cache_dir=str(tmp_path / "hf-cache-card"))
    assert {s: len(by_card[s]) for s in by_card} == {s: n for s, n in manifest["per_split"].items() if n}


def test_validate_names_a_record_whose_content_does_not_match_its_id(dataset, capsys):
    shard = next(p for p in sorted((dataset / "data").glob("*.parquet")) if pq.read_metadata(p).num_rows)

    def edit(row):
        row["ir"]["forward"] = row["ir"]["forward"].replace("wp::add", "wp::sub", 1) + "// edited\n"

    _rewrite(shard, edit)
    _refresh_manifest(dataset, shard)
    problems = validate.validate(dataset)
    assert any("id is not the sha256 of its python_source, device and ir" in p for p in problems), problems
    assert not any("sha256 differs" in p for p in problems)
    assert validate.main([str(dataset)]) == 1
    assert "INVALID" in capsys.readouterr().out


def test_validate_names_damaged_shards_and_manifest_disagreements(dataset):
    shards = sorted((dataset / "data").glob("*.parquet"))
    assert len(shards) >= 2
    with open(shards[0], "ab") as fh:
        fh.write(b"\0")
    shards[1].unlink()
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["per_family"]["tiny"] += 1
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    problems = validate.validate(dataset)
    text = "\n".join(problems)
    assert f"{shards[0]}: sha256 differs from the manifest" in text
    assert f"{shards[1]}: missing" in text
    assert "per-family counts differ from the manifest" in text


def test_validate_without_a_manifest_says_what_to_run(tmp_path):
    assert validate.validate(tmp_path) == [f"{tmp_path}: no manifest.json (run wkf-pack first)"]


def test_every_record_regenerates_from_its_seed_and_a_changed_program_is_named(dataset, factory_project):
    from harness.registry import load_family_file
    from harness.writer import load_records

    families = {"tiny": load_family_file(factory_project.path / "kernels" / "tiny.py")}
    records = load_records(dataset)
    assert records and validate.regeneration_problems(records, families) == []
    records[1]["python_source"] = records[1]["python_source"].replace("b[i]", "a[i]", 1)
    records[2]["provenance"]["seed"] += 1
    problems = validate.regeneration_problems(records, families)
    assert len(problems) == 2
    assert "the installed generator makes a different program from its seed" in problems[0]
    assert "is not the seed of its chunk and index" in problems[1]
    assert validate.regeneration_problems(records[:1], {}) == [
        f"record {records[0]['id']}: no installed family 'tiny'"]


def test_near_duplicates_are_found_and_distinct_programs_are_not():
    from production.neardup import near_duplicate_numbers

    body = "\n".join(f"    v{k} = wp.sin(a[i]) * {k}.0 + wp.cos(b[i] - v{k - 1})" for k in range(1, 30))
    base = f"import warp as wp\n@wp.kernel\ndef k(a: wp.array(dtype=float), b: wp.array(dtype=float)):\n    i = wp.tid()\n    v0 = a[i]\n{body}\n"
    near = base.replace("wp.cos(b[i] - v28)", "wp.tan(b[i] - v28)")
    other = "import warp as wp\n@wp.kernel\ndef q(x: wp.array(dtype=int)):\n    j = wp.tid()\n    x[j] = x[j] ^ 7\n"
    rows = [{"python_source": s, "family": f, "kernel_name": n}
            for s, f, n in ((base, "f", "k1"), (near, "f", "k2"), (other, "g", "k3"))]
    numbers = near_duplicate_numbers(rows)
    assert numbers["with_neighbour_ge_0.9"] == 2 and numbers["per_family_ge_0.9"] == {"f": 2}
    assert numbers["closest_pair"]["a"] in ("k1", "k2") and numbers["closest_pair"]["similarity"] >= 0.9
    assert near_duplicate_numbers(rows[::2])["with_neighbour_ge_0.8"] == 0


def test_a_pack_keeps_the_files_whose_rows_remain_and_rewrites_the_others(dataset):
    from harness.pack import pack
    from harness.writer import jsonl_bytes, load_records, read_jsonl

    before = json.loads((dataset / "manifest.json").read_text())["shards"]
    shard = sorted((dataset / "records").glob("shard-*.jsonl"))[0]
    rows = read_jsonl(shard)
    gone = next(r for r in rows if r["id"] in set(pq.read_table(dataset / before[0]["file"]).column("id").to_pylist()))
    shard.write_bytes(jsonl_bytes([r for r in rows if r is not gone]))
    after = pack(dataset)["shards"]
    assert {s["sha256"] for s in before[1:]} <= {s["sha256"] for s in after}          # kept, byte for byte
    assert before[0]["sha256"] not in {s["sha256"] for s in after}                   # it held the removed row
    assert sorted(pq.read_table(dataset / "data").column("id").to_pylist()) == sorted(r["id"] for r in load_records(dataset))
    assert pack(dataset, repack=True)["shards"] == after          # one file per split either way: same bytes


def test_a_committed_dataset_unpacks_and_grows_to_what_a_fresh_run_makes(factory_project):
    """A clone holds only the packed dataset. Unpacked, it resumes a production that has a second family and a
    larger target: the result equals a fresh run of that production, and every earlier Parquet file is kept."""
    import shutil

    from tests.conftest import TINY_FAMILY, add_family
    from harness.pack import unpack
    from harness.writer import load_records, read_jsonl

    project = factory_project.path
    first = project / "first"
    assert factory_project.runpytest_subprocess(*PROD[:-1], "0.04", "--out", str(first)).ret == 0
    clone = project / "clone"
    clone.mkdir()
    for name in ("data", "manifest.json", "rejects.jsonl", "README.md"):
        (shutil.copytree if (first / name).is_dir() else shutil.copyfile)(first / name, clone / name)
    done = unpack(clone, {"tiny": 4})
    restored = sorted(p.relative_to(clone) for p in (clone / "work" / "chunks").rglob("*.jsonl"))
    assert done["restored"] == len(restored) > 0
    for rel in restored:                                          # exactly the chunk files the run wrote
        assert (clone / rel).read_bytes() == (first / rel).read_bytes()
        assert (clone / str(rel).replace("chunks", "rejects")).read_bytes() == \
            (first / str(rel).replace("chunks", "rejects")).read_bytes()
    cut = {(f, c) for f, c, why in done["remade"] if "(the cut)" in why}
    last = max((first / "work" / "chunks" / "tiny").glob("*.jsonl"))
    assert len(read_jsonl(last)) == 4 or ("tiny", last.stem) in cut
    assert read_jsonl(clone / "work" / "runs.jsonl") == read_jsonl(first / "work" / "runs.jsonl")

    add_family(factory_project, "tinz", TINY_FAMILY.replace('name="tiny"', 'name="tinz"'))
    grown_args = (*PROD[:-1], "0.1")
    assert factory_project.runpytest_subprocess(*grown_args, "--out", str(clone)).ret == 0
    fresh = project / "fresh"
    assert factory_project.runpytest_subprocess(*grown_args, "--out", str(fresh)).ret == 0
    assert load_records(clone) == load_records(fresh)
    assert {r["family"] for r in load_records(clone)} == {"tiny", "tinz"}
    old = json.loads((first / "manifest.json").read_text())["shards"]
    new = json.loads((clone / "manifest.json").read_text())["shards"]
    assert {s["sha256"] for s in old} <= {s["sha256"] for s in new}
    assert len(new) > len(old)
    # small records overshoot a 0.1 MB target's 1% slack: the grown dataset validates exactly as the fresh one
    assert validate.validate(clone) == [p.replace(str(fresh), str(clone)) for p in validate.validate(fresh)]


def test_files_of_a_grown_dataset_with_different_fields_load_as_one(dataset, tmp_path, monkeypatch):
    """Records whose optional fields differ (per-output tolerances with their own output names, or none) land in
    different files, some kept from an earlier pack: pandas and HF datasets read them as one table, and every row
    reads back as its record."""
    from harness import pack as packing
    from harness.record import record_bytes
    from harness.writer import jsonl_bytes, load_records, read_jsonl

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(packing, "ROWS_PER_FILE", 3)
    earlier = packing.pack(dataset, repack=True)["shards"]                # an earlier pack, partly kept below
    first = set(pq.read_table(dataset / earlier[0]["file"]).column("id").to_pylist())
    shard = sorted((dataset / "records").glob("shard-*.jsonl"))[0]
    rows = read_jsonl(shard)
    for k, row in enumerate(r for r in rows if r["id"] in first):   # a later run's records of the first file
        row["verification"]["tolerance_per_output"] = {f"out{k}": {"rtol": 1e-4, "atol": 1e-5 * k}}
    shard.write_bytes(jsonl_bytes(rows))
    summary = json.loads((dataset / "records" / "summary.json").read_text())
    summary["bytes"] = sum(record_bytes(r) for r in load_records(dataset))     # what the run would have counted
    (dataset / "records" / "summary.json").write_text(json.dumps(summary))
    manifest = packing.pack(dataset)
    now, before = ({s["sha256"] for s in m} for m in (manifest["shards"], earlier))
    assert now & before and now - before                   # some files kept (no per-output column), some new
    by_id = {r["id"]: r for r in load_records(dataset)}
    table = pq.read_table(dataset / "data")
    assert sorted(r["id"] for r in map(packing.unflatten, table.to_pylist())) == sorted(by_id)
    for row in table.to_pylist():
        assert packing.unflatten(row) == by_id[row["id"]]
    assert table.num_rows == len(by_id)                     # the folder read as one table (pandas' path)
    files = {split: str(dataset / "data" / f"{split}-*.parquet") for split, n in manifest["per_split"].items() if n}
    ds = load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf-cache"))
    assert sum(len(ds[s]) for s in files) == len(by_id)
    assert validate.validate(dataset) == []
