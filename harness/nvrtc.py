"""NVRTC with a time limit: Warp's ``build_cuda`` run in a child process that is killed when it hangs.

NVRTC runs inside the calling process (Warp calls it through ctypes), so nothing can interrupt a compile that
never ends, and one does exist: NVRTC 13 at ``-O3`` for ``sm_90`` did not finish within 90 s on
``control_flow`` seed 2167493739036845153 alone, a 20-line int32 kernel (the other 31 kernels of its chunk took
0.3-1.1 s each), and the production run that met it spent over 50 minutes on that chunk.
Every NVRTC call of production and of the rebuild checks therefore goes through one long-lived child per
process (:class:`harness.isolation.ChildProcess`), which answers each request or is killed after
:func:`time_limit` seconds; the caller then gets :class:`CompileTimeout` and a fresh child takes the next
request. The child shares the parent's kernel cache, so it uses the same NVRTC precompiled header.

    python -m harness.nvrtc --cache-dir DIR      # the child; not meant to be run by hand
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

from .isolation import ChildProcess, answer_channel, send

SECONDS_BASE = 60.0           # a module of 32 kernels normally takes 2-15 s (NVRTC at -O3, PCH warm)
SECONDS_PER_KERNEL = 5.0


def time_limit(kernels: int) -> float:
    return SECONDS_BASE + SECONDS_PER_KERNEL * max(kernels, 1)


class CompileTimeout(RuntimeError):
    """NVRTC gave no answer within its time limit (its process was killed)."""


class NvrtcProcess(ChildProcess):
    module = "harness.nvrtc"
    what = "NVRTC"

    def __init__(self, cache_dir: str):
        super().__init__(timeout_s=time_limit(1))
        self.cache_dir = cache_dir

    def args(self) -> list[str]:
        return ["--cache-dir", self.cache_dir]


_CHILD: NvrtcProcess | None = None


def _child() -> NvrtcProcess:
    global _CHILD
    import warp as wp

    cache_dir = str(wp.config.kernel_cache_dir)
    if _CHILD is None or _CHILD.cache_dir != cache_dir:
        _close()
        _CHILD = NvrtcProcess(cache_dir)
    return _CHILD


@atexit.register
def _close() -> None:
    if _CHILD is not None:
        _CHILD.close()


def compile_bounded(source: str, arch: int, out_path: str, optimization_level: int, timeout_s: float) -> None:
    """NVRTC ``source`` to ``out_path`` (PTX, or a cubin by the extension) in the child; raises on failure,
    :class:`CompileTimeout` past ``timeout_s``."""
    with tempfile.TemporaryDirectory(prefix="wkf_nvrtc_") as tmp:
        cu = os.path.join(tmp, "records.cu")
        Path(cu).write_text(source, encoding="utf-8")
        answer = _child().request({"source": cu, "arch": arch, "out": out_path, "level": optimization_level},
                                  timeout_s)
    if answer.get("ok"):
        return
    if answer.get("outcome") == "timeout":
        raise CompileTimeout(f"NVRTC gave no answer within {timeout_s:g} s (killed)")
    raise RuntimeError(answer.get("error") or answer.get("message") or "NVRTC failed")


def serve(cache_dir: str, answers) -> None:
    from .build import configure_warp
    from .rebuild import compile_cuda_here

    configure_warp(cache_dir)
    send(answers, {"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        log = tempfile.TemporaryFile()
        saved = os.dup(2)
        os.dup2(log.fileno(), 1)                     # Warp prints NVRTC's log: keep its errors for the message
        os.dup2(log.fileno(), 2)
        try:
            compile_cuda_here(Path(req["source"]).read_text(encoding="utf-8"), req["arch"], req["out"],
                              req["level"])
            answer = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - the compiler's verdict, sent back
            answer = {"error": f"{exc}"}
        except BaseException:
            answer = {"error": traceback.format_exc(limit=4)}
        finally:
            sys.stderr.flush()
            os.dup2(saved, 1)
            os.dup2(saved, 2)
            os.close(saved)
        if "error" in answer:
            log.seek(0)
            errors = [ln for ln in log.read().decode("utf-8", "replace").splitlines() if "error" in ln.lower()]
            if errors:
                answer["error"] = "; ".join(errors[:3]) + f" ({answer['error']})"
        log.close()
        send(answers, answer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.nvrtc")
    parser.add_argument("--cache-dir", required=True)
    args = parser.parse_args(argv)
    answers = answer_channel()                              # Warp's prints go to stderr
    serve(args.cache_dir, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
