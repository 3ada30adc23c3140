"""Loading a detectron2 DensePose checkpoint as a densehuman model, and converting it to a densehuman checkpoint.

The config comes, in this order, from what the caller gives (a detectron2 YAML or a zoo name), from the
``config.yaml`` detectron2 writes beside its training checkpoints, from a model-zoo file name
(``model_final_<hash>.pkl``), or, failing all, from the tensors themselves (depth, widths, head type, decoder,
confidences and coarse channels all show in the names and shapes; the rest is the zoo's).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import save

from densehuman import atomic
from densehuman.config import Config, to_dict
from densehuman.engine.detectron2.config import UnsupportedModelError, config_from_detectron2, load_detectron2_yaml
from densehuman.engine.detectron2.reader import Detectron2Weights, read_detectron2_weights
from densehuman.engine.detectron2.weights import MappingReport, load_detectron2_weights
from densehuman.engine.detectron2.zoo import canonical_name, name_from_file, zoo_config
from densehuman.models.build import build_model
from densehuman.models.detector import Detector

DETECTRON2_SUFFIXES = (".pkl", ".pth", ".pt")


def is_detectron2_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` names a detectron2 weights file (by its suffix; densehuman writes ``.safetensors``)."""
    return Path(path).suffix.lower() in DETECTRON2_SUFFIXES


@dataclass(frozen=True)
class ImportedModel:
    """A detectron2 checkpoint loaded into a densehuman model (eval mode), with where its config came from."""

    config: Config
    model: Detector
    report: MappingReport
    config_source: str  # "config file X", "zoo name X", "inferred from the weights (zoo settings of X)"...
    iteration: int


def _unsupported_by_tensors(weights: Detectron2Weights) -> None:
    names = weights.tensors.keys()
    if any(".embedder." in n or "embed_lowres" in n or n.startswith("roi_heads.embedder") for n in names):
        raise UnsupportedModelError(
            f"{weights.path}: a continuous surface embedding (CSE) model; densehuman runs the chart-based (IUV) models"
        )
    if any(n.startswith("backbone.bottom_up.stage") or ".transition" in n for n in names):
        raise UnsupportedModelError(f"{weights.path}: an HRNet backbone; densehuman runs ResNet-FPN models")
    if not any(n.startswith("roi_heads.densepose_predictor.") for n in names):
        raise UnsupportedModelError(f"{weights.path}: no DensePose predictor (roi_heads.densepose_predictor.*)")


def infer_config(weights: Detectron2Weights) -> tuple[Config, str]:
    """A zoo config whose architecture and widths fit the tensors; and the zoo name it starts from."""
    t = weights.tensors
    path = weights.path

    def shape(name: str) -> tuple[int, ...]:
        if name not in t:
            raise ValueError(f"{path}: cannot infer the model from the weights: {name} is missing; pass --config")
        return tuple(t[name].shape)

    res4 = {int(m.group(1)) for n in t if (m := re.match(r"backbone\.bottom_up\.res4\.(\d+)\.", n))}
    depth = {6: 50, 23: 101, 36: 152}.get(len(res4))
    if depth is None:
        raise ValueError(f"{path}: {len(res4)} res4 blocks match no ResNet depth (50, 101, 152); pass --config")
    deeplab = any(n.startswith("roi_heads.densepose_head.ASPP.") for n in t)
    decoder = any(n.startswith("roi_heads.decoder.") for n in t)
    predictor = "roi_heads.densepose_predictor."
    coarse = shape(predictor + "ann_index_lowres.weight")[1]
    kappa = predictor + "kappa_u_lowres.weight" in t
    sigma = predictor + "sigma_2_lowres.weight" in t
    segm = predictor + "fine_segm_confidence_lowres.weight" in t
    confidence = ("WC2" if kappa else "WC1") if sigma else ""
    if segm:
        if not confidence:
            raise ValueError(f"{path}: segmentation confidences without UV confidences fit no zoo model; pass --config")
        confidence += "M"
    legacy = not decoder and coarse == 15
    name = f"R_{min(depth, 101)}_FPN" + ("_DL" if deeplab else "") + (f"_{confidence}" if confidence else "") + "_s1x"
    name += "_legacy" if legacy else ""
    if legacy and (deeplab or confidence):
        raise ValueError(f"{path}: a legacy head with DeepLab or confidences fits no zoo model; pass --config")
    base = zoo_config(name)
    convs = sorted(
        int(m.group(1)) for n in t if (m := re.match(r"roi_heads\.densepose_head\.body_conv_fcn(\d+)\.weight", n))
    )
    head = replace(
        base.model.densepose,
        num_stacked_convs=len(convs),
        conv_dim=shape(predictor + "ann_index_lowres.weight")[0],
        decoder=decoder,
        num_coarse_segm=coarse,
    )
    if decoder:
        head = replace(
            head,
            decoder_conv_dims=shape("roi_heads.decoder.p2.0.weight")[0],
            decoder_num_classes=shape("roi_heads.decoder.predictor.weight")[0],
        )
    backbone = replace(
        base.model.backbone,
        depth=depth,
        stem_out_channels=shape("backbone.bottom_up.stem.conv1.weight")[0],
        width_per_group=shape("backbone.bottom_up.res2.0.conv1.weight")[0],
        res2_out_channels=shape("backbone.bottom_up.res2.0.conv3.weight")[0],
    )
    num_classes = shape("roi_heads.box_predictor.cls_score.weight")[0] - 1
    box = replace(
        base.model.box_head,
        fc_dim=shape("roi_heads.box_head.fc1.weight")[0],
        num_classes=num_classes,
        # (4, D) deltas fit one class as well as class-agnostic regression; both decode the same then.
        class_agnostic=num_classes > 1 and shape("roi_heads.box_predictor.bbox_pred.weight")[0] == 4,
    )
    model = replace(
        base.model,
        backbone=backbone,
        fpn=replace(base.model.fpn, out_channels=shape("backbone.fpn_output2.weight")[0]),
        box_head=box,
        densepose=head,
    )
    return replace(base, model=model), base.name


def _config_name(path: Path) -> str:
    """A config's name: the file's stem (``densepose_rcnn_R_50_FPN_s1x.yaml``), or its folder's name for the
    ``config.yaml`` detectron2 writes into each training output folder."""
    if path.stem != "config":
        return path.stem
    return path.resolve().parent.name or "detectron2"


def resolve_config(weights: Detectron2Weights, config: str | Path | Config | None) -> tuple[Config, str]:
    """The config for a detectron2 checkpoint, and a phrase saying where it came from (see the module doc)."""
    if isinstance(config, Config):
        return config, f"config {config.name}"
    if config is not None:
        path = Path(config)
        if path.is_file():
            cfg = config_from_detectron2(load_detectron2_yaml(path), name=_config_name(path), source=str(path))
            return cfg, f"{path}"
        name = canonical_name(str(config))
        if name is not None:
            return zoo_config(name), f"model-zoo config {name}"
        raise FileNotFoundError(f"{config}: no such detectron2 config file, and not a DensePose model-zoo name")
    beside = weights.path.parent / "config.yaml"
    if beside.is_file():
        data = load_detectron2_yaml(beside)
        if isinstance(data.get("MODEL"), dict):  # a detectron2 dump, not some other tool's config.yaml
            return config_from_detectron2(data, name=_config_name(beside), source=str(beside)), f"{beside}"
    name = name_from_file(weights.path)
    if name is not None:
        return zoo_config(name), f"model-zoo config {name} (from the file name)"
    config_, name = infer_config(weights)
    return config_, f"inferred from the weights: {name} with the checkpoint's widths"


def load_detectron2_model(checkpoint: str | Path, config: str | Path | Config | None = None) -> ImportedModel:
    """Read a detectron2 DensePose checkpoint (``.pkl`` / ``.pth``) into a densehuman :class:`Detector` in eval mode.

    ``config``: a detectron2 config YAML (``_BASE_`` resolved), a model-zoo name such as
    ``densepose_rcnn_R_50_FPN_s1x``, or a densehuman ``Config`` (e.g. a preset); by default it is found as the
    module doc says. Raises :class:`UnsupportedModelError` for models densehuman does not run and
    ``WeightMismatchError`` (listing every tensor by name and shape) when the checkpoint does not fit the config.
    """
    weights = read_detectron2_weights(checkpoint)
    _unsupported_by_tensors(weights)
    cfg, where = resolve_config(weights, config)
    if config is None and where.startswith("inferred"):
        warnings.warn(f"{weights.path}: no config given; {where}. Pass --config for other settings", stacklevel=2)
    with torch.random.fork_rng(devices=[]):  # the initial values are all overwritten; keep the caller's RNG
        model = build_model(cfg.model)
    report = load_detectron2_weights(model, weights.tensors, str(weights.path))
    iteration = weights.extra.get("iteration", 0)
    return ImportedModel(cfg, model.eval(), report, where, int(iteration) if isinstance(iteration, int) else 0)


def convert_detectron2(
    checkpoint: str | Path, out: str | Path, config: str | Path | None = None, *, overwrite: bool = False
) -> ImportedModel:
    """Write a densehuman checkpoint (safetensors with the config in its metadata) of a detectron2 checkpoint."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True (--overwrite) to replace it")
    if out.suffix != ".safetensors":
        raise ValueError(f"{out}: densehuman checkpoints are .safetensors files")
    imported = load_detectron2_model(checkpoint, config)
    tensors = {k: v.detach().cpu().contiguous() for k, v in imported.model.state_dict().items()}
    meta = {
        "config": json.dumps(to_dict(imported.config)),
        "iteration": str(imported.iteration),
        "format": "densehuman-checkpoint-1",
        "converted_from": Path(checkpoint).name,
        "config_source": imported.config_source,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(out, save(tensors, metadata=meta))
    return imported
