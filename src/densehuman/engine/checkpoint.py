"""Checkpoints as safetensors: the model weights with the resolved config, and the training state (optimizer,
scheduler, RNG, iteration) beside them. Files are written atomically; ``last_checkpoint`` names the newest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save

from densehuman import atomic

LAST = "last_checkpoint"


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    rest: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for pid, pstate in state["state"].items():
        entry = {}
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                entry[key] = value
        rest["state"][str(pid)] = entry
    return tensors, rest


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in rest["state"].items()}
    for name, value in tensors.items():
        if not name.startswith("optimizer."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copies of tensors that share memory with one stored before them (safetensors stores each key once;
    quantization-aware training shares observers between the inputs of one operation)."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for key, value in tensors.items():
        where = (value.untyped_storage().data_ptr(), int(value.storage_offset()))
        out[key] = value.clone() if where in seen and value.numel() else value
        seen.add(where)
    return out


def save_checkpoint(
    run_dir: Path,
    iteration: int,
    model: torch.nn.Module,
    config: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model_{iteration:07d}.safetensors`` (+ ``.state.safetensors``) and point ``last_checkpoint`` at it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    weights = _unshared({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})
    meta = {"config": json.dumps(config), "iteration": str(iteration), "format": "densehuman-checkpoint-1"}
    path = run_dir / f"model_{iteration:07d}.safetensors"
    atomic.write_bytes(path, save(weights, metadata=meta))
    if optimizer is not None:
        tensors, rest = _flatten_optimizer(optimizer.state_dict())
        tensors["rng.torch"] = torch.get_rng_state()
        state_meta = {
            "optimizer": json.dumps(rest),
            "scheduler": json.dumps(scheduler.state_dict() if scheduler is not None else {}, default=_no_lambdas),
            "numpy_rng": json.dumps(_numpy_state()),
            "iteration": str(iteration),
            "extra": json.dumps(extra or {}),
        }
        atomic.write_bytes(path.with_suffix(".state.safetensors"), save(tensors, metadata=state_meta))
    atomic.write_bytes(run_dir / LAST, path.name.encode())
    return path


def _no_lambdas(obj: Any) -> Any:
    return None  # LambdaLR keeps its lambdas in the state dict; they are rebuilt from the config


def _numpy_state() -> Any:
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return [kind, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)]


def last_checkpoint(run_dir: Path) -> Path | None:
    marker = run_dir / LAST
    if not marker.is_file():
        return None
    path = run_dir / marker.read_text().strip()
    if not path.is_file():
        raise FileNotFoundError(f"{marker} names {path.name}, which does not exist")
    return path


def read_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_weights(path: Path, model: torch.nn.Module, strict: bool = True) -> dict[str, Any]:
    """Load model weights; returns the checkpoint's stored config (as a dict) and iteration."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        weights = load_file(str(path))
        meta = read_metadata(path)
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(f"{path}: not a readable safetensors checkpoint ({err})") from err
    try:
        stored = {"config": json.loads(meta.get("config", "{}")), "iteration": int(meta.get("iteration", 0))}
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{path}: the checkpoint's metadata is damaged ({type(err).__name__}: {err})") from None
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if strict and (missing or unexpected):
        raise ValueError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return stored


def load_training_state(path: Path, optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """Restore optimizer, scheduler and RNG state saved beside the weights at ``path``."""
    state_path = path.with_suffix(".state.safetensors")
    if not state_path.is_file():
        raise FileNotFoundError(f"{state_path}: the training state of {path.name} is missing; cannot resume exactly")
    try:
        tensors = load_file(str(state_path))
        meta = read_metadata(state_path)
        optimizer.load_state_dict(_unflatten_optimizer(tensors, json.loads(meta["optimizer"])))
        sched = json.loads(meta["scheduler"])
        if scheduler is not None and sched:
            sched.pop("lr_lambdas", None)
            scheduler.load_state_dict({**scheduler.state_dict(), **sched})
        torch.set_rng_state(tensors["rng.torch"])
        kind, keys, pos, has_gauss, cached = json.loads(meta["numpy_rng"])
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        return {"iteration": int(meta["iteration"]), "extra": json.loads(meta.get("extra", "{}"))}
    except Exception as err:  # safetensors' own errors, missing keys, wrong shapes: a damaged state file
        raise ValueError(f"{state_path}: cannot restore the training state ({type(err).__name__}: {err})") from None


def export_weights(source: Path, target: Path, half: bool = True, note: str = "") -> Path:
    """A release copy of a checkpoint: weights only (no training state), floats stored as float16 to halve the
    size (they are widened back when loaded), the config kept in the metadata."""
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such checkpoint")
    weights = load_file(str(source))
    meta = read_metadata(source)
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    meta = {**meta, "exported_from": source.name, "note": note}
    atomic.write_bytes(target, save(weights, metadata=meta))
    return target


def load_initial_weights(path: Path, model: torch.nn.Module) -> str:
    """Start a training run from ``path``: a densehuman ``.safetensors`` checkpoint or a detectron2 ``.pkl`` /
    ``.pth`` (every tensor mapped, or an error listing the mismatches). Only the weights are taken, not the
    optimizer state or the iteration. Returns a line for the log."""
    from densehuman.engine.detectron2 import is_detectron2_checkpoint, read_detectron2_weights
    from densehuman.engine.detectron2.weights import load_detectron2_weights
    from densehuman.models.detector import Detector

    if is_detectron2_checkpoint(path):
        if not isinstance(model, Detector):
            raise ValueError(f"{path}: detectron2 weights load into a DensePose R-CNN Detector only")
        report = load_detectron2_weights(model, read_detectron2_weights(path).tensors, str(path))
        return f"initialized from detectron2 weights {path} ({report.mapped} tensors)"
    try:
        load_weights(path, model)
    except RuntimeError as err:  # load_state_dict: shapes differ
        raise ValueError(f"{path}: weights do not fit the model ({err})") from err
    return f"initialized from {path}"
