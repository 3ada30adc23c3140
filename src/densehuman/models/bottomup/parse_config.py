"""OpenPose's parsing constants as one frozen config (``poseParameters.cpp``), shared by the peaks, the PAF
connections (``connections``) and the assembly (``assembly``)."""

from __future__ import annotations

from dataclasses import dataclass

from densehuman.models.bottomup.peaks import POSE_MAX_PEAKS


@dataclass(frozen=True)
class AssemblyConfig:
    """OpenPose's parsing constants (``poseParameters.cpp``, non-MPI models; defaults: ``maximizePositives=false``).

    ``nms_threshold``: heatmap peak threshold (``getPoseDefaultNmsThreshold``); also the score given to very close
    pairs. ``connect_inter_threshold``: per-sample ``PAF . u`` threshold. ``connect_inter_min_above_threshold``:
    fraction of samples that must pass. ``connect_min_subset_cnt`` / ``connect_min_subset_score``: the person filters
    (counted parts, mean score per counted part). ``max_peaks``: ``POSE_MAX_PEOPLE``, peaks kept per part.
    ``maximize_positives``: the ``--maximize_positives`` flag (feet count in the person filter);
    ``AssemblyConfig.maximizing_positives()`` gives all of that flag's values.
    """

    nms_threshold: float = 0.05
    connect_inter_threshold: float = 0.05
    connect_inter_min_above_threshold: float = 0.95
    connect_min_subset_cnt: int = 3
    connect_min_subset_score: float = 0.4
    max_peaks: int = POSE_MAX_PEAKS
    maximize_positives: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.nms_threshold <= 1.0:
            raise ValueError(f"nms_threshold must be in [0, 1], got {self.nms_threshold}")
        if self.max_peaks < 1:
            raise ValueError(f"max_peaks must be positive, got {self.max_peaks}")

    @classmethod
    def maximizing_positives(cls) -> AssemblyConfig:
        """OpenPose's ``--maximize_positives true`` values: 0.02 / 0.01 / 0.75 / 2 / 0.05."""
        return cls(0.02, 0.01, 0.75, 2, 0.05, maximize_positives=True)
