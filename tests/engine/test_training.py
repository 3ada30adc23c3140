"""Training end to end on a tiny synthetic dataset: the model learns, runs resume exactly, DDP ranks stay in step."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from densehuman.config import Config, apply_overrides, parse_set
from densehuman.engine.checkpoint import last_checkpoint
from densehuman.engine.distributed import DistInfo
from densehuman.engine.evaluation import prediction_to_detections
from densehuman.engine.inputs import build_training_loader
from densehuman.engine.trainer import Trainer, prepare_run_dir, seed_everything
from densehuman.models.build import build_model
from densehuman.models.zoo import preset
from densehuman.synth.engine import SynthJob, run_synth
from densehuman.synth.generator import SynthConfig

pytestmark = pytest.mark.numerics

CPU = DistInfo(0, 1, 0, torch.device("cpu"))


def _config(*extra: str) -> Config:
    settings = [
        "input.min_size_train=[128]",
        "input.max_size_train=128",
        "input.min_size_test=128",
        "input.max_size_test=128",
        "input.flip_prob=0.0",
        "solver.ims_per_batch=2",
        "solver.warmup_iters=20",
        "solver.base_lr=0.02",
        "solver.steps=[100000]",
        "solver.log_period=5",
        "solver.checkpoint_period=0",
        "data.num_workers=0",
    ]
    given = {item.split("=", 1)[0] for item in extra}
    settings = [item for item in settings if item.split("=", 1)[0] not in given] + list(extra)
    config: Config = apply_overrides(preset("densepose_rcnn_tiny_cpu"), parse_set(settings))
    return config


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train") / "ds"
    config = SynthConfig(size=(128, 128), max_people=2)
    run_synth(
        SynthJob(root, images=2, seed=5, val_fraction=0.0, config=config, workers=1, preview_count=0), progress=False
    )
    return root


def _train(config: Config, dataset: Path, run: Path, resume: bool = False) -> Trainer:
    prepare_run_dir(run, config, resume)
    seed_everything(config.seed)
    trainer = Trainer(config, build_model(config.model), run, CPU, progress=False)
    start = trainer.resume() if resume else 0
    trainer.train(build_training_loader(config, dataset, CPU, start_iter=start))
    return trainer


def _losses(run: Path) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "total_loss" in r]


def test_a_small_model_overfits_a_few_images(dataset: Path, tmp_path: Path) -> None:
    trainer = _train(_config("solver.max_iter=80"), dataset, tmp_path / "run")
    rows = _losses(tmp_path / "run")
    assert rows[-1]["total_loss"] < 0.35 * rows[0]["total_loss"]
    for key in ("loss_densepose_I", "loss_densepose_S", "loss_rpn_cls", "loss_cls"):
        assert rows[-1][key] < rows[0][key], key
    # The trained model finds the people of its training images and labels their charts far better than chance.
    gt = json.loads((dataset / "annotations" / "densepose_train.json").read_text())
    model = trainer.module.eval()
    hits, correct, total = 0, 0, 0
    for image in gt["images"]:
        rgb = np.ascontiguousarray(
            __import__("cv2").imread(str(dataset / "images" / "train" / image["file_name"]))[..., ::-1]
        )
        (prediction,) = model.predict([torch.from_numpy(rgb).permute(2, 0, 1)])
        detections = prediction_to_detections(prediction, image["id"], rgb.shape[:2], rgb.shape[:2])
        for ann in (a for a in gt["annotations"] if a["image_id"] == image["id"] and "dp_x" in a):
            x, y, w, h = ann["bbox"]
            ious = [_iou(ann["bbox"], d.bbox) for d in detections]
            if not ious or max(ious) < 0.5:
                continue
            hits += 1
            best = detections[int(np.argmax(ious))]
            assert best.chart is not None
            labels = best.chart.labels_uv_uint8[0]
            bx, by = int(best.bbox[0]), int(best.bbox[1])
            for px, py, i in zip(ann["dp_x"], ann["dp_y"], ann["dp_I"], strict=True):
                cx, cy = int(x + px * w / 256) - bx, int(y + py * h / 256) - by
                if 0 <= cy < labels.shape[0] and 0 <= cx < labels.shape[1]:
                    correct += int(labels[cy, cx] == int(i))
                    total += 1
    assert hits >= 1
    assert total > 20
    assert correct / total > 0.2  # chance is 1/24


def _iou(a: list[float] | tuple[float, ...], b: list[float] | tuple[float, ...]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_resume_continues_exactly(dataset: Path, tmp_path: Path) -> None:
    straight = _train(_config("solver.max_iter=6"), dataset, tmp_path / "a")
    # The same run interrupted after 3 iterations (its checkpoint), then resumed to 6.
    _train(_config("solver.max_iter=3"), dataset, tmp_path / "b")
    (tmp_path / "b" / "config.yaml").write_text((tmp_path / "a" / "config.yaml").read_text())
    resumed = _train(_config("solver.max_iter=6"), dataset, tmp_path / "b", resume=True)
    assert last_checkpoint(tmp_path / "b") == tmp_path / "b" / "model_0000006.safetensors"
    for (name, a), b in zip(straight.module.state_dict().items(), resumed.module.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_resume_refuses_another_config(dataset: Path, tmp_path: Path) -> None:
    _train(_config("solver.max_iter=1"), dataset, tmp_path / "run")
    with pytest.raises(ValueError, match="another config"):
        prepare_run_dir(tmp_path / "run", _config("solver.max_iter=2", "solver.base_lr=0.5"), resume=True)
    with pytest.raises(ValueError, match="not empty"):
        prepare_run_dir(tmp_path / "run", _config("solver.max_iter=1"), resume=False)


def test_two_processes_stay_in_step(dataset: Path, tmp_path: Path) -> None:
    """torchrun-style DDP on CPU (gloo): both ranks end with identical weights, and rank 0 wrote the checkpoint."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    mp.start_processes(_ddp_rank, args=(2, port, str(dataset), str(out)), nprocs=2, join=True, start_method="spawn")
    a = torch.load(out / "weights_rank0.pt")
    b = torch.load(out / "weights_rank1.pt")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert (out / "model_0000003.safetensors").is_file()
    initial = torch.load(out / "initial_rank0.pt")
    assert any(not torch.equal(initial[k], a[k]) for k in a), "training changed the weights"


def _ddp_rank(rank: int, world: int, port: int, dataset: str, out: str) -> None:
    os.environ.update(
        {
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    import torch.distributed as dist

    from densehuman.engine.distributed import init_distributed
    from densehuman.engine.trainer import Trainer, prepare_run_dir, seed_everything

    info = init_distributed("cpu")
    config = _config("solver.max_iter=3")
    if info.is_main:
        prepare_run_dir(Path(out), config, resume=False)
    dist.barrier()
    seed_everything(config.seed + info.rank)  # different seeds per rank: DDP must still keep the weights equal
    model = build_model(config.model)
    # DDP broadcasts rank 0's initial weights; record them to check that training moved them.
    trainer = Trainer(config, model, Path(out), info, progress=False)
    if info.is_main:
        initial = {k: v.detach().clone() for k, v in trainer.module.named_parameters()}
        torch.save(initial, Path(out) / "initial_rank0.pt")
    trainer.train(build_training_loader(config, Path(dataset), info))
    # Parameters must agree; BatchNorm running statistics are per-rank buffers (DDP re-broadcasts them each forward).
    params = {k: v.detach().clone() for k, v in trainer.module.named_parameters()}
    torch.save(params, Path(out) / f"weights_rank{info.rank}.pt")
    dist.destroy_process_group()


def test_cli_train_writes_a_readable_run_folder(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from densehuman.cli import main

    out = tmp_path / "run"
    settings = [
        "input.min_size_train=[128]",
        "input.max_size_train=128",
        "input.min_size_test=128",
        "input.max_size_test=128",
        "solver.ims_per_batch=2",
        "solver.max_iter=2",
        "solver.log_period=1",
        "data.num_workers=0",
        "data.val_split=train",
    ]
    args = ["train", "--preset", "densepose_rcnn_tiny_cpu", "--data", str(dataset), "--out", str(out), "--quiet"]
    assert main([*args, "--set", *settings]) == 0
    assert "trained densepose_rcnn_tiny_cpu to iteration 2" in capsys.readouterr().out
    for name in ("config.yaml", "metrics.jsonl", "model_0000002.safetensors", "losses.png", "eval_0000002.json"):
        assert (out / name).is_file(), name
    figures = json.loads((out / "eval_0000002.json").read_text())
    assert {"gps", "gpsm", "iou", "bbox", "rcp"} <= set(figures)
    # The same folder again without --resume is refused; a bad key names itself.
    assert main([*args, "--set", *settings]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--preset",
                "densepose_rcnn_tiny_cpu",
                "--data",
                str(dataset),
                "--out",
                str(tmp_path / "x"),
                "--set",
                "solver.lr=1",
            ]
        )
        == 2
    )
    assert "unknown config key 'solver.lr'" in capsys.readouterr().err


def _parsing_config(*extra: str) -> Config:
    """parsing_rcnn_cpu narrowed for tests: 32 channels, 64x64 logits, 128 px images."""
    settings = [
        "model.fpn.out_channels=32",
        "model.box_head.fc_dim=64",
        "model.parsing.conv_dim=32",
        "model.parsing.aspp_dim=32",
        "model.parsing.num_convs_after=2",
        "input.min_size_train=[128]",
        "input.max_size_train=128",
        "input.min_size_test=128",
        "input.max_size_test=128",
        "input.flip_prob=0.0",
        "solver.ims_per_batch=2",
        "solver.warmup_iters=10",
        "solver.base_lr=0.02",
        "solver.steps=[100000]",
        "solver.log_period=5",
        "solver.checkpoint_period=0",
        "data.num_workers=0",
        "data.val_split=train",
        "data.format=densepose_coco",
        *extra,
    ]
    config: Config = apply_overrides(preset("parsing_rcnn_cpu"), parse_set(settings))
    return config


@pytest.mark.slow  # about 50 s on 2 cores
def test_the_parsing_branch_learns_a_few_images(dataset: Path, tmp_path: Path) -> None:
    """Overfitting two images: the parsing loss falls far below its start (2 ln 20 = 6.0 for uniform logits) and
    the model parses its training people well above chance (the official mIoU on those images)."""
    from densehuman.engine.evaluation import build_evaluator

    config = _parsing_config("solver.max_iter=50", "model.parsing.rois_per_image=4")
    trainer = _train(config, dataset, tmp_path / "run")
    rows = _losses(tmp_path / "run")
    first = np.mean([r["loss_parsing"] for r in rows[:2]])
    last = np.mean([r["loss_parsing"] for r in rows[-2:]])
    assert first > 4.0
    assert last < 0.5 * first
    evaluate = build_evaluator(config, dataset)
    assert evaluate is not None
    figures = evaluate(trainer.module.eval(), 50)["parsing"]
    assert figures["mIoU"] > 0.15  # 20 classes with the background: chance is far lower
    assert figures["detections"] > 0


def test_cli_trains_both_branches_and_reports_the_parsing_figures(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from densehuman.cli import main

    out = tmp_path / "both"
    settings = [
        "model.fpn.out_channels=32",
        "model.box_head.fc_dim=64",
        "model.parsing.conv_dim=32",
        "model.parsing.aspp_dim=32",
        "model.densepose.conv_dim=32",
        "model.densepose.decoder_conv_dims=32",
        "model.densepose.decoder_num_classes=32",
        "input.min_size_train=[128]",
        "input.max_size_train=128",
        "input.min_size_test=128",
        "input.max_size_test=128",
        "solver.ims_per_batch=2",
        "solver.max_iter=2",
        "data.num_workers=0",
        "data.val_split=train",
    ]
    args = ["train", "--preset", "densepose_parsing_rcnn_cpu", "--data", str(dataset), "--out", str(out), "--quiet"]
    assert main([*args, "--set", *settings]) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed
    assert "gps" in printed
    figures = json.loads((out / "eval_0000002.json").read_text())
    assert {"gps", "gpsm", "bbox", "parsing"} <= set(figures)
    assert {"mIoU", "APp50", "APp_vol", "PCP50"} <= set(figures["parsing"])
    losses = _losses(out)[-1]
    assert {"loss_parsing", "loss_densepose_I"} <= set(losses)
