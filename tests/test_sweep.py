"""`hlsflow sweep`: points of the flow run from an Optuna study in a database, in parallel, resumable,
never lost or computed twice, ending in a Pareto report and an exported spec."""

import csv
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from flow.commands.cli import main
from flow.core.errors import FlowError
from flow.spec import load_spec
from flow.sweep.config import load_sweep, point_key
from flow.sweep.report import choose, pareto_mask
from flow.sweep.run import run_sweep
from flow.sweep.workers import storage_url, trial_key

ROOT = Path(__file__).resolve().parents[1]
TINY = {"training": {"epochs": 1, "validation_split": 0.0}, "dataset": {"max_samples": 300},
        "quantization": {"default": {"activation_integer": 2}}}


def sweep_file(tmp_path: Path, axes: dict | None = None, name: str = "tiny", **extra) -> Path:
    """A sweep over the shipped digits MLP with 1-epoch training on 300 samples."""
    data = {"name": name, "base": str(ROOT / "models" / "digits_mlp.yaml"), "overrides": TINY,
            "axes": axes or {"weight_bits": [3, 6], "activation_bits": [3, 6]}, "heartbeat": 2, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def trials_of(sweep_path: Path, url: str):
    import optuna

    sweep = load_sweep(sweep_path)
    return sweep, optuna.load_study(study_name=sweep.study_name(), storage=url).get_trials()


def computed(trials):
    return [t for t in trials if t.state.name == "COMPLETE" and "figures" in t.user_attrs]


def assert_every_point_computed_once(sweep, trials):
    keys = Counter(trial_key(t, sweep) for t in computed(trials))
    assert set(keys) == {point_key(p) for p in sweep.grid()}
    assert max(keys.values()) == 1, keys


def run_cli(args, capsys):
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


# --- the sweep file -------------------------------------------------------------------------------


def test_shipped_sweep_is_a_7_by_7_grid_over_the_digits_mlp():
    sweep = load_sweep(ROOT / "models" / "digits_sweep.yaml")
    assert sweep.base_path == (ROOT / "models" / "digits_mlp.yaml").resolve()
    assert {a.name: a.values for a in sweep.axes} == {"weight_bits": tuple(range(2, 9)),
                                                      "activation_bits": tuple(range(2, 9))}
    assert len({point_key(p) for p in sweep.grid()}) == 49


def test_per_layer_axis_wins_over_the_all_layer_axis(tmp_path):
    sweep = load_sweep(sweep_file(tmp_path, {"weight_bits": [3], "layers": {"fc2": {"weight_bits": [8]}}}))
    spec = sweep.point_spec({"weight_bits": 3, "fc2.weight_bits": 8})
    assert {layer.name: layer.quant.weight_bits for layer in spec.layers} == {"fc1": 3, "fc2": 8}


def test_pruning_reuse_and_io_axes_reach_the_point_spec(tmp_path):
    sweep = load_sweep(sweep_file(tmp_path, {"pruning_sparsity": [0.0, 0.5], "reuse_factor": [1, 4],
                                             "io_type": ["io_parallel", "io_stream"]}))
    off = sweep.point_spec({"pruning_sparsity": 0.0, "reuse_factor": 1, "io_type": "io_parallel"})
    on = sweep.point_spec({"pruning_sparsity": 0.5, "reuse_factor": 4, "io_type": "io_stream"})
    assert off.pruning is None and on.pruning.sparsity == 0.5
    assert (on.hardware.reuse_factor, on.hardware.io_type) == (4, "io_stream")


def test_pruning_method_and_amount_axes_reach_the_point_spec(tmp_path):
    from flow.spec import NeuronPruning, Pruning

    sweep = load_sweep(sweep_file(tmp_path, {"pruning_method": ["magnitude", "neurons"],
                                             "pruning_amount": [0.0, 0.25, 0.5]},
                                  overrides={**TINY, "pruning": {"method": "neurons", "threshold": 0.1,
                                                                 "finetune_epochs": 3}}))
    assert sweep.space_size == 5  # amount 0 is one unpruned point whatever the method
    assert len({point_key(p) for p in sweep.grid()}) == 5
    assert sweep.point_spec({"pruning_method": "magnitude", "pruning_amount": 0.5}).pruning == Pruning(0.5)
    assert sweep.point_spec({"pruning_method": "neurons", "pruning_amount": 0.25}).pruning == NeuronPruning(
        fraction=0.25, finetune_epochs=3, layers=("fc1",))  # the base's fine-tuning kept, its threshold replaced
    assert sweep.point_spec({"pruning_method": "neurons", "pruning_amount": 0.0}).pruning is None
    assert point_key({"pruning_method": "neurons", "pruning_amount": 0.0}) == \
        point_key({"pruning_method": "magnitude", "pruning_amount": 0.0})
    sparsity = load_sweep(sweep_file(tmp_path, {"pruning_sparsity": [0.5]}, name="s",
                                     overrides={**TINY, "pruning": {"method": "neurons", "fraction": 0.5}}))
    assert sparsity.point_spec({"pruning_sparsity": 0.5}).pruning == Pruning(0.5)  # the magnitude axis, as before


def test_a_changed_axis_or_training_starts_a_new_study(tmp_path):
    a = load_sweep(sweep_file(tmp_path, {"weight_bits": [3, 6]}, name="a"))
    b = load_sweep(sweep_file(tmp_path, {"weight_bits": [3, 7]}, name="a"))
    c = load_sweep(sweep_file(tmp_path, {"weight_bits": [3, 6]}, name="a",
                              overrides={**TINY, "training": {"epochs": 2}}))
    assert len({a.study_name(), b.study_name(), c.study_name()}) == 3
    assert a.study_name() == load_sweep(sweep_file(tmp_path, {"weight_bits": [3, 6]}, name="a")).study_name()


@pytest.mark.parametrize("axes, extra, field", [
    ({"weight_bits": [0, 4]}, {}, "axes.weight_bits[0]"),
    ({"activation_bits": [2, 4], "activation_integer": [3]}, {}, "axes.activation_integer"),
    ({"weight_bits": [2, 4], "weight_integer": [2]}, {}, "axes.weight_integer"),  # 2 bits: sign + 1 integer at most
    ({"colour_bits": [4]}, {}, "axes.colour_bits"),
    ({"layers": {"fc9": {"weight_bits": [4]}}}, {}, "axes.layers.fc9"),
    ({"weight_bits": []}, {}, "axes.weight_bits"),
    ({"weight_bits": [4, 4]}, {}, "axes.weight_bits"),
    ({"io_type": ["io_serial"]}, {}, "axes.io_type[0]"),
    ({"weight_bits": [4]}, {"search": {"method": "tpe"}}, "search.trials"),
    ({"weight_bits": [4]}, {"mode": "ptw"}, "mode"),
    ({"weight_bits": [4]}, {"float_model": "float_model.h5"}, "float_model"),  # needs mode: ptq
    ({"weight_bits": [4]}, {"mode": "ptq", "float_model": "no_such_model.h5"}, "float_model"),
    ({"weight_bits": [4]}, {"mode": "ptq", "float_model": "weights.npz"}, "float_model"),
    ({"pruning_sparsity": [0.0, 0.5]}, {"mode": "ptq"}, "axes.pruning_sparsity"),  # PTQ does not train
    ({"pruning_method": ["neurons"], "pruning_amount": [0.5]}, {"mode": "ptq"}, "axes.pruning_method"),
    ({"weight_bits": [4]}, {"mode": "ptq", "overrides": {**TINY, "pruning": {"method": "neurons", "fraction": 0.5}}},
     "mode"),
    ({"pruning_sparsity": [0.5], "pruning_amount": [0.5]}, {}, "axes.pruning_sparsity"),
    ({"pruning_method": ["magnitude", "neurons"]}, {}, "axes.pruning_method"),  # needs pruning_amount
    ({"pruning_method": ["channels"], "pruning_amount": [0.5]}, {}, "axes.pruning_method[0]"),
    ({"pruning_amount": [0.0, 1.0]}, {}, "axes.pruning_amount[1]"),
])
def test_impossible_axes_exit_2_naming_file_and_field(tmp_path, capsys, axes, extra, field):
    path = sweep_file(tmp_path, axes, **extra)
    rc, out, err = run_cli(["sweep", str(path), "--out", str(tmp_path / "out")], capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert str(path) in err and f"`{field}`" in err
    assert not (tmp_path / "out").exists()


def test_unreachable_database_exits_2_and_touches_nothing(tmp_path, capsys):
    out = tmp_path / "out" / "tiny"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("earlier results")
    (out / "hlsflow-sweep.json").write_text('{"sweep": "tiny"}')  # a sweep folder of an earlier run
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://someone:secret@127.0.0.1:{port}/sweeps"
    rc, _, err = run_cli(["sweep", str(sweep_file(tmp_path)), "--out", str(tmp_path / "out"), "--storage", url], capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert f"127.0.0.1:{port}/sweeps" in err and "cannot open the database" in err and "secret" not in err
    assert sorted(p.name for p in out.iterdir()) == ["hlsflow-sweep.json", "keep.txt"]
    assert (out / "keep.txt").read_text() == "earlier results"


def test_postgres_urls_use_psycopg_3_and_the_default_is_an_sqlite_file(tmp_path):
    assert storage_url("postgresql://u@h:5432/db", tmp_path / "x.db") == "postgresql+psycopg://u@h:5432/db"
    assert storage_url(None, tmp_path / "x.db") == f"sqlite:///{(tmp_path / 'x.db').resolve()}"


# --- Pareto front and the exported point -----------------------------------------------------------


def test_pareto_front_keeps_exactly_the_undominated_points():
    # (accuracy up, bops down)
    pts = [(0.9, 100), (0.95, 200), (0.9, 150), (0.5, 50), (0.95, 250)]
    assert pareto_mask(pts, [True, False]) == [True, True, False, True, False]


def test_export_choice_is_the_cheapest_point_within_tolerance_of_the_best():
    rows = [{"trial": 0, "state": "done", "accuracy": 0.96, "bops": 900},
            {"trial": 1, "state": "done", "accuracy": 0.955, "bops": 400},
            {"trial": 2, "state": "done", "accuracy": 0.90, "bops": 100},
            {"trial": 3, "state": "failed"}]
    assert choose(rows)["trial"] == 1
    assert choose(rows, min_accuracy=0.85)["trial"] == 2
    assert choose(rows, trial=0)["trial"] == 0
    with pytest.raises(FlowError, match="--min-accuracy 0.99"):
        choose(rows, min_accuracy=0.99)


# --- bit operations --------------------------------------------------------------------------------


def _tiny_dense_graph(tmp_path, strategy="Latency", reuse=1):
    import numpy as np

    from flow.commands import pipeline
    from flow.keras import network
    from flow.keras.env import set_seed
    from flow.spec import parse_spec

    raw = {"name": "tiny_dense", "dataset": {"source": "digits", "input_shape": [4]},
           "quantization": {"input_type": "ap_ufixed<8,1>", "default": {"weight_bits": 4, "weight_integer": 0}},
           "model": {"layers": [{"type": "dense", "name": "fc", "units": 2}]},
           "hardware": {"strategy": strategy, "reuse_factor": reuse}}
    spec = parse_spec(raw, tmp_path / "tiny_dense.yaml")
    set_seed(0)
    model = network.build_model(spec, quantized=True)
    kernel = np.array([[0.5, 0], [0.25, 0], [0, 0], [-0.5, 0.125]], dtype=np.float32)
    model.get_layer("fc").set_weights([kernel, np.array([0.5, 0], dtype=np.float32)])
    graph, _ = pipeline.to_hls_graph(model, spec, spec.input_type, tmp_path / f"hls_{strategy}")
    return graph


def test_bops_count_nonzero_weight_multiplies_and_accumulator_adds(tmp_path):
    from flow.sweep.evaluate import bit_operations

    graph = _tiny_dense_graph(tmp_path)
    layer = next(layer for layer in graph.get_layers() if layer.name == "fc")
    b_acc = layer.get_attr("accum_t").precision.width
    # output 0: 3 non-zero weights + a bias -> 3 multiplies, 3 adds; output 1: 1 weight, no bias -> 1 multiply
    assert bit_operations(graph) == {"bops": 4 * (4 * 8) + 3 * b_acc, "layers": {"fc": 4 * (4 * 8) + 3 * b_acc}}


def test_bops_do_not_depend_on_strategy_or_reuse_factor(tmp_path):
    from flow.sweep.evaluate import bit_operations

    assert bit_operations(_tiny_dense_graph(tmp_path, "Resource", 2)) == bit_operations(_tiny_dense_graph(tmp_path))


# --- running sweeps --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory):
    """A 2x2 grid run to the end in this process (one worker), with the best point exported."""
    tmp = tmp_path_factory.mktemp("sweep")
    path = sweep_file(tmp)
    rc = main(["sweep", str(path), "--out", str(tmp / "out"), "--no-progress",
               "--export-best", str(tmp / "best_digits.yaml")])
    return tmp, path, rc


def test_small_sweep_computes_every_point_once(small_sweep):
    tmp, path, rc = small_sweep
    assert rc == 0
    sweep, trials = trials_of(path, storage_url(None, tmp / "out" / "tiny" / "sweep.db"))
    assert_every_point_computed_once(sweep, trials)
    for t in computed(trials):
        figures = t.user_attrs["figures"]
        project = Path(figures["project"])
        assert (project / "hls" / "firmware" / "myproject.cpp").is_file() and (project / "project.json").is_file()
        assert t.values == [figures["accuracy"], figures["bops"]]
        assert figures["accuracy"] == figures["qkeras_accuracy"]  # emulator == QKeras on the test split


def test_small_sweep_report_has_plots_html_table_and_csv(small_sweep):
    tmp, path, _ = small_sweep
    report = tmp / "out" / "tiny" / "report"
    for name in ("pareto.png", "pareto.svg", "index.html", "points.csv"):
        assert (report / name).stat().st_size > 0, name
    rows = list(csv.DictReader((report / "points.csv").open()))
    assert sorted((int(r["weight_bits"]), int(r["activation_bits"])) for r in rows) == [(3, 3), (3, 6), (6, 3), (6, 6)]
    assert {r["mode"] for r in rows} == {"qat"}
    assert any(r["pareto"] == "True" for r in rows)
    page = (report / "index.html").read_text()
    assert page.count("<tr") == 1 + 4 and "<svg" in page and "addEventListener('click'" in page
    assert not any(ref in page for ref in ('src="http', "href=\"http", "<link", "<script src"))  # offline


def test_exported_spec_is_the_chosen_point_and_loads_as_a_spec(small_sweep):
    tmp, path, _ = small_sweep
    spec = load_spec(tmp / "best_digits.yaml")
    rows = list(csv.DictReader((tmp / "out" / "tiny" / "report" / "points.csv").open()))
    chosen = choose([{**r, "trial": int(r["trial"]), "accuracy": float(r["accuracy"]), "bops": int(r["bops"])}
                     for r in rows])
    assert spec.name == "best_digits"
    assert {layer.quant.weight_bits for layer in spec.layers} == {int(chosen["weight_bits"])}
    assert {layer.quant.activation_bits for layer in spec.layers} == {int(chosen["activation_bits"])}
    assert spec.training.epochs == 1


@pytest.mark.slow
def test_hlsflow_run_of_the_exported_spec_reproduces_the_point_bit_exactly(small_sweep):
    from flow.commands.pipeline import run

    tmp, path, _ = small_sweep
    rows = list(csv.DictReader((tmp / "out" / "tiny" / "report" / "points.csv").open()))
    chosen = choose([{**r, "trial": int(r["trial"]), "accuracy": float(r["accuracy"]), "bops": int(r["bops"])}
                     for r in rows])
    spec = yaml.safe_load((tmp / "best_digits.yaml").read_text())
    spec.pop("rtl", None)  # RTL generation and simulation are tested elsewhere
    (tmp / "best_no_rtl.yaml").write_text(yaml.safe_dump(spec))
    report = run(tmp / "best_no_rtl.yaml", tmp / "hls_projects")
    assert report["accuracy"]["emulator"] == report["accuracy"]["csim"] == chosen["accuracy"]
    assert report["emulator_vs_csim"]["exact_fraction"] == 1.0


@pytest.mark.slow
def test_csim_option_compiles_each_point_and_checks_the_emulator_against_it(tmp_path):
    path = sweep_file(tmp_path, {"weight_bits": [4], "activation_bits": [5]}, csim=True)
    result = run_sweep(path, tmp_path / "out", progress=False, report=False)
    figures = computed(result.study.get_trials())[0].user_attrs["figures"]
    assert figures["emulator_vs_csim_exact"] == 1.0
    assert figures["csim_accuracy"] == figures["accuracy"]
    assert "csim" in figures["seconds"]


def test_rerunning_a_finished_sweep_computes_nothing(small_sweep, capsys):
    tmp, path, _ = small_sweep
    url = storage_url(None, tmp / "out" / "tiny" / "sweep.db")
    before = [(t.number, t.state) for t in trials_of(path, url)[1]]
    rc, _, _ = run_cli(["sweep", str(path), "--out", str(tmp / "out"), "--no-progress"], capsys)
    assert rc == 0
    assert [(t.number, t.state) for t in trials_of(path, url)[1]] == before


def test_export_best_replaces_its_own_earlier_export_and_a_users_file_only_with_force(small_sweep, capsys):
    tmp, path, _ = small_sweep
    args = ["sweep", str(path), "--out", str(tmp / "out"), "--no-progress", "--report-only"]
    exported = (tmp / "best_digits.yaml").read_text()
    assert run_cli([*args, "--export-best", str(tmp / "best_digits.yaml")], capsys)[0] == 0
    assert (tmp / "best_digits.yaml").read_text() == exported
    mine = tmp / "my_notes.yaml"
    mine.write_text("mine: true\n")
    rc, _, err = run_cli([*args, "--export-best", str(mine)], capsys)
    assert rc == 2 and "give --force" in err and mine.read_text() == "mine: true\n"
    assert run_cli([*args, "--export-best", str(mine), "--force"], capsys)[0] == 0
    assert load_spec(mine).name == "my_notes"


def fake_figures(self, params):
    """Stands in for PointEvaluator.evaluate where a test is about bookkeeping, not the flow itself."""
    return {"accuracy": 1 - 1 / params["weight_bits"], "qkeras_accuracy": 0.0,
            "bops": params["weight_bits"] * params["activation_bits"], "weight_memory_bits": 1, "sparsity": 0.0,
            "overflows": 0, "seconds": {"total": 0.0}, "project": ""}


@pytest.mark.parametrize("method", ["tpe", "nsga2"])
def test_multi_objective_search_runs_its_trial_budget_and_computes_no_point_twice(tmp_path, monkeypatch, method):
    from flow.sweep.evaluate import PointEvaluator

    monkeypatch.setattr(PointEvaluator, "evaluate", fake_figures)
    path = sweep_file(tmp_path, {"weight_bits": [2, 3, 4, 6, 8], "activation_bits": [2, 3, 4, 6, 8]},
                      search={"method": method, "trials": 12, "seed": 1})
    result = run_sweep(path, tmp_path / "out", progress=False, report=False)
    complete = [t for t in result.study.get_trials() if t.state.name == "COMPLETE"]
    assert len(complete) == 12 and result.counts.done == 12
    keys = [trial_key(t, result.sweep) for t in computed(complete)]
    assert len(set(keys)) == len(keys)  # a repeated proposal reuses the figures instead
    for t in complete:
        if "same_as" in t.user_attrs:
            assert t.values == next(c.values for c in complete if c.number == t.user_attrs["same_as"])


def test_a_failing_point_is_reported_and_retried_on_request(tmp_path, capsys, monkeypatch):
    from flow.sweep.evaluate import PointEvaluator

    def fake(self, params):
        if params == {"weight_bits": 3, "activation_bits": 6}:
            raise FlowError("hls4ml cannot convert this model: boom")
        return fake_figures(self, params)

    monkeypatch.setattr(PointEvaluator, "evaluate", fake)
    path = sweep_file(tmp_path)
    args = ["sweep", str(path), "--out", str(tmp_path / "out"), "--no-progress"]
    rc, _, err = run_cli(args, capsys)
    assert rc == 1 and "1 point(s) failed" in err and "--retry-failed" in err
    rows = list(csv.DictReader((tmp_path / "out" / "tiny" / "report" / "points.csv").open()))
    failed = [r for r in rows if r["state"] == "failed"]
    assert [(r["weight_bits"], r["activation_bits"]) for r in failed] == [("3", "6")]
    assert "FlowError: hls4ml cannot convert this model: boom" in failed[0]["error"]
    assert run_cli(args, capsys)[0] == 1  # a plain rerun does not repeat a failed point
    monkeypatch.setattr(PointEvaluator, "evaluate", fake_figures)
    assert run_cli([*args, "--retry-failed"], capsys)[0] == 0
    sweep, trials = trials_of(path, storage_url(None, tmp_path / "out" / "tiny" / "sweep.db"))
    assert_every_point_computed_once(sweep, trials)


def test_rtl_cost_hook_is_none_without_flow_rtl_cost_figures(tmp_path, monkeypatch):
    import types

    from flow.sweep.evaluate import rtl_cost

    monkeypatch.setitem(sys.modules, "flow.commands.rtl_command", types.ModuleType("flow.commands.rtl_command"))
    assert rtl_cost(tmp_path) is None


def test_rtl_cost_figures_of_pareto_points_reach_the_table_and_a_latency_plot(tmp_path, monkeypatch, capsys):
    import types

    from flow.sweep.evaluate import PointEvaluator

    monkeypatch.setattr(PointEvaluator, "evaluate", lambda self, params: {**fake_figures(self, params),
                                                                          "project": str(tmp_path)})
    rtl = types.ModuleType("flow.commands.rtl_command")
    rtl.cost_figures = lambda project: {"latency_cycles": 3, "luts": 1234}
    monkeypatch.setitem(sys.modules, "flow.commands.rtl_command", rtl)
    path = sweep_file(tmp_path)
    rc, _, _ = run_cli(["sweep", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--rtl-cost", "pareto"],
                       capsys)
    assert rc == 0
    report = tmp_path / "out" / "tiny" / "report"
    rows = list(csv.DictReader((report / "points.csv").open()))
    assert {(r["pareto"], r["rtl_latency_cycles"], r["rtl_luts"]) for r in rows} == {("True", "3.0", "1234.0"),
                                                                                    ("False", "", "")}
    assert (report / "pareto_latency.png").stat().st_size > 0 and (report / "pareto_luts.svg").stat().st_size > 0


def _sweep_process(path: Path, out: Path, workers: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flow", "sweep", str(path), "--out", str(out), "--workers",
                             str(workers), "--no-progress"], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_workers_share_one_database_and_survive_kill_9_and_ctrl_c(tmp_path, capsys):
    """Two worker processes on one SQLite file. Once both have finished a point and both are busy again:
    kill -9 one worker, Ctrl-C the rest. The rerun finishes the sweep: nothing finished is lost or
    recomputed, and each interrupted point is retried exactly once.

    Heartbeat 5 s (a trial is stale after 15 s without one): with 2 s, a live worker on a machine
    loaded by the parallel test run could miss 6 s of heartbeats and have its point failed for it. Six points:
    with four, a worker slowed by the load could finish its first point after the other finished its second,
    and the moment with both busy after a finished point each never came."""
    import optuna

    path = sweep_file(tmp_path, {"weight_bits": [3, 4, 6], "activation_bits": [3, 6]}, heartbeat=5)
    url = storage_url(None, tmp_path / "out" / "tiny" / "sweep.db")
    sweep = load_sweep(path)
    proc = _sweep_process(path, tmp_path / "out", workers=2)
    victim = before = None
    try:
        deadline = time.time() + 300
        while victim is None and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:  # read only: the sweep creates the tables
                storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
                trials = optuna.load_study(study_name=sweep.study_name(), storage=storage).get_trials()
            except Exception:  # noqa: BLE001 - the database or study is not created yet
                continue
            done_by = {t.user_attrs["worker"]["pid"] for t in computed(trials)}
            busy = [t for t in trials if t.state.name == "RUNNING" and t.user_attrs.get("worker", {}).get("pid") in done_by]
            if len(done_by) == 2 and len(busy) == 2:
                victim = max(busy, key=lambda t: t.datetime_start)  # the latest started: far from its end
                before = {t.number: (t.values, t.datetime_complete) for t in computed(trials)}
                os.kill(victim.user_attrs["worker"]["pid"], signal.SIGKILL)
                os.killpg(proc.pid, signal.SIGINT)
        assert victim is not None, f"never saw both workers busy after a finished point each: {proc.communicate()}"
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    rc, out, err = run_cli(["sweep", str(path), "--out", str(tmp_path / "out"), "--no-progress"], capsys)
    assert rc == 0, f"the resumed sweep did not finish:\n{out}\n{err}"
    _, trials = trials_of(path, url)
    assert_every_point_computed_once(sweep, trials)
    by_number = {t.number: t for t in trials}
    for number, (values, completed) in before.items():  # finished before the kill: untouched
        assert (by_number[number].values, by_number[number].datetime_complete) == (values, completed)
    assert by_number[victim.number].state.name == "FAIL"
    for failed in (t for t in trials if t.state.name == "FAIL"):
        retries = [t for t in trials if failed.number in t.system_attrs.get("retry_history", [])]
        assert len(retries) == 1 and "figures" in retries[0].user_attrs, failed.number


# --- integer activation types ---------------------------------------------------------------------


def test_a_point_with_quantized_relu_n_n_is_computed(tmp_path):
    """quantized_relu(3, 3) has no fractional bits: hls4ml makes it ap_uint<3>, which the emulator now reads
    as ap_ufixed<3,3> (the point used to fail with 'unsupported hls4ml precision uint<3>')."""
    from flow.arith.emulate import emulate
    from flow.hls.project import rebuild

    path = sweep_file(tmp_path, {"activation_bits": [3], "activation_integer": [3]}, name="intrelu")
    result = run_sweep(path, tmp_path / "out", progress=False, report=False)
    assert (result.counts.done, result.counts.failed) == (1, 0)
    figures = computed(result.study.get_trials())[0].user_attrs["figures"]
    project = Path(figures["project"])
    assert "ap_uint<3>" in (project / "hls" / "firmware" / "defines.h").read_text()
    _, graph, _ = rebuild(project, tmp_path / "rebuilt")
    split = _split_of(result.sweep)
    emulated = emulate(graph, split.x_test).outputs
    assert figures["accuracy"] == float((emulated.argmax(axis=1) == split.y_test).mean())


def _split_of(sweep):
    from flow.arith.types import parse_type
    from flow.data import load_dataset

    base = sweep.base
    return load_dataset(base.dataset, parse_type(base.input_type), base.training.seed)


# --- post-training quantization (mode: ptq) --------------------------------------------------------

PTQ_OVERRIDES = {"training": {"epochs": 6, "validation_split": 0.0}, "dataset": {"max_samples": 600}}


@pytest.fixture(scope="module")
def ptq_sweep(tmp_path_factory):
    """A PTQ grid over 2- and 8-bit weights: the float baseline trained once, each point quantized from it."""
    tmp = tmp_path_factory.mktemp("ptq")
    path = sweep_file(tmp, {"weight_bits": [2, 8], "activation_bits": [8]}, name="ptq", mode="ptq",
                      overrides=PTQ_OVERRIDES)
    return tmp, path, run_sweep(path, tmp / "out", progress=False)


def test_ptq_points_quantize_the_float_baseline_and_are_scored_by_the_emulator(ptq_sweep, tmp_path):
    import numpy as np

    from flow.arith.emulate import emulate
    from flow.hls.project import rebuild
    from flow.keras.model_io import load_model
    from flow.keras.train import predict
    from flow.sweep.ptq import float_model_path

    tmp, path, result = ptq_sweep
    assert (result.counts.done, result.counts.failed) == (2, 0)
    float_model = load_model(float_model_path(result.sweep, tmp / "out" / "ptq"))
    split = _split_of(result.sweep)
    float_accuracy = float((predict(float_model, split.x_test).argmax(axis=1) == split.y_test).mean())
    accuracy = {}
    for t in computed(result.study.get_trials()):
        figures = t.user_attrs["figures"]
        assert t.user_attrs["mode"] == figures["mode"] == "ptq"
        assert "train" not in figures["seconds"] and "quantize (PTQ)" in figures["seconds"]
        assert figures["float_accuracy"] == float_accuracy
        project = Path(figures["project"])
        qmodel = load_model(project / "qkeras_model.h5")
        for layer in float_model.layers:  # the point holds the float weights: nothing was retrained
            for a, b in zip(layer.get_weights(), qmodel.get_layer(layer.name).get_weights(), strict=True):
                assert np.array_equal(a, b), layer.name
        _, graph, _ = rebuild(project, tmp_path / project.name)
        emulated = emulate(graph, split.x_test).outputs
        assert figures["accuracy"] == float((emulated.argmax(axis=1) == split.y_test).mean())
        accuracy[t.params["weight_bits"]] = figures["accuracy"]
    sample = 1 / len(split.y_test)
    assert abs(accuracy[8] - float_accuracy) <= 2 * sample  # 8-bit PTQ keeps the float model's accuracy
    assert accuracy[2] < accuracy[8] - 10 * sample  # 2-bit weights without retraining lose far more


def test_ptq_report_records_the_mode_and_the_float_accuracy(ptq_sweep):
    tmp, _, _ = ptq_sweep
    report = tmp / "out" / "ptq" / "report"
    rows = list(csv.DictReader((report / "points.csv").open()))
    assert len(rows) == 2 and {r["mode"] for r in rows} == {"ptq"} and len({r["float_accuracy"] for r in rows}) == 1
    assert "mode ptq" in (report / "index.html").read_text()


def test_ptq_search_quantizes_a_users_float_model_file(ptq_sweep, tmp_path, capsys):
    """`float_model:` names the file (here the baseline of the sweep above, copied): every point quantizes
    exactly its weights, no baseline is trained, and the search ends with exactly `trials` finished trials."""
    from flow.keras.model_io import load_model
    from flow.sweep.ptq import float_model_path, weights_digest

    tmp, _, result = ptq_sweep
    shutil.copyfile(float_model_path(result.sweep, tmp / "out" / "ptq"), tmp_path / "float.h5")
    path = sweep_file(tmp_path, {"weight_bits": [2, 3, 4, 6, 8], "activation_bits": [4, 8]}, name="ptq2",
                      mode="ptq", float_model="float.h5", overrides=PTQ_OVERRIDES,
                      search={"method": "tpe", "trials": 5, "seed": 3})
    rc, out, _ = run_cli(["sweep", str(path), "--out", str(tmp_path / "out"), "--no-progress"], capsys)
    assert rc == 0 and json.loads(out)["mode"] == "ptq"
    _, trials = trials_of(path, storage_url(None, tmp_path / "out" / "ptq2" / "sweep.db"))
    assert [t.state.name for t in trials] == ["COMPLETE"] * 5
    digests = {t.user_attrs["figures"]["float_weights_sha1"] for t in computed(trials)}
    assert digests == {weights_digest(load_model(tmp_path / "float.h5"))}
    assert not (tmp_path / "out" / "ptq2" / "float_baseline").exists()  # the user's model: no baseline trained


@pytest.mark.parametrize("kind, message", [
    ("qkeras", "is not a float model: layer 'fc1' is a QDense"),
    ("other_network", "layer 'fc1' has weights of shapes [(64, 16), (16,)]"),
])
def test_a_float_model_that_does_not_fit_exits_2_before_any_worker_starts(tmp_path, capsys, kind, message):
    from flow.keras import network

    spec = load_spec(ROOT / "models" / "digits_mlp.yaml")
    if kind == "other_network":
        raw = yaml.safe_load((ROOT / "models" / "digits_mlp.yaml").read_text())
        raw["model"]["layers"][0]["units"] = 16
        (tmp_path / "other.yaml").write_text(yaml.safe_dump(raw))
        spec = load_spec(tmp_path / "other.yaml")
    network.build_model(spec, quantized=kind == "qkeras").save(tmp_path / "model.h5")
    path = sweep_file(tmp_path, {"weight_bits": [4]}, mode="ptq", float_model="model.h5")
    rc, _, err = run_cli(["sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "2"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert str(path) in err and "`float_model`" in err and message in err
    assert not (tmp_path / "out").exists()


# --- the trial budget of a search ------------------------------------------------------------------


def _prepared(path: Path, url: str):
    """Study of a sweep with its budget queued and leftovers requeued, as `hlsflow sweep` leaves it for workers."""
    from flow.sweep.workers import open_storage, open_study, queue_budget, requeue

    sweep = load_sweep(path)
    store = open_storage(url, sweep.heartbeat)
    study = open_study(store, sweep)
    queue_budget(store, study, sweep)
    requeue(study, sweep)
    return sweep, study


def test_a_search_with_two_workers_finishes_exactly_its_budget_every_time(tmp_path, monkeypatch):
    """Two workers race for the trials of a budget of 5, three times over; before the budget was queued,
    both could start a trial when one was left (3 of 10 such runs ended with 6 trials). The workers are
    threads running the workers' loop (:func:`flow.sweep.workers.work`), each with its own database
    connection: the guard lives in the database, and threads spare the test a TensorFlow start per
    worker process (`hlsflow sweep --workers 2` itself is run in the kill -9 test above). Heartbeat 3 s: with
    1 s a thread starved by a loaded machine (load average 8 seen) missed 3 s of heartbeats and its trial failed."""
    import threading

    from flow.sweep.evaluate import PointEvaluator
    from flow.sweep.workers import work

    def slow(self, params):
        time.sleep(0.05)
        return fake_figures(self, params)

    monkeypatch.setattr(PointEvaluator, "evaluate", slow)
    for rep in range(3):
        path = sweep_file(tmp_path, {"weight_bits": [2, 3, 4, 6, 8], "activation_bits": [3, 4, 6, 8]},
                          name=f"race{rep}", search={"method": "tpe", "trials": 5, "seed": rep}, heartbeat=3)
        url = storage_url(None, tmp_path / f"race{rep}.db")
        sweep, study = _prepared(path, url)
        threads = [threading.Thread(target=work, args=(sweep, url, tmp_path / f"out{rep}", i)) for i in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert [t.state.name for t in study.get_trials()] == ["COMPLETE"] * 5, rep
    result = run_sweep(path, tmp_path / "out", storage=url, progress=False, report=False)  # a rerun adds nothing
    assert len(result.study.get_trials()) == 5 and result.counts.done == 5


def test_workers_on_one_sqlite_file_never_take_the_same_queued_trial(tmp_path):
    """Taking a queued trial (WAITING -> RUNNING) must be atomic. SQLite ignores SELECT ... FOR UPDATE, and
    without BEGIN IMMEDIATE four takers here got 30 of 30 trials twice (both computed the point; the second
    result was refused with 'Cannot tell a COMPLETE trial' and killed its worker)."""
    import threading

    import optuna

    from flow.sweep.workers import NoTrialSlot, open_storage

    url = storage_url(None, tmp_path / "queue.db")
    study = optuna.create_study(study_name="queue", storage=open_storage(url, 10))
    for slot in range(30):
        study.enqueue_trial({}, user_attrs={"slot": slot})
    taken: list[int] = []

    def take() -> None:
        mine = optuna.load_study(study_name="queue", storage=open_storage(url, 10, queued_only=True))
        while True:
            try:
                taken.append(mine.ask().number)
            except NoTrialSlot:  # the queue is empty: a search worker never creates a trial of its own
                return

    threads = [threading.Thread(target=take) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(taken) == list(range(30))


def test_a_search_trial_whose_worker_died_is_retried_inside_the_budget(tmp_path, monkeypatch):
    """A worker takes a queued trial, chooses its point and dies (no more heartbeats): the trial goes stale,
    fails, and its retry computes the point; the other trials of the budget run as usual."""
    from flow.sweep.evaluate import PointEvaluator

    monkeypatch.setattr(PointEvaluator, "evaluate", fake_figures)
    path = sweep_file(tmp_path, {"weight_bits": [2, 3, 4, 6, 8], "activation_bits": [3, 4, 6, 8]},
                      search={"method": "tpe", "trials": 3, "seed": 0}, heartbeat=1)
    url = storage_url(None, tmp_path / "sweep.db")
    sweep, study = _prepared(path, url)
    dead = study.ask()  # as a worker does: takes the first queued trial
    params = {a.name: dead.suggest_categorical(a.name, list(a.values)) for a in sweep.axes}
    study._storage.record_heartbeat(dead._trial_id)  # its last heartbeat, then the worker is gone
    time.sleep(3 * sweep.heartbeat + 0.5)
    result = run_sweep(path, tmp_path / "out", storage=url, progress=False, report=False)
    trials = result.study.get_trials()
    assert trials[dead.number].state.name == "FAIL"
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE" and retry[0].params == params
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3 and result.counts.done == 3
    assert len(trials) == 4  # the budget of 3, plus the failed trial its retry replaced


# --- a real PostgreSQL server ----------------------------------------------------------------------


def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and (Path(found).parent / "initdb").exists() else None


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of its own in a temporary folder, on a free port (as user postgres when root)."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="hlsflow-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    init = subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                           "-E", "UTF8"], capture_output=True, text=True)
    start = init.returncode == 0 and subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
         "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"], capture_output=True, text=True)
    if not start or start.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not be started here: {(init.stderr or getattr(start, 'stderr', ''))[-300:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_sweep_on_a_real_postgresql_server_resumes_from_it(tmp_path, postgres_url, capsys):
    path = sweep_file(tmp_path, {"weight_bits": [3, 6], "activation_bits": [6]})
    args = ["sweep", str(path), "--out", str(tmp_path / "out"), "--storage", postgres_url, "--no-progress"]
    rc, out, _ = run_cli(args, capsys)
    assert rc == 0 and '"storage": "postgresql+psycopg://postgres@127.0.0.1' in out
    assert not (tmp_path / "out" / "tiny" / "sweep.db").exists()
    sweep, trials = trials_of(path, storage_url(postgres_url, tmp_path))
    assert_every_point_computed_once(sweep, trials)
    rc, _, _ = run_cli(args, capsys)
    assert rc == 0 and len(trials_of(path, storage_url(postgres_url, tmp_path))[1]) == len(trials)
