"""The detector cut into the stages that quantization and ONNX export replace, with the Python between them kept.

A ``Detector`` runs: the trunk (backbone + neck) on the normalized batch; the RPN head's convolutions; the RPN's
anchor decoding, top-k and NMS (Python); RoIAlign (Python); the box head's convolutions / FCs and its predictor; box
decoding and NMS (Python); then per branch RoIAlign, an optional decoder, the head and the predictor. The stages are
the network parts: ``trunk``, ``rpn.rpn_head``, ``box_head.head``, ``box_head.predictor`` and, per branch k,
``extra_heads.k.decoder`` / ``.head`` / ``.predictor``. Everything else stays PyTorch code in float: anchors, box
coding, NMS and RoIAlign are the float islands "Making DensePose fast and light" keeps too.

``capture_stage_inputs`` runs the model once and records what each stage received: the example inputs that FX
quantization and ONNX export trace with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from densehuman.models.detector import Detector

TRUNK = "trunk"


class TrunkStage(nn.Module):
    """Holds a compiled trunk (a module mapping the normalized batch to the tuple of neck maps) where the detector
    expects its backbone: it returns the maps by name, and the detector's neck is removed."""

    def __init__(self, trunk: nn.Module, names: Sequence[str], shapes: dict[str, tuple[int, int]]) -> None:
        super().__init__()
        self.trunk = trunk
        self.names = tuple(names)
        self._shapes = dict(shapes)

    def output_shapes(self) -> dict[str, tuple[int, int]]:
        return dict(self._shapes)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        maps = self.trunk(x)
        return dict(zip(self.names, maps, strict=True))


class IndexedListInput(nn.Module):
    """``module`` (taking a list of ``count`` tensors, like the RPN head) in a form FX can trace: the list is
    indexed, never iterated."""

    def __init__(self, module: nn.Module, count: int) -> None:
        super().__init__()
        self.module = module
        self.count = count

    def forward(self, features: Sequence[Tensor]) -> Any:
        return self.module([features[k] for k in range(self.count)])


def traceable(module: nn.Module, example: tuple[Any, ...]) -> nn.Module:
    """``module`` wrapped so that FX can trace it on ``example`` (its positional inputs)."""
    if len(example) == 1 and isinstance(example[0], (list, tuple)):
        return IndexedListInput(module, len(example[0]))
    return module


def stage_names(model: Detector) -> list[str]:
    """The stages of ``model`` in the order they run."""
    names = [TRUNK, "rpn.rpn_head", "box_head.head", "box_head.predictor"]
    for k, branch in enumerate(model.extra_heads):
        if getattr(branch, "decoder", None) is not None:
            names.append(f"extra_heads.{k}.decoder")
        names += [f"extra_heads.{k}.head", f"extra_heads.{k}.predictor"]
    return names


def get_stage(model: Detector, name: str) -> nn.Module:
    module: nn.Module = model
    for part in name.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)  # type: ignore[index]
    return module


def set_stage(model: Detector, name: str, module: nn.Module) -> None:
    """Replace a stage (``trunk``: the backbone becomes ``module``, a ``TrunkStage``, and the neck goes)."""
    if name == TRUNK:
        model.backbone = module  # type: ignore[assignment]
        model.neck = None
        return
    parent_name, _, leaf = name.rpartition(".")
    parent = get_stage(model, parent_name) if parent_name else model
    setattr(parent, leaf, module)


def trunk_output_names(model: Detector) -> tuple[str, ...]:
    return tuple((model.neck or model.backbone).output_shapes())


@torch.no_grad()
def capture_stage_inputs(model: Detector, images: Sequence[Tensor]) -> dict[str, tuple[Any, ...]]:
    """The positional inputs each stage receives when ``model.predict(images)`` runs (the first call of each;
    the trunk's is the normalized, padded batch). Stages that never run (no detection reached a branch) are
    missing: give images on which the model detects something."""
    captured: dict[str, tuple[Any, ...]] = {}
    handles = []

    def recorder(name: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            captured.setdefault(name, args)

        return hook

    for name in stage_names(model):
        module = model.backbone if name == TRUNK else get_stage(model, name)
        handles.append(module.register_forward_pre_hook(recorder(name)))
    try:
        model.predict(list(images), score_threshold=0.0)
    finally:
        for handle in handles:
            handle.remove()
    return captured
