"""DensePose chart losses (detectron2's ``DensePoseChartLoss`` and ``DensePoseChartWithConfidenceLoss``) and the
sampling of predictions at annotated points.

Conventions (detectron2's ``modeling/losses/utils.py``): a GT point ``(x, y)`` in [0, 256] of its GT box lies at
``x0_gt + x * w_gt / 256`` in the image; it is *valid* for a proposal when it falls in ``[x0, x0 + w)`` x
``[y0, y0 + h)`` of the proposal, and its heatmap grid coordinate is ``(x_img - x0) * S / w`` where integer ``k`` is
the position of heatmap cell ``k`` (no half-pixel shift). Predictions are read there by bilinear interpolation
between the clamped neighbour cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from densehuman.models.branches.densepose.predictor import UVConfidence
from densehuman.models.instances import DensePoseOutput, DensePoseTarget

_SEGM_GRID = 256.0  # annotations live on a 256 x 256 grid over the GT box


def _xywh(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x0, y0, x1, y1 = boxes.unbind(dim=-1)
    return x0, y0, x1 - x0, y1 - y0


def _axis(
    v_norm: torch.Tensor,
    v0_src: torch.Tensor,
    size_src: torch.Tensor,
    v0_dst: torch.Tensor,
    size_dst: torch.Tensor,
    n: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One axis of detectron2's ``_linear_interpolation_utilities``: (lo, hi, weight of hi, valid)."""
    v = v0_src + v_norm * size_src / _SEGM_GRID
    valid = (v - v0_dst >= 0) & (v - v0_dst < size_dst)
    grid = (v - v0_dst) * n / size_dst
    lo = grid.floor().long().clamp(min=0, max=n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    weight = torch.minimum(hi.to(grid.dtype), grid) - lo.to(grid.dtype)
    return lo, hi, weight, valid


@dataclass(frozen=True)
class PointSampling:
    """Where P annotated points fall on the (H, W) heatmaps of their proposals.

    ``roi`` (P,) is the row of the point's proposal in the predictor outputs; ``x_lo/x_hi/y_lo/y_hi`` (P,) are the
    neighbour cells (clamped to the grid), ``x_w/y_w`` (P,) the weights of the ``hi`` neighbours, ``valid`` (P,)
    whether the point lies inside its proposal.
    """

    roi: torch.Tensor
    x_lo: torch.Tensor
    x_hi: torch.Tensor
    y_lo: torch.Tensor
    y_hi: torch.Tensor
    x_w: torch.Tensor
    y_w: torch.Tensor
    valid: torch.Tensor

    def sample(self, maps: torch.Tensor, channel: torch.Tensor | None = None) -> torch.Tensor:
        """Bilinear values of ``maps`` (R, C, H, W) at the points: (P,) from channel ``channel`` (P,) of each
        point's map, or (P, C) with all channels when ``channel`` is None."""
        c: torch.Tensor | slice = slice(None) if channel is None else channel
        x_w, y_w = self.x_w, self.y_w
        if channel is None:
            x_w, y_w = x_w[:, None], y_w[:, None]
        return (
            maps[self.roi, c, self.y_lo, self.x_lo] * ((1 - x_w) * (1 - y_w))
            + maps[self.roi, c, self.y_lo, self.x_hi] * (x_w * (1 - y_w))
            + maps[self.roi, c, self.y_hi, self.x_lo] * ((1 - x_w) * y_w)
            + maps[self.roi, c, self.y_hi, self.x_hi] * (x_w * y_w)
        )


def map_points_to_heatmap(
    x: torch.Tensor,
    y: torch.Tensor,
    gt_boxes: torch.Tensor,
    proposal_boxes: torch.Tensor,
    roi: torch.Tensor,
    height: int,
    width: int,
) -> PointSampling:
    """Sampling positions of points ``x, y`` (P,) in [0, 256] of their GT boxes (P, 4 xyxy) on the
    ``height x width`` heatmaps of their proposals (P, 4 xyxy); ``roi`` (P,) is each point's proposal row."""
    gx0, gy0, gw, gh = _xywh(gt_boxes)
    px0, py0, pw, ph = _xywh(proposal_boxes)
    x_lo, x_hi, x_w, x_valid = _axis(x, gx0, gw, px0, pw, width)
    y_lo, y_hi, y_w, y_valid = _axis(y, gy0, gh, py0, ph, height)
    return PointSampling(roi, x_lo, x_hi, y_lo, y_hi, x_w, y_w, x_valid & y_valid)


def resample_segm_to_proposals(
    segm: torch.Tensor, gt_boxes: torch.Tensor, proposal_boxes: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Label maps (N, h, w) over the GT boxes (N, 4 xyxy) -> (N, height, width) int64 over the proposals (N, 4).

    detectron2's ``resample_data``: nearest ``grid_sample`` with align_corners=True (the map's corner cells sit on
    the box edges), output cell ``j`` at ``x0 + j * w / width``, 0 outside the GT box.
    """
    n = segm.shape[0]
    gx0, gy0, gw, gh = _xywh(gt_boxes.to(torch.float32))
    px0, py0, pw, ph = _xywh(proposal_boxes.to(torch.float32))
    x0n, x1n = 2 * (px0 - gx0) / gw - 1, 2 * (px0 + pw - gx0) / gw - 1
    y0n, y1n = 2 * (py0 - gy0) / gh - 1, 2 * (py0 + ph - gy0) / gh - 1
    gx = torch.arange(width, device=segm.device, dtype=torch.float32) / width
    gy = torch.arange(height, device=segm.device, dtype=torch.float32) / height
    grid_x = (gx[None, None, :] * (x1n - x0n)[:, None, None] + x0n[:, None, None]).expand(n, height, width)
    grid_y = (gy[None, :, None] * (y1n - y0n)[:, None, None] + y0n[:, None, None]).expand(n, height, width)
    grid = torch.stack((grid_x, grid_y), dim=3)
    out = F.grid_sample(segm[:, None].to(torch.float32), grid, mode="nearest", padding_mode="zeros", align_corners=True)
    return out[:, 0].round().long()


def iid_iso_uv_loss(
    u: torch.Tensor,
    v: torch.Tensor,
    sigma_raw: torch.Tensor,
    u_gt: torch.Tensor,
    v_gt: torch.Tensor,
    epsilon: float = 0.01,
) -> torch.Tensor:
    """Isotropic Gaussian NLL, summed: ``0.5 (log 2pi + 2 log s2 + |d|^2 / s2)``, ``s2 = softplus(sigma_raw) + eps``."""
    sigma2 = F.softplus(sigma_raw) + epsilon
    delta2 = (u - u_gt) ** 2 + (v - v_gt) ** 2
    return (0.5 * (math.log(2 * math.pi) + 2 * torch.log(sigma2) + delta2 / sigma2)).sum()


def indep_aniso_uv_loss(
    u: torch.Tensor,
    v: torch.Tensor,
    sigma_raw: torch.Tensor,
    kappa_u: torch.Tensor,
    kappa_v: torch.Tensor,
    u_gt: torch.Tensor,
    v_gt: torch.Tensor,
    epsilon: float = 0.01,
) -> torch.Tensor:
    """Gaussian NLL with covariance ``s2 I + r r^T``, ``r = (kappa_u, kappa_v)``, summed:
    ``0.5 (log 2pi + log[s2 (s2 + |r|^2)] + |d|^2 / s2 - <d, r>^2 / [s2 (s2 + |r|^2)])``."""
    sigma2 = F.softplus(sigma_raw) + epsilon
    du, dv = u - u_gt, v - v_gt
    denom = sigma2 * (sigma2 + kappa_u**2 + kappa_v**2)
    dr = du * kappa_u + dv * kappa_v
    loss = 0.5 * (math.log(2 * math.pi) + torch.log(denom) + (du**2 + dv**2) / sigma2 - dr**2 / denom)
    return loss.sum()


@dataclass(frozen=True)
class DensePoseChartLoss:
    """DensePose chart losses of R proposals, each matched to a GT person.

    - ``loss_densepose_I``: cross-entropy (mean over valid points) of the fine segmentation x ``part_weight``;
    - ``loss_densepose_U``, ``loss_densepose_V``: smooth-L1 (beta 1, summed) of the GT chart's U / V channel over
      valid points with I > 0, x ``point_regression_weight``; with ``uv_confidence`` both are replaced by
      ``loss_densepose_UV``, the Gaussian NLL (``iid_iso_uv_loss`` / ``indep_aniso_uv_loss``) x the same weight;
    - ``loss_densepose_S``: cross-entropy (mean over pixels) of the coarse segmentation against the 256 x 256 GT
      label map resampled to the proposal (``resample_segm_to_proposals``), binarized when there are 2 channels,
      x ``index_weight``; 0 when some person with points lacks ``segm``.

    Persons without points are skipped; when no valid point with I > 0 remains, every loss is ``sum() * 0`` of the
    outputs (zero, but the graph reaches every parameter, as DDP needs).
    """

    part_weight: float = 1.0  # PART_WEIGHTS
    index_weight: float = 5.0  # INDEX_WEIGHTS
    point_regression_weight: float = 0.01  # POINT_REGRESSION_WEIGHTS
    uv_confidence: UVConfidence | None = None  # UV_CONFIDENCE.TYPE when UV_CONFIDENCE.ENABLED
    uv_confidence_epsilon: float = 0.01  # UV_CONFIDENCE.EPSILON

    def __post_init__(self) -> None:
        if self.uv_confidence not in (None, "iid_iso", "indep_aniso"):
            raise ValueError(f"uv_confidence must be None, 'iid_iso' or 'indep_aniso', got {self.uv_confidence!r}")

    def __call__(
        self, outputs: DensePoseOutput, proposal_boxes: torch.Tensor, targets: Sequence[DensePoseTarget]
    ) -> dict[str, torch.Tensor]:
        """Losses of ``outputs`` (R boxes) for proposals (R, 4 xyxy) and their matched GT ``targets`` (R)."""
        if not (len(outputs) == proposal_boxes.shape[0] == len(targets)):
            raise ValueError(
                f"got {len(outputs)} outputs, {proposal_boxes.shape[0]} proposals and {len(targets)} targets"
            )
        self._check_confidence_outputs(outputs)
        rows = [r for r, t in enumerate(targets) if t.x.numel() > 0]
        if not rows:
            return self.zero_losses(outputs)
        device = outputs.u.device
        picked = [targets[r] for r in rows]
        counts = torch.tensor([t.x.numel() for t in picked], device=device)
        rows_t = torch.tensor(rows, device=device)
        gt_boxes = torch.stack([t.box.to(device, torch.float32) for t in picked])
        est_boxes = proposal_boxes.detach()[rows_t].to(torch.float32)
        height, width = outputs.u.shape[-2:]
        points = map_points_to_heatmap(
            torch.cat([t.x for t in picked]).to(device, torch.float32),
            torch.cat([t.y for t in picked]).to(device, torch.float32),
            gt_boxes.repeat_interleave(counts, dim=0),
            est_boxes.repeat_interleave(counts, dim=0),
            rows_t.repeat_interleave(counts),
            height,
            width,
        )
        i_gt = torch.cat([t.i for t in picked]).to(device).long()
        valid_fg = points.valid & (i_gt > 0)
        if not bool(valid_fg.any()):
            return self.zero_losses(outputs)

        u_gt = torch.cat([t.u for t in picked]).to(device, torch.float32)[valid_fg]
        v_gt = torch.cat([t.v for t in picked]).to(device, torch.float32)[valid_fg]
        u_est = points.sample(outputs.u, i_gt)[valid_fg]
        v_est = points.sample(outputs.v, i_gt)[valid_fg]
        losses: dict[str, torch.Tensor] = {}
        w = self.point_regression_weight
        if self.uv_confidence is None:
            losses["loss_densepose_U"] = F.smooth_l1_loss(u_est, u_gt, reduction="sum") * w
            losses["loss_densepose_V"] = F.smooth_l1_loss(v_est, v_gt, reduction="sum") * w
        else:
            assert outputs.sigma_2 is not None  # checked above
            sigma = points.sample(outputs.sigma_2, i_gt)[valid_fg]
            eps = self.uv_confidence_epsilon
            if self.uv_confidence == "iid_iso":
                uv = iid_iso_uv_loss(u_est, v_est, sigma, u_gt, v_gt, eps)
            else:
                assert outputs.kappa_u is not None
                assert outputs.kappa_v is not None
                ku = points.sample(outputs.kappa_u, i_gt)[valid_fg]
                kv = points.sample(outputs.kappa_v, i_gt)[valid_fg]
                uv = indep_aniso_uv_loss(u_est, v_est, sigma, ku, kv, u_gt, v_gt, eps)
            losses["loss_densepose_UV"] = uv * w

        fine_est = points.sample(outputs.fine_segm)[points.valid]
        losses["loss_densepose_I"] = F.cross_entropy(fine_est, i_gt[points.valid]) * self.part_weight

        segms = [t.segm for t in picked]
        if all(s is not None for s in segms):
            segm = torch.stack([s.to(device) for s in segms if s is not None])
            with torch.no_grad():
                segm_gt = resample_segm_to_proposals(segm, gt_boxes, est_boxes, height, width)
            coarse = outputs.coarse_segm[rows_t]
            if coarse.shape[1] == 2:
                segm_gt = (segm_gt > 0).long()
            losses["loss_densepose_S"] = F.cross_entropy(coarse, segm_gt) * self.index_weight
        else:
            losses["loss_densepose_S"] = outputs.coarse_segm.sum() * 0
        return losses

    def zero_losses(self, outputs: DensePoseOutput) -> dict[str, torch.Tensor]:
        """The loss keys with value 0, computed as ``sum() * 0`` of the outputs they would use."""
        self._check_confidence_outputs(outputs)
        losses: dict[str, torch.Tensor] = {}
        if self.uv_confidence is None:
            losses["loss_densepose_U"] = outputs.u.sum() * 0
            losses["loss_densepose_V"] = outputs.v.sum() * 0
        else:
            total = outputs.u.sum() + outputs.v.sum()
            for extra in (outputs.sigma_2, outputs.kappa_u, outputs.kappa_v):
                if extra is not None:
                    total = total + extra.sum()
            losses["loss_densepose_UV"] = total * 0
        losses["loss_densepose_I"] = outputs.fine_segm.sum() * 0
        losses["loss_densepose_S"] = outputs.coarse_segm.sum() * 0
        return losses

    def _check_confidence_outputs(self, outputs: DensePoseOutput) -> None:
        if self.uv_confidence is not None and outputs.sigma_2 is None:
            raise ValueError(f"uv_confidence={self.uv_confidence!r} needs predictor outputs with sigma_2")
        if self.uv_confidence == "indep_aniso" and (outputs.kappa_u is None or outputs.kappa_v is None):
            raise ValueError("uv_confidence='indep_aniso' needs predictor outputs with kappa_u and kappa_v")
