"""detectron2 DensePose config YAML -> a densehuman ``Config``.

A detectron2 config file holds only what differs from its defaults (plus ``_BASE_`` files that it extends), or, when
detectron2 dumped it (``config.yaml`` of a training run), every key. Both read the same way here: ``_BASE_`` files
are merged first (paths relative to the including file), and a key that is absent takes detectron2's default (the
``DEFAULTS`` table: detectron2's ``get_cfg()`` plus DensePose's ``add_densepose_config``, for the keys that matter).

Settings densehuman does not implement raise an error that names the key, its value and what is supported, so a
model is never silently built differently from the one the weights were trained in.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from densehuman.config import (
    BackboneConfig,
    BoxHeadConfig,
    Config,
    DensePoseHeadConfig,
    FPNConfig,
    InputConfig,
    ModelConfig,
    RPNConfig,
    SolverConfig,
)
from densehuman.engine.detectron2.defaults import DEFAULTS
from densehuman.engine.detectron2.known_keys import KNOWN_KEYS, OPEN_NODES
from densehuman.validation import InputError, read_yaml

RESNET_FEATURES = ["res2", "res3", "res4", "res5"]


class UnsupportedModelError(ValueError):
    """A detectron2 model densehuman cannot run (CSE, HRNet, animals, other heads); the message says why."""


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, recursively for nested mappings (detectron2's ``merge_from_other_cfg``)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_known_keys(data: Mapping[str, Any], source: str | Path) -> None:
    """Refuse keys detectron2's config does not have (detectron2 raises "Non-existent config key" for them): a
    misspelt key would otherwise be silently ignored and the model built from the defaults."""
    unknown: list[str] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if name in OPEN_NODES:
                continue
            if isinstance(value, Mapping) and name not in KNOWN_KEYS:
                walk(value, name + ".")
            elif name not in KNOWN_KEYS:
                unknown.append(name)

    walk(data, "")
    if unknown:
        raise InputError(
            source,
            f"{', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}: not a key of detectron2's DensePose "
            "config (detectron2 refuses it too: 'Non-existent config key'); check the spelling",
        )


def load_detectron2_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A detectron2 config file with its ``_BASE_`` chain merged in (not yet completed with the defaults)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such detectron2 config file")
    if path.resolve() in _seen:
        raise ValueError(f"{path}: _BASE_ files include each other in a loop")
    data = read_yaml(path, "detectron2 config file")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level of a detectron2 config must be a mapping")
    base_name = data.pop("_BASE_", None)
    check_known_keys(data, path)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise ValueError(f"{path}: _BASE_ must be a file name, got {base_name!r}")
    if base_name.startswith(("detectron2://", "http://", "https://")):
        raise ValueError(
            f"{path}: _BASE_ {base_name!r} is not a local file; pass the fully resolved config (detectron2 writes "
            "one as config.yaml in each training output folder) or a model-zoo name"
        )
    base_path = Path(base_name).expanduser()
    if not base_path.is_absolute():
        base_path = path.parent / base_path
    if not base_path.is_file():
        raise FileNotFoundError(
            f"{path}: its _BASE_ file {base_path} is missing; put it beside the config, or pass a model-zoo name "
            "(e.g. densepose_rcnn_R_50_FPN_s1x) instead"
        )
    return merge(load_detectron2_yaml(base_path, (*_seen, path.resolve())), data)


class _Reader:
    """Typed access to ``A.B.C`` keys of a merged detectron2 config with the defaults behind it."""

    def __init__(self, cfg: Mapping[str, Any], source: str) -> None:
        self.cfg = merge(DEFAULTS, cfg)
        self.source = source

    def get(self, key: str) -> Any:
        node: Any = self.cfg
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise ValueError(f"{self.source}: {key} is missing")
            node = node[part]
        return node

    def number(self, key: str) -> float:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{self.source}: {key} must be a number, got {value!r}")
        return float(value)

    def integer(self, key: str) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{self.source}: {key} must be an integer, got {value!r}")
        return value

    def flag(self, key: str) -> bool:
        value = self.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
            return bool(value)  # detectron2 writes NONLOCAL_ON as 0 / 1
        if not isinstance(value, bool):
            raise ValueError(f"{self.source}: {key} must be true or false, got {value!r}")
        return value

    def numbers(self, key: str) -> tuple[float, ...]:
        value = self.get(key)
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ValueError(f"{self.source}: {key} must be a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)

    def require(self, key: str, allowed: Sequence[Any], what: str = "") -> Any:
        value = self.get(key)
        normalized = list(value) if isinstance(value, tuple) else value
        if normalized not in [list(a) if isinstance(a, tuple) else a for a in allowed]:
            choices = " or ".join(repr(a) for a in allowed)
            raise UnsupportedModelError(
                f"{self.source}: {key} = {value!r} is not supported{' (' + what + ')' if what else ''}; "
                f"densehuman runs {choices}"
            )
        return value


def _check_supported(r: _Reader) -> None:
    """Refuse what densehuman does not implement, with the reason."""
    predictor = str(r.get("MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME"))
    if "Embed" in predictor or "Cse" in predictor:
        raise UnsupportedModelError(
            f"{r.source}: a continuous surface embedding (CSE) model (PREDICTOR_NAME {predictor}); densehuman runs "
            "the chart-based (IUV) DensePose models"
        )
    backbone = r.get("MODEL.BACKBONE.NAME")
    if "hr" in str(backbone).lower():
        raise UnsupportedModelError(f"{r.source}: an HRNet backbone ({backbone}); densehuman runs ResNet-FPN models")
    r.require("MODEL.META_ARCHITECTURE", ["GeneralizedRCNN"])
    if not r.flag("MODEL.DENSEPOSE_ON"):
        raise UnsupportedModelError(f"{r.source}: MODEL.DENSEPOSE_ON is false: not a DensePose model")
    for key in ("MODEL.MASK_ON", "MODEL.KEYPOINT_ON", "MODEL.LOAD_PROPOSALS"):
        if r.flag(key):
            raise UnsupportedModelError(f"{r.source}: {key} is true; densehuman runs DensePose R-CNN without it")
    r.require("MODEL.BACKBONE.NAME", ["build_resnet_fpn_backbone"])
    r.require("MODEL.RESNETS.DEPTH", [50, 101, 152])
    r.require("MODEL.RESNETS.NUM_GROUPS", [1], "ResNeXt")
    r.require("MODEL.RESNETS.NORM", ["FrozenBN"])
    r.require("MODEL.RESNETS.RES5_DILATION", [1])
    r.require("MODEL.RESNETS.DEFORM_ON_PER_STAGE", [[False] * 4], "deformable convolutions")
    r.require("MODEL.RESNETS.OUT_FEATURES", [RESNET_FEATURES])
    r.require("MODEL.FPN.IN_FEATURES", [RESNET_FEATURES])
    r.require("MODEL.FPN.NORM", [""])
    r.require("MODEL.FPN.FUSE_TYPE", ["sum"])
    r.require("MODEL.PROPOSAL_GENERATOR.NAME", ["RPN"])
    r.require("MODEL.PROPOSAL_GENERATOR.MIN_SIZE", [0])
    r.require("MODEL.ANCHOR_GENERATOR.NAME", ["DefaultAnchorGenerator"])
    r.require("MODEL.RPN.HEAD_NAME", ["StandardRPNHead"])
    r.require("MODEL.RPN.IN_FEATURES", [["p2", "p3", "p4", "p5", "p6"]])
    r.require("MODEL.RPN.CONV_DIMS", [[-1]])
    r.require("MODEL.RPN.BBOX_REG_WEIGHTS", [[1.0, 1.0, 1.0, 1.0]])
    r.require("MODEL.ROI_HEADS.NAME", ["DensePoseROIHeads"])
    r.require("MODEL.ROI_HEADS.IN_FEATURES", [["p2", "p3", "p4", "p5"]])
    r.require("MODEL.ROI_BOX_HEAD.NAME", ["FastRCNNConvFCHead"])
    r.require("MODEL.ROI_BOX_HEAD.NUM_CONV", [0])
    r.require("MODEL.ROI_BOX_HEAD.NUM_FC", [2])
    r.require("MODEL.ROI_BOX_HEAD.NORM", [""])
    r.require("MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS", [[10.0, 10.0, 5.0, 5.0]])
    r.require("MODEL.ROI_BOX_HEAD.POOLER_TYPE", ["ROIAlign", "ROIAlignV2"])
    r.require("MODEL.ROI_DENSEPOSE_HEAD.NAME", ["DensePoseV1ConvXHead", "DensePoseDeepLabHead"])
    r.require(
        "MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME",
        ["DensePoseChartPredictor", "DensePoseChartWithConfidencePredictor", "DensePoseChartConfidencePredictor"],
    )
    r.require("MODEL.ROI_DENSEPOSE_HEAD.POOLER_TYPE", ["ROIAlign", "ROIAlignV2"])
    r.require("MODEL.ROI_DENSEPOSE_HEAD.NUM_PATCHES", [24])
    r.require("MODEL.ROI_DENSEPOSE_HEAD.DECONV_KERNEL", [4])
    r.require("MODEL.ROI_DENSEPOSE_HEAD.CONV_HEAD_KERNEL", [3])
    r.require("MODEL.ROI_DENSEPOSE_HEAD.UP_SCALE", [2])
    r.require("MODEL.ROI_DENSEPOSE_HEAD.DECODER_NORM", [""])
    r.require("MODEL.ROI_DENSEPOSE_HEAD.DECODER_COMMON_STRIDE", [4])
    r.require("MODEL.ROI_DENSEPOSE_HEAD.DEEPLAB.NORM", ["GN"])
    r.require("MODEL.ROI_DENSEPOSE_HEAD.UV_CONFIDENCE.TYPE", ["iid_iso", "indep_aniso"])
    r.require("INPUT.FORMAT", ["BGR", "RGB"])
    if r.flag("TEST.AUG.ENABLED"):
        raise UnsupportedModelError(f"{r.source}: TEST.AUG.ENABLED (test-time augmentation) is not implemented")


def _anchors(r: _Reader) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Anchor sizes (one per level p2..p6) and aspect ratios (shared by all levels)."""
    sizes = r.get("MODEL.ANCHOR_GENERATOR.SIZES")
    if not (isinstance(sizes, list) and len(sizes) == 5 and all(isinstance(s, list) and len(s) == 1 for s in sizes)):
        raise UnsupportedModelError(
            f"{r.source}: MODEL.ANCHOR_GENERATOR.SIZES = {sizes!r}; densehuman runs one anchor size per FPN level "
            "(five lists of one size, e.g. [[32], [64], [128], [256], [512]])"
        )
    ratios = r.get("MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS")
    if not (isinstance(ratios, list) and len(ratios) == 1 and isinstance(ratios[0], list)):
        raise UnsupportedModelError(
            f"{r.source}: MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = {ratios!r}; densehuman runs one list for all levels"
        )
    return tuple(int(s[0]) for s in sizes), tuple(float(a) for a in ratios[0])


def config_from_detectron2(cfg: Mapping[str, Any], *, name: str = "detectron2", source: str = "config") -> Config:
    """The densehuman ``Config`` of a detectron2 DensePose config (a dict as ``load_detectron2_yaml`` returns).

    ``source`` names the file in error messages. Raises :class:`UnsupportedModelError` for models densehuman does
    not run, and ``ValueError`` for malformed values.
    """
    r = _Reader(cfg, source)
    _check_supported(r)
    dp = "MODEL.ROI_DENSEPOSE_HEAD"
    uv_confidence = r.get(f"{dp}.UV_CONFIDENCE.TYPE") if r.flag(f"{dp}.UV_CONFIDENCE.ENABLED") else ""
    segm_confidence = r.flag(f"{dp}.SEGM_CONFIDENCE.ENABLED")
    uv_epsilon, segm_epsilon = r.number(f"{dp}.UV_CONFIDENCE.EPSILON"), r.number(f"{dp}.SEGM_CONFIDENCE.EPSILON")
    if uv_confidence and segm_confidence and uv_epsilon != segm_epsilon:
        raise UnsupportedModelError(f"{source}: different UV and segmentation confidence epsilons")
    epsilon = r.number(f"{dp}.SEGM_CONFIDENCE.EPSILON" if segm_confidence else f"{dp}.UV_CONFIDENCE.EPSILON")
    anchor_sizes, aspect_ratios = _anchors(r)
    model = ModelConfig(
        backbone=BackboneConfig(
            kind="resnet",
            depth=r.integer("MODEL.RESNETS.DEPTH"),
            freeze_at=r.integer("MODEL.BACKBONE.FREEZE_AT"),
            stride_in_1x1=r.flag("MODEL.RESNETS.STRIDE_IN_1X1"),
            width_per_group=r.integer("MODEL.RESNETS.WIDTH_PER_GROUP"),
            stem_out_channels=r.integer("MODEL.RESNETS.STEM_OUT_CHANNELS"),
            res2_out_channels=r.integer("MODEL.RESNETS.RES2_OUT_CHANNELS"),
        ),
        fpn=FPNConfig(out_channels=r.integer("MODEL.FPN.OUT_CHANNELS")),
        rpn=RPNConfig(
            anchor_sizes=anchor_sizes,
            aspect_ratios=aspect_ratios,
            anchor_offset=r.number("MODEL.ANCHOR_GENERATOR.OFFSET"),
            pre_nms_topk_train=r.integer("MODEL.RPN.PRE_NMS_TOPK_TRAIN"),
            pre_nms_topk_test=r.integer("MODEL.RPN.PRE_NMS_TOPK_TEST"),
            post_nms_topk_train=r.integer("MODEL.RPN.POST_NMS_TOPK_TRAIN"),
            post_nms_topk_test=r.integer("MODEL.RPN.POST_NMS_TOPK_TEST"),
            nms_thresh=r.number("MODEL.RPN.NMS_THRESH"),
            batch_size_per_image=r.integer("MODEL.RPN.BATCH_SIZE_PER_IMAGE"),
            positive_fraction=r.number("MODEL.RPN.POSITIVE_FRACTION"),
        ),
        box_head=BoxHeadConfig(
            num_classes=r.integer("MODEL.ROI_HEADS.NUM_CLASSES"),
            fc_dim=r.integer("MODEL.ROI_BOX_HEAD.FC_DIM"),
            pooler_resolution=r.integer("MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION"),
            pooler_sampling_ratio=r.integer("MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO"),
            pooler_aligned=r.get("MODEL.ROI_BOX_HEAD.POOLER_TYPE") == "ROIAlignV2",
            batch_size_per_image=r.integer("MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE"),
            positive_fraction=r.number("MODEL.ROI_HEADS.POSITIVE_FRACTION"),
            score_thresh_test=r.number("MODEL.ROI_HEADS.SCORE_THRESH_TEST"),
            nms_thresh_test=r.number("MODEL.ROI_HEADS.NMS_THRESH_TEST"),
            detections_per_image=r.integer("TEST.DETECTIONS_PER_IMAGE"),
            class_agnostic=r.flag("MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG"),
        ),
        densepose=DensePoseHeadConfig(
            head="deeplab" if r.get(f"{dp}.NAME") == "DensePoseDeepLabHead" else "v1convx",
            num_stacked_convs=r.integer(f"{dp}.NUM_STACKED_CONVS"),
            conv_dim=r.integer(f"{dp}.CONV_HEAD_DIM"),
            nonlocal_block=r.flag(f"{dp}.DEEPLAB.NONLOCAL_ON"),
            decoder=r.flag(f"{dp}.DECODER_ON"),
            decoder_conv_dims=r.integer(f"{dp}.DECODER_CONV_DIMS"),
            decoder_num_classes=r.integer(f"{dp}.DECODER_NUM_CLASSES"),
            pooler_resolution=r.integer(f"{dp}.POOLER_RESOLUTION"),
            pooler_sampling_ratio=r.integer(f"{dp}.POOLER_SAMPLING_RATIO"),
            pooler_aligned=r.get(f"{dp}.POOLER_TYPE") == "ROIAlignV2",
            heatmap_size=r.integer(f"{dp}.HEATMAP_SIZE"),
            num_coarse_segm=r.integer(f"{dp}.NUM_COARSE_SEGM_CHANNELS"),
            fg_iou_threshold=r.number(f"{dp}.FG_IOU_THRESHOLD"),
            index_weight=r.number(f"{dp}.INDEX_WEIGHTS"),
            part_weight=r.number(f"{dp}.PART_WEIGHTS"),
            point_regression_weight=r.number(f"{dp}.POINT_REGRESSION_WEIGHTS"),
            uv_confidence=uv_confidence,
            segm_confidence=segm_confidence,
            confidence_epsilon=epsilon,
        ),
        input_format=r.get("INPUT.FORMAT"),
        pixel_mean=_three(r, "MODEL.PIXEL_MEAN"),
        pixel_std=_three(r, "MODEL.PIXEL_STD"),
    )
    min_train = r.get("INPUT.MIN_SIZE_TRAIN")
    min_size_test = r.integer("INPUT.MIN_SIZE_TEST")
    if min_size_test <= 0:
        raise UnsupportedModelError(f"{source}: INPUT.MIN_SIZE_TEST = {min_size_test} (no resize) is not supported")
    clip = r.flag("SOLVER.CLIP_GRADIENTS.ENABLED") and r.get("SOLVER.CLIP_GRADIENTS.CLIP_TYPE") == "norm"
    solver = SolverConfig(
        ims_per_batch=r.integer("SOLVER.IMS_PER_BATCH"),
        base_lr=r.number("SOLVER.BASE_LR"),
        momentum=r.number("SOLVER.MOMENTUM"),
        weight_decay=r.number("SOLVER.WEIGHT_DECAY"),
        warmup_iters=r.integer("SOLVER.WARMUP_ITERS"),
        warmup_factor=r.number("SOLVER.WARMUP_FACTOR"),
        steps=tuple(int(s) for s in r.numbers("SOLVER.STEPS")),
        gamma=r.number("SOLVER.GAMMA"),
        max_iter=r.integer("SOLVER.MAX_ITER"),
        clip_grad_norm=r.number("SOLVER.CLIP_GRADIENTS.CLIP_VALUE") if clip else 0.0,
        amp=r.flag("SOLVER.AMP.ENABLED"),
        checkpoint_period=r.integer("SOLVER.CHECKPOINT_PERIOD"),
    )
    return Config(
        name=name,
        model=model,
        input=InputConfig(
            min_size_train=tuple(int(s) for s in (min_train if isinstance(min_train, list) else [min_train])),
            max_size_train=r.integer("INPUT.MAX_SIZE_TRAIN"),
            min_size_test=min_size_test,
            max_size_test=r.integer("INPUT.MAX_SIZE_TEST"),
        ),
        solver=solver,
        seed=max(r.integer("SEED"), 0),
    )


def _three(r: _Reader, key: str) -> tuple[float, float, float]:
    values = r.numbers(key)
    if len(values) != 3:
        raise ValueError(f"{r.source}: {key} needs 3 values, got {list(values)}")
    return (values[0], values[1], values[2])
