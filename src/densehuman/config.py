"""Frozen configuration dataclasses and their YAML / ``key=value`` overrides.

A configuration is data: presets (``densehuman.models.zoo``) build complete ``Config`` objects, and a YAML file or
``--set a.b=c`` only overrides fields of a preset. Unknown keys are errors that list the valid ones. Modules never
read a config: ``densehuman.models.build`` is the one place a config turns into modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from densehuman.config_overrides import (
    ConfigValueError,
    apply_config_file,
    apply_overrides,
    json_ready,
    load_overrides,
    parse_set,
    to_dict,
)

__all__ = [
    "ConfigValueError",
    "apply_config_file",
    "apply_overrides",
    "from_dict",
    "json_ready",
    "load_overrides",
    "parse_set",
    "to_dict",
]


def _check(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigValueError(name, f"must be {rule}, got {value!r}")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_ranges(obj: Any, rules: dict[str, tuple[str, Any]]) -> None:
    """``rules``: field -> (description, predicate) for the fields of a frozen config dataclass."""
    for name, (rule, predicate) in rules.items():
        value = getattr(obj, name)
        _check(predicate(value), name, rule, value)


@dataclass(frozen=True)
class BackboneConfig:
    kind: str = "resnet"  # "resnet" (detectron2-style ResNet) or "timm"
    depth: int = 50  # resnet: 50 or 101
    timm_name: str = ""  # timm: any model with features_only support, e.g. "resnet18", "mobilenetv3_large_100"
    pretrained: bool = False  # timm: download ImageNet weights (needs internet access)
    feature_location: str = ""  # timm: "" (block outputs) or "expansion" (before the pointwise-linear projection)
    freeze_bn: bool = False  # timm: frozen batch norms (fine-tuning ImageNet weights with small batches)
    freeze_at: int = 2  # resnet: freeze the stem (1) and res2 (2) as detectron2 does
    stride_in_1x1: bool = True  # resnet: caffe-style blocks (detectron2 MSRA checkpoints)
    width_per_group: int = 64
    stem_out_channels: int = 64
    res2_out_channels: int = 256


@dataclass(frozen=True)
class FPNConfig:
    out_channels: int = 256
    kind: str = "fpn"  # "fpn" (detectron2's) or "bifpn" (one BiFPN layer, "Making DensePose fast and light")

    def __post_init__(self) -> None:
        _check(self.kind in ("fpn", "bifpn"), "kind", "'fpn' or 'bifpn'", self.kind)


@dataclass(frozen=True)
class RPNConfig:
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    anchor_offset: float = 0.0  # in strides; detectron2's default is 0.5, its DensePose configs use 0.0
    pre_nms_topk_train: int = 2000
    pre_nms_topk_test: int = 1000
    post_nms_topk_train: int = 1000
    post_nms_topk_test: int = 1000
    nms_thresh: float = 0.7
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5

    def __post_init__(self) -> None:
        _check_ranges(
            self,
            {
                "pre_nms_topk_train": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "pre_nms_topk_test": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "post_nms_topk_train": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "post_nms_topk_test": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "nms_thresh": ("a number in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
                "batch_size_per_image": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "positive_fraction": ("a number in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
            },
        )


@dataclass(frozen=True)
class BoxHeadConfig:
    num_classes: int = 1
    fc_dim: int = 1024
    num_fc: int = 2
    num_conv: int = 0  # 3x3 convolutions before the FCs ("conv box head": 2 convolutions, no FC)
    conv_dim: int = 256
    pooler_resolution: int = 7
    pooler_sampling_ratio: int = 2  # the DensePose configs pool boxes with "ROIAlign", sampling 2
    pooler_aligned: bool = False
    batch_size_per_image: int = 512
    positive_fraction: float = 0.25
    score_thresh_test: float = 0.05
    nms_thresh_test: float = 0.5
    detections_per_image: int = 100
    class_agnostic: bool = False  # one set of box deltas for all classes (detectron2 CLS_AGNOSTIC_BBOX_REG)

    def __post_init__(self) -> None:
        _check_ranges(
            self,
            {
                "num_classes": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "batch_size_per_image": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "positive_fraction": ("a number in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
                "score_thresh_test": ("a number in [0, 1]", lambda v: _finite(v) and 0 <= v <= 1),
                "nms_thresh_test": ("a number in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
                "detections_per_image": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
            },
        )


@dataclass(frozen=True)
class DensePoseHeadConfig:
    enabled: bool = True  # the branch is built (a parsing-only model turns it off)
    head: str = "v1convx"  # "v1convx" (8 convs), "deeplab" (ASPP + GroupNorm) or "gce" (Parsing R-CNN's GCE)
    num_stacked_convs: int = 8  # gce: the convolutions after the GCE module (PBD)
    conv_dim: int = 512
    nonlocal_block: bool = False  # deeplab, gce
    nonlocal_ratio: float = 1.0  # gce: the non-local block's inner width / conv_dim
    aspp_dim: int = 256  # gce: width of each ASPP branch
    norm: str = ""  # gce: "" (Parsing R-CNN) or "GN" in every convolution
    pss: bool = False  # without the decoder: pool every box from P2 (Parsing R-CNN's PSS) instead of by FPN level
    decoder: bool = True  # panoptic-FPN decoder (pool one stride-4 map) instead of multi-level pooling
    decoder_conv_dims: int = 256
    decoder_num_classes: int = 256
    pooler_resolution: int = 28
    pooler_sampling_ratio: int = 2
    pooler_aligned: bool = False  # "ROIAlign" in the base DensePose config; True = "ROIAlignV2"
    heatmap_size: int = 112  # 2 * up_scale * pooler_resolution
    up_scale: int = 2  # bilinear upsampling after the predictor's deconvolutions (DensePoseFnL's mobile models: 1)
    num_coarse_segm: int = 2  # 2 (foreground) or 15 (14 parts + background, the paper's setting)
    fg_iou_threshold: float = 0.7
    index_weight: float = 5.0  # coarse segmentation S
    part_weight: float = 1.0  # fine segmentation I
    point_regression_weight: float = 0.01  # U, V
    uv_confidence: str = ""  # "", "iid_iso" (WC1) or "indep_aniso" (WC2)
    segm_confidence: bool = False  # the M variants
    confidence_epsilon: float = 0.01


@dataclass(frozen=True)
class ParsingHeadConfig:
    """Parsing R-CNN's human part segmentation branch (``shared/reference/parsing.md`` section 1). The defaults are
    the paper's CIHP model; the ablation switches of its Tables 1-4 are ``pss``, ``pooler_resolution`` (ERR),
    ``aspp`` and ``nonlocal_block`` (GCE) and ``num_convs_before`` / ``num_convs_after`` (PBD)."""

    enabled: bool = False
    dataset: str = "cihp"  # the class table: "cihp" (20 classes) or "mhp" (MHP v2.0, 59 classes)
    pss: bool = True  # proposals separation sampling: every box pooled from P2 (False: by FPN level, P2..P5)
    pooler_resolution: int = 32  # ERR: 32 (the paper), 14 (Mask R-CNN's)
    pooler_sampling_ratio: int = 2
    pooler_aligned: bool = False  # Parsing R-CNN's ROIAlign (aligned=False)
    aspp: bool = True
    aspp_dim: int = 256
    nonlocal_block: bool = True
    conv_dim: int = 512
    num_convs_before: int = 0
    num_convs_after: int = 4  # PBD
    norm: str = ""  # "" (the paper) or "GN" in every head convolution (RP-R-CNN; helps training from scratch)
    output_size: int = 128  # PRCNN.RESOLUTION
    loss_weight: float = 2.0
    fg_iou_threshold: float = 0.5
    rois_per_image: int = 16  # the decoupled batch: at most this many positive RoIs per image
    flip_test: bool = False  # test-time augmentation: the flipped image's probabilities averaged in

    def __post_init__(self) -> None:
        positive = ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1)
        nonneg = ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0)
        _check_ranges(
            self,
            {
                "dataset": ("'cihp' or 'mhp'", lambda v: v in ("cihp", "mhp")),
                "pooler_resolution": positive,
                "pooler_sampling_ratio": nonneg,
                "aspp_dim": positive,
                "conv_dim": positive,
                "num_convs_before": nonneg,
                "num_convs_after": nonneg,
                "norm": ("'' or 'GN'", lambda v: v in ("", "GN")),
                "output_size": positive,
                "loss_weight": ("a finite number >= 0", lambda v: _finite(v) and v >= 0),
                "fg_iou_threshold": ("a number in [0, 1]", lambda v: _finite(v) and 0 <= v <= 1),
                "rois_per_image": positive,
            },
        )


@dataclass(frozen=True)
class ModelConfig:
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    fpn: FPNConfig = field(default_factory=FPNConfig)
    rpn: RPNConfig = field(default_factory=RPNConfig)
    box_head: BoxHeadConfig = field(default_factory=BoxHeadConfig)
    densepose: DensePoseHeadConfig = field(default_factory=DensePoseHeadConfig)
    parsing: ParsingHeadConfig = field(default_factory=ParsingHeadConfig)
    input_format: str = "BGR"  # detectron2 checkpoints take BGR 0..255
    pixel_mean: tuple[float, float, float] = (103.530, 116.280, 123.675)
    pixel_std: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class InputConfig:
    min_size_train: tuple[int, ...] = (640, 672, 704, 736, 768, 800)
    max_size_train: int = 1333
    min_size_test: int = 800
    max_size_test: int = 1333
    flip_prob: float = 0.5
    color_jitter: float = 0.0  # brightness / contrast / saturation strength (0: off)

    def __post_init__(self) -> None:
        _check(
            bool(self.min_size_train) and all(isinstance(v, int) and v >= 1 for v in self.min_size_train),
            "min_size_train",
            "a non-empty list of integers >= 1",
            self.min_size_train,
        )
        _check_ranges(
            self,
            {
                "max_size_train": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "min_size_test": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "max_size_test": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "flip_prob": ("a number in [0, 1]", lambda v: _finite(v) and 0 <= v <= 1),
                "color_jitter": ("a number in [0, 1]", lambda v: _finite(v) and 0 <= v <= 1),
            },
        )


@dataclass(frozen=True)
class SolverConfig:
    ims_per_batch: int = 16
    base_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 1000
    warmup_factor: float = 0.1
    steps: tuple[int, ...] = (100_000, 120_000)
    gamma: float = 0.1
    max_iter: int = 130_000
    clip_grad_norm: float = 0.0  # 0: off
    amp: bool = True  # mixed precision, on CUDA only
    checkpoint_period: int = 5000
    eval_period: int = 0  # 0: only at the end
    log_period: int = 20

    def __post_init__(self) -> None:
        _check_ranges(
            self,
            {
                "ims_per_batch": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "base_lr": ("a finite number > 0", lambda v: _finite(v) and v > 0),
                "momentum": ("a number in [0, 1)", lambda v: _finite(v) and 0 <= v < 1),
                "weight_decay": ("a finite number >= 0", lambda v: _finite(v) and v >= 0),
                "warmup_iters": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
                "warmup_factor": ("a number in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
                "gamma": ("a finite number > 0", lambda v: _finite(v) and v > 0),
                "max_iter": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
                "clip_grad_norm": ("a finite number >= 0", lambda v: _finite(v) and v >= 0),
                "checkpoint_period": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
                "eval_period": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
                "log_period": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
            },
        )
        _check(
            all(isinstance(v, int) and v >= 0 for v in self.steps) and list(self.steps) == sorted(self.steps),
            "steps",
            "a list of increasing iterations >= 0",
            self.steps,
        )


@dataclass(frozen=True)
class DataConfig:
    # "densepose_coco": DensePose-COCO JSON + images (with the synthetic CIHP maps when the model parses);
    # "cihp" / "mhp": a CIHP or MHP v2.0 folder (people and boxes from the parsing maps)
    format: str = "densepose_coco"
    train_split: str = "train"
    val_split: str = "val"
    num_workers: int = 2
    eval_max_images: int = 0  # 0: the whole validation split
    # Real DensePose-COCO: JSON files and image folders (relative to --data, or absolute); empty: the synthetic
    # layout annotations/densepose_{split}.json over images/{split}.
    train_json: str = ""
    train_images: str = ""
    val_json: str = ""
    val_images: str = ""

    def __post_init__(self) -> None:
        nonneg = ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0)
        formats = ("densepose_coco", "cihp", "mhp")
        _check_ranges(
            self,
            {
                "num_workers": nonneg,
                "eval_max_images": nonneg,
                "format": ("one of " + ", ".join(formats), lambda v: v in formats),
            },
        )


@dataclass(frozen=True)
class QuantizationConfig:
    # Quantization-aware training (``densehuman train``): fake-quantize the model's stages from the first iteration
    # (start from float weights with --init, as the paper did), and write model_final.int8.zip at the end.
    qat: bool = False
    backend: str = "x86"  # PyTorch's quantized engine: "x86" (fbgemm + oneDNN) or "qnnpack" (ARM)
    # Batch-norm statistics: frozen from the start (DensePoseFnL's freeze_bn_stats right after prepare_qat).
    freeze_bn_stats: bool = True

    def __post_init__(self) -> None:
        backends = ("x86", "fbgemm", "qnnpack", "onednn")
        _check_ranges(self, {"backend": ("one of " + ", ".join(backends), lambda v: v in backends)})


@dataclass(frozen=True)
class Config:
    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    input: InputConfig = field(default_factory=InputConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    data: DataConfig = field(default_factory=DataConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    seed: int = 0


def from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a ``Config`` from ``to_dict`` output (e.g. a checkpoint's stored config)."""
    config: Config = apply_overrides(Config(), data)
    return config
