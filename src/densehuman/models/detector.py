"""The two-stage detector (detectron2's ``GeneralizedRCNN``): normalize and pad, backbone, neck, RPN, box head
and any number of RoI branches (DensePose) that run on the foreground proposals in training and on the detected
boxes at inference.

Images come in as RGB 0..255 and boxes are xyxy pixels of those images; the detector never resizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from densehuman.models.backbones import Backbone
from densehuman.models.box_head import BoxHead, select_foreground
from densehuman.models.instances import Prediction, Targets
from densehuman.models.necks import FPN, BiFPN
from densehuman.models.rpn import RPN


class RoIBranch(Protocol):
    """A per-instance task on RoI features (DensePose, parsing); an ``nn.Module`` in practice.

    ``name`` is the ``Prediction`` field its outputs go to. ``losses`` gets, per image, the foreground proposals
    sampled by the box head (K, 4) and the index (K,) of the GT box each is matched to in ``targets[i]``
    (detectron2's ``select_foreground_proposals``), and the generator of the run's sampling; it returns
    ``{"loss_<branch>_<term>": scalar}``. ``predict`` gets the detected boxes per image and returns one result per
    image.
    """

    name: str
    in_features: tuple[str, ...]

    def losses(
        self,
        features: dict[str, Tensor],
        proposals: list[Tensor],
        matched: list[Tensor],
        targets: list[Targets],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]: ...

    def predict(self, features: dict[str, Tensor], boxes: list[Tensor]) -> list[Any]: ...


class Detector(nn.Module):
    """Faster R-CNN with FPN plus RoI branches, with detectron2's behaviour and parameter layout.

    Args:
        backbone: a :class:`Backbone` (``ResNet`` or ``TimmBackbone``).
        neck: an :class:`FPN` or :class:`BiFPN` over the backbone outputs, or None to feed the backbone maps directly.
        rpn / box_head: built for the neck's output names, channels and strides.
        extra_heads: :class:`RoIBranch` modules; their feature names must be neck outputs.
        pixel_mean / pixel_std: per channel, in ``input_format`` order and 0..255 units (detectron2 checkpoints:
            BGR, mean (103.530, 116.280, 123.675), std 1).
        input_format: ``"BGR"`` flips the RGB input images before normalizing.
        size_divisibility: pad the batch to a multiple of this (the coarsest FPN input stride).
    """

    pixel_mean: Tensor  # (3, 1, 1)
    pixel_std: Tensor  # (3, 1, 1)

    def __init__(
        self,
        backbone: Backbone,
        neck: FPN | BiFPN | None,
        rpn: RPN,
        box_head: BoxHead,
        extra_heads: Sequence[RoIBranch] = (),
        pixel_mean: Sequence[float] = (103.530, 116.280, 123.675),
        pixel_std: Sequence[float] = (1.0, 1.0, 1.0),
        input_format: str = "BGR",
        size_divisibility: int = 32,
    ) -> None:
        super().__init__()
        if input_format not in ("BGR", "RGB"):
            raise ValueError(f"input_format must be 'BGR' or 'RGB', got {input_format!r}")
        if len(pixel_mean) != 3 or len(pixel_std) != 3:
            raise ValueError("pixel_mean and pixel_std need 3 values each")
        self.backbone = backbone
        self.neck = neck
        self.rpn = rpn
        self.box_head = box_head
        available = set((neck or backbone).output_shapes())
        heads: list[RoIBranch] = []
        for head in extra_heads:
            if not isinstance(head, nn.Module):
                raise ValueError(f"extra heads must be nn.Module instances, got {type(head).__name__}")
            missing = set(head.in_features) - available
            if missing:
                raise ValueError(f"{type(head).__name__} needs features {sorted(missing)}, have {sorted(available)}")
            heads.append(head)
        for module, names in (("rpn", rpn.in_features), ("box_head", box_head.in_features)):
            if set(names) - available:
                raise ValueError(f"{module} needs features {sorted(set(names) - available)}, have {sorted(available)}")
        self.extra_heads = nn.ModuleList([h for h in heads if isinstance(h, nn.Module)])
        self._branches = heads  # the same modules, typed as branches
        self.input_format = input_format
        self.size_divisibility = size_divisibility
        # Not persistent: detectron2 checkpoints do not carry them.
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(3, 1, 1), False)
        # Set by ``densehuman.models.fusion.prepare_for_inference``: the weights are folded for inference only,
        # and the RoI heads pool from copies of the maps in this memory format (None: the maps as they are).
        self.inference_only = False
        self.pooling_memory_format: torch.memory_format | None = None
        # Set by ``densehuman.export.quantize``: the backend and the stages that run in int8 (None: float).
        self.int8: dict[str, Any] | None = None
        # "int8" / "onnx" for a model loaded from an export (``densehuman.export``), None otherwise.
        self.exported: str | None = None

    def train(self, mode: bool = True) -> Detector:
        if mode and self.inference_only:
            raise RuntimeError(
                "this Detector was prepared for inference (prepare_for_inference folded its frozen batch norms into "
                "the convolutions), so it cannot train; build the model and load the checkpoint again to train"
            )
        return super().train(mode)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess(self, images: Sequence[Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        """RGB (3, H, W) images (uint8 or float, 0..255) -> normalized (B, 3, Hp, Wp) batch padded with zeros to a
        multiple of ``size_divisibility`` (after normalizing, as detectron2), and the (H, W) of each image."""
        if not images:
            raise ValueError("preprocess needs at least one image")
        normalized = []
        for image in images:
            if image.dim() != 3 or image.shape[0] != 3:
                raise ValueError(f"images must be (3, H, W) RGB tensors, got shape {tuple(image.shape)}")
            x = image.to(self.device, torch.float32)
            if self.input_format == "BGR":
                x = x.flip(0)
            normalized.append((x - self.pixel_mean) / self.pixel_std)
        sizes = [(int(x.shape[1]), int(x.shape[2])) for x in normalized]
        d = max(self.size_divisibility, 1)
        height = -(-max(h for h, _ in sizes) // d) * d
        width = -(-max(w for _, w in sizes) // d) * d
        batch = torch.stack([F.pad(x, (0, width - x.shape[2], 0, height - x.shape[1])) for x in normalized])
        return batch, sizes

    def features(self, batch: Tensor) -> dict[str, Tensor]:
        """Backbone (+ neck) maps of a preprocessed batch."""
        maps = self.backbone(batch)
        return dict(maps) if self.neck is None else self.neck(maps)

    def forward(
        self, images: Sequence[Tensor], targets: Sequence[Targets], generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Training losses: ``loss_rpn_cls``, ``loss_rpn_loc``, ``loss_cls``, ``loss_box_reg`` and the extra heads'.

        ``generator`` drives the anchor and proposal sampling (torch's global generator when None).
        """
        if not self.training:
            raise RuntimeError("Detector.forward computes training losses: call model.train() first")
        if len(images) != len(targets):
            raise ValueError(f"got {len(images)} images but {len(targets)} targets")
        batch, sizes = self.preprocess(images)
        targets = [t.to(self.device) for t in targets]
        features = self.features(batch)
        proposals, losses = self.rpn(features, sizes, targets, generator)
        box_losses, sampled = self.box_head.losses(features, proposals, targets, generator)
        losses.update(box_losses)
        if self._branches:
            fg_boxes, fg_matched = select_foreground(sampled, self.box_head.num_classes)
            for head in self._branches:
                head_losses = head.losses(features, fg_boxes, fg_matched, targets, generator=generator)
                clash = set(head_losses) & set(losses)
                if clash:
                    raise ValueError(f"{type(head).__name__} returns loss names already used: {sorted(clash)}")
                losses.update(head_losses)
        return losses

    @torch.no_grad()
    def predict(
        self, images: Sequence[Tensor], score_threshold: float | None = None, flip_test: bool = False
    ) -> list[Prediction]:
        """Detections per image (boxes in the pixels of the given images, scores decreasing), each branch's output
        in the ``Prediction`` field of its name. Needs eval mode (``model.eval()``).

        ``flip_test``: branches that support it (parsing) also see the horizontally flipped images and average the
        two (test-time augmentation); the detections themselves come from the images as given."""
        if self.training:
            raise RuntimeError("Detector.predict needs eval mode: call model.eval() first")
        batch, sizes = self.preprocess(images)
        features = self.features(batch)
        proposals, _ = self.rpn(features, sizes)
        if self.pooling_memory_format is not None:  # one copy shared by the box head and the branches
            features = {k: v.contiguous(memory_format=self.pooling_memory_format) for k, v in features.items()}
        detections = self.box_head.predict(features, proposals, sizes, score_threshold)
        predictions = [Prediction(boxes, scores, classes) for boxes, scores, classes in detections]
        boxes = [p.boxes for p in predictions]
        flipped: dict[str, Tensor] | None = None
        for head in self._branches:
            if flip_test and hasattr(head, "flip_permutation"):
                if flipped is None:
                    flipped = self.features(self.preprocess([image.flip(-1) for image in images])[0])
                outputs = head.predict(features, boxes, flipped=flipped, widths=[w for _, w in sizes])  # type: ignore[call-arg]
            else:
                outputs = head.predict(features, boxes)
            for prediction, output in zip(predictions, outputs, strict=True):
                setattr(prediction, head.name, output)
        return predictions


def detectron2_key(name: str) -> str | None:
    """The :class:`Detector` parameter name of a detectron2 GeneralizedRCNN state-dict key, for the generic
    parts (backbone, FPN, RPN, box head); None for keys of other heads (``roi_heads.densepose_*``)."""
    prefixes: Mapping[str, str] = {
        "backbone.bottom_up.": "backbone.",
        "backbone.fpn_": "neck.fpn_",
        "proposal_generator.": "rpn.",
        "roi_heads.box_head.": "box_head.head.",
        "roi_heads.box_predictor.": "box_head.predictor.",
    }
    for old, new in prefixes.items():
        if name.startswith(old):
            return new + name[len(old) :]
    return None
