"""The judge child process: ``python -m harness.judge_worker --memory-mb N``.

It initialises Warp once (and compiles a trivial module so the CPU precompiled header exists), limits its own
address space to what that took plus ``N`` MB, prints a ready line, then reads one JSON request per line
from stdin and answers one JSON line each. Anything the judged code writes to stdout goes to stderr: the
answers travel on a private copy of the original stdout.

Each request is judged in a fork of this process (when no CUDA context exists: CUDA does not survive a fork),
so that what a completion does to the process (an out-of-bounds write into the heap, leaked memory, changed
global state) dies with it and the next request starts from the same clean state: without the fork, a mutant
that corrupted the heap without crashing broke or could silently bias later verdicts. A fork that dies is
``crashed``; a completion that hangs has the whole process group killed by the parent
(:mod:`harness.isolation`), which reports ``timeout`` and starts a new one. On a GPU host requests are judged
in this process, replaced only when it dies.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import traceback

from .isolation import answer_channel, remove_auto_pch, send

WARMUP_SOURCE = '''import warp as wp


@wp.kernel
def wkf_warmup(a: wp.array(dtype=float)):
    i = wp.tid()
    a[i] = a[i] + 1.0
'''


def _address_space_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1])
    return 0


def limit_memory(memory_mb: int) -> int:
    """Cap the address space at what the process uses now plus ``memory_mb``; returns the cap in bytes."""
    cap = _address_space_kb() * 1024 + memory_mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return cap


def warm_up() -> None:
    """Compile a trivial module through the judge's own path, so the first prediction pays no PCH build."""
    from .build import CPU_BLOCK_DIM
    from .family import Arg, KernelSpec, Program
    from .judge import _Module

    spec = KernelSpec("warmup", 1, 0, "wkf_warmup",
                      Program(WARMUP_SOURCE, (Arg("a", "float32", "inout", (4,)),), (4,)))
    with _Module(spec, 0) as mod:
        assert mod.block_dim == CPU_BLOCK_DIM
        source, meta, options = mod.codegen(None)
        mod.compile_cpu(source, meta, options)


def _judge_request(request: dict, gpu: bool) -> dict:
    from .judge import JudgeError, judge

    try:
        verdict = judge(request["record"], request["task"], request["completion"], gpu, request.get("cuda_arch", 90))
        return verdict.as_dict()
    except JudgeError as exc:
        return {"error": f"JudgeError: {exc}"}
    except MemoryError:
        return {"outcome": "crashed", "message": "out of memory (address-space limit)", "device": None}
    except Exception:  # noqa: BLE001 - a harness bug: say so, with the traceback, and keep serving
        return {"error": traceback.format_exc(limit=8)}


def _save_coverage() -> None:
    """``os._exit`` skips atexit hooks: a fork measured by coverage (its ``patch = fork``) saves its data itself."""
    try:
        import coverage
    except ImportError:
        return
    cov = coverage.Coverage.current()
    if cov is not None:
        cov.stop()
        cov.save()


def judge_in_fork(request: dict, gpu: bool) -> dict:
    """Judge ``request`` in a forked copy of this process; its answer, or ``crashed`` if the copy died."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                            # the copy: judge, answer on the pipe, exit at once
        code = 0
        try:
            os.close(read_end)
            data = json.dumps(_judge_request(request, gpu)).encode("utf-8")
            while data:
                data = data[os.write(write_end, data):]
            _save_coverage()
        except BaseException:  # noqa: BLE001 - nothing may escape into the parent's loop
            code = 70
        os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    _pid, status = os.waitpid(pid, 0)
    remove_auto_pch(pid)                                    # the copy's os._exit skipped NVRTC's own clean-up
    if chunks:
        return json.loads(b"".join(chunks))
    how = (f"signal {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status)
           else f"exit status {os.WEXITSTATUS(status)}")
    return {"outcome": "crashed", "device": None, "message": f"judge process died ({how})"}


def serve(memory_mb: int, answers) -> None:
    from .build import configure_warp, cuda_available
    from .judge import _families

    configure_warp()
    gpu = cuda_available()
    warm_up()
    _families()                                             # loaded once, inherited by every fork
    cap = limit_memory(memory_mb) if memory_mb > 0 else None
    # a crashing completion leaves no core file (each would be the size of this process)
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    send(answers, {"ready": True, "gpu": gpu, "pid": os.getpid(), "address_space_cap": cap, "forks": not gpu})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        send(answers, _judge_request(request, gpu) if gpu else judge_in_fork(request, gpu))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.judge_worker")
    parser.add_argument("--memory-mb", type=int, default=4096)
    args = parser.parse_args(argv)
    answers = answer_channel()                              # judged code's prints go to stderr
    serve(args.memory_mb, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
