"""Controller side: receives chunk results on test reports, writes them, tracks the target, assembles.

Only this object writes dataset files. Under pytest-xdist it lives in the controller process; without xdist,
in the only process. Either way it sees the same reports, so the same records result.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import datetime, timezone
from collections import Counter
from pathlib import Path

import pytest

from . import GENERATOR_API_VERSION
from .items import REPORT_KEY
from .options import Settings
from .plan import Chunk, covering_prefix, production_plan, quick_plan
from .registry import is_family_file, load_family_file
from .record import record_bytes
from .writer import DatasetDir, Selection, atomic_write_bytes

PROGRESS_SECONDS = 10.0


def discover_families(rootdir: Path) -> dict:
    found = {}
    kernels_dir = Path(rootdir) / "kernels"
    for path in sorted(kernels_dir.glob("*.py")):
        if is_family_file(path):
            family = load_family_file(path)
            found[family.name] = family
    return found


def project_families(root: Path) -> dict:
    """The families of the project at ``root`` (its ``kernels/``), else those of the installed package."""
    from .registry import all_families

    return discover_families(root) if (Path(root) / "kernels").is_dir() else all_families()


def project_root(config: pytest.Config) -> Path:
    """The directory holding ``kernels/``: pytest's rootdir, or the invocation directory when pytest chose
    another rootdir (an existing ``--out DIR`` outside the checkout is taken for a test path before the
    plugin's options are known, and moves the rootdir there)."""
    for candidate in (config.rootpath, config.invocation_params.dir):
        if (Path(candidate) / "kernels").is_dir():
            return Path(candidate)
    return Path(config.rootpath)


def dataset_roots(settings: Settings, rootdir: Path) -> dict[str, Path]:
    if settings.out is not None:
        base = settings.out.resolve()
        if len(settings.devices) == 1:
            return {settings.devices[0]: base}
        return {d: base / f"{d}_code" for d in settings.devices}
    if settings.production:
        return {d: Path(rootdir) / "production" / f"{d}_code" for d in settings.devices}
    base = Path(tempfile.mkdtemp(prefix="wkf-records-"))
    return {d: base / f"{d}_code" for d in settings.devices}


class FactorySession:
    def __init__(self, config: pytest.Config, settings: Settings):
        self.config = config
        self.settings = settings
        root = project_root(config)
        self.families = discover_families(root)
        self.datasets = {d: DatasetDir(p, d) for d, p in dataset_roots(settings, root).items()}
        self.target = settings.target_bytes if settings.production else None
        self.notes: list[str] = []
        self.plan_chunks = self._plan()
        self.done: dict[int, Chunk] = {}
        self._resume()
        # what workers skip; frozen, so a worker started later (xdist replaces a crashed one) collects the
        # same items as the others, whose indices the scheduler uses
        self.resumed = sorted(self.done)
        self.resumed_bytes = Counter({d: sum(ds.chunk_path(c).stat().st_size for c in self.done.values())
                                      for d, ds in self.datasets.items()})
        sharded = settings.shard is not None
        first = next(iter(self.datasets.values()))
        self.stop_file = first.work / "stop.json" if settings.production and not sharded else None
        if self.stop_file is not None:
            self.stop_file.unlink(missing_ok=True)
        self.cutoff: int | None = None
        self.prefix_pos = 0
        self.selections = {d: Selection(self.target) for d in self.datasets}
        self.started = time.monotonic()
        self.last_progress = 0.0
        self.bytes_written = Counter()
        self.records_written = Counter()
        self.rejects = Counter()
        self.chunks_run = 0
        self.crashed = 0
        self.stage_seconds = Counter()
        self.assembled: dict[str, dict] = {}
        self.fatal = False
        self.state_file = self._state_file(root)
        self.wall_started = datetime.now(timezone.utc)
        if self.target is not None and self.stop_file is not None:
            self._update_cutoff()

    def _state_file(self, rootdir: Path) -> Path | None:
        """The tracker lives beside the datasets when they are the project's own production folders."""
        if not self.settings.production:
            return None
        parents = {ds.root.parent for ds in self.datasets.values()}
        default = (Path(rootdir) / "production").resolve()
        return default / "PRODUCTION_STATE.md" if parents == {default} else None

    def _state_rows(self, phase: str, task: str, status: str) -> dict:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rows = {}
        for device in self.datasets:
            sel = self.selections[device]
            mb = (self.assembled[device]["bytes"] if device in self.assembled else sel.kept_bytes) / 1e6
            target_mb = self.target / 1e6
            rate = self.records_written[device] / elapsed
            eta = "-" if status == "completed" else self._eta(device, elapsed)
            records = self.assembled[device]["records"] if device in self.assembled else sel.kept
            rows[device] = {"phase": phase, "task": task, "status": status, "mb": mb, "target_mb": target_mb,
                            "records": records, "rate": rate, "eta": eta}
        return rows

    def _write_state(self, phase: str, task: str, status: str, next_action: str, log_line: str | None = None,
                     blockers: list[str] | None = None) -> None:
        if self.state_file is None:
            return
        from .state import write_state

        metrics = {"chunks finished by this run": str(self.chunks_run),
                   "records written by this run": ", ".join(f"{d} {self.records_written[d]}" for d in self.datasets),
                   "rejects by reason": ", ".join(f"{k} {v}" for k, v in sorted(self.rejects.items())) or "none",
                   "elapsed": f"{time.monotonic() - self.started:.0f} s"}
        write_state(self.state_file, self._state_rows(phase, task, status), next_action, log_line, metrics, blockers)

    # -- planning -------------------------------------------------------------------------------------
    def _plan(self) -> list[Chunk]:
        if not self.settings.production:
            return quick_plan(self.families, self.settings.quick_kernels)
        planned = production_plan(self.families, self.target, self._measured_bytes_per_kernel())
        present = {(path.parent.name, path.stem) for ds in self.datasets.values()
                   for path in (ds.work / "chunks").glob("*/c*.jsonl")}
        return covering_prefix(self.families, present, at_least=len(planned))

    def _measured_bytes_per_kernel(self) -> dict[str, float]:
        """Average record bytes per attempted kernel of finished chunks (so a rerun plans from reality)."""
        sizes: dict[str, list[int]] = {}
        for ds in self.datasets.values():
            for fam_dir in sorted((ds.work / "chunks").glob("*")):
                files = sorted(fam_dir.glob("c*.jsonl"))
                if not files:
                    continue
                family = self.families.get(fam_dir.name)
                if family is None:
                    continue
                total = sum(f.stat().st_size for f in files)
                sizes.setdefault(fam_dir.name, []).append(total / (len(files) * family.chunk_size))
        return {name: min(v) for name, v in sizes.items() if min(v) > 0}

    def _resume(self) -> None:
        for chunk in self.plan_chunks:
            if not all(ds.done(chunk) for ds in self.datasets.values()):
                continue
            family = self.families.get(chunk.family)
            made_by = f"{family.name}@{family.version}" if family is not None else None
            also = family.generators if family is not None and self.settings.keep_earlier_versions else frozenset()
            problems = [p for p in (ds.check_chunk(chunk, made_by, GENERATOR_API_VERSION, also)
                                    for ds in self.datasets.values()) if p]
            if problems:
                self.notes.append(f"redoing chunk {chunk.family}/{chunk.name}: {problems[0]}")
                continue
            self.done[chunk.order] = chunk

    def plan_data(self) -> dict:
        return {
            "production": self.settings.production,
            "devices": list(self.settings.devices),
            "factory_seed": self.settings.factory_seed,
            "cuda_arch": self.settings.cuda_arch,
            "with_ptx": self.settings.with_ptx,
            "token_budget": self.settings.token_budget,
            "chunks": [c.as_list() for c in self.plan_chunks],
            "done": list(self.resumed),
            "stop_file": str(self.stop_file) if self.stop_file else None,
            "shard": list(self.settings.shard) if self.settings.shard else None,
        }

    # -- receiving ------------------------------------------------------------------------------------
    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "???" and report.failed:      # xdist: the worker died while running this item
            payload = self._crashed_payload(report)
            self.crashed += payload is not None
        elif report.when != "call":
            return
        else:
            payload = next((v for k, v in report.user_properties if k == REPORT_KEY), None)
        if payload is None:
            return
        chunk = Chunk.from_list(payload["chunk"])
        for ds in self.datasets.values():
            try:
                written = ds.write_chunk(chunk, payload["records"], payload["rejects"])
            except OSError as exc:
                self.fatal = True
                pytest.exit(f"cannot write chunk {chunk.family}/{chunk.name} to {ds.root}: {exc}; nothing partial "
                            "was written; fix the output directory and rerun the same command to resume",
                            returncode=pytest.ExitCode.INTERNAL_ERROR)
            self.bytes_written[ds.device] += written
        for record in payload["records"]:
            self.records_written[record["device"]] += 1
        for reject in payload["rejects"]:
            self.rejects[reject["reason"]] += 1
        self.stage_seconds.update(payload.get("seconds", {}))
        self.chunks_run += 1
        self.done[chunk.order] = chunk
        if self.target is not None and self.stop_file is not None:
            self._update_cutoff()
        self._progress()

    def _crashed_payload(self, report) -> dict | None:
        """A chunk whose worker died (a fatal signal in one of its kernels): done, with no records and one
        ``crashed`` reject, so the run and the dataset's prefix go on; a rerun does not retry it."""
        if not self.settings.production or "::production[" not in report.nodeid:
            return None
        family = report.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
        name = report.nodeid.rsplit("[", 1)[-1].rstrip("]")
        chunk = next((c for c in self.plan_chunks if c.family == family and c.name == name), None)
        if chunk is None:
            return None
        message = f"worker crashed while running {report.nodeid}: {str(report.longrepr).strip()[:300]}"
        reject = {"family": family, "chunk": name, "index": None, "seed": None, "device": None,
                  "reason": "crashed", "message": message, "kernel_name": None}
        return {"chunk": chunk.as_list(), "records": [], "rejects": [reject], "seconds": {}}

    def _update_cutoff(self) -> None:
        """Advance the finished canonical prefix; once every dataset is full there, tell workers to stop."""
        while self.cutoff is None and self.prefix_pos < len(self.plan_chunks):
            chunk = self.plan_chunks[self.prefix_pos]
            if chunk.order not in self.done:
                return
            for device, ds in self.datasets.items():
                selection = self.selections[device]
                for record in ds.chunk_records(chunk):
                    selection.offer(record["id"], record["structural_hash"], record_bytes(record), record["family"])
            self.prefix_pos += 1
            if all(sel.full for sel in self.selections.values()):
                self.cutoff = chunk.order
                atomic_write_bytes(self.stop_file, json.dumps({"cutoff": self.cutoff}).encode())

    def _eta(self, device: str, elapsed: float) -> str:
        """Time to the target at this run's speed, counting chunks resumed from an earlier run; once the chunks
        hold enough, what is left is the canonical prefix's unfinished chunks (their time is unknown)."""
        have = self.resumed_bytes[device] + self.bytes_written[device]
        if have >= self.target:
            return "when the chunks still open in the canonical order finish"
        speed = self.bytes_written[device] / elapsed if elapsed > 0 else 0.0
        return f"{(self.target - have) / speed / 60:.1f} min" if speed > 0 else "?"

    def _progress(self) -> None:
        if not self.settings.production:
            return
        now = time.monotonic()
        if now - self.last_progress < PROGRESS_SECONDS:
            return
        self.last_progress = now
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:
            return
        elapsed = now - self.started
        parts = []
        for device in self.datasets:
            rate = self.records_written[device] / elapsed if elapsed else 0.0
            resumed = f", {self.resumed_bytes[device] / 1e6:.2f} MB resumed" if self.resumed_bytes[device] else ""
            parts.append(f"{device}: {self.selections[device].kept_bytes / 1e6:.2f}/{self.target / 1e6:.2f} MB "
                         f"in canonical order ({self.bytes_written[device] / 1e6:.2f} MB this run{resumed}), "
                         f"{rate:.1f} rec/s, ETA {self._eta(device, elapsed)}")
        rejects = ", ".join(f"{k} {v}" for k, v in sorted(self.rejects.items())) or "none"
        tr.write_line(f"[factory] {'; '.join(parts)}; rejects: {rejects}")
        self._write_state("generation", "generate, compile and verify chunks", "in_progress",
                          "wait for the run to finish (or rerun the same command after a kill)")

    # -- finishing ------------------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.fatal:
            return
        if self.crashed and session.exitstatus == pytest.ExitCode.TESTS_FAILED and session.testsfailed <= self.crashed:
            # xdist reports a crashed worker's chunk as a failed test; the chunk is a logged reject, like any other
            self.notes.append(f"{self.crashed} chunk(s) crashed their worker: logged as 'crashed' rejects, not retried")
            session.exitstatus = pytest.ExitCode.OK
        if self.settings.shard is not None:
            i, n = self.settings.shard
            roots = " ".join(str(ds.root) for ds in self.datasets.values())
            self.notes.append(f"shard {i}/{n}: {self.chunks_run} chunks written under {roots}; combine all shards "
                              f"with: wkf-merge --target-mb {self.target / 1e6:g} OUT SHARD_DIR...")
            return
        for device, ds in self.datasets.items():
            if not (ds.work / "chunks").exists():
                continue
            self.assembled[device] = ds.assemble(self.plan_chunks, self.target)
        if self.target is None or not self.assembled:
            return
        # short: below the target with nothing left over (a record dropped as over_target means the chunks did
        # produce enough and the cut stopped where the next record would not fit; with small targets one record
        # is more than the 1% slack)
        short = {d: s["bytes"] for d, s in self.assembled.items()
                 if s["bytes"] < self.target * 0.99 and not s.get("dropped", {}).get("over_target")}
        pending = [c for c in self.plan_chunks if c.order not in self.done]
        wall = time.monotonic() - self.started
        for device, ds in self.datasets.items():
            run = {"started": self.wall_started.isoformat(timespec="seconds"), "wall_seconds": round(wall, 1),
                   "chunks": self.chunks_run, "records": self.records_written[device],
                   "bytes": self.bytes_written[device], "workers": _workers(self.config),
                   "token_budget": self.settings.token_budget,
                   "stage_seconds": {k: round(v, 1) for k, v in sorted(self.stage_seconds.items())},
                   "exitstatus": int(session.exitstatus)}
            with open(ds.work / "runs.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(run, sort_keys=True) + "\n")
        summary = ", ".join(f"{d} {s['bytes'] / 1e6:.1f} MB/{s['records']} records" for d, s in self.assembled.items())
        if not short and self.chunks_run == 0 and self.done and session.exitstatus in (
                pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            # a rerun of a finished production: every chunk was already written; that is success, said plainly
            self.notes.append("nothing left to do: every chunk of this production was already written")
            session.exitstatus = pytest.ExitCode.OK
        if short and not pending and session.exitstatus == 0:
            self.notes.append("target not reached with the planned chunks: run the same command again to "
                              "continue (the next plan uses the measured record sizes)")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if short:
            self._write_state("generation", "generate, compile and verify chunks", "blocked",
                              "rerun the same production command to continue",
                              f"{self.wall_started:%Y-%m-%d %H:%M} UTC run stopped after {wall:.0f} s: {summary}",
                              ["the run ended before the size target: " + ", ".join(
                                  f"{d} {b / 1e6:.1f} of {self.target / 1e6:g} MB" for d, b in short.items())])
            return
        from .pack import pack

        for device, ds in self.datasets.items():
            manifest = pack(ds.root)
            self.notes.append(f"{device}: packed {manifest['records']} records into {ds.root / 'data'} "
                              f"({manifest['bytes_compressed'] / 1e6:.1f} MB zstd parquet)")
        self._write_state("packed", "assemble, deduplicate, cut at the target and pack Parquet", "completed",
                          "validate with `wkf-validate production/*_code`",
                          f"{self.wall_started:%Y-%m-%d %H:%M} UTC run finished in {wall:.0f} s: {summary}")

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter) -> None:
        tr = terminalreporter
        if not self.assembled and not self.notes:
            return
        tr.section("warp-kernel-factory")
        for note in self.notes:
            tr.write_line(note)
        for device, summary in self.assembled.items():
            ds = self.datasets[device]
            tr.write_line(f"{device}: {summary['records']} records, {summary['bytes'] / 1e6:.2f} MB "
                          f"in {ds.root / 'records'}")
            for family, count in summary["per_family"].items():
                tr.write_line(f"    {family:<20} {count:>7}")
            if summary["rejects"] or summary["dropped"]:
                tr.write_line(f"    rejects: {summary['rejects']}  dropped: {summary['dropped']}")


def _workers(config) -> int:
    numprocesses = getattr(config.option, "numprocesses", None)
    return int(numprocesses) if isinstance(numprocesses, int) and numprocesses > 0 else 1
