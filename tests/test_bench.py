"""The benchmarks (bench/pipeline.py, bench/conv.py) in their quick modes, on tiny subsets."""
import json
import sys
from dataclasses import replace

import pytest
import torch
from conftest import load_script

from companion.models import BADConvVAE


@pytest.fixture(scope="module")
def bench():
    yield load_script("bench", "pipeline")
    del sys.modules["bench_pipeline"]


def test_both_pipelines_start_from_the_same_weights(bench):
    cfg = bench.Config()
    a, b = (bench.new_run(name, cfg, torch.device("cpu")) for name in ("a", "b"))
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name


def test_quick_mode_writes_json_and_markdown(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "QUICK", replace(bench.QUICK, train_size=256, test_size=200))
    bench.main(["--quick", "--out", str(tmp_path)])
    assert not (tmp_path / "pipeline.json").exists()   # a smoke test never overwrites results
    results = json.loads((tmp_path / "pipeline-quick.json").read_text())

    assert set(results) == {"config", "machine", "pipelines", "targets"}
    assert results["config"]["epochs"] == 1 and results["config"]["train_images"] == 256
    assert set(results["pipelines"]) == {"companion", "companion-bf16", "torchvision"}
    for name, p in results["pipelines"].items():
        for key in ("images_per_s", "train_seconds", "final_test_loss", "data_only_images_per_s",
                    "speedup_over_torchvision", "speedup_median_of_epochs"):
            assert p[key] > 0, (name, key)
        assert p["images"] == 256 and len(p["test_loss"]) == len(p["epoch_seconds"]) == 1
        assert p["final_test_loss"] < 784 * 0.7   # below the BCE of a constant 0.5 guess
    assert results["pipelines"]["torchvision"]["speedup_over_torchvision"] == pytest.approx(1.0)
    by = results["targets"]["by_pipeline"]
    assert set(by) == {"companion", "companion-bf16"}
    assert by["companion"]["ratio"] == pytest.approx(
        results["pipelines"]["companion"]["speedup_over_torchvision"])
    assert set(by["companion"]) >= {"ratio_met", "test_loss_met", "test_loss_not_worse"}
    assert results["machine"]["threads"] >= 1 and results["machine"]["cpu_count"] >= 1

    table = (tmp_path / "pipeline-quick.md").read_text()
    assert "| companion |" in table and "| torchvision |" in table
    assert f"torch {torch.__version__}" in table


# -- the conv VAE benchmark -----------------------------------------------------------------

@pytest.fixture(scope="module")
def conv_bench():
    yield load_script("bench", "conv")
    del sys.modules["bench_conv"]


def test_bench_quick_mode_writes_json_and_markdown(conv_bench, tmp_path, monkeypatch):
    monkeypatch.setattr(conv_bench, "QUICK", replace(conv_bench.QUICK, train_size=256, test_size=200))
    conv_bench.main(["--quick", "--out", str(tmp_path)])
    assert not (tmp_path / "conv.json").exists()        # a smoke test never overwrites results
    results = json.loads((tmp_path / "conv-quick.json").read_text())
    assert set(results["runs"]) == {"slides", "course", "course-channels-last"}
    assert results["runs"]["slides"]["speedup"] == 1.0
    for run in results["runs"].values():
        assert run["images_per_s"] > 0 and len(run["test_loss"]) == 1
    assert "| slides | 208,005 |" in (tmp_path / "conv-quick.md").read_text()


def test_bench_contenders_start_from_seeded_weights(conv_bench):
    cfg = conv_bench.Config()
    a, b = conv_bench.new_run("course", cfg), conv_bench.new_run("course-bf16", cfg)
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(),
                                                 b.model.state_dict().values()))
    assert isinstance(conv_bench.new_run("slides", cfg).model, BADConvVAE)
