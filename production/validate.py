"""Validate packed datasets: shard sha256 and sizes, schema of every record, unique ids and structures,
split assignment, counts against the manifest. Exit status 1 and one line per problem on failure.

    wkf-validate production/cpu_code production/cuda_code
    wkf-validate production/cpu_code --reverify random      (check the numbers of every random record again)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from harness.record import content_id, record_bytes, structural_hash
from harness.schema import RecordInvalid, validate_record
from harness.pack import sha256_file, split_of, unflatten


def record_problems(record: dict) -> list[str]:
    """What the schema cannot see: the id and structure hash must be those of the record's own content, and
    the code must be the named kernel's (a record edited or mixed up after it was made fails here)."""
    problems = []
    if record["id"] != content_id(record["python_source"], record["device"], record["ir"]):
        problems.append("id is not the sha256 of its python_source, device and ir")
    if record["structural_hash"] != structural_hash(record["python_source"]):
        problems.append("structural_hash does not match its python_source")
    name = record["kernel_name"]
    if f"def {name}(" not in record["python_source"]:
        problems.append(f"python_source does not define kernel {name}")
    entry = f"{name}_{record['device']}_kernel_forward("
    if entry not in record["ir"]["forward"]:
        problems.append(f"ir.forward is not {entry[:-1]}")
    v = record["verification"]
    if v["elements_compared"] <= 0 or v["input_sets"] <= 0:
        problems.append("verification compared no elements")
    if record["device"] == "cpu" and v["numerics_device"] != "cpu":
        problems.append(f"a cpu record whose numbers ran on {v['numerics_device']}")
    return problems


def regeneration_problems(records: list[dict], families: dict | None = None) -> list[str]:
    """Each record's program must come back, byte for byte, from its provenance (seed, family, chunk, index)
    through the installed generators: the data and the code that claims to have made it agree."""
    from harness.registry import all_families
    from harness.seeds import kernel_seed, rng_for

    families = all_families() if families is None else families
    problems = []
    for record in records:
        prov = record["provenance"]
        family = families.get(record["family"])
        if family is None:
            problems.append(f"record {record['id']}: no installed family {record['family']!r}")
            continue
        seed = kernel_seed(prov["factory_seed"], record["family"], prov["chunk"], prov["index"])
        if seed != prov["seed"]:
            problems.append(f"record {record['id']}: seed {prov['seed']} is not the seed of its chunk and index")
            continue
        try:
            spec = family.spec(seed, rng_for(seed))
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            problems.append(f"record {record['id']}: generator raised {type(exc).__name__}: {exc}")
            continue
        if spec.source != record["python_source"]:
            problems.append(f"record {record['id']} ({record['family']} {prov['chunk']}/{prov['index']}): the "
                            "installed generator makes a different program from its seed")
    return problems


def record_block_dim(record: dict) -> int:
    """The block width a record's code was generated for: its launch's, else Warp's default per backend."""
    return record["launch"]["block_dim"] or (1 if record["device"] == "cpu" else 256)


def rebuild_sample(records: list[dict], per_family: int, arch_default: int = 90) -> tuple[dict, list[str]]:
    """Rebuild ``per_family`` records of each family, each alone, from its own fields (sha256-chosen sample).

    CPU: the system C++ compiler against Warp's headers. CUDA: NVRTC, and nvcc from ``nvidia-cuda-nvcc`` as a
    second compiler where it is installed (non-tile code: nvcc lacks NVRTC's device-by-default mode).
    Returns ({family: {compiler: [rebuilt, tried]}}, problems).
    """
    import hashlib

    from harness import rebuild
    from harness.build import configure_warp

    configure_warp()
    by_family: dict[str, list[dict]] = {}
    for record in sorted(records, key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest()):
        by_family.setdefault(record["family"], []).append(record)
    rates: dict[str, dict[str, list[int]]] = {}
    problems: list[str] = []
    nvcc = rebuild.nvcc_path()
    for family, group in sorted(by_family.items()):
        for record in group[:per_family]:
            ir, block_dim = record["ir"], record_block_dim(record)
            checks = []
            if record["device"] == "cpu":
                checks.append(("g++", lambda: rebuild.check_cpu([ir], block_dim, [record["kernel_name"]])))
            else:
                arch = int((ir["arch"] or f"sm_{arch_default}").removeprefix("sm_"))
                checks.append(("nvrtc", lambda: rebuild.check_cuda([ir], block_dim, arch, [record["kernel_name"]])))
                if nvcc and not record["launch"]["tiled"]:
                    checks.append(("nvcc", lambda: rebuild.check_nvcc([ir], block_dim, arch, nvcc)))
            for compiler, check in checks:
                tally = rates.setdefault(family, {}).setdefault(compiler, [0, 0])
                tally[1] += 1
                try:
                    check()
                    tally[0] += 1
                except rebuild.RebuildError as exc:
                    problems.append(f"record {record['id']} ({family}, {record['kernel_name']}) does not rebuild "
                                    f"with {compiler}: {str(exc)[:300]}")
    return rates, problems


def validate(root: Path, regenerate: bool = False, rebuild: int = 0) -> list[str]:
    root = Path(root)
    problems: list[str] = []
    manifest_path = root / "manifest.json"
    if not manifest_path.exists():
        return [f"{root}: no manifest.json (run wkf-pack first)"]
    manifest = json.loads(manifest_path.read_text())
    ids, structs = Counter(), Counter()
    kept: list[dict] = []
    families = Counter()
    total = 0
    raw_bytes = 0
    for shard in manifest["shards"]:
        path = root / shard["file"]
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        if sha256_file(path) != shard["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest")
        if path.stat().st_size != shard["bytes"]:
            problems.append(f"{path}: size {path.stat().st_size} != manifest {shard['bytes']}")
        try:
            rows = pq.read_table(path).to_pylist()
        except (OSError, ValueError) as exc:         # pyarrow raises ArrowInvalid (a ValueError) on damage
            problems.append(f"{path}: unreadable Parquet ({exc})")
            continue
        if len(rows) != shard["records"]:
            problems.append(f"{path}: {len(rows)} records, manifest says {shard['records']}")
        for row in rows:
            record = unflatten(row)
            try:
                validate_record(record)
            except RecordInvalid as exc:
                problems.append(f"{path}: {exc}")
                continue
            problems.extend(f"{path}: record {record['id']}: {p}" for p in record_problems(record))
            if record["device"] != manifest["device"]:
                problems.append(f"{path}: record {record['id']} is for {record['device']}")
            if split_of(record["structural_hash"]) != shard["split"]:
                problems.append(f"{path}: record {record['id']} belongs to split {split_of(record['structural_hash'])}")
            if regenerate or rebuild:
                kept.append(record)
            ids[record["id"]] += 1
            structs[record["structural_hash"]] += 1
            families[record["family"]] += 1
            raw_bytes += record_bytes(record)
            total += 1
    if regenerate:
        problems.extend(f"{root}: {p}" for p in regeneration_problems(kept))
    if rebuild:
        rates, rebuild_problems = rebuild_sample(kept, rebuild)
        problems.extend(f"{root}: {p}" for p in rebuild_problems)
        for family, by_compiler in rates.items():
            cells = ", ".join(f"{c} {ok}/{n}" for c, (ok, n) in sorted(by_compiler.items()))
            print(f"rebuild {root.name} {family:<16} {cells}")
    dup_ids = [i for i, n in ids.items() if n > 1]
    dup_structs = [s for s, n in structs.items() if n > 1]
    if dup_ids:
        problems.append(f"{root}: {len(dup_ids)} duplicate ids, e.g. {dup_ids[0]}")
    if dup_structs:
        problems.append(f"{root}: {len(dup_structs)} structural duplicates, e.g. {dup_structs[0]}")
    if total != manifest["records"]:
        problems.append(f"{root}: {total} records, manifest says {manifest['records']}")
    if dict(sorted(families.items())) != manifest["per_family"]:
        problems.append(f"{root}: per-family counts differ from the manifest")
    if raw_bytes != manifest["bytes_raw"]:
        problems.append(f"{root}: {raw_bytes} raw bytes, manifest says {manifest['bytes_raw']}")
    target = manifest.get("target_bytes")
    if target and not 0.99 * target <= raw_bytes <= 1.01 * target:
        problems.append(f"{root}: {raw_bytes / 1e6:.2f} MB is not within 1% of the {target / 1e6:.2f} MB target")
    return problems


#: judge outcomes that mean a record's own code still passes: the numbers matched, or (CUDA without a GPU) NVRTC
#: compiled it and its numbers are checked by the lifting task of the same record
REVERIFIED = frozenset({"pass", "compiled_only"})


def reverify(root: Path, families: list[str], workers: int = 2, work: Path | None = None) -> tuple[dict, list[str]]:
    """Production's numeric check again, with the installed verifier, on every record of ``families`` (all
    splits): each record's own code is judged as the oracle prediction of every task of its dataset (the
    benchmark's judge, :mod:`harness.baselines`). Returns ({split: {outcome: count}}, problems)."""
    import tempfile

    from harness.baselines import oracle_predictions, run_judge, write_jsonl
    from harness.predictions import load_split

    root = Path(root).resolve()
    work = Path(work or tempfile.mkdtemp(prefix="wkf-reverify-"))
    counts: dict[str, dict[str, int]] = {}
    problems: list[str] = []
    for split in ("train", "validation", "test"):
        if not any((root / "data").glob(f"{split}-*.parquet")):
            continue
        device, records = load_split(root, split)
        chosen = {rid: r for rid, r in records.items() if r["family"] in families}
        if not chosen:
            continue
        preds = oracle_predictions(chosen, device)
        write_jsonl(work / f"{split}.jsonl", preds)
        _summary, rows, _seconds = run_judge(work / f"{split}.jsonl", root, work / split, workers, split)
        counts[split] = dict(Counter(r["outcome"] for r in rows))
        problems += [f"{root.name} {split} record {r['id']} ({r['family']}, {r['task']}): {r['outcome']} "
                     f"{r['message'][:300]}" for r in rows if r["outcome"] not in REVERIFIED]
    if not counts:
        problems.append(f"{root}: no record of {', '.join(families)}")
    return counts, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wkf-validate", description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--regenerate", action="store_true",
                        help="also regenerate every record's program from its seed and compare (reproducibility)")
    parser.add_argument("--rebuild", type=int, default=0, metavar="N",
                        help="also rebuild N sampled records per family from their own fields alone (CPU: system "
                             "C++ compiler; CUDA: NVRTC and nvcc) and print the rate per family")
    parser.add_argument("--reverify", nargs="+", default=[], metavar="FAMILY",
                        help="also check the numbers of every record of these families again with the installed "
                             "verifier (all splits; the benchmark judge's oracle) and print the outcomes")
    parser.add_argument("-n", "--workers", type=int, default=2, help="judge processes for --reverify (default 2)")
    parser.add_argument("--reverify-json", type=Path, default=None, metavar="FILE",
                        help="write --reverify's outcomes per dataset and split to FILE (JSON)")
    args = parser.parse_args(argv)
    failed = False
    reverified: dict[str, dict] = {}
    for root in args.datasets:
        if args.reverify:
            counts, problems = reverify(root, args.reverify, args.workers)
            from harness.registry import all_families
            installed = all_families()
            reverified[Path(root).resolve().name] = {
                "verifier": sorted(f"{f}@{installed[f].version}" for f in args.reverify if f in installed),
                "splits": counts, "problems": problems}
            for split, c in counts.items():
                print(f"REVERIFIED {root} {split} ({', '.join(args.reverify)}): "
                      + ", ".join(f"{o} {k}" for o, k in sorted(c.items())))
            for p in problems:
                print(f"INVALID {p}")
            failed = failed or bool(problems)
        problems = validate(root, regenerate=args.regenerate, rebuild=args.rebuild)
        if problems:
            failed = True
            for p in problems:
                print(f"INVALID {p}")
        else:
            m = json.loads((root / "manifest.json").read_text())
            print(f"OK {root}: {m['records']} records, {m['bytes_raw'] / 1e6:.2f} MB raw, "
                  f"{len(m['shards'])} shards, splits {m['per_split']}")
    if args.reverify_json is not None:
        args.reverify_json.write_text(json.dumps(reverified, indent=1, sort_keys=True) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
