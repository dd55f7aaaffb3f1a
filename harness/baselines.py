"""Benchmark baselines, re-runnable from the committed datasets: oracle, mutants, retrieval.

    wkf-eval-baselines [--datasets production/cpu_code production/cuda_code] [-n 2]      (tox -e baselines)

* **oracle**: each test record's own code as the completion, every task of its dataset (py2cpp/cpp2py on the
  CPU dataset; py2cuda/cuda2py on the CUDA one). Numerics-checked tasks must pass 100%.
* **mutants**: single mutations (:mod:`harness.mutate`) of each held-out CPU record's forward (test and validation
  splits, ``--mutant-splits``), one per kind where the code has a site, judged as py2cpp; the share the judge rejects, per family and per kind, and the survivors.
* **retrieval**: for each test record the train record whose Python is most similar (Jaccard of token sets),
  its code with the train kernel's name rewritten to the test kernel's: the floor a trained model must beat.

Prediction files and judge outputs go to ``--work`` (default ``eval_out/baselines``); the committed numbers
to ``--report`` (default ``report/benchmark/*.json``); a Markdown table for the README is printed.
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from .mutate import MUTATIONS
from .passk import summarize
from .predictions import TASKS, load_split
from .seeds import derive_seed

ROOT = Path(__file__).resolve().parent.parent
_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d*)?|\S")


def code_completion(record: dict) -> str:
    ir = record["ir"]
    return ir["forward"] + ("\n" + ir["backward"] if ir.get("backward") else "")


def tasks_for(device: str) -> list[str]:
    return [t.name for t in TASKS.values() if t.device == device]


def _completion(record: dict, task: str) -> str:
    return record["python_source"] if TASKS[task].lifting else code_completion(record)


def oracle_predictions(records: dict[str, dict], device: str) -> list[dict]:
    return [{"id": rid, "task": task, "completion": _completion(r, task), "sample": 0}
            for rid, r in sorted(records.items()) for task in tasks_for(device)]


def first_per_family(records: dict[str, dict], n: int) -> dict[str, dict]:
    """The first ``n`` records (by id) of each family: a small, deterministic subset of a split."""
    taken: Counter = Counter()
    out = {}
    for rid, r in sorted(records.items()):
        if taken[r["family"]] < n:
            taken[r["family"]] += 1
            out[rid] = r
    return out


#: ``sample`` of the unmutated forward judged beside a record's mutants: its outputs digest tells a survivor that
#: computes exactly what the original computes from one whose outputs differ within the tolerance
ORIGINAL_SAMPLE = len(MUTATIONS)


def mutant_predictions(records: dict[str, dict]) -> tuple[list[dict], dict[tuple[str, int], dict]]:
    """py2cpp predictions, one per (record, mutation kind) that applies (``sample`` numbers the kind), and the
    record's own forward as sample :data:`ORIGINAL_SAMPLE`."""
    preds, info = [], {}
    for rid, r in sorted(records.items()):
        original = r["ir"]["forward"]
        mutated_any = False
        for sample, (kind, mutate) in enumerate(MUTATIONS.items()):
            mutated = mutate(original, random.Random(derive_seed("wkf-mutant", rid, kind)))
            if mutated is None or mutated == original:
                continue
            preds.append({"id": rid, "task": "py2cpp", "completion": mutated, "sample": sample})
            mutated_any = True
            diff = [line.strip() for line in difflib.unified_diff(original.split("\n"), mutated.split("\n"),
                                                                   lineterm="", n=0)
                    if line[:1] in "+-" and not line.startswith(("+++", "---"))]
            info[(rid, sample)] = {"kind": kind, "family": r["family"], "diff": diff,
                                   "reads_mutated_value": reads_mutated_value(original, diff)}
        if mutated_any:
            preds.append({"id": rid, "task": "py2cpp", "completion": original, "sample": ORIGINAL_SAMPLE})
    return preds, info


_ASSIGNED = re.compile(r"^[-+]\s*(?:const\s+[\w:]+\s+)?(var_\w+)\s*=")


def reads_mutated_value(forward: str, diff: list[str]) -> bool:
    """Whether the forward entry ever reads the variable the mutated line assigns. Warp's codegen assigns some
    values only the adjoint reads (tile shapes as tuples, constants); a mutant of such a line cannot change
    the forward's outputs (an equivalent mutant). A line that assigns nothing counts as read."""
    for line in diff:
        m = _ASSIGNED.match(line)
        if m and line.startswith("-"):
            name = m.group(1)
            uses = len(re.findall(rf"\b{name}\b", forward))
            writes = len(re.findall(rf"\b{name}\s*=(?!=)", forward)) + len(re.findall(rf"[\w:>]\s+{name};", forward))
            return uses > writes
    return True


def _tokens(source: str) -> frozenset[str]:
    return frozenset(_TOKEN.findall(source))


def retrieval_predictions(test: dict[str, dict], train: dict[str, dict], device: str) -> list[dict]:
    """Nearest train record by Jaccard similarity of Python token sets, names rewritten to the test kernel's."""
    train_rows = [(r["kernel_name"], _tokens(r["python_source"]), r) for r in train.values()]
    preds = []
    for rid, r in sorted(test.items()):
        want = _tokens(r["python_source"])
        _name, _toks, best = max(train_rows, key=lambda row: (len(want & row[1]) / len(want | row[1]), row[0]))
        for task in tasks_for(device):
            text = _completion(best, task).replace(best["kernel_name"], r["kernel_name"])
            preds.append({"id": rid, "task": task, "completion": text, "sample": 0})
    return preds


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def run_judge(predictions: Path, dataset: Path, out: Path, workers: int,
              split: str = "test") -> tuple[dict, list[dict], float]:
    """``pytest -m eval`` on one predictions file; its summary, result rows and wall seconds."""
    cmd = [sys.executable, "-m", "pytest", "-m", "eval", "--predictions", str(predictions), "--dataset", str(dataset),
           "--eval-split", split, "--eval-out", str(out), "-q", "-p", "no:cacheprovider", "--no-header"]
    cmd += ["-n", str(workers)] if workers > 1 else ["-p", "no:xdist"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"judge run failed ({' '.join(cmd)}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return json.loads((out / "summary.json").read_text()), rows, seconds


def _unchanged(path: Path, preds: list[dict]) -> bool:
    if not path.exists():
        return False
    return path.read_text(encoding="utf-8") == "".join(json.dumps(row) + "\n" for row in preds)


def _complete_results(out: Path, preds: list[dict]) -> list[dict] | None:
    """The judged rows in ``out`` if they cover every prediction (an interrupted judge run leaves fewer)."""
    if not (out / "summary.json").exists() or not (out / "results.jsonl").exists():
        return None
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    judged = {(r["id"], r["task"], r["sample"]) for r in rows}
    return rows if judged == {(p["id"], p["task"], p["sample"]) for p in preds} else None


def mutant_report(rows: list[dict], info: dict[tuple[str, int], dict]) -> dict:
    """Mutants killed per kind and family; survivors with their diff, split by whether their outputs on the
    verifier's inputs are bit-identical to the original forward's (judged beside them as
    :data:`ORIGINAL_SAMPLE`): identical means the mutation never reaches an output on those inputs (dead code,
    an unused component), different means the change stayed within the tolerance or in masked elements."""
    original = {r["id"]: r for r in rows if r["sample"] == ORIGINAL_SAMPLE}
    rows = [r for r in rows if r["sample"] != ORIGINAL_SAMPLE]
    by_kind, by_family = defaultdict(Counter), defaultdict(Counter)
    survivors = []
    for row in rows:
        meta = info[(row["id"], row["sample"])]
        killed = row["outcome"] != "pass"
        for table, key in ((by_kind, meta["kind"]), (by_family, meta["family"])):
            table[key]["mutants"] += 1
            table[key]["killed"] += killed
            table[key][row["outcome"]] += 1
        if not killed:
            own = original.get(row["id"], {})
            same = (bool(row.get("outputs_sha256")) and own.get("outcome") == "pass"
                    and row.get("outputs_sha256") == own.get("outputs_sha256"))
            survivors.append({"id": row["id"], "family": meta["family"], "kind": meta["kind"], "diff": meta["diff"],
                              "reads_mutated_value": meta["reads_mutated_value"], "same_outputs": same})

    def rates(table):
        return {k: {**dict(c), "killed_share": c["killed"] / c["mutants"]} for k, c in sorted(table.items())}
    total = len(rows)
    killed = sum(r["outcome"] != "pass" for r in rows)
    same = sum(1 for sv in survivors if sv["same_outputs"])
    observable = total - same
    return {"mutants": total, "killed": killed, "killed_share": killed / total if total else 0.0,
            "survivors_of_unread_values": sum(1 for sv in survivors if not sv["reads_mutated_value"]),
            "survivors_with_same_outputs": same,
            "killed_share_of_observable": killed / observable if observable else 0.0,
            "originals_not_passing": sorted(i for i, r in original.items() if r["outcome"] != "pass"),
            "records": len({r["id"] for r in rows}), "by_kind": rates(by_kind), "by_family": rates(by_family),
            "outcomes": dict(Counter(r["outcome"] for r in rows)), "survivors": survivors}


def markdown(reports: dict) -> str:
    lines = []
    if "oracle" in reports or "retrieval" in reports:
        lines += ["| baseline | task | predictions | pass@1 | compile rate | outcomes |", "|---|---|---|---|---|---|"]
        for name in ("oracle", "retrieval"):
            for _dataset, s in sorted(reports.get(name, {}).get("datasets", {}).items()):
                for task, t in s["tasks"].items():
                    outcomes = ", ".join(f"{o} {n}" for o, n in t["outcomes"].items())
                    lines.append(f"| {name} | {task} | {t['predictions']} | {100 * t['pass@1']:.1f}% | "
                                 f"{100 * t['compile_rate']:.1f}% | {outcomes} |")
        lines.append("")
    m = reports.get("mutants")
    if m:
        lines += [f"Mutants: {m['mutants']} on {m['records']} held-out CPU records, {100 * m['killed_share']:.1f}% killed; "
                  f"{m['survivors_with_same_outputs']} survivors compute outputs bit-identical to the original's on the "
                  f"judge's inputs (the mutation reaches no output); of the mutants that change an output, "
                  f"{100 * m['killed_share_of_observable']:.1f}% are killed.",
                  "", "| mutation | mutants | killed |", "|---|---|---|"]
        lines += [f"| {k} | {c['mutants']} | {100 * c['killed_share']:.1f}% |" for k, c in m["by_kind"].items()]
        lines += ["", "| family | mutants | killed |", "|---|---|---|"]
        lines += [f"| {k} | {c['mutants']} | {100 * c['killed_share']:.1f}% |" for k, c in m["by_family"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wkf-eval-baselines", description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", type=Path,
                        default=[ROOT / "production" / "cpu_code", ROOT / "production" / "cuda_code"])
    parser.add_argument("--only", nargs="+", choices=("oracle", "mutants", "retrieval"),
                        default=["oracle", "mutants", "retrieval"])
    parser.add_argument("-n", "--workers", type=int, default=2, help="pytest-xdist workers for the judge")
    parser.add_argument("--work", type=Path, default=ROOT / "eval_out" / "baselines")
    parser.add_argument("--report", type=Path, default=ROOT / "report" / "benchmark")
    parser.add_argument("--per-family", type=int, default=None, metavar="N",
                        help="judge only the first N test records (by id) of each family: a small run")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the judge's results in --work for a predictions file that has not changed")
    parser.add_argument("--mutant-splits", nargs="+", choices=("test", "validation"), default=["test", "validation"],
                        help="the held-out splits whose CPU records are mutated (default both: the test split "
                             "alone has fewer than the 1,000 records the mutant baseline asks for)")
    args = parser.parse_args(argv)
    reports: dict[str, dict] = {}
    for dataset in args.datasets:
        dataset = dataset.resolve()
        device, test = load_split(dataset, "test")
        if args.per_family is not None:
            test = first_per_family(test, args.per_family)
        # each baseline: a list of (split, predictions), judged split by split
        builders = {"oracle": lambda: [("test", oracle_predictions(test, device))]}
        if "retrieval" in args.only:
            builders["retrieval"] = lambda: [("test", retrieval_predictions(test, load_split(dataset, "train")[1],
                                                                            device))]
        mutant_info = {}
        if device == "cpu":
            def mutants():
                out = []
                for split in args.mutant_splits:
                    records = test if split == "test" else load_split(dataset, split)[1]
                    if split != "test" and args.per_family is not None:
                        records = first_per_family(records, args.per_family)
                    preds, info = mutant_predictions(records)
                    mutant_info.update(info)
                    out.append((split, preds))
                return out
            builders["mutants"] = mutants
        for name in args.only:
            if name not in builders:
                continue
            rows, seconds, runs = [], 0.0, builders[name]()
            for split, preds in runs:
                stem = f"{name}-{device}" + ("" if split == "test" else f"-{split}")
                path, out = args.work / f"{stem}.jsonl", args.work / stem
                judged = _complete_results(out, preds) if args.reuse and _unchanged(path, preds) else None
                if judged is not None:
                    seconds = None                  # the judging time is the earlier run's (kept below)
                    print(f"{name} {device} {split}: reused {len(judged)} results from {out}", flush=True)
                else:
                    write_jsonl(path, preds)
                    _summary, judged, took = run_judge(path, dataset, out, args.workers, split)
                    seconds = None if seconds is None else seconds + took
                    print(f"{name} {device} {split}: {len(judged)} predictions judged in {took:.0f} s", flush=True)
                rows += judged
            report_file = args.report / f"{name}.json"
            if name not in reports:        # another dataset's results already in the file stay
                reports[name] = json.loads(report_file.read_text()) if report_file.exists() else {}
            entry = reports[name]
            for key in ("datasets", "seconds", "records_per_family_limit", "splits"):
                entry.setdefault(key, {})
            scored = [r for r in rows if name != "mutants" or r["sample"] != ORIGINAL_SAMPLE]
            entry["datasets"][device] = summarize(scored)
            entry["seconds"][device] = entry["seconds"].get(device) if seconds is None else round(seconds, 1)
            entry["records_per_family_limit"][device] = args.per_family
            entry["splits"][device] = [split for split, _ in runs]
            if name == "mutants":
                entry.update(mutant_report(rows, mutant_info))
            args.report.mkdir(parents=True, exist_ok=True)          # after every run: an interrupted run keeps
            report_file.write_text(json.dumps(entry, indent=1, sort_keys=True) + "\n")
    print(markdown(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
