"""detectron2 DensePose R-CNN tensor names -> :class:`~densehuman.models.detector.Detector` parameter names.

Every tensor of the checkpoint is accounted for: it is mapped to a parameter of the same shape, or it is one of the
buffers detectron2 no longer loads (``pixel_mean`` / ``pixel_std``, ``anchor_generator.cell_anchors.*``), which are
checked against the model and reported; anything else is an error, as is a model parameter the checkpoint lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from densehuman.models.detector import Detector, detectron2_key

# The DensePose branch is the detector's first extra head.
_DENSEPOSE_PREFIXES = {
    "roi_heads.decoder.": "extra_heads.0.decoder.",
    "roi_heads.densepose_head.": "extra_heads.0.head.",
    "roi_heads.densepose_predictor.": "extra_heads.0.predictor.",
}
_CELL_ANCHORS = "proposal_generator.anchor_generator.cell_anchors."


def densehuman_name(detectron2_name: str) -> str | None:
    """Our parameter name for a detectron2 DensePose R-CNN tensor name; None for names outside the model."""
    generic = detectron2_key(detectron2_name)
    if generic is not None:
        return generic
    for old, new in _DENSEPOSE_PREFIXES.items():
        if detectron2_name.startswith(old):
            return new + detectron2_name[len(old) :]
    return None


class WeightMismatchError(ValueError):
    """The checkpoint's tensors do not fit the model built from the config; the message lists each by name."""


@dataclass
class MappingReport:
    """How a checkpoint's tensors met the model: ``mapped`` counts the loaded ones; the lists name the rest."""

    source: str
    mapped: int = 0
    unexpected: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # in the checkpoint, not the model
    missing: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # in the model, not the checkpoint
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # name, ckpt, ours
    notes: list[str] = field(default_factory=list)  # buffers checked and not loaded

    @property
    def ok(self) -> bool:
        return not (self.unexpected or self.missing or self.mismatched)

    def format(self, limit: int = 20) -> str:
        """A readable summary; at most ``limit`` lines per kind of problem (0: all)."""
        problems = [
            ("shape mismatch", [f"{n}: checkpoint {list(a)}, model {list(b)}" for n, a, b in self.mismatched]),
            ("not in the model", [f"{n} {list(s)}" for n, s in self.unexpected]),
            ("missing from the checkpoint", [f"{n} {list(s)}" for n, s in self.missing]),
        ]
        lines = [f"{self.source}: {self.mapped} tensors mapped"]
        for kind, items in problems:
            shown = items if limit <= 0 else items[:limit]
            lines += [f"  {kind}: {item}" for item in shown]
            if len(items) > len(shown):
                lines.append(f"  ... and {len(items) - len(shown)} more ({kind})")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _check_buffer(name: str, value: torch.Tensor, expected: torch.Tensor, report: MappingReport, what: str) -> None:
    """Note whether a buffer the model computes itself equals the checkpoint's copy (shapes may differ: (3,) or
    (3, 1, 1) means)."""
    same = value.numel() == expected.numel() and torch.allclose(
        value.float().flatten(), expected.float().flatten(), atol=1e-3
    )
    if same:
        report.notes.append(f"{name}: equal to the {what} computed from the config (not loaded)")
    else:
        report.notes.append(
            f"{name}: differs from the {what} of the config ({value.flatten()[:6].tolist()} vs "
            f"{expected.flatten()[:6].tolist()}); detectron2 uses the config's, and so does densehuman"
        )


def map_weights(tensors: dict[str, torch.Tensor], model: Detector, source: str) -> tuple[dict, MappingReport]:
    """Our state dict for ``model`` from detectron2 ``tensors``, and the report of every tensor's fate."""
    ours = model.state_dict()
    report = MappingReport(source)
    state: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        if name in ("pixel_mean", "pixel_std"):
            _check_buffer(name, value, getattr(model, name), report, "normalization")
            continue
        if name.startswith(_CELL_ANCHORS) and name[len(_CELL_ANCHORS) :].isdigit():
            level = int(name[len(_CELL_ANCHORS) :])
            generator = model.rpn.anchor_generator
            if level < len(generator.num_anchors):
                _check_buffer(name, value, generator.level_cell_anchors(level), report, "anchors")
                continue
        target = densehuman_name(name)
        if target is None or target not in ours:
            report.unexpected.append((name, tuple(value.shape)))
            continue
        if tuple(value.shape) != tuple(ours[target].shape):
            report.mismatched.append((name, tuple(value.shape), tuple(ours[target].shape)))
            continue
        state[target] = value.to(ours[target].dtype)
        report.mapped += 1
    mapped_targets = set(state) | {densehuman_name(n) for n, _, _ in report.mismatched}
    report.missing = [(k, tuple(v.shape)) for k, v in ours.items() if k not in mapped_targets]
    return state, report


def load_detectron2_weights(model: Detector, tensors: dict[str, torch.Tensor], source: str) -> MappingReport:
    """Load detectron2 ``tensors`` into ``model`` (all or nothing); raises :class:`WeightMismatchError` listing
    every unexpected, missing and mis-shaped tensor."""
    state, report = map_weights(tensors, model, source)
    if not report.ok:
        raise WeightMismatchError(
            report.format() + "\nThe config does not describe this checkpoint: pass the detectron2 config it was "
            "trained with (--config)."
        )
    model.load_state_dict(state, strict=True)
    return report
