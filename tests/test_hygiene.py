"""Source hygiene counts (wkf-analyze): each kind of noise counted on sources that have it, none on clean ones."""

from __future__ import annotations

import pytest

from production.hygiene import KINDS, LONG_LINE, hygiene, summarize

CLEAN = '''import warp as wp


@wp.func
def math_cf2633_fn(p: float, q: float) -> float:
    r = p * q
    return r - 1.0


@wp.kernel
def math_cf2633(a: wp.array(dtype=float), out: wp.array(dtype=float)):
    i, _lane = wp.tid()
    x = a[i]
    acc = float(0.0)
    for j in range(3):
        acc += x * float(j)
    out[i] = math_cf2633_fn(x, acc) + 2.0 * x
'''

NOISY = '''import warp as wp


@wp.func
def never_called_513e50b91f(p: float) -> float:
    return p


@wp.kernel
def k(a: wp.array(dtype=float), out: wp.array(dtype=float)):
    i = wp.tid()
    x = a[i]
    unused = x * 2.0
    spare = 0.0
    spare += 1.0
    if x <= x:
        x = x
    out[i] = (x - 0.0) + (-0.0) + wp.float32(1.0) * x + x / 1.0 + x ** 1.0 + x * 1.5 - 0.25''' + " " * LONG_LINE + '''
'''


def test_a_clean_source_has_no_noise():
    assert hygiene(CLEAN) == {k: 0 for k in KINDS}


def test_each_kind_of_noise_is_counted():
    counts = hygiene(NOISY)
    assert counts["unused_funcs"] == 1
    assert counts["dead_locals"] == 2          # unused, and spare (augmented but never read)
    assert counts["self_comparisons"] == 1
    assert counts["identity_ops"] == 5         # x - 0.0, ... + (-0.0), wp.float32(1.0) * x, x / 1.0, x ** 1.0
    assert counts["long_lines"] == 1
    assert counts["hashed_names"] == 1         # the 10-digit hash; the 6-digit suffix of CLEAN is not counted


@pytest.mark.parametrize("source", ["def broken(:\n", ""])
def test_unparsable_or_empty_source_counts_nothing_but_lines(source):
    assert sum(hygiene(source).values()) == 0


def test_summary_counts_records_per_family_and_overall():
    s = summarize({"a": [CLEAN, NOISY], "b": [NOISY]})
    assert s["per_family"]["a"]["records"] == 2 and s["per_family"]["a"]["dead_locals"]["records"] == 1
    assert s["overall"]["dead_locals"] == {"records": 2, "occurrences": 4}
    assert s["overall"]["records"] == 3
