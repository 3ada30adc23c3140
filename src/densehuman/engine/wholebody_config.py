"""Configuration of ``densehuman train`` for the BODY_135 whole-body network, and its presets.

``WholeBodyTrainConfig`` has four sections: ``net`` (:class:`WholeBodyNetConfig`), ``data`` (which partial kinds
of a ``densehuman synth`` dataset are mixed with which probabilities, the crop, the augmentation, evaluation),
``targets`` (:class:`TargetConfig`) and ``solver`` (Adam with warm-up and multistep decay). The data section is a
light description: ``WholeBodyMixConfig.resolve(root)`` turns it into the :class:`WholeBodyDataConfig` of the
dataset folder given with ``--data``. YAML files and ``--set a.b=c`` override fields with the machinery of
:mod:`densehuman.config` (``apply_overrides``, ``parse_set``), which works on any frozen dataclass.

Presets (``WHOLEBODY_PRESETS``): ``body135`` is the OpenPose recipe (``wholebody.md`` §2 "Training recipe");
``body135_cpu`` a network and schedule that train from scratch on a CPU; ``body135_cpu_wholebody_only`` the same
trained on the whole-body labels alone, the baseline the multi-dataset mixture is compared with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from densehuman.config import ConfigValueError, apply_overrides, to_dict
from densehuman.data.wholebody_mix import SYNTHETIC_MIX, WholeBodyDataConfig, synthetic_mix
from densehuman.models.bottomup.config import WholeBodyNetConfig
from densehuman.models.bottomup.targets import TargetConfig

MIX_KINDS: tuple[str, ...] = tuple(name for name, *_ in SYNTHETIC_MIX)
RECIPE_PROBABILITIES: tuple[float, ...] = tuple(probability for _, _, probability, _ in SYNTHETIC_MIX)
# pose_solver.prototxt: multistep at 200k, 300k, 360k, ..., 900k with gamma 0.5
RECIPE_STEPS: tuple[int, ...] = (
    200_000,
    300_000,
    360_000,
    420_000,
    480_000,
    540_000,
    600_000,
    700_000,
    800_000,
    900_000,
)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _require(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigValueError(key, f"must be {rule}, got {value!r}")


@dataclass(frozen=True)
class WholeBodyMixConfig:
    """The training mix over a ``densehuman synth`` dataset and the evaluation on its validation split.

    ``kinds`` / ``probabilities``: the partial datasets (``densehuman synth-partial`` kinds, see ``MIX_KINDS``) and
    their weights (normalised by the sampler). ``crop_size``: the square training crop (a multiple of 8).
    ``max_rotation`` (degrees), ``center_perturb`` (crop pixels) and ``flip_prob`` replace the augmentation of every
    dataset; ``scale_factor`` multiplies each dataset's scale range. ``body135``: the whole-body set reads
    ``body135_{split}.json`` (all 135 points) rather than its COCO-WholeBody partial file.
    ``eval_height``: the network input height at evaluation (the image is resized to it, keeping its aspect);
    0 keeps the image size. ``eval_max_images``: 0 evaluates the whole validation split.
    """

    kinds: tuple[str, ...] = MIX_KINDS
    probabilities: tuple[float, ...] = RECIPE_PROBABILITIES
    crop_size: int = 480
    max_rotation: float = 45.0
    center_perturb: float = 40.0
    flip_prob: float = 0.5
    scale_factor: float = 1.0
    body135: bool = True
    train_split: str = "train"
    val_split: str = "val"
    num_workers: int = 2
    eval_height: int = 480
    eval_max_images: int = 0

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in MIX_KINDS]
        _require(not unknown and bool(self.kinds), "kinds", f"a non-empty list of {', '.join(MIX_KINDS)}", self.kinds)
        _require(len(set(self.kinds)) == len(self.kinds), "kinds", "a list without repeats", self.kinds)
        _require(
            len(self.probabilities) == len(self.kinds)
            and all(_finite(p) and p >= 0 for p in self.probabilities)
            and sum(self.probabilities) > 0,
            "probabilities",
            f"{len(self.kinds)} numbers >= 0 (one per kind) with a positive sum",
            self.probabilities,
        )
        _require(_int(self.crop_size, 8) and self.crop_size % 8 == 0, "crop_size", "a multiple of 8", self.crop_size)
        _require(
            _finite(self.max_rotation) and self.max_rotation >= 0, "max_rotation", "a number >= 0", self.max_rotation
        )
        _require(
            _finite(self.center_perturb) and self.center_perturb >= 0,
            "center_perturb",
            "a number >= 0",
            self.center_perturb,
        )
        _require(_finite(self.flip_prob) and 0 <= self.flip_prob <= 1, "flip_prob", "in [0, 1]", self.flip_prob)
        _require(
            _finite(self.scale_factor) and self.scale_factor > 0, "scale_factor", "a number > 0", self.scale_factor
        )
        _require(_int(self.num_workers, 0), "num_workers", "an integer >= 0", self.num_workers)
        _require(_int(self.eval_height, 0), "eval_height", "an integer >= 0", self.eval_height)
        _require(_int(self.eval_max_images, 0), "eval_max_images", "an integer >= 0", self.eval_max_images)
        for key in ("train_split", "val_split"):
            value = getattr(self, key)
            _require(isinstance(value, str) and bool(value) and "/" not in value, key, "a split name", value)

    def resolve(self, root: Path, split: str | None = None, seed: int = 0) -> WholeBodyDataConfig:
        """The :class:`WholeBodyDataConfig` of this mix over the dataset folder ``root`` (default: the train split);
        kinds with probability 0 are left out."""
        base = synthetic_mix(
            Path(root), split or self.train_split, crop_size=self.crop_size, seed=seed, body135=self.body135
        )
        weights = dict(zip(self.kinds, self.probabilities, strict=True))
        specs = []
        for spec in base.datasets:
            if weights.get(spec.name, 0.0) <= 0:
                continue
            low, high = spec.scale_range
            specs.append(
                dataclasses.replace(
                    spec,
                    probability=float(weights[spec.name]),
                    max_rotation=float(self.max_rotation),
                    center_perturb=float(self.center_perturb),
                    flip_prob=float(self.flip_prob),
                    scale_range=(low * self.scale_factor, high * self.scale_factor),
                )
            )
        return WholeBodyDataConfig(tuple(specs), seed=seed)


@dataclass(frozen=True)
class WholeBodySolverConfig:
    """Adam (``betas``; ``weight_decay`` is Caffe's L2 decay, added to the gradient) with a linear warm-up from
    ``warmup_factor`` over ``warmup_iters`` and a ``gamma`` decay at each of ``steps``. ``stage_lr_mult``
    multiplies the learning rate of the PAF and confidence-map stages (the recipe: 4, trunk 1). ``amp``: bfloat16
    autocast on CUDA. ``eval_period`` 0: evaluate at the end only; ``checkpoint_period`` 0: at the end only."""

    batch_size: int = 10
    base_lr: float = 3e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 5e-4
    stage_lr_mult: float = 4.0
    warmup_iters: int = 0
    warmup_factor: float = 0.1
    steps: tuple[int, ...] = RECIPE_STEPS
    gamma: float = 0.5
    max_iter: int = 1_000_000
    clip_grad_norm: float = 0.0
    amp: bool = True
    checkpoint_period: int = 5000
    eval_period: int = 20_000
    log_period: int = 20

    def __post_init__(self) -> None:
        _require(_int(self.batch_size, 1), "batch_size", "an integer >= 1", self.batch_size)
        for key in ("base_lr", "stage_lr_mult", "gamma"):
            value = getattr(self, key)
            _require(_finite(value) and value > 0, key, "a finite number > 0", value)
        for key in ("weight_decay", "clip_grad_norm"):
            value = getattr(self, key)
            _require(_finite(value) and value >= 0, key, "a finite number >= 0", value)
        _require(
            len(self.betas) == 2 and all(_finite(b) and 0 <= b < 1 for b in self.betas),
            "betas",
            "two numbers in [0, 1)",
            self.betas,
        )
        _require(
            _finite(self.warmup_factor) and 0 < self.warmup_factor <= 1,
            "warmup_factor",
            "in (0, 1]",
            self.warmup_factor,
        )
        _require(_int(self.warmup_iters, 0), "warmup_iters", "an integer >= 0", self.warmup_iters)
        _require(_int(self.max_iter, 1), "max_iter", "an integer >= 1", self.max_iter)
        for key in ("checkpoint_period", "eval_period"):
            _require(_int(getattr(self, key), 0), key, "an integer >= 0", getattr(self, key))
        _require(_int(self.log_period, 1), "log_period", "an integer >= 1", self.log_period)
        _require(
            all(_int(v, 0) for v in self.steps) and list(self.steps) == sorted(self.steps),
            "steps",
            "a list of increasing iterations >= 0",
            self.steps,
        )


@dataclass(frozen=True)
class WholeBodyTrainConfig:
    """Everything a whole-body training run depends on (the module docstring); defaults: the ``body135`` recipe."""

    name: str = "body135"
    net: WholeBodyNetConfig = field(default_factory=WholeBodyNetConfig.body135)
    data: WholeBodyMixConfig = field(default_factory=WholeBodyMixConfig)
    targets: TargetConfig = field(default_factory=TargetConfig)
    solver: WholeBodySolverConfig = field(default_factory=WholeBodySolverConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        _require(_int(self.seed, 0) and self.seed < 2**63, "seed", "an integer in [0, 2**63)", self.seed)


def body135() -> WholeBodyTrainConfig:
    """OpenPose BODY_135 recipe: VGG-19 trunk, 480 crop, batch 10, Adam 3e-5, gamma 0.5 multistep, 1M iterations"""
    return WholeBodyTrainConfig(name="body135")


def body135_cpu() -> WholeBodyTrainConfig:
    """BODY_135 on a CPU: MobileNetV3 trunk from scratch, 256 crop, batch 8, Adam 1e-3 (warm-up 100), 3000 iterations"""
    return WholeBodyTrainConfig(
        name="body135_cpu",
        net=WholeBodyNetConfig.body135_cpu(),
        data=WholeBodyMixConfig(crop_size=256, eval_height=368, num_workers=2),
        solver=WholeBodySolverConfig(
            batch_size=8,
            base_lr=1e-3,
            stage_lr_mult=1.0,
            warmup_iters=100,
            steps=(2000, 2600),
            max_iter=3000,
            checkpoint_period=500,
            eval_period=1000,
        ),
    )


def body135_cpu_wholebody_only() -> WholeBodyTrainConfig:
    """body135_cpu trained on the whole-body labels only (the baseline of the multi-dataset mixture)"""
    base = body135_cpu()
    return dataclasses.replace(
        base,
        name="body135_cpu_wholebody_only",
        data=dataclasses.replace(base.data, kinds=("wholebody",), probabilities=(1.0,)),
    )


WHOLEBODY_PRESETS: dict[str, Callable[[], WholeBodyTrainConfig]] = {
    "body135": body135,
    "body135_cpu": body135_cpu,
    "body135_cpu_wholebody_only": body135_cpu_wholebody_only,
}


def wholebody_preset(name: str) -> WholeBodyTrainConfig:
    if name not in WHOLEBODY_PRESETS:
        raise ValueError(f"unknown whole-body preset {name!r}; choose one of: {', '.join(WHOLEBODY_PRESETS)}")
    return WHOLEBODY_PRESETS[name]()


def wholebody_config_from_dict(data: dict[str, Any]) -> WholeBodyTrainConfig:
    """Rebuild a config from ``to_dict`` output (a run's ``config.yaml``); unknown keys are errors."""
    config: WholeBodyTrainConfig = apply_overrides(WholeBodyTrainConfig(), data)
    return config


def wholebody_config_dict(config: WholeBodyTrainConfig) -> dict[str, Any]:
    """The YAML/JSON-ready dict of ``config``."""
    return to_dict(config)
