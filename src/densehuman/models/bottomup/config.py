"""Configuration of the BODY_135 whole-body network and the one place it becomes modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from densehuman.models.bottomup.network import TimmTrunk, Trunk, VGG19Trunk, WholeBodyNet


@dataclass(frozen=True)
class WholeBodyNetConfig:
    """Hyper-parameters of :class:`WholeBodyNet`.

    ``trunk``: ``"vgg19"`` (VGG-19 + CPM convs, the OpenPose trunk; ``vgg_widths``/``cpm_widths``) or ``"timm"``
    (``timm_name``'s stride-8 feature level ``timm_out_index``, then a 3x3 conv to ``feature_channels``).
    ``feature_channels`` is the trunk output width (``cpm_widths[-1]`` for the VGG trunk).
    ``paf_*`` / ``cm_*``: per-stage dense-block width, number of blocks and 1x1 width; their length is the number
    of PAF / confidence-map stages.
    """

    trunk: Literal["vgg19", "timm"] = "vgg19"
    vgg_widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    cpm_widths: tuple[int, int] = (256, 128)
    timm_name: str = "mobilenetv3_large_100"
    timm_out_index: int = 2
    timm_pretrained: bool = False
    feature_channels: int = 128
    paf_widths: tuple[int, ...] = (128, 128, 128, 256)
    paf_blocks: tuple[int, ...] = (8, 8, 8, 8)
    paf_mid_channels: tuple[int, ...] = (256, 512, 512, 512)
    cm_widths: tuple[int, ...] = (256,)
    cm_blocks: tuple[int, ...] = (5,)
    cm_mid_channels: tuple[int, ...] = (512,)
    num_heatmaps: int = 135
    num_pafs: int = 304
    stage_norm: str = ""  # "" (OpenPose), "BN" or "GN" after every stage convolution (training from scratch)

    def __post_init__(self) -> None:
        if self.stage_norm not in ("", "BN", "GN"):
            raise ValueError(f"stage_norm must be '', 'BN' or 'GN', got {self.stage_norm!r}")
        if self.trunk not in ("vgg19", "timm"):
            raise ValueError(f"trunk must be 'vgg19' or 'timm', got {self.trunk!r}")
        if self.trunk == "vgg19" and self.cpm_widths[-1] != self.feature_channels:
            raise ValueError(f"feature_channels {self.feature_channels} != cpm_widths[-1] {self.cpm_widths[-1]}")
        if not len(self.paf_widths) == len(self.paf_blocks) == len(self.paf_mid_channels) >= 1:
            raise ValueError("paf_widths, paf_blocks and paf_mid_channels need the same length >= 1")
        if not len(self.cm_widths) == len(self.cm_blocks) == len(self.cm_mid_channels) >= 1:
            raise ValueError("cm_widths, cm_blocks and cm_mid_channels need the same length >= 1")

    @classmethod
    def body135(cls) -> WholeBodyNetConfig:
        """OpenPose BODY_135 exactly (``wholebody.md`` §2): VGG-19 trunk, 4 PAF stages + 1 CM stage."""
        return cls()

    @classmethod
    def body135_cpu(cls) -> WholeBodyNetConfig:
        """A narrow variant that trains from scratch on a CPU: MobileNetV3 stride-8 features (40 channels) to 96,
        2 PAF stages + 1 CM stage of 3 blocks of width 64, 1x1 width 128."""
        return cls(
            trunk="timm",
            timm_name="mobilenetv3_large_100",
            timm_out_index=2,
            feature_channels=96,
            paf_widths=(64, 64),
            paf_blocks=(3, 3),
            paf_mid_channels=(128, 128),
            cm_widths=(64,),
            cm_blocks=(3,),
            cm_mid_channels=(128,),
        )


def build_wholebody_net(config: WholeBodyNetConfig) -> WholeBodyNet:
    """The :class:`WholeBodyNet` that ``config`` describes."""
    trunk: Trunk
    if config.trunk == "vgg19":
        trunk = VGG19Trunk(widths=config.vgg_widths, cpm_widths=config.cpm_widths)
    else:
        from densehuman.models.backbones import TimmBackbone

        backbone = TimmBackbone(
            config.timm_name, pretrained=config.timm_pretrained, out_indices=(config.timm_out_index,)
        )
        names = [n for n, (_, stride) in backbone.output_shapes().items() if stride == 8]
        if not names:
            raise ValueError(f"timm model {config.timm_name} index {config.timm_out_index} is not at stride 8")
        trunk = TimmTrunk(backbone, config.feature_channels, feature_name=names[0])
    return WholeBodyNet(
        trunk,
        config.feature_channels,
        paf_widths=config.paf_widths,
        paf_blocks=config.paf_blocks,
        paf_mid_channels=config.paf_mid_channels,
        cm_widths=config.cm_widths,
        cm_blocks=config.cm_blocks,
        cm_mid_channels=config.cm_mid_channels,
        num_heatmaps=config.num_heatmaps,
        num_pafs=config.num_pafs,
        stage_norm=config.stage_norm,
    )
