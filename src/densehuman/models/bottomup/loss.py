"""Masked L2 loss of the BODY_135 network on every stage (``wholebody.md`` §2, "Training recipe").

Each stage's loss is ``sum(weight * (pred - target)^2) / (2 N)`` with ``N`` the batch size: the PAF weights for the
PAF stages, the heatmap weights for the confidence-map stages. The ``1 / (2 N)`` is Caffe's ``EuclideanLoss``
(``loss_weight: 1.0`` on each stage), kept so that the OpenPose recipe (Adam, lr 3e-5, L2 weight decay 5e-4 added
to the gradient) keeps its balance between the data term and the weight decay. Adam itself is invariant to the
scale, so a plain ``sum / N`` would only halve the weight decay's relative size.

OpenPose masks with Eltwise products before the Euclidean loss (``(w * pred - w * label)^2``), which is
``w^2 (pred - target)^2``; for the 0/1 weights of :func:`make_targets` (its defaults) that equals
``w (pred - target)^2``, which is what this computes for any weight.
"""

from __future__ import annotations

from torch import Tensor

from densehuman.models.bottomup.network import WholeBodyOutput


def masked_l2(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """``sum(weight * (pred - target)^2) / (2 * batch)``; all (B, C, h, w)."""
    if not pred.shape == target.shape == weight.shape:
        raise ValueError(
            f"shapes differ: pred {tuple(pred.shape)}, target {tuple(target.shape)}, weight {tuple(weight.shape)}"
        )
    return (weight * (pred - target).square()).sum() / (2 * pred.shape[0])


def wholebody_loss(
    output: WholeBodyOutput, pafs: Tensor, paf_weights: Tensor, heatmaps: Tensor, heatmap_weights: Tensor
) -> dict[str, Tensor]:
    """Per-stage losses ``paf_stage{s}`` and ``cm_stage{s}`` and their sum ``total``.

    ``pafs``/``paf_weights``: (B, 304, h, w); ``heatmaps``/``heatmap_weights``: (B, 135, h, w), stacked from
    :class:`densehuman.models.bottomup.targets.Targets`.
    """
    losses: dict[str, Tensor] = {}
    for s, pred in enumerate(output.pafs):
        losses[f"paf_stage{s}"] = masked_l2(pred, pafs, paf_weights)
    for s, pred in enumerate(output.heatmaps):
        losses[f"cm_stage{s}"] = masked_l2(pred, heatmaps, heatmap_weights)
    total = sum(losses.values())
    assert isinstance(total, Tensor)
    losses["total"] = total
    return losses
