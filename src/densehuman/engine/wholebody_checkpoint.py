"""The run folder and checkpoints of whole-body training (``engine.wholebody_trainer``).

``model_{it:07d}.safetensors`` holds the network's weights with the metadata ``format: densehuman-wholebody-1``,
``config`` (the ``WholeBodyNetConfig`` as JSON: enough to rebuild the network), ``train_config`` (the whole
``WholeBodyTrainConfig``) and ``iteration``; ``model_{it:07d}.state.safetensors`` beside it holds the training state
in the layout of ``engine.checkpoint`` (Adam, scheduler, RNG; ``load_training_state`` reads it); ``last_checkpoint``
names the newest. Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from densehuman import atomic
from densehuman.engine.checkpoint import LAST, _flatten_optimizer, _numpy_state, read_metadata
from densehuman.engine.wholebody_config import (
    WholeBodyTrainConfig,
    wholebody_config_dict,
    wholebody_config_from_dict,
)
from densehuman.inference.wholebody import WHOLEBODY_FORMAT
from densehuman.models.bottomup.network import WholeBodyNet

CHECKPOINT_FORMAT = WHOLEBODY_FORMAT  # the format the predictor reads


# ------------------------------------------------------------------------------------------------ run folder
def check_wholebody_run_dir(run_dir: Path, config: WholeBodyTrainConfig, resume: bool) -> WholeBodyTrainConfig:
    """``engine.trainer.check_run_folder`` for whole-body training configs."""
    from densehuman.engine.trainer import check_run_folder

    return check_run_folder(
        run_dir, config, resume, wholebody_config_from_dict, wholebody_config_dict, "densehuman whole-body run"
    )


# -------------------------------------------------------------------------------------------------- checkpoints
def save_wholebody_checkpoint(
    run_dir: Path,
    iteration: int,
    net: WholeBodyNet,
    config: WholeBodyTrainConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> Path:
    """``model_{iteration:07d}.safetensors`` (whole-body format), its training state, then ``last_checkpoint``."""
    weights = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = {
        "format": CHECKPOINT_FORMAT,
        "config": json.dumps(dataclasses.asdict(config.net)),
        "train_config": json.dumps(wholebody_config_dict(config)),
        "iteration": str(iteration),
    }
    path = run_dir / f"model_{iteration:07d}.safetensors"
    atomic.write_bytes(path, save(weights, metadata=meta))
    tensors, rest = _flatten_optimizer(optimizer.state_dict())
    tensors["rng.torch"] = torch.get_rng_state()
    state_meta = {
        "optimizer": json.dumps(rest),
        "scheduler": json.dumps(scheduler.state_dict(), default=lambda _: None),
        "numpy_rng": json.dumps(_numpy_state()),
        "iteration": str(iteration),
        "extra": "{}",
    }
    atomic.write_bytes(path.with_suffix(".state.safetensors"), save(tensors, metadata=state_meta))
    atomic.write_bytes(run_dir / LAST, path.name.encode())
    return path


def load_wholebody_checkpoint(path: Path) -> tuple[WholeBodyNet, dict[str, str]]:
    """The network of a whole-body checkpoint (``inference.wholebody.load_wholebody_checkpoint``: every weight
    checked, errors naming the file) and its metadata."""
    from densehuman.inference.wholebody import load_wholebody_checkpoint as load_checked

    return load_checked(path).net, read_metadata(path)


def truncate_metrics(path: Path, iteration: int) -> None:
    """Drop the log lines past ``iteration`` (written after the checkpoint a run resumes from)."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if int(json.loads(line).get("iteration", 0)) <= iteration]
    if len(kept) != len(lines):
        atomic.write_bytes(path, "".join(line + "\n" for line in kept).encode())
