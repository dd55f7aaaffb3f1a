"""wkf-coverage: the construct counter on known sources, the divergence, the CLI on a tiny dataset, and the
reference corpus read from the installed warp package."""

from __future__ import annotations

import json
import textwrap
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from production import coverage


def constructs(src: str) -> dict[str, set[str]]:
    return coverage.kernel_constructs(textwrap.dedent(src))


WHILE_SIN_VEC3_GENERIC = """
    import warp as wp
    from typing import Any


    @wp.func
    def twice(x: Any):
        return x + x


    @wp.kernel
    def k(a: wp.array(dtype=wp.vec3), out: wp.array(dtype=float)):
        i = wp.tid()
        v = twice(a[i])
        n = int(0)
        while n < 3:
            n += 1
        out[i] = wp.sin(v[0])
"""


def test_kernel_with_while_sin_vec3_and_generic_helper():
    assert constructs(WHILE_SIN_VEC3_GENERIC) == {"k": {
        "array:array", "array:load", "array:store", "augassign:Add", "builtin:int", "builtin:sin", "builtin:tid",
        "func:generic", "func:helper", "lit:int", "op:Add", "op:Lt", "stmt:while", "tid:1d", "type:float32",
        "type:vec3",
    }}


def test_helper_constructs_count_for_the_calling_kernel_only():
    found = constructs("""
        import warp as wp

        @wp.func
        def leaf(x: float):
            return wp.exp(x)

        @wp.func
        def mid(x: float):
            for j in range(3):
                x = leaf(x)
                if x > 2.0:
                    break
                elif x < 0.0:
                    continue
            return x

        @wp.kernel
        def calls(a: wp.array(dtype=float)):
            i = wp.tid()
            a[i] = mid(a[i])

        @wp.kernel
        def plain(a: wp.array(dtype=float)):
            i = wp.tid()
            a[i] = a[i]
    """)
    assert {"builtin:exp", "stmt:for_range", "builtin:range", "func:helper", "func:nested_call", "stmt:break",
            "stmt:continue", "stmt:elif"} <= found["calls"]
    assert not {"builtin:exp", "stmt:for_range", "func:helper", "stmt:break"} & found["plain"]


def test_struct_nesting_and_struct_uses():
    found = constructs("""
        import warp as wp

        @wp.struct
        class Inner:
            v: wp.vec3

        @wp.struct
        class Outer:
            inner: Inner
            data: wp.array(dtype=float)

        @wp.struct
        class Flat:
            s: float

        @wp.kernel
        def nested(o: Outer, out: wp.array(dtype=float)):
            i = wp.tid()
            out[i] = o.inner.v[0]

        @wp.kernel
        def flat(fs: wp.array(dtype=Flat), out: wp.array(dtype=float)):
            i = wp.tid()
            f = Flat()
            out[i] = fs[i].s + f.s
    """)
    assert {"struct:param", "struct:nested", "struct:array_field"} <= found["nested"]
    assert {"struct:array_dtype", "struct:construct"} <= found["flat"]
    assert not {"struct:nested", "struct:param", "struct:array_field"} & found["flat"]


@pytest.mark.parametrize("unpack, key", [("i", "tid:1d"), ("i, j", "tid:2d"), ("i, j, k", "tid:3d"),
                                         ("i, j, k, l", "tid:4d")])
def test_tid_arity(unpack, key):
    found = constructs(f"""
        import warp as wp

        @wp.kernel
        def k(a: wp.array(dtype=float)):
            {unpack} = wp.tid()
            a[0] = 1.0
    """)
    assert {x for x in found["k"] if x.startswith("tid:")} == {key}


def test_decorator_forms_aliases_options_and_array_kinds():
    found = constructs("""
        import warp
        from warp import kernel, func

        @func
        def h(x: float, y: float = 2.0):
            return x * y, x

        @warp.kernel(enable_backward=False)
        def a(x: warp.array2d(dtype=warp.float64), y: warp.array(dtype=float, ndim=3), z: warp.array[int],
              w: warp.indexedarray(dtype=float)):
            i, j = warp.tid()
            p, q = h(1.0, 2.0)
            s = x[i]
            if i > j:
                return
            elif i == j:
                s = x[i, 0:2]
            else:
                pass

        @kernel
        def b():
            n = 0
    """)
    assert {"array:array2d", "array:array3d", "array:array", "array:indexedarray", "type:float64", "type:int32",
            "kernel:opt:enable_backward", "func:default_arg", "func:return_tuple", "stmt:tuple_unpack",
            "array:view", "array:slice", "stmt:return", "stmt:if", "stmt:elif", "stmt:else", "tid:2d",
            "op:Gt", "op:Eq"} <= found["a"]
    assert found["b"] == {"lit:int", "tid:none"}


def test_overloads_closures_static_and_not_warp_modules():
    found = constructs("""
        import warp as wp

        @wp.func
        def f(x: float):
            return x

        @wp.func
        def f(x: int):
            return x

        def make(scale: float):
            @wp.func
            def g(x: float):
                return x * wp.static(scale)

            @wp.kernel
            def k(a: wp.array(dtype=float)):
                i = wp.tid()
                a[i] = wp.static(g)(f(a[i]))
            return k
    """)
    assert {"func:overload", "func:closure", "kernel:closure", "func:static_call", "builtin:static"} <= found["k"]
    assert constructs("""
        import numpy as wp

        @wp.kernel
        def not_warp():
            pass
    """) == {}
    assert coverage.kernel_constructs("def broken(:") == {}


def test_a_helper_bound_from_a_factory_is_a_closure():
    """``h = make(3)`` names the @wp.func ``make`` defines inside and returns (how funcs' records write closures);
    a name bound from a factory that returns something else, or a plain function, is no helper."""
    found = constructs("""
        import warp as wp

        def make(scale: int):
            @wp.func
            def shape(x: int) -> int:
                return wp.static(scale) * x
            return shape

        def plain(c: int):
            return c

        shape3 = make(3)
        three = plain(3)

        @wp.kernel
        def k(a: wp.array(dtype=int)):
            i = wp.tid()
            a[i] = shape3(a[i])

        @wp.kernel
        def q(a: wp.array(dtype=int)):
            i = wp.tid()
            a[i] = three
    """)
    assert {"func:helper", "func:closure", "builtin:static", "op:Mult"} <= found["k"]
    assert "kernel:closure" not in found["k"]
    assert not {"func:helper", "func:closure"} & found["q"]


def test_kernels_in_documentation_strings_are_found():
    doc = textwrap.dedent('''
        x = 1
        DOC = """
        Example:

            .. code-block:: python

                @wp.kernel
                def documented(a: wp.array(dtype=wp.quat)):
                    a[wp.tid()] = wp.quat_identity()
        """
    ''')
    import ast

    found = coverage._string_kernels(ast.parse(doc))
    assert [set(f) for f in found] == [{"documented"}]
    assert {"type:quat", "builtin:quat_identity", "tid:other"} <= found[0]["documented"]


def test_jensen_shannon_divergence():
    p = Counter({"a": 3, "b": 1})
    assert coverage.jensen_shannon(p, Counter({"a": 6, "b": 2})) == 0.0
    d = coverage.jensen_shannon(p, Counter({"a": 1, "b": 3}))
    assert 0.0 < d < 1.0
    assert coverage.jensen_shannon(Counter({"a": 1}), Counter({"b": 1})) == pytest.approx(1.0)
    assert d == pytest.approx(coverage.jensen_shannon(Counter({"a": 1, "b": 3}), p))


@pytest.fixture(scope="module")
def warp_reference():
    return coverage.warp_corpus()


def test_warp_package_reference_corpus(warp_reference):
    k = warp_reference["kernels"]
    assert k["all"] >= 2000
    assert 0 < k["non_test"] < k["all"]
    counts = warp_reference["counts"]
    assert counts["all"]["builtin:tid"] > counts["non_test"]["builtin:tid"] > 0
    table = coverage.builtin_table()
    assert len(table) > 300 and {"sin", "tid", "atomic_add"} <= table


def _tiny_dataset(root, sources):
    (root / "data").mkdir(parents=True)
    rows = {"python_source": sources, "kernel_name": ["k"] * len(sources),
            "structural_hash": [f"h{i}" for i in range(len(sources))], "family": ["tiny"] * len(sources)}
    pq.write_table(pa.table(rows), root / "data" / "train-00000-of-00001.parquet", compression="zstd")


def test_cli_prints_the_side_by_side_table(tmp_path, capsys, monkeypatch, warp_reference):
    monkeypatch.setattr(coverage, "warp_corpus", lambda package_dir=None: warp_reference)
    src = textwrap.dedent(WHILE_SIN_VEC3_GENERIC)
    _tiny_dataset(tmp_path / "tiny_code", [src, src.replace("wp.sin", "wp.cos")])
    out_json = tmp_path / "cov.json"
    assert coverage.main([str(tmp_path / "tiny_code"), "--json", str(out_json), "--min-records", "2"]) == 0
    text = capsys.readouterr().out
    assert "tiny_code: 2 records (2 distinct programs)" in text
    assert "warp non-test" in text and "Gap in tiny_code" in text
    cells = {line.split()[0]: line.split()[-1] for line in text.splitlines() if line.startswith(("builtin:", "stmt:"))}
    assert cells["builtin:tid"] == "2" and cells["stmt:while"] == "2"  # both records, not under --min-records 2
    assert cells["builtin:sin"] == "1*"  # one record: under the threshold
    result = json.loads(out_json.read_text())
    ds = result["datasets"][0]
    assert ds["counts"]["builtin:sin"] == 1 and ds["counts"]["stmt:while"] == 2
    assert 0.0 < ds["divergence_jsd_vs_non_test"] < 1.0
    real = warp_reference["counts"]["non_test"]
    gap = [g["construct"] for g in ds["gap"]]
    assert "builtin:sin" in gap and "builtin:tid" not in gap and "stmt:while" not in gap
    assert gap == sorted(gap, key=lambda c: -real[c])
    assert set(gap) == {c for c, n in real.items() if n >= 5 and ds["counts"].get(c, 0) < 2}
    summary = coverage.summary_lines(result, top=3)
    assert summary[1].startswith(f"  tiny_code: JSD {ds['divergence_jsd_vs_non_test']:.4f} bits, {len(gap)} gaps")
    assert gap[0] in summary[1] and summary[1].count("), ") == 2  # the top 3 only


def test_constructs_left_out_say_why():
    from production.coverage import exception_of

    assert exception_of("kernel:opt:entry_point_abi").startswith("cpu: ")
    assert exception_of("kernel:opt:module").startswith("by design: ")
    assert exception_of("builtin:sin") is None
