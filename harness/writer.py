"""The controller's writer: the only code that touches a dataset directory.

Layout of one dataset directory (one per device)::

    work/chunks/<family>/<chunk>.jsonl   verified records of one chunk (written atomically; its presence
                                         marks the chunk done, so a rerun skips it)
    work/rejects/<family>/<chunk>.jsonl  what that chunk rejected, with reasons
    records/shard-NNNNN.jsonl            the assembled dataset: canonical order, deduplicated, cut to target
    records/summary.json                 counts and bytes of the assembled dataset
    rejects.jsonl                        every reject of the assembled run, and every record dropped as a duplicate

Writes go to a temporary file in the same directory, are flushed to disk, then renamed: a kill at any moment
leaves either the old file or the new one, never a partial one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from .plan import Chunk
from .record import canonical_json

SHARD_BYTES = 64 * 1024 * 1024
TARGET_SLACK = 0.01


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def jsonl_bytes(rows: Iterable[dict]) -> bytes:
    return "".join(canonical_json(r) + "\n" for r in rows).encode("utf-8")


def read_jsonl(path: Path) -> list[dict]:
    """Parse a JSONL file; raise ValueError naming the file and line when it is truncated or corrupt."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                raise ValueError(f"{path}:{lineno}: truncated line (no newline)")
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: corrupt JSON ({exc.msg})") from None
    return rows


@dataclass(slots=True)
class Selection:
    """Dedup (exact id, then structure) and cut to target, over records in canonical order."""

    target_bytes: int | None
    kept_bytes: int = 0
    kept: int = 0
    seen_ids: set = field(default_factory=set)
    seen_structs: set = field(default_factory=set)
    dropped: Counter = field(default_factory=Counter)
    per_family: Counter = field(default_factory=Counter)

    @property
    def full(self) -> bool:
        return self.target_bytes is not None and self.kept_bytes >= self.target_bytes

    def offer(self, record_id: str, struct: str, size: int, family: str) -> str | None:
        """None when the record is kept, else the reason it is not."""
        if self.full:
            return "target_reached"
        if record_id in self.seen_ids:
            reason = "duplicate_exact"
        elif struct in self.seen_structs:
            reason = "duplicate_structural"
        elif self.target_bytes is not None and self.kept_bytes + size > self.target_bytes * (1 + TARGET_SLACK):
            reason = "over_target"
        else:
            self.seen_ids.add(record_id)
            self.seen_structs.add(struct)
            self.kept_bytes += size
            self.kept += 1
            self.per_family[family] += 1
            return None
        self.dropped[reason] += 1
        return reason


class DatasetDir:
    """One device's dataset directory."""

    def __init__(self, root: Path, device: str):
        self.root = Path(root)
        self.device = device
        self.work = self.root / "work"

    def chunk_path(self, chunk: Chunk) -> Path:
        return self.work / "chunks" / chunk.family / f"{chunk.name}.jsonl"

    def rejects_path(self, chunk: Chunk) -> Path:
        return self.work / "rejects" / chunk.family / f"{chunk.name}.jsonl"

    def write_chunk(self, chunk: Chunk, records: list[dict], rejects: list[dict]) -> int:
        mine = sorted((r for r in records if r["device"] == self.device),
                      key=lambda r: (r["provenance"]["index"], r["id"]))
        their_rejects = [r for r in rejects if r.get("device") in (None, self.device)]
        atomic_write_bytes(self.rejects_path(chunk), jsonl_bytes(their_rejects))
        data = jsonl_bytes(mine)
        atomic_write_bytes(self.chunk_path(chunk), data)   # last: its presence marks the chunk done
        return len(data)

    def done(self, chunk: Chunk) -> bool:
        return self.chunk_path(chunk).exists()

    def check_chunk(self, chunk: Chunk, generator: str | None = None, harness_api: int | None = None,
                    also: frozenset[str] = frozenset()) -> str | None:
        """None when the chunk file is whole and, where given, its records were made by ``generator``
        (``family@version``), or a version in ``also``, under ``harness_api``; else why not (the chunk's files are
        then removed so the chunk is redone: records of an older generator would not regenerate from their seeds,
        or were verified under rules since changed)."""
        path = self.chunk_path(chunk)
        try:
            records = read_jsonl(path)
        except (ValueError, UnicodeDecodeError) as exc:
            path.unlink(missing_ok=True)
            return str(exc)
        made = {(r["provenance"].get("generator"), r["provenance"].get("harness_api")) for r in records}
        stale = sorted(m for m in made if (generator and m[0] != generator and m[0] not in also)
                       or (harness_api and m[1] != harness_api))
        if stale:
            path.unlink(missing_ok=True)
            self.rejects_path(chunk).unlink(missing_ok=True)
            return (f"its records were made by {stale[0][0]} (harness API {stale[0][1]}); the generator is now "
                    f"{generator} (harness API {harness_api})")
        return None

    def chunk_records(self, chunk: Chunk) -> list[dict]:
        return read_jsonl(self.chunk_path(chunk))

    def chunk_rejects(self, chunk: Chunk) -> list[dict]:
        path = self.rejects_path(chunk)
        return read_jsonl(path) if path.exists() else []

    def iter_selected(self, plan: list[Chunk], selection: "Selection") -> Iterator[tuple[Chunk, dict, str | None]]:
        """(chunk, record, why ``selection`` dropped it or None) over the finished chunks in plan order, up to
        and including the chunk in which the selection became full (the cut)."""
        for chunk in plan:
            if not self.done(chunk):
                continue
            for record in self.chunk_records(chunk):
                size = len(canonical_json(record).encode("utf-8")) + 1
                yield chunk, record, selection.offer(record["id"], record["structural_hash"], size, record["family"])
            if selection.full:
                break

    def assemble(self, plan: list[Chunk], target_bytes: int | None) -> dict:
        """Write ``records/`` and ``rejects.jsonl`` from the finished chunks; return the summary."""
        staging = self.root / ".records.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shard, shard_bytes, shard_rows, shards = 0, 0, [], []
        rejects: list[dict] = []
        kept = Counter()
        kept_bytes = 0
        dropped = Counter()

        def flush():
            nonlocal shard, shard_bytes, shard_rows
            if shard_rows:
                name = f"shard-{shard:05d}.jsonl"
                atomic_write_bytes(staging / name, b"".join(shard_rows))
                shards.append(name)
                shard, shard_bytes, shard_rows = shard + 1, 0, []

        selection = Selection(target_bytes)
        last: Chunk | None = None
        for chunk, record, reason in self.iter_selected(plan, selection):
            last = chunk
            if reason is None:
                line = (canonical_json(record) + "\n").encode("utf-8")
                if shard_bytes + len(line) > SHARD_BYTES:
                    flush()
                shard_rows.append(line)
                shard_bytes += len(line)
                kept[record["family"]] += 1
                kept_bytes += len(line)
            else:
                dropped[reason] += 1
                if reason.startswith("duplicate"):
                    prov = record["provenance"]
                    rejects.append({"family": record["family"], "chunk": prov["chunk"], "index": prov["index"],
                                    "seed": prov["seed"], "device": self.device, "reason": reason,
                                    "message": f"same {'content' if reason.endswith('exact') else 'structure'} "
                                               "as an earlier record", "kernel_name": record["kernel_name"]})
        flush()
        # the rejects of the chunks the dataset is made of: none from chunks past the cut, which a run may have
        # finished before it knew where the cut would be
        cut = last.order if selection.full and last is not None else None
        made_of = [c for c in plan if (cut is None or c.order <= cut) and self.done(c)]
        reject_rows = [r for c in made_of for r in self.chunk_rejects(c)] + rejects
        summary = {
            "device": self.device,
            "records": sum(kept.values()),
            "bytes": kept_bytes,
            "target_bytes": target_bytes,
            "per_family": dict(sorted(kept.items())),
            "dropped": dict(sorted(dropped.items())),
            "rejects": dict(sorted(Counter(r["reason"] for r in reject_rows).items())),
            "shards": shards,
            "chunks_done": len(made_of),
            "last_chunk_order": made_of[-1].order if made_of else -1,
        }
        atomic_write_bytes(staging / "summary.json", (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode())
        final = self.root / "records"
        old = self.root / ".records.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
        atomic_write_bytes(self.root / "rejects.jsonl", jsonl_bytes(reject_rows))
        return summary


def load_records(root: Path) -> list[dict]:
    """Every record of an assembled dataset directory, in shard order."""
    rows: list[dict] = []
    for shard in sorted((Path(root) / "records").glob("shard-*.jsonl")):
        rows.extend(read_jsonl(shard))
    return rows
