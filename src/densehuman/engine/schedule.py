"""detectron2's default learning-rate schedule: linear warm-up, then steps."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch


def warmup_multistep_factor(
    iteration: int, warmup_iters: int, warmup_factor: float, steps: Sequence[int], gamma: float
) -> float:
    """LR multiplier at ``iteration``: ramps linearly from ``warmup_factor`` to 1 over ``warmup_iters``, then is
    multiplied by ``gamma`` at every step in ``steps`` already passed."""
    decay = gamma ** bisect.bisect_right(list(steps), iteration)
    if iteration >= warmup_iters or warmup_iters == 0:
        return float(decay)
    alpha = iteration / warmup_iters
    return float(decay * (warmup_factor * (1 - alpha) + alpha))


def build_scheduler(
    optimizer: torch.optim.Optimizer, warmup_iters: int, warmup_factor: float, steps: Sequence[int], gamma: float
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: warmup_multistep_factor(it, warmup_iters, warmup_factor, steps, gamma)
    )


def build_optimizer(model: torch.nn.Module, base_lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD with momentum; no weight decay on normalization layers (detectron2's WEIGHT_DECAY_NORM = 0)."""
    norm_types = (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm, torch.nn.SyncBatchNorm)
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (no_decay if isinstance(module, norm_types) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD([g for g in groups if g["params"]], lr=base_lr, momentum=momentum)
