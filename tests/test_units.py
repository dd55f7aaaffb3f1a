"""Unit tests of the harness parts that need no compiler."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from harness.extract import ExtractionError, extract, split_blocks
from harness.plan import production_plan, quick_plan
from harness.record import structural_hash
from harness.sass import resource_usage
from harness.registry import all_families
from harness.schema import RecordInvalid, validate_record
from harness.seeds import derive_seed, kernel_seed
from harness.writer import Selection, read_jsonl

CPP = """\
#define WP_NO_CRT
#include "builtin.h"
// <wkf:k_0123456789>:3
static wp::float32 k_0123456789_h0_0(
    wp::float32 var_x)
{
    return var_x;
}
static void adj_k_0123456789_h0_0(
    wp::float32 var_x,
    wp::float32 & adj_x,
    wp::float32 & adj_ret)
{
    adj_x += adj_ret;
}
struct wp_args_k_0123456789_abcd1234 {
    wp::array_t<wp::float32> a;
};
template <bool wp_linear_contiguous>
static void k_0123456789_abcd1234_cpu_kernel_forward(
    wp::launch_bounds_t<1> dim,
    size_t task_index,
    wp_args_k_0123456789_abcd1234 *_wp_args)
{
    var_1 = k_0123456789_h0_0(var_0);
}
template <bool wp_linear_contiguous>
static void k_0123456789_abcd1234_cpu_kernel_backward(
    wp::launch_bounds_t<1> dim,
    size_t task_index,
    wp_args_k_0123456789_abcd1234 *_wp_args,
    wp_args_k_0123456789_abcd1234 *_wp_adj_args)
{
    adj_k_0123456789_h0_0(var_0, adj_0, adj_1);
}
static WP_FORCEINLINE void k_0123456789_abcd1234_cpu_forward_dispatch(
    wp::launch_bounds_t<1> *dim,
    wp_args_k_0123456789_abcd1234 *_wp_args)
{
    k_0123456789_abcd1234_cpu_kernel_forward<true>(*dim, 0, _wp_args);
}
extern "C" {
WP_API void k_0123456789_abcd1234_cpu_forward(
    wp::launch_bounds_t<1> *dim,
    wp_args_k_0123456789_abcd1234 *_wp_args)
{
    k_0123456789_abcd1234_cpu_forward_dispatch(dim, _wp_args);
}
} // extern C
static wp::float32 unrelated_0(
    wp::float32 var_x)
{
    return var_x;
}
"""


def test_split_blocks_names_every_top_level_definition():
    names = [block.name for block in split_blocks(CPP)]
    assert names == ["k_0123456789_h0_0", "adj_k_0123456789_h0_0", "wp_args_k_0123456789_abcd1234",
                     "k_0123456789_abcd1234_cpu_kernel_forward", "k_0123456789_abcd1234_cpu_kernel_backward",
                     "k_0123456789_abcd1234_cpu_forward_dispatch", "k_0123456789_abcd1234_cpu_forward",
                     "unrelated_0"]


def test_extract_takes_entry_points_and_their_closure_only():
    code = extract(CPP, "k_0123456789_abcd1234", "cpu")
    assert code.forward.startswith("template <bool wp_linear_contiguous>\nstatic void k_0123456789_abcd1234_cpu")
    assert "adj_k_0123456789_h0_0(var_0" in code.backward
    assert "static wp::float32 k_0123456789_h0_0(" in code.support
    assert "static void adj_k_0123456789_h0_0(" in code.support
    assert "struct wp_args_k_0123456789_abcd1234 {" in code.support
    assert "// <wkf:k_0123456789>:3" in code.support
    assert "unrelated_0" not in code.support + code.forward + code.backward
    assert "dispatch" not in code.support


def test_extract_missing_kernel_raises():
    with pytest.raises(ExtractionError, match="no other_cpu_kernel_forward"):
        extract(CPP, "other", "cpu")


def test_structural_hash_ignores_names_literals_and_comments_but_not_operators():
    a = "def f(a, b):\n    x = a[i] * 2.5  # scale\n    return wp.sin(x)\n"
    b = "def g(p, q):\n    y = p[i] * 7.0\n    return wp.sin(y)\n"
    c = "def g(p, q):\n    y = p[i] + 7.0\n    return wp.sin(y)\n"
    d = "def g(p, q):\n    y = p[i] * 7.0\n    return wp.cos(y)\n"
    assert structural_hash(a) == structural_hash(b)
    assert len({structural_hash(b), structural_hash(c), structural_hash(d)}) == 3


def test_seeds_come_from_sha256_of_their_parts():
    assert derive_seed("x", 1) == derive_seed("x", 1)
    assert derive_seed("x", 1) != derive_seed("x", 2)
    digest = hashlib.sha256(b"wkf-kernel/0/arithmetic/c00000/0").digest()
    assert kernel_seed(0, "arithmetic", "c00000", 0) == int.from_bytes(digest[:8], "big") >> 1
    assert 0 <= kernel_seed(5, "math", "q001", 3) < 2**63


def test_selection_drops_duplicates_and_stops_within_one_percent():
    sel = Selection(target_bytes=1000)
    assert sel.offer("a", "s1", 400, "f") is None
    assert sel.offer("a", "s9", 400, "f") == "duplicate_exact"
    assert sel.offer("b", "s1", 400, "f") == "duplicate_structural"
    assert sel.offer("c", "s2", 700, "f") == "over_target"
    assert sel.offer("d", "s3", 605, "f") is None
    assert sel.full and sel.kept_bytes == 1005
    assert sel.offer("e", "s4", 1, "f") == "target_reached"


def test_an_assembled_dataset_keeps_only_the_rejects_of_the_chunks_it_is_made_of(tmp_path):
    """A run finishes chunks past the cut before it knows where the cut is (other workers keep going); their
    records are not in the dataset, so neither are their rejects."""
    from harness.plan import Chunk
    from harness.writer import DatasetDir

    ds = DatasetDir(tmp_path / "cpu_code", "cpu")
    plan = [Chunk(k, "fam", f"c{k:05d}", 2) for k in range(4)]

    def record(k: int, i: int) -> dict:
        return {"id": f"r{k}{i}", "structural_hash": f"s{k}{i}", "family": "fam", "device": "cpu",
                "provenance": {"index": i, "chunk": plan[k].name}, "pad": "x" * 200}

    def reject(k: int) -> dict:
        return {"family": "fam", "chunk": plan[k].name, "index": 1, "seed": k, "device": "cpu",
                "reason": "mismatch", "message": "m", "kernel_name": f"k{k}"}

    for k in (0, 1, 3):                     # chunk 2 is still open when chunk 3 finishes
        ds.write_chunk(plan[k], [record(k, 0)], [reject(k)])
    size = len(json.dumps(record(0, 0), sort_keys=True, separators=(",", ":"))) + 1
    summary = ds.assemble(plan, target_bytes=2 * size)
    assert summary["records"] == 2 and summary["rejects"] == {"mismatch": 2} and summary["chunks_done"] == 2
    assert {r["chunk"] for r in read_jsonl(tmp_path / "cpu_code" / "rejects.jsonl")} == {"c00000", "c00001"}
    summary = ds.assemble(plan, target_bytes=None)                    # no target: every finished chunk
    assert summary["rejects"] == {"mismatch": 3} and summary["chunks_done"] == 3


def test_production_plan_interleaves_families_by_weight():
    families = all_families()
    plan = production_plan(families, 2_000_000)
    assert [c.order for c in plan] == list(range(len(plan)))
    head = [c.family for c in plan[: len(families)]]
    assert sorted(head) == sorted(families)
    per_family = {}
    for c in plan:
        per_family.setdefault(c.family, []).append(c.name)
    for names in per_family.values():
        assert names == [f"c{i:05d}" for i in range(len(names))]
    assert len(quick_plan(families, 3)) == 3 * len(families)


def _valid_record() -> dict:
    return {
        "id": "0" * 64, "schema_version": 2, "family": "arithmetic", "kernel_name": "arithmetic_0123456789",
        "python_source": "import warp as wp\n@wp.kernel\ndef arithmetic_0123456789(a: wp.array(dtype=float)):\n",
        "structural_hash": "1" * 64, "device": "cpu",
        "ir": {"language": "cpp", "arch": None, "forward": "static void x_cpu_kernel_forward(\n}",
               "backward": None, "support": "", "ptx": None, "resources": None},
        "launch": {"dim": [64], "block_dim": 1, "tiled": False},
        "args": [{"name": "a", "dtype": "float32", "role": "in", "shape": [64]}],
        "features": {},
        "verification": {"numerics_device": "cpu", "input_sets": 3, "elements_compared": 192,
                         "elements_masked": 0, "max_abs_err": 0.0, "max_rel_err": 0.0, "rtol": 1e-4,
                         "atol": 1e-5, "gradient_checked": False, "stages": ["clang", "rebuild"]},
        "tokens": {"python": 30, "code": 12, "total": 42},
        "provenance": {"warp": "1.19.0", "numpy": "2.0", "cuda_toolkit": None, "generator": "arithmetic@1",
                       "factory_seed": 0, "chunk": "c00000", "index": 0, "seed": 1, "optimization_level": 0},
    }


def test_schema_accepts_a_wellformed_record():
    validate_record(_valid_record())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("verification"), "'verification' is a required property"),
        (lambda r: r.update(device="gpu"), "device: 'gpu' is not one of"),
        (lambda r: r["verification"].update(numerics_device="tpu"), "verification/numerics_device"),
        (lambda r: r["ir"].update(arch="sm_90"), "ir/arch"),
        (lambda r: r["verification"].update(max_abs_err=-1.0), "verification/max_abs_err"),
        (lambda r: r.update(id="xyz"), "id: 'xyz' does not match"),
        (lambda r: r.update(surprise=1), "Additional properties are not allowed"),
        (lambda r: r.update(device="cuda"), "ir/language"),
        (lambda r: r["ir"].update(resources={"forward": {}, "backward": None}), "ir/resources"),
        (lambda r: r["verification"].update(stages=["assembled"]), "verification/stages"),
        (lambda r: r.pop("tokens"), "'tokens' is a required property"),
    ],
)
def test_schema_rejects_malformed_records(mutate, message):
    record = copy.deepcopy(_valid_record())
    mutate(record)
    with pytest.raises(RecordInvalid, match="violates the schema") as err:
        validate_record(record)
    assert message in str(err.value)


STRUCTS_CPP = """struct k_aaaaaaaaaa_S_1
{
    wp::float32 x;
};
static CUDA_CALLABLE void adj_k_aaaaaaaaaa_S_1(wp::float32 const&,
    wp::float32 & adj_x,
    k_aaaaaaaaaa_S_1 & adj_ret)
{
    adj_x += adj_ret.x;
}
// Required when compiling adjoints.
CUDA_CALLABLE k_aaaaaaaaaa_S_1 add(const k_aaaaaaaaaa_S_1& a, const k_aaaaaaaaaa_S_1& b)
{
    return k_aaaaaaaaaa_S_1();
}
CUDA_CALLABLE void adj_atomic_add(k_aaaaaaaaaa_S_1* p, k_aaaaaaaaaa_S_1 t)
{
    wp::adj_atomic_add(&p->x, t.x);
}
struct k_bbbbbbbbbb_T_2
{
    wp::float32 y;
};
// Required when compiling adjoints.
CUDA_CALLABLE k_bbbbbbbbbb_T_2 add(const k_bbbbbbbbbb_T_2& a, const k_bbbbbbbbbb_T_2& b)
{
    return k_bbbbbbbbbb_T_2();
}
CUDA_CALLABLE void adj_atomic_add(k_bbbbbbbbbb_T_2* p, k_bbbbbbbbbb_T_2 t)
{
    wp::adj_atomic_add(&p->y, t.y);
}
static wp::float32 k_aaaaaaaaaa_g_0(
    wp::float32 var_x)
{
    return var_x;
}
static wp::float64 k_aaaaaaaaaa_g_0(
    wp::float64 var_x)
{
    return var_x;
}
template <bool wp_linear_contiguous>
static void k_aaaaaaaaaa_cpu_kernel_forward(
    k_aaaaaaaaaa_S_1 var_s)
{
    wp::float32 var_0 = k_aaaaaaaaaa_g_0(var_s.x);
}
template <bool wp_linear_contiguous>
static void k_bbbbbbbbbb_cpu_kernel_forward(
    k_bbbbbbbbbb_T_2 var_t)
{
}
"""


def test_extract_takes_a_structs_companions_and_every_overload_and_nothing_of_another_kernel():
    code = extract(STRUCTS_CPP, "k_aaaaaaaaaa", "cpu")
    # every block of the kernel's own struct, in file order, and both overloads of its generic helper
    assert code.support.count("k_aaaaaaaaaa_S_1 add(") == 1
    assert "adj_atomic_add(k_aaaaaaaaaa_S_1* p" in code.support
    assert "adj_k_aaaaaaaaaa_S_1(" in code.support
    assert "static wp::float32 k_aaaaaaaaaa_g_0(" in code.support
    assert "static wp::float64 k_aaaaaaaaaa_g_0(" in code.support
    # another kernel's struct and its same-named add()/adj_atomic_add() never leak in
    assert "k_bbbbbbbbbb" not in code.support + code.forward
    assert code.support.index("struct k_aaaaaaaaaa_S_1") < code.support.index("add(")
    other = extract(STRUCTS_CPP, "k_bbbbbbbbbb", "cpu")
    assert "k_aaaaaaaaaa" not in other.support and "adj_atomic_add(k_bbbbbbbbbb_T_2* p" in other.support


def test_blocks_keep_overloads_apart():
    blocks = split_blocks(STRUCTS_CPP)
    adds = [b for b in blocks if b.name == "add"]
    assert [b.owner for b in adds] == ["k_aaaaaaaaaa_S_1", "k_bbbbbbbbbb_T_2"]
    assert len({b.signature for b in blocks if b.name == "k_aaaaaaaaaa_g_0"}) == 2


def test_rebuild_isolates_records_so_one_cannot_lean_on_another():
    from harness.rebuild import RebuildError, check_cpu, cxx_compiler

    if cxx_compiler() is None:
        pytest.skip("no system C++ compiler")
    a = extract(STRUCTS_CPP, "k_aaaaaaaaaa", "cpu")
    b = extract(STRUCTS_CPP, "k_bbbbbbbbbb", "cpu")
    ir_a = {"language": "cpp", "forward": a.forward, "backward": None, "support": a.support}
    # b's code without its struct: it compiles only if it can see a definition carried by another record
    ir_b = {"language": "cpp", "forward": b.forward.replace("k_bbbbbbbbbb_T_2", "k_aaaaaaaaaa_S_1"),
            "backward": None, "support": ""}
    check_cpu([ir_a], 1, ["a"])
    with pytest.raises(RebuildError) as err:
        check_cpu([ir_a, ir_b], 1, ["a", "b"])
    assert err.value.failed == ["b"]


# ptxas -v and cuobjdump --dump-resource-usage as the pinned 13.4 tools print them; cuobjdump lists a
# kernel's constant banks in no fixed order (bank 2 first when the compiler placed constants there).
_PTXAS_LOG = """\
ptxas info    : Compiling entry function 'k_cuda_kernel_backward' for 'sm_90'
ptxas info    : Function properties for k_cuda_kernel_backward
    16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 40 registers, used 0 barriers, 1024 bytes smem
ptxas info    : Compiling entry function 'k_cuda_kernel_forward' for 'sm_90'
ptxas info    : Function properties for k_cuda_kernel_forward
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 56 registers, used 0 barriers, 1024 bytes smem
"""
_CUOBJDUMP = """\
 Function k_cuda_kernel_backward:
  REG:40 STACK:16 SHARED:2048 LOCAL:0 CONSTANT[2]:12 CONSTANT[0]:904 TEXTURE:0 SURFACE:0 SAMPLER:0
 Function k_cuda_kernel_forward:
  REG:56 STACK:0 SHARED:2048 LOCAL:0 CONSTANT[0]:728 TEXTURE:0 SURFACE:0 SAMPLER:0
"""


def test_resource_usage_reads_every_entry_whatever_the_order_of_constant_banks():
    usage = resource_usage(_PTXAS_LOG, _CUOBJDUMP)
    assert usage["k_cuda_kernel_backward"] == {
        "registers": 40, "stack_frame_bytes": 16, "spill_store_bytes": 8, "spill_load_bytes": 4,
        "shared_bytes": 2048, "local_bytes": 0, "constant_bytes": 904}
    assert usage["k_cuda_kernel_forward"]["constant_bytes"] == 728
    assert usage["k_cuda_kernel_forward"]["registers"] == 56


def _run_dir(root, accepted: dict[str, float], rejected: dict[str, str]):
    """A run's records and rejects; kernel ``kN`` has seed N, and k7/k8 share one kernel name (short hashes may
    repeat across a dataset: verdicts are keyed by family and seed)."""
    def name(k):
        return "k_shared" if k in ("k7", "k8") else k

    (root / "records").mkdir(parents=True)
    rows = [{"kernel_name": name(k), "family": "atomic", "provenance": {"seed": int(k[1:])},
             "verification": {"numerics_device": "cuda", "max_abs_err": e, "max_rel_err": e}}
            for k, e in accepted.items()]
    (root / "records" / "shard-00000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rejects = [{"kernel_name": name(k), "family": "atomic", "seed": int(k[1:]), "device": "cuda", "reason": r,
                "message": f"{k}: {r}"} for k, r in rejected.items()]
    (root / "rejects.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rejects))
    return root


def test_gpu_compare_sets_the_two_runs_verdicts_side_by_side(tmp_path, capsys):
    from production.gpu_compare import compare, main, verdicts

    a = _run_dir(tmp_path / "a", {"k1": 0.0, "k2": 1e-7, "k3": 0.0, "k7": 0.0, "k8": 0.0},
                 {"k4": "mismatch", "k5": "degenerate_constant"})
    b = _run_dir(tmp_path / "b", {"k1": 3e-7, "k4": 0.0, "k7": 0.0, "k8": 0.0},
                 {"k2": "mismatch", "k5": "degenerate_constant", "k6": "over_budget"})
    result = compare(verdicts(a), verdicts(b))
    assert result["kinds"] == {"accepted_by_a_only": 1, "accepted_by_b_only": 1, "both_accepted": 3,
                               "both_rejected": 1, "only_a": 1, "only_b": 1}
    assert result["reasons_of_changes"] == {"accepted -> mismatch": 1, "mismatch -> accepted": 1}
    assert result["largest_rel_err_move"] == pytest.approx(3e-7)
    assert main([str(a), str(b), "--json", str(tmp_path / "cmp.json")]) == 0
    assert "k2: accepted -> mismatch" in capsys.readouterr().out
    assert json.loads((tmp_path / "cmp.json").read_text())["by_family"]["atomic"]["only_b"] == 1


def test_a_mutant_of_a_value_the_forward_never_reads_is_told_apart():
    from harness.baselines import reads_mutated_value

    forward = ("    wp::float32 var_3;\n    wp::float32 var_4;\n    const wp::int32 var_2 = 32;\n"
               "    var_3 = wp::sub(var_0, var_1);\n    var_4 = wp::tuple(var_0, var_1);\n"
               "    wp::array_store(var_out, var_0, var_3);\n")
    assert reads_mutated_value(forward, ["-    var_3 = wp::sub(var_0, var_1);", "+    var_3 = wp::sub(var_1, var_0);"])
    assert not reads_mutated_value(forward, ["-    var_4 = wp::tuple(var_0, var_1);", "+    ;"])
    assert not reads_mutated_value(forward, ["-    const wp::int32 var_2 = 32;", "+    const wp::int32 var_2 = 33;"])
    assert reads_mutated_value(forward, ["-    wp::array_store(var_out, var_0, var_3);", "+    ;"])


def test_a_small_baseline_run_takes_the_first_records_of_each_family():
    from harness.baselines import first_per_family

    records = {f"{k:02d}": {"family": "ab"[k % 2]} for k in range(10)}
    assert sorted(first_per_family(records, 2)) == ["00", "01", "02", "03"]
    assert first_per_family(records, 0) == {}


def test_baselines_reuse_only_a_judge_run_that_covered_every_prediction(tmp_path):
    from harness.baselines import _complete_results

    preds = [{"id": "a", "task": "py2cpp", "sample": 0}, {"id": "b", "task": "py2cpp", "sample": 0}]
    assert _complete_results(tmp_path, preds) is None
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "results.jsonl").write_text(json.dumps({**preds[0], "outcome": "pass"}) + "\n")
    assert _complete_results(tmp_path, preds) is None            # interrupted: one of two judged
    with open(tmp_path / "results.jsonl", "a") as f:
        f.write(json.dumps({**preds[1], "outcome": "mismatch"}) + "\n")
    assert [r["outcome"] for r in _complete_results(tmp_path, preds)] == ["pass", "mismatch"]


def test_integer_outputs_are_compared_exactly_beside_a_float_tolerance():
    """A family's tolerance is for its float outputs: an integer output beside them is compared exactly (a kernel
    whose float output allows atol 0.5 must not let a count be off by one), and its kinks are masked, not loosened."""
    import numpy as np

    from harness.errors import KernelRejected
    from harness.family import Arg, Family, KernelSpec, Program, Tolerance
    from harness.verify import screen

    def reference(spec, inputs):
        x = inputs["x"].astype(np.float64)
        return {"f": 2.0 * x, "k": np.floor(4.0 * x).astype(np.int32)}

    family = Family(name="mixed", description="d", generate=lambda rng: None, reference=reference,
                    tolerance=lambda spec: Tolerance(1e-4, 0.5))
    args = (Arg("x", "float32", "in", (64,), -2.0, 2.0), Arg("f", "float32", "out", (64,)),
            Arg("k", "int32", "out", (64,)))
    spec = KernelSpec("mixed", 1, 7, "mixed_k", Program("def mixed_k(): pass", args, (64,)))

    def observe(change):
        def run(inputs):
            out = {k: np.asarray(v) for k, v in reference(spec, inputs).items()}
            out = {"f": out["f"].astype(np.float32), "k": out["k"]}
            out.update({k: out[k] + np.asarray(d, dtype=out[k].dtype) for k, d in change.items()})
            return out
        return run

    assert screen(family, spec, observe({"f": 0.25})).elements_compared   # within the float output's atol
    with pytest.raises(KernelRejected, match=r"output 'k'.*rtol=0 atol=0"):
        screen(family, spec, observe({"k": 1}))
