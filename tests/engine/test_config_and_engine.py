"""Configs (presets, overrides), the LR schedule, and checkpoints that resume exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from densehuman.config import apply_overrides, from_dict, load_overrides, parse_set, to_dict
from densehuman.engine.checkpoint import last_checkpoint, load_training_state, load_weights, save_checkpoint
from densehuman.engine.schedule import build_optimizer, build_scheduler, warmup_multistep_factor
from densehuman.models.zoo import PRESETS, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_their_dict(name: str) -> None:
    config = preset(name)
    assert config.name == name
    assert from_dict(yaml.safe_load(yaml.safe_dump(to_dict(config)))) == config


def test_legacy_preset_is_the_papers_setting() -> None:
    head = preset("densepose_rcnn_r50_fpn_legacy").model.densepose
    assert (head.num_coarse_segm, head.pooler_resolution, head.heatmap_size, head.decoder) == (15, 14, 56, False)
    assert (head.index_weight, head.part_weight, head.point_regression_weight) == (2.0, 0.3, 0.1)


def test_overrides_yaml_and_set(tmp_path: Path) -> None:
    base = preset("densepose_rcnn_tiny_cpu")
    path = tmp_path / "o.yaml"
    path.write_text(
        "preset: ignored\nsolver:\n  base_lr: 0.05\n  steps: [10, 20]\nmodel:\n  densepose:\n    head: deeplab\n"
    )
    config = apply_overrides(base, load_overrides(path))
    assert config.solver.base_lr == 0.05
    assert config.solver.steps == (10, 20)
    assert config.model.densepose.head == "deeplab"
    config = apply_overrides(config, parse_set(["solver.max_iter=7", "seed=3"]))
    assert (config.solver.max_iter, config.seed) == (7, 3)
    # YAML 1.1 reads 1e-6 (no dot) as a string; float fields take it as the number it means.
    config = apply_overrides(config, parse_set(["solver.base_lr=1e-6", "model.rpn.aspect_ratios=[5e-1, 1, 2E0]"]))
    assert config.solver.base_lr == 1e-6
    assert config.model.rpn.aspect_ratios == (0.5, 1.0, 2.0)
    with pytest.raises(ValueError, match="takes a number, got '1e-6x'"):
        apply_overrides(base, parse_set(["solver.base_lr=1e-6x"]))
    with pytest.raises(ValueError, match=r"unknown config key 'solver\.base_lrr'.*base_lr"):
        apply_overrides(base, parse_set(["solver.base_lrr=1"]))
    with pytest.raises(ValueError, match="takes an integer"):
        apply_overrides(base, parse_set(["solver.max_iter=1.5"]))
    with pytest.raises(ValueError, match="key=value"):
        parse_set(["solver.max_iter"])
    with pytest.raises(ValueError, match="unknown preset"):
        preset("densepose_rcnn_r51")


def test_warmup_then_steps() -> None:
    f = [warmup_multistep_factor(i, 10, 0.1, (20, 30), 0.1) for i in (0, 5, 10, 19, 20, 29, 30)]
    assert f == pytest.approx([0.1, 0.55, 1.0, 1.0, 0.1, 0.1, 0.01])


def _toy() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GroupNorm(2, 8), torch.nn.Linear(8, 1))


def _steps(
    model: torch.nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LambdaLR, n: int
) -> None:
    for _ in range(n):
        x = torch.randn(16, 4)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def test_checkpoint_resume_is_exact(tmp_path: Path) -> None:
    def fresh() -> tuple[torch.nn.Module, torch.optim.SGD, torch.optim.lr_scheduler.LambdaLR]:
        model = _toy()
        opt = build_optimizer(model, 0.05, 0.9, 1e-4)
        return model, opt, build_scheduler(opt, 3, 0.1, (6,), 0.1)

    torch.manual_seed(1)
    straight, opt, sched = fresh()
    torch.manual_seed(1)
    _steps(straight, opt, sched, 10)

    torch.manual_seed(1)
    first, opt, sched = fresh()
    torch.manual_seed(1)
    _steps(first, opt, sched, 4)
    save_checkpoint(tmp_path, 4, first, {"name": "toy"}, opt, sched)
    resumed, opt2, sched2 = fresh()
    path = last_checkpoint(tmp_path)
    assert path is not None
    assert load_weights(path, resumed)["iteration"] == 4
    assert load_training_state(path, opt2, sched2)["iteration"] == 4
    _steps(resumed, opt2, sched2, 6)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # The norm layer carries no weight decay (detectron2's WEIGHT_DECAY_NORM = 0).
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_weights(tmp_path / "missing.safetensors", _toy())
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.safetensors"):
        load_weights(bad, _toy())
    save_checkpoint(tmp_path, 1, _toy(), {})
    path = last_checkpoint(tmp_path)
    assert path is not None
    with pytest.raises(ValueError, match="do not fit"):
        load_weights(path, torch.nn.Linear(2, 2))


def test_split_paths_synthetic_and_real_layouts(tmp_path: Path) -> None:
    from densehuman.engine.inputs import split_paths

    config = preset("densepose_rcnn_tiny_cpu")
    assert split_paths(config, tmp_path, "train") == (
        tmp_path / "annotations" / "densepose_train.json",
        tmp_path / "images" / "train",
    )
    real = apply_overrides(
        config, parse_set(["data.val_json=annotations/densepose_coco_2014_minival.json", "data.val_images=val2014"])
    )
    assert split_paths(real, tmp_path, "val") == (
        tmp_path / "annotations" / "densepose_coco_2014_minival.json",
        tmp_path / "val2014",
    )
    with pytest.raises(ValueError, match="given together"):
        split_paths(apply_overrides(config, parse_set(["data.train_json=x.json"])), tmp_path, "train")


def test_exported_half_weights_load_into_the_model(tmp_path: Path) -> None:
    from densehuman.engine.checkpoint import export_weights

    model = _toy()
    save_checkpoint(tmp_path, 3, model, {"name": "toy"})
    path = last_checkpoint(tmp_path)
    assert path is not None
    small = export_weights(path, tmp_path / "release.safetensors", note="test")
    assert small.stat().st_size < path.stat().st_size
    other = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GroupNorm(2, 8), torch.nn.Linear(8, 1))
    assert load_weights(small, other)["iteration"] == 3
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        assert b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def test_every_set_option_applies() -> None:
    """``--set a=1 --set b=2`` applies both (argparse's default would keep only the last list)."""
    from densehuman.cli import build_parser

    args = build_parser().parse_args(
        ["train", "--set", "solver.max_iter=3", "seed=4", "--set", "solver.base_lr=0.5", "--data", "d", "--out", "o"]
    )
    assert args.set == ["solver.max_iter=3", "seed=4", "solver.base_lr=0.5"]
    config = apply_overrides(from_dict({}), parse_set(args.set))
    assert (config.solver.max_iter, config.seed, config.solver.base_lr) == (3, 4, 0.5)
