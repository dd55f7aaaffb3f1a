"""Parent side of a long-lived child process that answers one JSON line per request, replaced when it dies.

Two children use it: the judge (:mod:`harness.judge_worker`) and NVRTC (:mod:`harness.nvrtc`). A request whose
child exits (signal, abort, out of memory) is ``crashed``; one that gets no answer within the time limit has
its child killed and is ``timeout``. Either way the next request gets a fresh child. This contains faults of
the judged code and hangs of a compiler; it is not a security sandbox (see the README).
"""

from __future__ import annotations

import glob
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTUP_SECONDS = 300.0       # Warp init + the CPU precompiled header; not charged to any prediction


class JudgeUnavailable(RuntimeError):
    """The judge child could not be started (not a prediction's fault)."""


class ChildProcess:
    """``python -m <module> <args>`` that prints a ready line, then answers one JSON line per request."""

    module = ""
    what = "child"
    #: start the child as the leader of a process group of its own, and kill the whole group: for a child that
    #: forks (the judge), a hanging fork dies with it
    own_group = False

    def __init__(self, timeout_s: float, stderr_path: Path | None = None):
        self.timeout_s = timeout_s
        self.stderr_path = stderr_path
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self._buffer = b""
        self.eof = False
        self.started = 0              # how many children were started (1 + replacements)

    def _start(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        stderr = open(self.stderr_path, "ab") if self.stderr_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args()],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env, cwd=root,
                start_new_session=self.own_group)
        finally:
            if stderr is not subprocess.DEVNULL:
                stderr.close()
        self.started += 1
        self._buffer = b""
        line = self._read_line(STARTUP_SECONDS)
        if line is None:
            self._kill()
            raise JudgeUnavailable(f"{self.what} child did not start within {STARTUP_SECONDS:.0f} s "
                                   f"(its stderr: {self.stderr_path or 'discarded'})")
        self.info = json.loads(line)

    def args(self) -> list[str]:
        return []

    def _read_line(self, timeout: float) -> bytes | None:
        """One line from the child, or None on timeout or EOF (then ``self.eof`` is True)."""
        self.eof = False
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    self.eof = True
                    return None
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _kill(self) -> None:
        if self.proc is None:
            return
        if self.own_group:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)        # the child and any fork of it
            except ProcessLookupError:
                pass
        elif self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        remove_auto_pch()                          # a killed child (and its forks) left NVRTC's header files
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc = None

    def request(self, request: dict, timeout_s: float | None = None) -> dict:
        """Send one request; the child's answer, or a ``crashed`` / ``timeout`` verdict of our own."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        if self.proc is None or self.proc.poll() is not None:
            self._kill()
            self._start()
        started = time.monotonic()
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass                                   # it died; reading says how
        line = self._read_line(timeout_s)
        if line is not None:
            return json.loads(line)
        if not self.eof:                           # alive but silent: over the time limit
            self._kill()
            return {"outcome": "timeout", "device": None,
                    "message": f"no answer within {timeout_s:g} s; {self.what} process killed"}
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:         # closed its stdout but lingers
            self._kill()
            code = -signal.SIGKILL
        self._kill()
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return {"outcome": "crashed", "device": None,
                "message": f"{self.what} process died ({how}) after {time.monotonic() - started:.1f} s"}

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()


def remove_auto_pch(pid: int | None = None) -> int:
    """Delete NVRTC's automatic precompiled-header files of process ``pid`` (by default: of every process that no
    longer exists); how many went.

    NVRTC 13 writes a directory ``$TMPDIR/__nvrtc_auto_pch_<pid>_<n>`` (77-380 MB) for each process that
    compiles, and deletes it only when that process exits normally. A judge fork leaves through ``os._exit``, and
    a process over its time limit is killed: before this, each left its directory behind, and the benchmark's
    judged predictions of a few runs filled this machine's disk (76 GB in about 1,000 of them)."""
    gone = 0
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"__nvrtc_auto_pch_{pid if pid else '*'}_*")):
        owner = path.rsplit("__nvrtc_auto_pch_", 1)[1].split("_", 1)[0]
        if not owner.isdigit() or (pid is None and _alive(int(owner))):
            continue                           # not NVRTC's naming, or its process still runs
        shutil.rmtree(path, ignore_errors=True)   # a directory (another sweeper may get there first)
        gone += not os.path.exists(path)
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                    # another user's process
        return True
    return True


class JudgeProcess(ChildProcess):
    """The judge's child (:mod:`harness.judge_worker`), its address space capped at ``memory_mb`` more."""

    module = "harness.judge_worker"
    own_group = True
    what = "judge"

    def __init__(self, timeout_s: float, memory_mb: int, stderr_path: Path | None = None):
        super().__init__(timeout_s, stderr_path)
        self.memory_mb = memory_mb

    def args(self) -> list[str]:
        return ["--memory-mb", str(self.memory_mb)]

    def judge(self, request: dict) -> dict:
        return self.request(request)


# ---------------------------------------------------------------------------------------------------------
# child side


def answer_channel():
    """The child's private copy of its stdout for answers; whatever else writes to stdout goes to stderr."""
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return answers


def send(stream, obj: dict) -> None:
    stream.write(json.dumps(obj) + "\n")
    stream.flush()
