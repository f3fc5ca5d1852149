"""1-seed quick smoke runs of every paper experiment (``experiments/`` at the repository root,
not part of the installed package), its entry point ``python -m experiments``, plus cheap quality
checks where the model reaches them reliably. Experiments on shared/data skip without it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import EXPERIMENTS, SPECS, run_experiment
from experiments._harness import markdown_table, summarise
from magan.datasets import find_shared_data

NEEDS_DATA = {"digits", "cytof-batch", "cytof-panels", "cross-modal", "cross-modal-eccite",
              "uncertainty"}

# metric name (suffix) -> allowed range
RANGES = {
    "accuracy": (0.0, 1.0), "f1": (0.0, 1.0), "all_right": (0.0, 1.0),
    "foscttm": (0.0, 1.0), "pair_error": (0.0, math.inf), "mixing": (0.0, 1.5),
    "pearson": (-1.0, 1.0), "coverage": (0.0, 1.0), "spearman": (-1.0, 1.0),
    "width": (0.0, math.inf), "factor": (0.0, math.inf),
}


def _quick(name: str, tmp_path):
    if name in NEEDS_DATA and find_shared_data() is None:
        pytest.skip("shared/data not found (set MAGAN_SHARED_DATA): real-data experiment")
    result = run_experiment(name, [0], tmp_path, quick=True)
    saved = json.loads((tmp_path / f"{name}.json").read_text())
    assert saved["experiment"] == name and saved["seeds"] == [0] and saved["quick"] is True
    assert (tmp_path / f"{name}.md").read_text().count("|") > 4
    metrics = saved["per_seed"][0]["metrics"]
    for method, values in metrics.items():
        if method.startswith("_"):
            continue
        for metric, value in values.items():
            assert value is not None and math.isfinite(value), (method, metric, value)
            lo, hi = next(r for k, r in RANGES.items() if k in metric)
            assert lo - 1e-9 <= value <= hi + 1e-9, (method, metric, value)
    return result, metrics


def test_registry_and_unknown_name(tmp_path):
    assert set(EXPERIMENTS) == {"gaussians", "digits", "cytof-batch", "cytof-panels",
                                "cross-modal", "cross-modal-eccite", "uncertainty"}
    assert SPECS["gaussians"].default_seeds == 10
    with pytest.raises(KeyError, match="unknown experiment"):
        run_experiment("nope", [0], tmp_path)


def test_summary_and_table():
    per_seed = [{"a": {"m": 1.0, "x": float("nan")}}, {"a": {"m": 3.0, "x": 2.0}}]
    s = summarise(per_seed)
    assert s["a"]["m"] == {"mean": 2.0, "sd": pytest.approx(math.sqrt(2)), "n": 2}
    assert s["a"]["x"]["n"] == 1  # NaN skipped, counted out
    table = markdown_table(s, {("a", "m"): "0.9"})
    assert "2.000 ± 1.414 (paper 0.9)" in table


def test_gaussians_quick(tmp_path):
    _, m = _quick("gaussians", tmp_path)
    # Cheap and reliable: with the shared coordinate MAGAN maps all three clusters right.
    assert m["magan"]["all_right"] == 1.0
    assert m["magan"]["cell_accuracy"] > 0.9


def test_digits_quick(tmp_path):
    _, m = _quick("digits", tmp_path)
    assert m["truth_rotated"]["digit_accuracy"] > 0.95  # the classifier itself works


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_digits_default_finds_the_right_digit(seed, tmp_path):
    # One known pair, 200 steps (quick): the pair vouches for the Gromov-Wasserstein plan, and
    # 3s land on rotated 3s on every seed (measured 0.93, 0.89, 0.93); the translation plan
    # alone swaps the digits on 2 of 5 full-length seeds (RESULTS.md).
    if find_shared_data() is None:
        pytest.skip("shared/data not found (set MAGAN_SHARED_DATA): real-data experiment")
    result = run_experiment("digits", [seed], tmp_path, quick=True, variants=["magan"])
    assert result["per_seed"][0]["metrics"]["magan"]["digit_accuracy"] > 0.85


def test_cytof_batch_quick(tmp_path):
    _, m = _quick("cytof-batch", tmp_path)
    assert m["knn_shared"]["impute_pearson"] > 0.5
    if "harmony" in m:  # harmonypy installed: it mixes the batches in its joint embedding
        assert "impute_pearson" not in m["harmony"]
        assert m["harmony"]["mixing"] > m["pca_uncorrected"]["mixing"] + 0.2


def test_cytof_panels_quick(tmp_path):
    _, m = _quick("cytof-panels", tmp_path)
    assert set(m["magan"]) == {"pearson_CD3", "pearson_CD4", "mean_pearson"}
    assert m["knn_shared"]["pearson_CD3"] > 0.7


def test_cytof_panels_optional_ensemble_row(tmp_path):
    if find_shared_data() is None:
        pytest.skip("shared/data not found (set MAGAN_SHARED_DATA): real-data experiment")
    result = run_experiment("cytof-panels", [0], tmp_path, quick=True,
                            variants=["magan_ensemble3"])
    metrics = result["per_seed"][0]["metrics"]
    assert set(metrics) == {"knn_shared", "magan_ensemble3"}
    assert math.isfinite(metrics["magan_ensemble3"]["mean_pearson"])
    with pytest.raises(ValueError, match="fixed list of rows"):
        run_experiment("uncertainty", [0], tmp_path, quick=True, variants=["magan"])


def test_variants_replace_the_gan_rows_and_are_recorded(tmp_path):
    result = run_experiment("gaussians", [0], tmp_path, quick=True, variants=["magan_per_feature"])
    assert set(result["per_seed"][0]["metrics"]) == {"magan_per_feature"}
    saved = json.loads((tmp_path / "gaussians.json").read_text())
    assert saved["settings"]["variants"] == ["magan_per_feature"]
    with pytest.raises(ValueError, match="unknown GAN row 'magan_typo'"):
        run_experiment("gaussians", [0], tmp_path, quick=True, variants=["magan", "magan_typo"])


def test_seeds_in_parallel_processes_give_the_same_metrics(tmp_path):
    # jobs=2 runs each seed in its own spawned process: per-seed metrics must be identical to
    # one process running them in turn (each seed's run is independent and single-threaded).
    one = run_experiment("gaussians", [0, 1], tmp_path / "one", quick=True, variants=["magan"])
    two = run_experiment("gaussians", [0, 1], tmp_path / "two", quick=True, variants=["magan"],
                         jobs=2)
    assert [r["seed"] for r in two["per_seed"]] == [0, 1]
    assert [r["metrics"] for r in two["per_seed"]] == [r["metrics"] for r in one["per_seed"]]
    assert two["table"] == one["table"]
    with pytest.raises(ValueError, match="jobs"):
        run_experiment("gaussians", [0], tmp_path, quick=True, jobs=0)


def test_cross_modal_quick(tmp_path):
    _, m = _quick("cross-modal", tmp_path)
    # 10 known pairs put MAGAN well below chance (0.5) even after 200 steps.
    assert m["magan"]["foscttm"] < 0.4
    assert "pair_error" not in m["manifold_alignment"]  # an embedding, not x2's space


def test_cross_modal_eccite_quick(tmp_path):
    _, m = _quick("cross-modal-eccite", tmp_path)
    assert set(m) == {"magan", "plain_gan", "manifold_alignment"}
    assert m["manifold_alignment"]["foscttm_12"] == m["manifold_alignment"]["foscttm_21"]
    assert "pair_error_12" in m["magan"] and "pair_error_12" not in m["manifold_alignment"]


def test_uncertainty_quick(tmp_path):
    _, m = _quick("uncertainty", tmp_path)
    assert set(m) == {"ensemble_local", "member_local", "ensemble_raw", "ensemble_scaled"}
    assert m["ensemble_scaled"]["widening_factor"] > 0
    # After 150 steps the members share a bias no interval sees (full runs: 0.90), but the
    # local-noise interval already covers far more than the seed spread and tracks the error.
    assert m["ensemble_local"]["coverage"] > m["ensemble_raw"]["coverage"] + 0.3
    assert m["ensemble_local"]["width_error_spearman"] > 0.1


def test_single_seed_runs_merge_into_one_table(tmp_path, monkeypatch):
    # Two single-seed runs (as experiments/parallel.py launches them) merge into the
    # JSON and table one run over both seeds writes. A fake experiment keeps this instant.
    from experiments import merge_experiment
    from experiments._harness import Experiment

    fake = Experiment("fake", lambda seed, quick: {"m": {"v": float(seed)}}, "fake",
                      lambda quick: {})
    monkeypatch.setitem(SPECS, "fake", fake)
    for s in (0, 1):
        run_experiment("fake", [s], tmp_path / f"part{s}")
    both = run_experiment("fake", [0, 1], tmp_path / "both")
    merged = merge_experiment("fake", [tmp_path / "part1" / "fake.json",
                                       tmp_path / "part0" / "fake.json"], tmp_path / "merged")
    assert merged["seeds_done"] == [0, 1]
    assert merged["table"] == both["table"]
    assert [r["metrics"] for r in merged["per_seed"]] == [r["metrics"] for r in both["per_seed"]]
    with pytest.raises(ValueError, match="twice"):
        merge_experiment("fake", [tmp_path / "part0" / "fake.json"] * 2, tmp_path / "bad")


def test_run_options_checked_up_front():
    import numpy as np

    from experiments._harness import check_run_options, takes_variants
    from magan.errors import ConfigError

    check_run_options(SPECS["gaussians"], ["magan"], np.int64(2))  # numpy ints are fine
    for jobs in (0, True, 1.5, "2"):
        with pytest.raises(ConfigError, match="jobs must be a positive integer"):
            check_run_options(SPECS["gaussians"], None, jobs)
    assert not takes_variants(SPECS["uncertainty"]) and takes_variants(SPECS["digits"])
    with pytest.raises(ConfigError, match="fixed list of rows"):
        check_run_options(SPECS["uncertainty"], ["magan"], 1)


def test_entry_point_options_reach_the_runner(tmp_path, monkeypatch, capsys):
    import experiments
    from experiments.__main__ import main

    seen = {}

    def fake_run(name, seeds, out, **kw):
        seen.update(name=name, seeds=list(seeds), **kw)
        return {"table": "| fake |\n"}

    monkeypatch.setattr(experiments, "run_experiment", fake_run)
    assert main(["gaussians", "--seeds", "3", "--out", str(tmp_path), "--quick",
                 "--jobs", "2", "--variants", "magan,magan_structure"]) == 0
    assert seen == {"name": "gaussians", "seeds": [0, 1, 2], "quick": True, "progress": True,
                    "variants": ["magan", "magan_structure"], "jobs": 2}
    # "all" with --variants: the experiments with fixed rows run their own rows, the rest
    # get the given ones; a bad row name stops the run before any experiment trains.
    calls = []
    monkeypatch.setattr(experiments, "run_experiment",
                        lambda name, seeds, out, **kw: calls.append((name, kw["variants"]))
                        or {"table": ""})
    assert main(["all", "--out", str(tmp_path), "--variants", "magan"]) == 0
    assert dict(calls)["uncertainty"] is None and dict(calls)["digits"] == ["magan"]
    assert "uncertainty: fixed rows" in capsys.readouterr().out
    calls.clear()
    assert main(["all", "--out", str(tmp_path), "--variants", "magan,nope"]) == 1
    assert calls == [] and "unknown GAN row 'nope'" in capsys.readouterr().err
    assert main(["nope", "--out", str(tmp_path)]) == 1
    assert "unknown experiment 'nope'" in capsys.readouterr().err
    monkeypatch.undo()  # the real runner checks --jobs before any work
    assert main(["gaussians", "--out", str(tmp_path), "--jobs", "0"]) == 1
    assert "jobs must be a positive integer, got 0" in capsys.readouterr().err


def test_python_m_experiments_runs_from_the_repo_root():
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-m", "experiments", "--help"], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--variants" in result.stdout and "--jobs" in result.stdout


def test_results_page_is_rendered_from_the_runs_json(tmp_path):
    """RESULTS.md is generated: each experiment's table comes from its JSON, a quick or partial
    run is flagged, the battery's table is included, and the default's parameters are named."""
    from experiments import results

    run_experiment("gaussians", [0], tmp_path, quick=True, variants=["magan"])
    saved = json.loads((tmp_path / "gaussians.json").read_text())
    battery = tmp_path / "battery.jsonl"
    battery.write_text(json.dumps({"task": "gaussians", "seed": 0, "method": "magan",
                                   "metrics": {"all_right": 1.0}, "verdict": "good",
                                   "seconds": 1.0}) + "\n")
    out = tmp_path / "RESULTS.md"
    results.main(["--experiments", str(tmp_path), "--battery", str(battery), "--out", str(out)])
    text = out.read_text()
    assert markdown_table(saved["summary"], SPECS["gaussians"].paper) in text
    assert "**Incomplete run**: quick settings" in text
    assert "| gaussians | all_right ↑ | 1.000 |" in text
    assert "batch_size=128" in text and "transport=" in text
