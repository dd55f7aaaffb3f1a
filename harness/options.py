"""Command-line options, validated where they enter: bad values raise ``pytest.UsageError``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

DEVICES = ("cpu", "cuda")
#: cl100k tokens of Python + generated code per record: fits a 16k training context
DEFAULT_TOKEN_BUDGET = 16384


def parse_device(value: str) -> tuple[str, ...]:
    if value == "all":
        return DEVICES
    if value in DEVICES:
        return (value,)
    raise pytest.UsageError(f"--device must be one of cpu, cuda, all; got {value!r}")


def positive_number(option: str, unit: str) -> Callable[[str], float]:
    """A ``type=`` converter for ``option``: a positive finite number of ``unit``, else a usage error."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise pytest.UsageError(f"{option} must be a positive number of {unit}; got {value!r}") from None
        if not math.isfinite(number) or number <= 0:
            raise pytest.UsageError(f"{option} must be a positive finite number of {unit}; got {value!r}")
        return number

    return parse


parse_target_mb = positive_number("--target-mb", "megabytes")


def parse_seed(value: str) -> int:
    try:
        seed = int(value, 10)
    except ValueError:
        raise pytest.UsageError(f"--factory-seed must be a non-negative integer; got {value!r}") from None
    if seed < 0:
        raise pytest.UsageError(f"--factory-seed must be a non-negative integer; got {value!r}")
    return seed


def parse_arch(value: str) -> int:
    text = value.removeprefix("sm_")
    if not text.isdigit() or not 50 <= int(text) <= 200:
        raise pytest.UsageError(f"--cuda-arch must be a compute capability such as 90 or sm_90; got {value!r}")
    return int(text)


def parse_quick(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise pytest.UsageError(f"--quick-kernels must be a positive integer; got {value!r}")
    return int(value)


def parse_token_budget(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise pytest.UsageError(f"--token-budget must be a positive number of cl100k tokens; got {value!r}")
    return int(value)


def parse_shard(value: str) -> tuple[int, int]:
    parts = value.split("/")
    if len(parts) == 2 and all(p.isdigit() for p in parts) and 0 <= int(parts[0]) < int(parts[1]):
        return int(parts[0]), int(parts[1])
    raise pytest.UsageError(f"--shard must be I/N with 0 <= I < N (e.g. 0/4); got {value!r}")


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("warp-kernel-factory")
    group.addoption("--device", dest="wkf_devices", type=parse_device, default=DEVICES, metavar="{cpu,cuda,all}",
                    help="backends to build and emit records for (default: all)")
    group.addoption("--out", dest="wkf_out", type=Path, default=None, metavar="DIR",
                    help="where records go (production default: production/cpu_code and production/cuda_code; "
                         "otherwise a fresh temporary directory). With --device all, DIR/cpu_code and DIR/cuda_code.")
    group.addoption("--target-mb", dest="wkf_target_mb", type=parse_target_mb, default=200.0, metavar="N",
                    help="production size target per dataset, in MB (10^6 bytes) of uncompressed records")
    group.addoption("--factory-seed", dest="wkf_seed", type=parse_seed, default=0, metavar="N",
                    help="base seed; every kernel's seed is sha256(base, family, chunk, index)")
    group.addoption("--cuda-arch", dest="wkf_arch", type=parse_arch, default=90, metavar="SM",
                    help="CUDA architecture NVRTC compiles for (default 90: Hopper)")
    group.addoption("--ptx", dest="wkf_ptx", action="store_true", default=False,
                    help="also keep each CUDA kernel's PTX in its record")
    group.addoption("--shard", dest="wkf_shard", type=parse_shard, default=None, metavar="I/N",
                    help="production: run only chunks whose canonical position is I modulo N (batch schedulers); "
                         "combine the shards' outputs with wkf-merge")
    group.addoption("--token-budget", dest="wkf_token_budget", type=parse_token_budget, default=DEFAULT_TOKEN_BUDGET,
                    metavar="N", help="reject records longer than N cl100k tokens of Python + generated code "
                                      f"(reason over_budget; default {DEFAULT_TOKEN_BUDGET})")
    group.addoption("--keep-earlier-versions", dest="wkf_keep_earlier", action="store_true", default=False,
                    help="production resume: keep finished chunks made by an earlier version of a family whose "
                         "programs the current one still makes (its same_programs_as); by default they are redone, "
                         "so a dataset holds one version of each family")
    group.addoption("--quick-kernels", dest="wkf_quick", type=parse_quick, default=4, metavar="N",
                    help="kernels per family in the default (non-production) run")


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed options; deeper code receives this, never ``config.getoption``."""

    devices: tuple[str, ...]
    out: Path | None
    target_bytes: int
    factory_seed: int
    cuda_arch: int
    with_ptx: bool
    quick_kernels: int
    production: bool
    shard: tuple[int, int] | None = None
    token_budget: int = DEFAULT_TOKEN_BUDGET
    keep_earlier_versions: bool = False

    @classmethod
    def from_config(cls, config: pytest.Config) -> "Settings":
        markexpr = config.getoption("markexpr", "") or ""
        return cls(
            devices=config.getoption("wkf_devices"),
            out=config.getoption("wkf_out"),
            target_bytes=int(round(config.getoption("wkf_target_mb") * 1_000_000)),
            factory_seed=config.getoption("wkf_seed"),
            cuda_arch=config.getoption("wkf_arch"),
            with_ptx=config.getoption("wkf_ptx"),
            quick_kernels=config.getoption("wkf_quick"),
            production="production" in markexpr and "not production" not in markexpr,
            shard=config.getoption("wkf_shard"),
            token_budget=config.getoption("wkf_token_budget"),
            keep_earlier_versions=config.getoption("wkf_keep_earlier"),
        )
