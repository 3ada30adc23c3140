"""The parsing predictor: head features (R, D, s, s) -> part logits (R, C, S, S)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from densehuman.models.layers.conv import msra_fill


class ParsingPredictor(nn.Module):
    """``ConvTranspose2d(D, C, 4, stride 2)`` (s -> 2 s), then a bilinear resize to ``output_size`` (Parsing R-CNN's
    ``parsing_output``: 32 -> 64 -> 128, ``PRCNN.RESOLUTION``); kaiming-normal (fan_out) weights, zero bias."""

    def __init__(self, in_channels: int, num_classes: int, output_size: int = 128) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.output_size = output_size
        self.classifier = nn.ConvTranspose2d(in_channels, num_classes, 4, stride=2, padding=1)
        msra_fill(self.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(x)
        if logits.shape[-1] != self.output_size or logits.shape[-2] != self.output_size:
            size = (self.output_size, self.output_size)
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits
