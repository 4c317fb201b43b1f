"""The benchmark harness (bench/) checks its peers before it times them: run that check.

Quick mode's verification only, on the tiny row (2-layer bidirectional, every
cell, inference and training) and the stream row's step-by-step paths. No
timing and no timing assertions. Peers that are not installed are skipped by
the harness itself; the test asserts that every installed one was checked.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

import crnn  # the installed crnn first: the repository root appended below must not shadow it

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)

from bench import run as bench_run  # noqa: E402
from bench.contenders import (FEWER, VerificationError, build, make_row_data, reference_outputs,  # noqa: E402
                              verify)
from bench.workloads import rows_for  # noqa: E402


def _installed(module):
    return importlib.util.find_spec(module) is not None


def expected_contenders(mode):
    names = {"crnn_numpy", "nploop"}
    if "c" in crnn.available_backends():
        names.add("crnn_c")
    if _installed("torch"):
        names.add("torch")
    if mode == "infer" and _installed("onnxruntime") and _installed("onnx"):
        names.add("ort")
    return names


@pytest.mark.parametrize("workload", ["tiny", "stream"])
def test_every_installed_contender_agrees_with_crnn(workload):
    args = bench_run.parse_args(["--quick", "--verify-only", "--rows", workload, "--threads", "1"])
    subject = "crnn_c" if "c" in crnn.available_backends() else "crnn_numpy"
    for row in rows_for([workload]):
        rec = bench_run.run_row(row, 1, subject, args, None)     # raises VerificationError on disagreement
        checked = set(rec["verify_max_rel_error"])
        assert expected_contenders(row.mode) <= checked, (row.key, rec["notes"])


@pytest.mark.skipif("c" not in crnn.available_backends(), reason="needs the C extension")
@pytest.mark.parametrize("workload", ["tiny", "stream"])
def test_rows_above_the_lowest_thread_count_also_time_crnn_at_it(workload):
    # the thread-scaling verdicts compare crnn C at both counts within the same rows
    pytest.importorskip("threadpoolctl")
    args = bench_run.parse_args(["--quick", "--verify-only", "--rows", workload, "--threads", "1,2"])
    before = crnn.get_num_threads()
    for row in rows_for([workload]):
        assert FEWER not in bench_run.run_row(row, 1, "crnn_c", args, None)["verify_max_rel_error"]
        rec = bench_run.run_row(row, 2, "crnn_c", args, None)     # raises VerificationError on disagreement
        assert FEWER in rec["verify_max_rel_error"], (row.key, rec["notes"])
    assert crnn.get_num_threads() == before      # its samples' thread count does not leak


def test_verification_fails_loudly_on_wrong_weights():
    row = next(r for r in rows_for(["tiny"]) if r.cell == "lstm" and r.mode == "infer")
    data = make_row_data(row)
    ref = reference_outputs(data, "crnn_numpy")
    data.params["weight_hh_l0"] = data.params["weight_hh_l0"][::-1].copy()   # gate blocks out of order
    got = build("nploop", data, 1).outputs()
    with pytest.raises(VerificationError, match="disagrees"):
        verify("nploop", got, ref, row.dtype, row.key)


def test_quick_cli_verification_only(capsys):
    assert bench_run.main(["--quick", "--verify-only", "--rows", "tiny", "--threads", "1"]) == 0
    assert "all contenders agree with crnn" in capsys.readouterr().out


def test_flop_count():
    row = next(r for r in rows_for(["medium"]) if r.cell == "lstm" and r.mode == "infer")
    assert row.flops() == 2.0 * 100 * 32 * 4 * 256 * (128 + 256)
    train = next(r for r in rows_for(["medium"]) if r.cell == "lstm" and r.mode == "train")
    assert train.flops() == 3 * row.flops()
    assert np.isclose(next(r for r in rows_for(["stream"]) if r.cell == "gru").flops(),
                      2.0 * 3 * 64 * (32 + 64))


def test_memory_probes_run_on_a_small_row():
    """The traced probes (training peak, inference extra) run and see the tape:
    a training peak above the theoretical live set's tape share, for every kind."""
    from bench import memory
    from bench.workloads import WORKLOADS, Row
    row = Row(WORKLOADS["tiny"], "lstm", "train", "float32")
    kinds = ["crnn_numpy", "nploop"] + (["crnn_c"] if "c" in crnn.available_backends() else [])
    theory = memory.theoretical(row)
    for kind in kinds:
        assert memory.traced_training_peak(kind, row) >= theory["parameters"], kind
        if kind != "nploop":
            assert memory.inference_extra(kind, Row(WORKLOADS["tiny"], "lstm", "infer", "float32"), 8) >= 0


def test_speed_probe_is_read_before_every_sample(tmp_path):
    """Each sample of a row gets one probe reading, and the table shows them."""
    from bench import report
    from bench.contenders import Prepared
    from bench.timing import SpeedProbe, time_row
    calls = []
    prepared = [Prepared(name, lambda name=name: calls.append(name), dict) for name in ("crnn_c", "nploop")]
    timing = time_row(prepared, 3, 1e-4, 0.0, probe=SpeedProbe())
    assert timing.rounds == 3 and set(calls) == {"crnn_c", "nploop"}
    assert len(timing.probe) == sum(len(v) for v in timing.samples.values()) == 6
    assert all(r > 0 for r in timing.probe)
    assert 0 <= timing.settle_max < 1.5
    assert report._probe_cell([10.0, 30.0, 20.0]) == "20 (10-30)"
    assert report._probe_cell(None) == "-"           # results saved before the probe existed


def test_page_faults_are_counted_per_call_and_listed_when_they_cost():
    """A contender that touches fresh pages on every call shows its faults per call;
    the section lists it only when the faults cost at least FAULT_SHARE_SHOWN of its time."""
    import mmap

    from bench import report
    from bench.contenders import Prepared
    from bench.timing import page_fault_cost, resource, time_row
    if resource is None:
        pytest.skip("no fault counts on this platform")

    def fresh_pages():                      # 64 pages the process has never touched, every call
        with mmap.mmap(-1, 64 * mmap.PAGESIZE) as m:
            pages = np.frombuffer(m, dtype=np.uint8)
            pages[::mmap.PAGESIZE] = 1
            del pages
    prepared = [Prepared("crnn_c", lambda: None, dict), Prepared("nploop", fresh_pages, dict)]
    timing = time_row(prepared, 3, 1e-3, 0.0)
    assert timing.faults["crnn_c"] < 1
    assert timing.faults["nploop"] >= 64
    cost = page_fault_cost(megabytes=4)
    assert cost is not None and 0 < cost < 1e-3
    row = dict(workload="tiny", cell="lstm", mode="train", dtype="float32",
               times={"crnn_c": 1e-3, "nploop": 1e-3}, faults={"crnn_c": 0.0, "nploop": 100.0})
    assert report._fault_notes([row], fault_us=1.0) == ["tiny lstm train f32: NumPy loop 100 (10%)"]
    assert report._fault_notes([row], fault_us=0.1) == []          # 1% of its time: not listed
    assert report._fault_notes([dict(row, faults=None)], fault_us=1.0) == []   # results from before
    assert report._fault_notes([row], fault_us=None) == []


@pytest.mark.skipif("c" not in crnn.available_backends(), reason="C extension not installed")
@pytest.mark.parametrize("mode", ["infer", "train"])
@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_lengths_section_verifies_its_contenders(cell, mode):
    """The variable-lengths section checks crnn C and torch's packed run against
    the NumPy reference before timing them (bench/lengths.py)."""
    from bench import lengths
    prepared, notes, mean_length = lengths.prepared_for(cell, mode)
    expected = {"crnn_c", "crnn_c_padded"} | ({"torch_packed"} if _installed("torch") else set())
    assert {p.name for p in prepared} == expected, notes
    assert 1 <= mean_length < lengths.SHAPE["T"]
