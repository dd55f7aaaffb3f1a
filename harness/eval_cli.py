"""``wkf-eval``: judge a predictions file from anywhere, a thin wrapper of ``pytest -m eval`` in the checkout.

    wkf-eval --predictions preds.jsonl --dataset production/cpu_code [-n auto] [--eval-out DIR] [pytest options]

The judge is the pytest plugin's third mode; this only runs it where the plugin and the family modules live,
with the path options made absolute first (so they still name the user's files), and returns pytest's exit
status (a bad predictions file: non-zero, with one line per problem).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATH_OPTIONS = ("--predictions", "--dataset", "--eval-out")


def absolute_paths(argv: list[str], cwd: str) -> list[str]:
    """``argv`` with the value of every path option (``--opt V`` or ``--opt=V``) made absolute against ``cwd``."""
    out: list[str] = []
    take_next = False
    for arg in argv:
        if take_next:
            out.append(os.path.join(cwd, arg))
            take_next = False
        elif arg in PATH_OPTIONS:
            out.append(arg)
            take_next = True
        elif arg.split("=", 1)[0] in PATH_OPTIONS and "=" in arg:
            option, value = arg.split("=", 1)
            out.append(f"{option}={os.path.join(cwd, value)}")
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    args = absolute_paths(sys.argv[1:] if argv is None else argv, os.getcwd())
    cmd = [sys.executable, "-m", "pytest", "-m", "eval", "-p", "no:cacheprovider", *args]
    return subprocess.call(cmd, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
