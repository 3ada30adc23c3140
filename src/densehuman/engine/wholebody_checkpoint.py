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
from densehuman.engine.checkpoint import LAST, _flatten_optimizer, _numpy_state, load_weights, read_metadata
from densehuman.engine.wholebody_config import (
    WholeBodyTrainConfig,
    wholebody_config_dict,
    wholebody_config_from_dict,
)
from densehuman.models.bottomup.config import build_wholebody_net
from densehuman.models.bottomup.network import WholeBodyNet
from densehuman.validation import InputError, read_yaml

CHECKPOINT_FORMAT = "densehuman-wholebody-1"


# ------------------------------------------------------------------------------------------------ run folder
def check_wholebody_run_dir(run_dir: Path, config: WholeBodyTrainConfig, resume: bool) -> WholeBodyTrainConfig:
    """The config the run will use, once the folder is usable; writes nothing. On resume the stored config must
    equal ``config`` (an error names the differing sections); a fresh run needs a new or empty folder."""
    stored = run_dir / "config.yaml"
    if resume:
        if not stored.is_file():
            raise ValueError(f"--resume: {run_dir} holds no run (no config.yaml)")
        data = read_yaml(stored, "run config")
        try:
            if not isinstance(data, dict):
                raise ValueError("the top level is not a mapping")
            saved = wholebody_config_from_dict(data)
        except ValueError as err:
            raise InputError(stored, f"not the config of a densehuman whole-body run ({err})") from None
        a, b = wholebody_config_dict(saved), wholebody_config_dict(config)
        if a != b:
            diff = sorted(k for k in a if a[k] != b.get(k))
            raise ValueError(f"--resume: the run in {run_dir} used another config (sections {', '.join(diff)})")
        return saved
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir} is a file; choose a new run folder")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise ValueError(f"{run_dir} is not empty; choose a new run folder or pass --resume to continue it")
    return config


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
    """The network of a whole-body checkpoint (built from its stored ``WholeBodyNetConfig``) and its metadata."""
    from densehuman.config import apply_overrides
    from densehuman.models.bottomup.config import WholeBodyNetConfig

    meta = read_metadata(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a whole-body checkpoint (format {meta.get('format')!r})")
    net = build_wholebody_net(apply_overrides(WholeBodyNetConfig(), json.loads(meta["config"])))
    load_weights(path, net)
    return net, meta


def truncate_metrics(path: Path, iteration: int) -> None:
    """Drop the log lines past ``iteration`` (written after the checkpoint a run resumes from)."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if int(json.loads(line).get("iteration", 0)) <= iteration]
    if len(kept) != len(lines):
        atomic.write_bytes(path, "".join(line + "\n" for line in kept).encode())
