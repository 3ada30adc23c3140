"""Per-RoI parsing targets, as Parsing R-CNN's ``parsing_on_boxes``: the person's full-image label map cropped at
the rounded proposal box and resized nearest to the output grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def parsing_targets(labels: torch.Tensor, proposals: torch.Tensor, size: int) -> torch.Tensor:
    """(K, size, size) int64 targets of K proposals (K, 4) xyxy whose persons' maps are ``labels`` (K, H, W).

    The box is rounded (``torch.round``, so halves go to even) and clipped to the image; the crop
    ``[y0:y1, x0:x1]`` is resized with nearest-neighbour sampling at ``floor(i * crop / size)`` (OpenCV's
    ``INTER_NEAREST``, which the official code uses). A crop left empty by the clipping gives background.
    """
    if labels.shape[0] != proposals.shape[0]:
        raise ValueError(f"{labels.shape[0]} label maps for {proposals.shape[0]} proposals")
    height, width = labels.shape[-2:]
    out = torch.zeros((len(proposals), size, size), dtype=torch.int64, device=labels.device)
    boxes = proposals.detach().round().to(torch.int64)
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    for k, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        if x1 <= x0 or y1 <= y0:
            continue
        crop = labels[k, y0:y1, x0:x1]
        rows = (torch.arange(size, device=labels.device) * (y1 - y0)) // size
        cols = (torch.arange(size, device=labels.device) * (x1 - x0)) // size
        out[k] = crop[rows[:, None], cols[None, :]].to(torch.int64)
    return out


def flip_logits(logits: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """Scores of the horizontally flipped image, brought back: flipped along x and their left/right classes
    swapped (``permutation[c]`` is class c's mirror)."""
    return logits.flip(-1)[:, permutation]


def interpolate_nearest(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) integer maps resized nearest (for the transforms: labels are never blended)."""
    if labels.numel() == 0:
        return labels.new_zeros((labels.shape[0], *size))
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].to(labels.dtype)
