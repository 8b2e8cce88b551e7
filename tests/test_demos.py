"""The demo runner and the files every demo writes (the demos themselves run with --quick in CI)."""

import json
from unittest import mock

import matplotlib.pyplot as plt
import numpy as np
import pytest

import scratchnet as sn
from demos import DEMOS
from demos.__main__ import main, prepare
from demos.report import Report, problems


def test_report_writes_the_results_schema_and_a_table_with_the_paper_beside_ours(tmp_path):
    report = Report("example", tmp_path, quick=True, config={"epochs": 1})
    report.metric("test_accuracy", 0.9871, paper=0.985)
    report.metric("parameters", 1625866)
    report.section("Verdict", "It works.")
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    report.figure(fig, "curve.png", "A line.")
    results = report.write()
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == results
    assert set(on_disk) == {"demo", "quick", "metrics", "paper", "config", "seconds", "figures"}
    assert on_disk["figures"] == ["curve.png"]
    assert on_disk["metrics"] == {"test_accuracy": 0.9871, "parameters": 1625866.0}
    assert on_disk["paper"] == {"test_accuracy": 0.985}
    text = (tmp_path / "report.md").read_text()
    assert "| test_accuracy | 0.9871 | 0.9850 |" in text and "![A line.](curve.png)" in text
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_a_run_starting_in_a_folder_retires_the_earlier_runs_report_figures_and_results(tmp_path):
    """A run stopped midway must not leave the earlier run's report looking complete beside its own files: the
    report becomes a note that a run is under way, the earlier results.json and its figures go, other files
    stay."""
    first = Report("example", tmp_path, quick=True, config={})
    first.metric("accuracy", 0.5)
    for name in ("curve.png", "other.png"):
        fig, ax = plt.subplots()
        ax.plot([0, 1])
        first.figure(fig, name, name)
    first.write()
    (tmp_path / "checkpoint.npz").write_bytes(b"kept")
    (tmp_path / "notes.png").write_bytes(b"not the report's")
    Report("example", tmp_path, quick=True, config={})
    assert "has not finished" in (tmp_path / "report.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz", "notes.png", "report.md"]


def test_retiring_an_earlier_run_deletes_only_that_runs_plain_files(tmp_path):
    """A results.json that no demo wrote stays; odd figure lists delete nothing else; a report written before
    results.json listed its figures has them found through its image links."""
    for name in ("a", "b", "old.png", "kept.png"):
        (tmp_path / name).write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "results.json").write_text("[1, 2]")  # a benchmark's --json rows, say
    Report("example", tmp_path, quick=True, config={})
    assert (tmp_path / "results.json").exists()
    for figures in ("ab", ["", ".", "..", "sub", "../a"]):
        (tmp_path / "results.json").write_text(json.dumps({"demo": "example", "figures": figures}))
        Report("example", tmp_path, quick=True, config={})
        assert {"a", "b", "sub", "old.png"} <= {p.name for p in tmp_path.iterdir()}
    (tmp_path / "results.json").write_text(json.dumps({"demo": "example"}))
    (tmp_path / "report.md").write_text("# example\n\n![The old curve.](old.png)\n")
    Report("example", tmp_path, quick=True, config={})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "kept.png", "report.md", "sub"]


def test_a_metric_that_is_not_finite_is_written_as_null_and_fails_a_single_demo(tmp_path, monkeypatch, capsys):
    report = Report("example", tmp_path, quick=True, config={})
    report.metric("accuracy", float("nan"))
    report.write()
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text and json.loads(text)["metrics"] == {"accuracy": None}
    (tmp_path / "fake_nan.py").write_text(
        "DESCRIPTION = 'records NaN'\ndef add_arguments(parser):\n    pass\n"
        "def run(args, report):\n    report.metric('accuracy', float('nan'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("demos.__main__.DEMOS", {"fake": "fake_nan"})
    assert main(["fake", "--out", str(tmp_path / "run")]) == 1
    assert "FAILED fake: metric accuracy is nan" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(DEMOS))
def test_every_demos_defaults_pass_the_option_checks(name):
    module, args, out = prepare(name, [])
    assert out.name == name


@pytest.mark.parametrize(("name", "argv"), [
    ("adversarial_training", ["--monitor-size", "0", "--train-eval-size", "0", "--final-epochs", "0",
                              "--average", "0", "--train-eps", "0.4"]),  # 0: none, as the help says
    ("feature_purification", ["--init", "0.01"]),
    ("linf_dist_net", ["--eps-train", "0", "--weight-decay", "0", "--loss", "clipped"]),
])
def test_values_the_demos_document_pass_the_option_checks(name, argv):
    prepare(name, argv)


@pytest.mark.parametrize(("name", "argv", "message"), [
    ("mnist_cnn", ["--epochs", "0"], "--epochs must be at least 1, got 0"),
    ("layer_norms", ["--eps", "0.1", "5"], "--eps must be in [0, 1], got 5.0"),
    ("adversarial_training", ["--lr", "nan"], "--lr must be above 0"),
    ("adversarial_training", ["--average", "1"], "--average must be in [0, 1)"),
    ("width_depth", ["--seed", "7"], "unrecognized arguments: --seed"),  # not taken for --seeds
    ("adversarial_smoothness", ["--L", "4", "--epochs", "6"], "--L must divide --epochs"),
    ("linf_dist_net", ["--p-start", "0.9", "--p-end", "0.5"], "--p-start must not exceed --p-end"),
    ("linf_dist_net", ["--batch-size", "1"], "--batch-size must be at least 2"),
    ("adversarial_smoothness", ["--L", "0"], "--L must be at least 1, got 0"),  # not a ZeroDivisionError
    ("width_depth", ["--arms", "uniform 3-3-3,R-style 6-4-3"], "--arms must name some of"),
    ("adversarial_training", ["--frameworks", ","], "--frameworks must name some of"),
    ("adversarial_training", ["--frameworks", "PGD-AT,PGD-AT"], "each once"),
])
def test_a_bad_option_stops_a_demo_before_it_starts(name, argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        prepare(name, argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_a_bad_backend_in_the_environment_or_an_output_file_stops_a_demo_before_it_starts(tmp_path, monkeypatch,
                                                                                         capsys):
    monkeypatch.setenv("SCRATCHNET_BACKEND", "bogus")
    with pytest.raises(SystemExit):
        prepare("mnist_cnn", [])
    assert "SCRATCHNET_BACKEND='bogus'" in capsys.readouterr().err
    monkeypatch.delenv("SCRATCHNET_BACKEND")
    (tmp_path / "taken").write_text("")
    with pytest.raises(SystemExit):
        prepare("mnist_cnn", ["--out", str(tmp_path / "taken")])
    assert "is a file" in capsys.readouterr().err


def test_all_checks_every_demos_options_before_running_any_and_runs_the_rest_after_a_failure(tmp_path, monkeypatch,
                                                                                            capsys):
    (tmp_path / "fake_first.py").write_text(
        "DESCRIPTION = 'raises'\ndef add_arguments(parser):\n    parser.add_argument('--lr', type=float, default=1.0)\n"
        "def run(args, report):\n    raise RuntimeError('broken')\n")
    (tmp_path / "fake_second.py").write_text(
        "DESCRIPTION = 'works'\ndef add_arguments(parser):\n    pass\n"
        "def run(args, report):\n    report.metric('accuracy', 1.0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("demos.__main__.DEMOS", {"first": "fake_first", "second": "fake_second"})
    with pytest.raises(SystemExit):  # the second has no --lr: nothing runs
        main(["all", "--out", str(tmp_path / "a"), "--lr", "0.1"])
    assert not (tmp_path / "a").exists()
    assert main(["all", "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert "FAILED first: raised RuntimeError: broken" in err
    assert json.loads((tmp_path / "b" / "second" / "results.json").read_text())["metrics"] == {"accuracy": 1.0}


def test_the_runner_lists_every_demo_and_refuses_unknown_names(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in DEMOS)
    assert main(["no_such_demo"]) == 2
    assert "unknown demo" in capsys.readouterr().err


def test_running_all_fails_when_a_demo_records_a_non_finite_or_no_metric(tmp_path, monkeypatch, capsys):
    (tmp_path / "fake_demos.py").write_text(
        "DESCRIPTION = 'records what it is told'\n"
        "def add_arguments(parser):\n    parser.add_argument('--value', type=float, default=1.0)\n"
        "def run(args, report):\n    report.metric('accuracy', args.value)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("demos.__main__.DEMOS", {"fake": "fake_demos"})
    assert main(["all", "--out", str(tmp_path / "ok")]) == 0
    assert main(["all", "--out", str(tmp_path / "nan"), "--value", "nan"]) == 1
    assert "FAILED fake: metric accuracy is nan" in capsys.readouterr().err
    assert problems({"metrics": {}}) == ["recorded no metrics"]


def test_the_recorded_configuration_is_the_one_that_ran(tmp_path, monkeypatch, capsys):
    """A quick run overrides settings in `args`: results.json and report.md recorded those given instead (three
    seeds and PGD-20 beside a report of two seeds and PGD-3)."""
    (tmp_path / "fake_override.py").write_text(
        "DESCRIPTION = 'overrides its seeds when quick'\n"
        "def add_arguments(parser):\n    parser.add_argument('--seeds', type=int, default=3)\n"
        "    parser.add_argument('--epochs', type=int, default=None)\n"
        "def run(args, report):\n    if args.quick:\n        args.seeds = 1\n        args.size = 5\n"
        "    report.config.update(extra=7, epochs=args.epochs or 30)\n    report.metric('seeds', float(args.seeds))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("demos.__main__.DEMOS", {"fake": "fake_override"})
    assert main(["fake", "--quick", "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["config"]["seeds"] == 1 and results["config"]["extra"] == 7
    assert results["config"]["epochs"] == 30  # the demo's own record of a default it resolved stands
    assert results["config"]["size"] == 5  # a setting a quick run adds to args
    assert '"seeds": 1' in (tmp_path / "out" / "report.md").read_text()
    assert "settings of its own (the configuration records them): --seeds 3 -> 1" in capsys.readouterr().out


def test_small_metrics_keep_their_digits_in_the_table():
    from demos.report import _fmt

    assert _fmt(0.000146) == "0.000146" and _fmt(3e-7) == "3e-07"  # both were "0.0001" / "0.0000"
    assert _fmt(0.9123456) == "0.9123" and _fmt(0.0) == "0.0000" and _fmt(12345.6) == "12346"


def test_a_quick_run_writes_beside_the_full_runs_report_not_over_it(tmp_path, monkeypatch):
    (tmp_path / "fake_quick_demo.py").write_text(
        "DESCRIPTION = 'records its mode'\ndef add_arguments(parser):\n    pass\n"
        "def run(args, report):\n    report.metric('quick', float(args.quick))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("demos.__main__.DEMOS", {"fake": "fake_quick_demo"})
    monkeypatch.chdir(tmp_path)
    assert main(["fake"]) == 0 and main(["fake", "--quick"]) == 0
    full, quick = (json.loads((tmp_path / path / "results.json").read_text())
                   for path in ("runs/fake", "runs/quick/fake"))
    assert full["metrics"]["quick"] == 0.0 and quick["metrics"]["quick"] == 1.0


def test_the_robust_monitor_records_pgd_accuracy_at_most_the_clean_one_and_equal_to_it_at_eps_zero():
    from demos.adversarial_training import RobustMonitor

    rng = np.random.default_rng(0)
    data = sn.data.ArrayDataset(rng.uniform(0, 1, (48, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 48))
    for eps in (0.0, 0.3):
        model = sn.nn.Sequential(sn.nn.Flatten(), sn.nn.Linear(784, 10, rng=np.random.default_rng(1)))
        optimizer = sn.optim.Adam(model.parameters(), lr=0.01)
        record = sn.training.fit(model, sn.data.BatchLoader(data, 16, seed=0), data, optimizer=optimizer, epochs=2,
                                 callbacks=[RobustMonitor(data, eps, seed=0)], progress=False)[-1]
        if eps == 0:
            assert record["test_robust_accuracy"] == record["test_accuracy"]
        else:
            assert record["test_robust_accuracy"] < record["test_accuracy"]


def test_the_robust_monitor_scores_the_weight_average_and_leaves_the_trained_weights_in_place():
    from demos.adversarial_training import RobustMonitor

    rng = np.random.default_rng(0)
    data = sn.data.ArrayDataset(rng.uniform(0, 1, (48, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 48))
    model = sn.nn.Sequential(sn.nn.Flatten(), sn.nn.Linear(784, 10, rng=np.random.default_rng(1)))
    average = sn.weight_average.WeightAverage(model, decay=0.9)
    record = sn.training.fit(model, sn.data.BatchLoader(data, 16, seed=0), data,
                             optimizer=sn.optim.Adam(model.parameters(), lr=0.01), epochs=2,
                             callbacks=[average, RobustMonitor(data, 0.0, seed=0, average=average)], progress=False)[-1]
    assert record["test_robust_accuracy"] == record["test_accuracy"]  # eps 0: the trained weights, still in place
    with average.applied() as averaged:
        assert record["test_robust_accuracy_averaged"] == sn.training.evaluate(averaged, data)["accuracy"]


def test_adversarial_training_trains_at_train_eps_which_defaults_to_eps():
    from demos import adversarial_training
    from demos.__main__ import _parser

    parser = _parser("adversarial_training", adversarial_training)
    for argv, train_eps in (([], 0.3), (["--train-eps", "0.4"], 0.4), (["--eps", "0.2"], 0.2)):
        objective = adversarial_training._objective("PGD-AT", parser.parse_args(argv))
        assert isinstance(objective, sn.objectives.PGDAT) and objective.eps == train_eps


def test_the_final_stage_attacks_with_apgd_ce_at_full_eps_and_trades_with_pgd():
    from demos import adversarial_training
    from demos.__main__ import _parser

    args = _parser("adversarial_training", adversarial_training).parse_args(["--final-steps", "7"])
    for name in ("PGD-AT", "ALP", "MART", "TRADES"):
        main, final = (adversarial_training._objective(name, args, final) for final in (False, True))
        assert (main.attack, main.steps, main.warmup_epochs) == ("pgd", args.train_steps, args.warmup_epochs)
        assert (final.attack, final.steps, final.current_eps) == (
            "pgd" if name == "TRADES" else "apgd", 7, args.eps)


def test_the_final_stage_continues_the_history_from_the_main_schedules_averaged_weights(tmp_path):
    from types import SimpleNamespace

    from demos import adversarial_training
    from demos.__main__ import _parser

    rng = np.random.default_rng(0)
    data = sn.data.ArrayDataset(rng.uniform(0, 1, (32, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 32))
    args = _parser("adversarial_training", adversarial_training).parse_args(
        ["--model", "small", "--epochs", "2", "--warmup-epochs", "0", "--final-epochs", "1", "--final-steps", "2",
         "--final-lr", "0", "--batch-size", "16", "--monitor-size", "8"])
    model, history = adversarial_training._train("PGD-AT", args, data, data, SimpleNamespace(out=tmp_path))
    assert [r["epoch"] for r in history] == [1, 2, 3] and history[-1]["lr"] == 0
    (final_path,) = (tmp_path / "models").glob("PGD-AT_small_final_*.npz")
    (main_path,) = set((tmp_path / "models").glob("PGD-AT_small_*.npz")) - {final_path}
    main, final = sn.checkpoint.load_arrays(main_path), sn.checkpoint.load_arrays(final_path)
    assert int(final["callback0/updates"]) == 2  # the final stage's own average, over its own two steps
    for name, value in model.state_dict().items():  # at learning rate 0 the final stage keeps its start
        np.testing.assert_allclose(value, main[f"callback0/average/{name}"], rtol=1e-6, atol=1e-7)
        assert not np.allclose(value, main[f"model/{name}"])  # ...the main stage's average, not its last weights


def test_a_run_resumes_only_the_checkpoints_of_a_run_with_the_same_settings(tmp_path):
    from types import SimpleNamespace

    from demos import adversarial_training
    from demos.__main__ import _parser

    rng = np.random.default_rng(0)
    data = sn.data.ArrayDataset(rng.uniform(0, 1, (32, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 32))

    def train(*argv):
        args = _parser("adversarial_training", adversarial_training).parse_args(
            ["--model", "small", "--epochs", "1", "--warmup-epochs", "0", "--final-epochs", "1", "--final-steps", "1",
             "--batch-size", "16", "--monitor-size", "0", *argv])
        model, history = adversarial_training._train("PGD-AT", args, data, data, SimpleNamespace(out=tmp_path))
        return model.state_dict(), history

    (first, history), (other_seed, other_history) = train(), train("--seed", "1")
    assert other_history[0]["train_loss"] != history[0]["train_loss"]  # trained afresh, not resumed from seed 0
    assert any(not np.array_equal(first[k], other_seed[k]) for k in first)
    written = {path: path.stat().st_mtime_ns for path in (tmp_path / "models").glob("*.npz")}
    again, again_history = train()  # the same settings: both stages resume their finished checkpoints
    assert again_history == history and all(np.array_equal(first[k], again[k]) for k in first)
    assert {path: path.stat().st_mtime_ns for path in written} == written  # ...and train no step to rewrite them
    assert len(list((tmp_path / "models").glob("*.npz"))) == 4
    with mock.patch.object(adversarial_training, "FINAL_ATTACK", "another attack"):
        train()  # the final stage's attack changed: the main stage resumes, the final stage trains afresh
    assert {path: path.stat().st_mtime_ns for path in written} == written
    assert len(list((tmp_path / "models").glob("*_final_*.npz"))) == 3


def test_the_worst_case_on_training_images_is_the_clean_accuracy_at_eps_zero_and_below_it_beyond():
    from argparse import Namespace

    from demos.adversarial_training import _attacks, _worst_case

    rng = np.random.default_rng(0)
    data = sn.data.ArrayDataset(rng.uniform(0, 1, (64, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 64))
    model = sn.nn.Sequential(sn.nn.Flatten(), sn.nn.Linear(784, 10, rng=np.random.default_rng(1)))
    sn.training.fit(model, sn.data.BatchLoader(data, 16, seed=0), optimizer=sn.optim.Adam(model.parameters(), lr=0.01),
                    epochs=10, progress=False)  # enough steps to fit most of the 64 random labels
    suite = _attacks(Namespace(eval_steps=5, seed=0, targets=1))
    clean = sn.training.evaluate(model, data)["accuracy"]
    assert clean > 0.5
    assert _worst_case(model, data, suite, 0.0) == clean
    assert _worst_case(model, data, suite, 0.3) < clean


def test_the_verdict_states_the_robust_generalization_gap_from_the_train_column():
    from argparse import Namespace

    from demos.adversarial_training import _verdict

    rows = [{"model": "PGD-AT", "clean": 0.98, "worst case": 0.84, "worst case, train": 0.86}]
    args = Namespace(epochs=40, train_size=8000, train_steps=10, train_eps=None, eps=0.3, final_epochs=0)
    text = _verdict(rows, args, {})
    assert "inside training), PGD-AT" in text
    with_final = Namespace(**{**vars(args), "final_epochs": 5, "final_steps": 7})
    assert "then 5 epochs against 7-step APGD-CE), PGD-AT" in _verdict(rows, with_final, {})
    trades = {"model": "TRADES", "clean": 0.97, "worst case": 0.85}
    assert "7-step APGD-CE (PGD for TRADES)), TRADES" in _verdict([*rows, trades], with_final, {})
    assert "0.8600 worst case on its own training images against 0.8400 on test images" in text
    assert "gap of 2.0 points" in text and "NOT met" in text
    elsewhere = _verdict(rows, Namespace(**{**vars(args), "eps": 0.1}), {})  # the targets are for eps 0.3
    assert "met" not in elsewhere and "not judged against them" in elsewhere


def test_the_plain_models_target_is_judged_only_at_pgd40_and_the_checks_can_fail():
    from argparse import Namespace

    from demos.adversarial_training import _checks, _verdict

    args = Namespace(epochs=40, train_size=8000, train_steps=10, train_eps=None, eps=0.3, final_epochs=0,
                     eval_steps=40)
    plain = {"model": "plain", "clean": 0.99, "FGSM": 0.3, "PGD-40": 0.01, "APGD-CE": 0.0, "worst case": 0.0}
    assert "keeps 0.0100 under PGD-40; the target (at most 2%) is met" in _verdict([plain], args, {})
    assert "is NOT met" in _verdict([plain | {"PGD-40": 0.05}], args, {})
    assert "target" not in _verdict([plain], Namespace(**{**vars(args), "eval_steps": 20}), {})
    assert "NO" not in _checks([plain], "PGD-40")
    masked = plain | {"PGD-40": 0.5, "APGD-CE": 0.6}  # PGD weaker than FGSM, APGD weaker than PGD
    assert _checks([masked], "PGD-40") == ("- plain: PGD-40 0.5000 <= FGSM 0.3000: NO; APGD-CE 0.6000 <= PGD-40: "
                                           "NO")


def test_the_verdict_names_catastrophic_overfitting_only_when_pgd_accuracy_falls_far_below_the_training_attacks():
    from argparse import Namespace

    from demos.adversarial_training import CATASTROPHIC_GAP, _verdict

    rows = [{"model": "PGD-AT", "clean": 0.99, "worst case": 0.01}]
    args = Namespace(epochs=16, warmup_epochs=10, train_size=8000, train_steps=1, train_eps=None, eps=0.3,
                     final_epochs=0)
    overfit = [{"train_accuracy": 0.871, "test_robust_accuracy": 0.010}]  # the FGSM run in the README
    healthy = [{"train_accuracy": 0.819, "test_robust_accuracy": 0.765}]  # a PGD-3 run at the same epoch
    at_the_margin = [{"train_accuracy": 0.5 + CATASTROPHIC_GAP, "test_robust_accuracy": 0.5}]
    assert "Catastrophic overfitting" in _verdict(rows, args, {"PGD-AT": overfit})
    assert "0.8710 of its training attack's inputs but only 0.0100" in _verdict(rows, args, {"PGD-AT": overfit})
    for history in (healthy, at_the_margin, [{"train_accuracy": 0.9}], []):
        assert "Catastrophic" not in _verdict(rows, args, {"PGD-AT": history})
    assert "Catastrophic" not in _verdict(rows, args, {"TRADES": overfit})
    # train accuracy at another radius than the monitor's says nothing about overfitting
    for other in (Namespace(**{**vars(args), "train_eps": 0.2}), Namespace(**{**vars(args), "warmup_epochs": 16})):
        assert "Catastrophic" not in _verdict(rows, other, {"PGD-AT": overfit})


def test_feature_purification_shows_section_7_numbers_only_for_a_run_at_section_7_settings():
    from demos import feature_purification
    from demos.__main__ import _parser

    def compared(*argv):
        return feature_purification.at_section7(_parser("feature_purification", feature_purification).parse_args(argv))

    assert compared() and compared("--seed", "1")
    for argv in (["--quick"], ["--clean-steps", "100"], ["--adv-steps", "10"], ["--init", "0.01"], ["--d", "100"],
                 ["--norm", "inf"]):
        assert not compared(*argv), argv


def test_the_purification_verdict_applies_the_specs_thresholds():
    """Section 7's numbers pass every property test of the spec's section 4; a clean accuracy of 0.86 or a purity
    gain that misses 0.9 does not (the earlier, looser thresholds passed both), and the small-init claim is only
    judged at a small init."""
    from demos.feature_purification import _verdict
    tau = 0.03
    section7 = {"clean_net_accuracy": 0.937, "clean_net_pgd20_accuracy_l2_0.3": 0.26,
                f"clean_net_pgd20_accuracy_linf_{tau}": 0.21, "adv_net_accuracy": 0.937,
                "adv_net_pgd20_accuracy_l2_0.3": 0.70, f"adv_net_pgd20_accuracy_linf_{tau}": 0.62,
                "ideal_net_pgd20_accuracy_l2_0.3": 0.92, "clean_net_purity": 0.72, "adv_net_purity": 0.97,
                "clean_net_residual": 0.69, "adv_net_residual": 0.23, "median_cos_clean_adv": 0.82,
                "median_ratio_beta_w_adv_over_v": 1.41, "median_cos_clean_init": 0.24, "median_cos_adv_init": 0.2,
                "removed_direction_alignment": 0.99, "removed_top_singular_share": 0.045,
                "linear_Mw_pgd20_accuracy_l2_0.3": 0.08, f"linear_Mw_pgd20_accuracy_linf_{tau}": 0.05,
                "linear_adv_trained_pgd20_accuracy_l2_0.3": 0.1, "linear_adv_trained_accuracy": 0.6}
    text = _verdict(section7, True, tau, 200, 0.01)
    assert text.count("**agrees**") == 7 and "does not agree" not in text
    assert text.count("**not tested**") == 0
    at_large_init = _verdict(section7, True, tau, 200, 0.1)
    assert at_large_init.count("**agrees**") == 6 and at_large_init.count("**not tested**") == 1
    for change in ({"clean_net_accuracy": 0.86}, {"adv_net_purity": 0.85},
                   {f"adv_net_pgd20_accuracy_linf_{tau}": 0.45}, {f"linear_Mw_pgd20_accuracy_linf_{tau}": 0.18}):
        assert _verdict(section7 | change, True, tau, 200, 0.01).count("does not agree") == 1, change


def test_the_linf_dist_verdict_names_which_papers_model_it_compares_with():
    from demos.linf_dist_net import _mnist_split, _verdict

    def row(dataset, eps, certified):
        return {"dataset": dataset, "eps": eps, "certified": [certified], "pgd": [0.9], "clean": 0.95,
                "eval_images": 2000, "train_images": 8000, "epochs": 60}

    text = _verdict([row("mnist", 0.1, 0.9610), row("mnist", 0.3, 0.8690), row("fashion_mnist", 0.1, 0.7518),
                     row("mnist", 0.2, 0.9)])
    mnist01, mnist03, fashion, other_eps = text.splitlines()
    assert "the paper's 97.95% (pure net, ICLR'22;" in mnist01 and "NOT met" not in mnist01
    assert "6.30 points below the paper's 93.20% (pure net, ICLR'22;" in mnist03  # the spec's verified figure
    assert "the paper's 79.23% (Net+MLP, a stronger model than ours" in fashion and "is met" in fashion
    assert "paper" not in other_eps and "bar" not in other_eps  # an eps of neither paper nor issue: no KeyError
    assert _mnist_split([row("mnist", 0.1, 0.9)]) == "MNIST on the 8,000 / 2,000 split of its test files"
    assert _mnist_split([row("mnist", 0.1, 0.9) | {"train_images": 60000}]) == "MNIST with 60,000 training images"


def test_the_linf_dist_report_puts_the_papers_pgd_beside_ours_only_at_its_100_steps(tmp_path):
    from demos.linf_dist_net import _metrics
    from demos.report import Report

    r = {"dataset": "mnist", "eps": 0.3, "clean": 0.95, "pgd": [0.9], "certified": [0.85], "margin_certified": 0.8,
         "train_minutes": 1.0}
    report = Report("linf_dist_net", tmp_path, quick=True, config={})
    _metrics(report, "a", r | {"pgd_steps": 20})
    _metrics(report, "b", r | {"pgd_steps": 100})
    _metrics(report, "c", r | {"eps": 0.2, "pgd_steps": 100})
    assert "a_pgd20_accuracy" not in report.paper and report.paper["b_pgd100_accuracy"] == 0.9473
    assert report.paper["a_certified_accuracy"] == 0.9320 and not any(name.startswith("c_") for name in report.paper)


def test_the_linf_dist_monitor_keeps_its_reference_argmaxes_across_a_resume(tmp_path):
    from demos.linf_dist_net import AccuracyMonitor

    monitor = AccuracyMonitor(None, None, None, 0.1)
    assert monitor.state_dict() == {}
    monitor.previous = [np.array([[1, 2]]), np.array([[0]])]
    monitor.first_at_infinity = (7, [np.array([[3, 4]]), np.array([[1]])])
    sn.checkpoint.save_arrays(monitor.state_dict(), tmp_path / "state.npz")  # as fit's checkpoint stores it
    resumed = AccuracyMonitor(None, None, None, 0.1)
    resumed.load_state_dict(sn.checkpoint.load_arrays(tmp_path / "state.npz"))
    assert [a.tolist() for a in resumed.previous] == [[[1, 2]], [[0]]]
    assert resumed.first_at_infinity[0] == 7 and [a.tolist() for a in resumed.first_at_infinity[1]] == [[[3, 4]], [[1]]]
    fresh = AccuracyMonitor(None, None, None, 0.1)
    fresh.load_state_dict({})  # a checkpoint from before the monitor saved its state
    assert fresh.previous is None and fresh.first_at_infinity is None
