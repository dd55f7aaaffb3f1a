"""Scale-out: sharded runs for batch schedulers, merged, and xdist workers on other hosts (execnet socket
servers), each equal a single-machine run."""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

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


# -- several hosts: xdist workers on execnet socket servers --------------------------------------------------

XDIST_PROD = ("-m", "production", "--device=cpu", "--target-mb", "0.1")
DATASET_NAMES = {"manifest.json", "summary.json", "stop.json", "runs.jsonl", "rejects.jsonl"}
RSYNCED = {"pytest", "_pytest"}      # xdist always ships the controller's pytest to a non-popen gateway's chdir


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@contextlib.contextmanager
def socket_servers(hosts: list[Path]):
    """One ``python -m execnet.script.socketserver`` per host directory (its cwd); yields their ports.

    Each binds port 0, so the OS picks a free port, which the server announces on stdout just before it
    accepts (after ``listen()``). The servers are killed on exit, whatever happens."""
    procs, logs = [], []
    try:
        for host in hosts:
            log = host.parent / f"{host.name}.log"
            logs.append(log)
            with open(log, "wb") as fh:
                procs.append(subprocess.Popen([sys.executable, "-u", "-m", "execnet.script.socketserver", "127.0.0.1:0"],
                                              cwd=host, stdout=fh, stderr=subprocess.STDOUT))
        ports = []
        for proc, log in zip(procs, logs):
            deadline = time.monotonic() + 30
            while True:
                found = re.search(r"Entering Accept loop \('127\.0\.0\.1', (\d+)\)", log.read_text(errors="replace"))
                if found:
                    ports.append(int(found.group(1)))
                    break
                assert proc.poll() is None, f"socket server exited: {log.read_text(errors='replace')}"
                assert time.monotonic() < deadline, f"socket server did not start: {log.read_text(errors='replace')}"
                time.sleep(0.05)
        for port in ports:                      # accepting connections (the kernel queues this one)
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        yield ports
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(timeout=30)


def test_two_socket_hosts_with_own_checkouts_equal_a_single_machine_run(factory_project, tmp_path):
    project = factory_project.path
    hosts = [tmp_path / "hostA", tmp_path / "hostB"]        # outside the controller's project, like other machines
    for host in hosts:
        shutil.copytree(project, host)
    before = {host: _files(host) for host in hosts}
    single = project / "single"
    assert factory_project.runpytest_subprocess(*XDIST_PROD, "-p", "no:xdist", "--out", str(single)).ret == 0
    out = project / "multi"
    with socket_servers(hosts) as ports:
        # chdir: a socket gateway otherwise runs in <server cwd>/pyexecnetcache, where the project's conftest
        # and kernels/ are not found. --out=DIR (one argument): xdist refuses a separate argument that is an
        # existing path outside its rsync roots, which the output directory is on a resume.
        tx = [a for host, port, wid in zip(hosts, ports, "ab")
              for a in ("--tx", f"socket=127.0.0.1:{port}//id={wid}//chdir={host}")]
        command = (*XDIST_PROD, f"--out={out}", *tx, "--dist", "load", "-v")
        result = factory_project.runpytest_subprocess(*command, timeout=180)
        assert result.ret == 0, result.stdout.str()[-3000:]
        passed = {wid: [line for line in result.stdout.lines
                        if re.match(rf"\[{wid}\] \[ *\d+%\] PASSED kernels/tiny\.py::production\[c\d+\]", line)]
                  for wid in "ab"}
        assert passed["a"] and passed["b"], result.stdout.str()[-3000:]
        again = factory_project.runpytest_subprocess(*command, timeout=180)      # a resume through the same hosts
        assert again.ret == 0, again.stdout.str()[-3000:]
        again.stdout.fnmatch_lines(["*nothing left to do*"])
    records = load_records(out)
    assert records and records == load_records(single)
    assert (out / "manifest.json").exists() and list((out / "data").glob("train-*.parquet"))
    for host in hosts:                                       # the workers' disks received no dataset file
        assert f"rootdir: {host}" in (host.parent / f"{host.name}.log").read_text()    # it ran in its own checkout
        new = _files(host) - before[host]
        assert not [f for f in new if f.endswith((".jsonl", ".parquet")) or Path(f).name in DATASET_NAMES]
        assert not [f for f in new if Path(f).parts[0] not in RSYNCED and "__pycache__" not in f
                    and not Path(f).name.startswith(".coverage")], sorted(new)
        assert not any((host / d).exists() for d in ("multi", "single", "production", "work", "records", "data"))
