"""DensePose predictor outputs -> chart results at box size, as detectron2's ``ToChartResultConverter``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from densehuman.models.instances import DensePoseOutput
from densehuman.structures import ChartResult


def chart_scores_at_box(
    output: DensePoseOutput, box_xyxy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One box's S, I, U, V outputs resized to its chart grid, as detectron2's ``ToChartResultConverter`` does.

    The box becomes ``(x0, y0, x1 - x0, y1 - y0)`` (in the box's dtype) truncated to integers; each output is
    resized bilinearly (align_corners=False) to ``(max(h, 1), max(w, 1))``. Returns (C_S, h, w), (25, h, w),
    (25, h, w), (25, h, w).
    """
    if len(output) != 1:
        raise ValueError(f"to_chart_result converts one box, got {len(output)} outputs")
    box = box_xyxy.reshape(4)
    w = max(int((box[2] - box[0]).long()), 1)
    h = max(int((box[3] - box[1]).long()), 1)

    def resize(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, (h, w), mode="bilinear", align_corners=False)[0]

    with torch.no_grad():
        return resize(output.coarse_segm), resize(output.fine_segm), resize(output.u), resize(output.v)


def to_chart_result(output: DensePoseOutput, box_xyxy: torch.Tensor) -> ChartResult:
    """One box's outputs -> its chart result at box size (``chart_scores_at_box``), as detectron2's
    ``ToChartResultConverter``: ``labels = argmax(I) * (argmax(S) > 0)`` and ``uv`` takes U, V from the channel of
    each pixel's label (0 on background).
    """
    coarse_scores, fine_scores, u_all, v_all = chart_scores_at_box(output, box_xyxy)
    with torch.no_grad():
        coarse = coarse_scores.argmax(dim=0)
        labels = fine_scores.argmax(dim=0) * (coarse > 0).long()
        index = labels[None]
        u = u_all.gather(0, index)[0]
        v = v_all.gather(0, index)[0]
        fg = labels > 0
        uv = torch.stack([torch.where(fg, u, 0.0), torch.where(fg, v, 0.0)]).to(torch.float32)
    return ChartResult(labels.cpu().numpy(), uv.cpu().numpy())


def to_chart_results(output: DensePoseOutput, boxes_xyxy: torch.Tensor) -> list[ChartResult]:
    """``to_chart_result`` for each of the R boxes (R, 4) of ``output``."""
    if len(output) != boxes_xyxy.shape[0]:
        raise ValueError(f"{len(output)} outputs but {boxes_xyxy.shape[0]} boxes")
    return [to_chart_result(output.index(slice(k, k + 1)), boxes_xyxy[k]) for k in range(len(output))]
