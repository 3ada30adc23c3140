"""``densehuman train`` for the whole-body network on a tiny synthetic dataset: the run folder and its evaluation,
exact resume, the loss falling on one image, refusals that write nothing, the presets and the eval coordinates."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from densehuman.cli import main
from densehuman.config import apply_overrides, parse_set
from densehuman.data.wholebody import read_coco_wholebody
from densehuman.data.wholebody_mix import partial_json
from densehuman.engine.checkpoint import read_metadata
from densehuman.engine.wholebody_config import (
    WHOLEBODY_PRESETS,
    WholeBodyTrainConfig,
    wholebody_config_dict,
    wholebody_config_from_dict,
    wholebody_preset,
)
from densehuman.engine.wholebody_eval import evaluate_net, part_aps
from densehuman.engine.wholebody_trainer import load_wholebody_checkpoint, run_wholebody_training
from densehuman.evaluation.wholebody import REPORTED_PARTS
from densehuman.models.bottomup.config import WholeBodyNetConfig
from densehuman.models.bottomup.network import WholeBodyOutput
from densehuman.models.bottomup.targets import make_targets
from densehuman.synth.engine import SynthJob, run_synth
from densehuman.synth.generator import SynthConfig

pytestmark = pytest.mark.numerics

TINY = [
    "data.crop_size=128",
    "data.eval_height=0",
    "data.num_workers=0",
    "solver.batch_size=2",
    "solver.log_period=1",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wholebody") / "ds"
    job = SynthJob(
        root, images=4, seed=4, val_fraction=0.25, config=SynthConfig(size=(160, 160), max_people=2), workers=1
    )
    run_synth(dataclasses.replace(job, preview_count=0), progress=False)
    return root


def _bare_copy(dataset: Path, target: Path) -> Path:
    """The synthetic dataset's COCO-WholeBody and BODY_135 files and images, without any partial file."""
    (target / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        for name in (f"coco_wholebody_{split}.json", f"body135_{split}.json"):
            shutil.copy(dataset / "annotations" / name, target / "annotations" / name)
        shutil.copytree(dataset / "images" / split, target / "images" / split)
    return target


def _config(*extra: str, preset: str = "body135_cpu") -> WholeBodyTrainConfig:
    config: WholeBodyTrainConfig = apply_overrides(wholebody_preset(preset), parse_set([*TINY, *extra]))
    return config


def _files(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def _metrics(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_cli_trains_and_evaluates(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _bare_copy(dataset, tmp_path / "data")
    run = tmp_path / "run"
    sets = [*TINY, "solver.max_iter=4", "solver.checkpoint_period=2", "solver.eval_period=2", "solver.warmup_iters=2"]
    rc = main(["train", "--preset", "body135_cpu", "--data", str(data), "--out", str(run), "--quiet", "--set", *sets])
    out = capsys.readouterr().out
    assert rc == 0
    assert "is missing: writing it" in out
    assert "trained body135_cpu to iteration 4" in out
    for kind in ("coco_body", "coco_foot", "face", "hand21", "hand42"):  # wholebody reads body135_train.json
        assert partial_json(data, kind, "train").is_file()
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "losses.png", "last_checkpoint", "result.json"} <= names
    assert {"model_0000002.safetensors", "model_0000004.state.safetensors", "eval_0000002.json"} <= names
    assert (run / "last_checkpoint").read_text() == "model_0000004.safetensors"
    figures = json.loads((run / "eval_0000004.json").read_text())
    assert figures["iteration"] == 4
    assert figures["images"] == 1
    assert set(figures["parts"]) == set(REPORTED_PARTS)
    assert all(-1.0 <= row["AP"] <= 1.0 for row in figures["parts"].values())
    assert isinstance(json.loads((run / "results_0000004.json").read_text()), list)
    records = _metrics(run)
    assert [r["iteration"] for r in records if "total_loss" in r] == [1, 2, 3, 4]
    assert [r["iteration"] for r in records if "eval" in r] == [2, 4]
    assert set(records[-1]["eval"]) == set(REPORTED_PARTS)
    assert {"loss_paf_stage0", "loss_paf_stage1", "loss_cm_stage0"} <= set(records[0])
    assert records[0]["lr"] == pytest.approx(1e-3 * 0.1)
    assert records[3]["lr"] == pytest.approx(1e-3)
    # the checkpoint is in the whole-body format and rebuilds its network; the run's config reads back
    meta = read_metadata(run / "model_0000004.safetensors")
    assert meta["format"] == "densehuman-wholebody-1"
    assert meta["iteration"] == "4"
    assert json.loads(meta["config"]) == json.loads(json.dumps(dataclasses.asdict(WholeBodyNetConfig.body135_cpu())))
    net, _ = load_wholebody_checkpoint(run / "model_0000004.safetensors")
    weights = load_file(str(run / "model_0000004.safetensors"))
    assert all(torch.equal(v, weights[k]) for k, v in net.state_dict().items())
    import yaml

    stored = wholebody_config_from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    assert stored == _config(*sets[len(TINY) :])


def test_resume_is_exact(dataset: Path, tmp_path: Path) -> None:
    config = _config("solver.max_iter=6", "solver.checkpoint_period=3", "solver.eval_period=0")
    straight = tmp_path / "straight"
    run_wholebody_training(config, dataset, straight, progress=False)
    # a run killed after its checkpoint at iteration 3, then resumed
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for name in ("model_0000006.safetensors", "model_0000006.state.safetensors"):
        (resumed / name).unlink()
    (resumed / "last_checkpoint").write_text("model_0000003.safetensors")
    result = run_wholebody_training(config, dataset, resumed, resume=True, progress=False)
    assert result["iteration"] == 6
    a = load_file(str(straight / "model_0000006.safetensors"))
    b = load_file(str(resumed / "model_0000006.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [[r["total_loss"] for r in _metrics(run) if "total_loss" in r] for run in (straight, resumed)]
    assert losses[0] == losses[1]
    assert len(losses[0]) == 6


def test_loss_falls_on_one_image(dataset: Path, tmp_path: Path) -> None:
    config = _config(
        "data.train_split=val",  # one image
        "data.kinds=[wholebody]",
        "data.probabilities=[1.0]",
        "data.max_rotation=0",
        "data.center_perturb=0",
        "data.flip_prob=0",
        "solver.max_iter=60",
        "solver.warmup_iters=5",
        "solver.checkpoint_period=0",
        "solver.eval_period=0",
    )
    run_wholebody_training(config, dataset, tmp_path / "run", progress=False)
    losses = [r["total_loss"] for r in _metrics(tmp_path / "run") if "total_loss" in r]
    start, end = float(np.mean(losses[:3])), float(np.mean(losses[-3:]))
    print(f"overfit: total loss {start:.2f} -> {end:.2f}")
    assert end < 0.5 * start


def test_refusals_write_nothing(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _bare_copy(dataset, tmp_path / "data")
    before = _files(data)

    def refused(run: Path, *args: str) -> str:
        rc = main(["train", "--preset", "body135_cpu", "--out", str(run), "--quiet", *args])
        assert rc == 2
        assert _files(data) == before
        return capsys.readouterr().err

    err = refused(tmp_path / "a", "--data", str(tmp_path / "nowhere"))
    assert "no such folder" in err
    assert not (tmp_path / "a").exists()
    err = refused(tmp_path / "b", "--data", str(data), "--set", "solver.bogus=1")
    assert "unknown config key 'solver.bogus'" in err
    assert not (tmp_path / "b").exists()
    err = refused(tmp_path / "c", "--data", str(data), "--set", "data.kinds=[coco_body,nope]")
    assert "data.kinds" in err
    assert not (tmp_path / "c").exists()
    existing = tmp_path / "d"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    err = refused(existing, "--data", str(data))
    assert "not empty" in err
    assert "--resume" in err
    assert [p.name for p in existing.iterdir()] == ["notes.txt"]
    err = refused(tmp_path / "e", "--data", str(data), "--resume")
    assert "holds no run" in err
    assert not (tmp_path / "e").exists()


def test_presets_and_list(capsys: pytest.CaptureFixture[str]) -> None:
    recipe = wholebody_preset("body135")
    assert recipe.net == WholeBodyNetConfig.body135()
    assert recipe.data.crop_size == 480
    s = recipe.solver
    assert (s.batch_size, s.base_lr, s.betas, s.weight_decay, s.gamma) == (10, 3e-5, (0.9, 0.999), 5e-4, 0.5)
    assert s.steps[:3] == (200_000, 300_000, 360_000)
    assert s.stage_lr_mult == 4.0
    cpu, only = wholebody_preset("body135_cpu"), wholebody_preset("body135_cpu_wholebody_only")
    assert cpu.net.trunk == "timm"
    assert 256 <= cpu.data.crop_size <= 320
    assert cpu.solver.warmup_iters > 0
    assert dataclasses.replace(only, name=cpu.name, data=cpu.data) == cpu
    assert only.data.kinds == ("wholebody",)
    assert len(cpu.data.kinds) == 6
    for name in WHOLEBODY_PRESETS:
        config = wholebody_preset(name)
        assert wholebody_config_from_dict(wholebody_config_dict(config)) == config
    assert main(["train", "--list-presets"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in WHOLEBODY_PRESETS)
    assert "densepose_rcnn" in listed


class _Oracle(torch.nn.Module):
    """Returns the training targets of the image's ground truth at whatever input size it gets."""

    def __init__(self, keypoints: np.ndarray, size: tuple[int, int], parts: np.ndarray) -> None:
        super().__init__()
        self.keypoints, self.size, self.parts = keypoints, size, parts
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> WholeBodyOutput:
        (height, width), (in_h, in_w) = self.size, x.shape[2:]  # (the test's sizes need no padding)
        k = self.keypoints.astype(np.float64).copy()
        k[..., :2] = k[..., :2] * np.array([in_w / width, in_h / height]) - 0.5  # file -> input pixel centres
        t = make_targets(k, (in_h, in_w), self.parts)
        return WholeBodyOutput([torch.from_numpy(t.pafs)[None]], [torch.from_numpy(t.heatmaps)[None]])


@pytest.mark.parametrize("eval_height", [0, 96, 320])
def test_eval_coordinates_with_an_oracle(dataset: Path, eval_height: int) -> None:
    gt = dataset / "annotations" / "coco_wholebody_val.json"
    sample = read_coco_wholebody(gt, dataset / "images" / "val")[0]
    assert sample.size == (160, 160)  # square, and 96, 160 and 320 are multiples of 8: no padding
    oracle = _Oracle(sample.keypoints, sample.size, sample.labeled_parts)
    figures, results = evaluate_net(oracle, gt, dataset / "images" / "val", eval_height=eval_height)
    assert part_aps(figures)["body"] >= 0.7
    truth = json.loads(gt.read_text())["annotations"][0]
    found = np.array(results[0]["keypoints"]).reshape(17, 3)
    expected = np.array(truth["keypoints"]).reshape(17, 3)
    both = (found[:, 2] > 0) & (expected[:, 2] > 0)
    assert both.sum() >= 10
    assert np.abs((found - expected)[both, :2].mean(axis=0)).max() < 0.35  # no half-pixel or scale shift
