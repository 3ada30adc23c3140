"""OpenPose BODY_135: the single-network whole-body pose model (reference notes ``wholebody.md`` §2).

Layout: a trunk gives stride-8 features ``F``; PAF stages and then confidence-map (CM) stages follow. PAF stage 0
reads ``F``; PAF stage ``s > 0`` reads ``concat(F, PAF_{s-1})``. CM stage 0 reads ``concat(F, PAF_last)``; CM stage
``s > 0`` reads ``concat(F, CM_{s-1}, PAF_last)`` (the BODY_25 order). Every stage is a stack of densely concatenated
blocks (3 convs 3x3 + PReLU, output = concat of the 3 conv outputs), a 1x1 conv + PReLU and a final 1x1 conv with
no activation. Every stage output is returned, because every stage is supervised.

Names mirror the Caffe layer names of ``pose_deploy.prototxt``, so Caffe weights map by name
(:mod:`densehuman.models.bottomup.caffe_weights`). In OpenPose's naming **L2 = PAFs** and **L1 = heatmaps**
(confidence maps). Stage ``s`` of branch ``B`` with ``n`` blocks has:

* ``Mconv{b}_stage{s}_{B}_{k}`` and ``Mprelu{b}_stage{s}_{B}_{k}``, block ``b`` in 1..n, conv ``k`` in 0..2, and the
  block's concat ``Mconv{b}_stage{s}_{B}_concat``;
* ``Mconv{n+1}_stage{s}_{B}`` (1x1) + ``Mprelu{n+1}_stage{s}_{B}``, then ``Mconv{n+2}_stage{s}_{B}`` (1x1, output);
  for BODY_135 that is ``Mconv9``/``Mconv10`` in the PAF stages (8 blocks) and ``Mconv6``/``Mconv7`` in the CM
  stage (5 blocks);
* the stage input concat ``concat_stage{s}_{B}`` (absent for PAF stage 0, whose input is ``F`` alone).

The VGG trunk has ``conv1_1`` .. ``conv4_2`` (``relu1_1`` .. ``relu4_1``, ``prelu4_2``), the pools
``pool{1,2,3}_stage1``, and ``conv4_3_CPM``/``prelu4_3_CPM``, ``conv4_4_CPM``/``prelu4_4_CPM``. The final
``net_output`` concat is ``concat(heatmaps, PAFs)`` (439 channels), as the deploy prototxt.

The input is normalised as OpenPose does: BGR, ``value / 256 - 0.5`` (:func:`normalize_openpose`). Caffe pools
round up (``ceil_mode=True``), so use inputs that are multiples of 8 (OpenPose pads to them); then the output grid is
``(H / 8, W / 8)``, the grid of :func:`densehuman.models.bottomup.targets.make_targets`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from densehuman.models.backbones import Backbone


def normalize_openpose(image_bgr: Tensor) -> Tensor:
    """OpenPose's input normalisation of a 0..255 BGR batch: ``value / 256 - 0.5`` (``utilities/openCv.cpp``)."""
    return image_bgr / 256.0 - 0.5


CaffeLayer = nn.Conv2d | nn.PReLU
"""The layers that carry Caffe blobs: Convolution (weight, bias) and PReLU (slope)."""


class Concat(nn.Module):
    """Caffe ``Concat`` along channels (a module so that the concats are named and countable)."""

    def forward(self, *tensors: Tensor) -> Tensor:
        return torch.cat(tensors, dim=1)


class Trunk(nn.Module):
    """Stride-8 feature extractor: ``forward(x) -> (B, out_channels, H / 8, W / 8)``."""

    out_channels: int

    def caffe_layers(self) -> dict[str, CaffeLayer]:
        """``{caffe_layer_name: Conv2d or PReLU}`` of the layers that have a Caffe counterpart."""
        return {}

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError


# VGG-19 conv layers up to conv4_2: (name, output channels index into ``widths``), pools after conv1_2/2_2/3_4.
_VGG_LAYERS: tuple[tuple[str, int], ...] = (
    ("conv1_1", 0),
    ("conv1_2", 0),
    ("conv2_1", 1),
    ("conv2_2", 1),
    ("conv3_1", 2),
    ("conv3_2", 2),
    ("conv3_3", 2),
    ("conv3_4", 2),
    ("conv4_1", 3),
    ("conv4_2", 3),
)
_VGG_POOL_AFTER = {"conv1_2": "pool1_stage1", "conv2_2": "pool2_stage1", "conv3_4": "pool3_stage1"}


class VGG19Trunk(Trunk):
    """VGG-19's first 10 convs (ReLU up to ``conv4_1``, PReLU on ``conv4_2``) and ``conv4_3_CPM``/``conv4_4_CPM``
    with PReLU, exactly as the BODY_135 prototxt. ``widths`` are the VGG block widths (64, 128, 256, 512) and
    ``cpm_widths`` the two CPM convs (256, 128); other values only serve small test networks."""

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 128, 256, 512),
        cpm_widths: Sequence[int] = (256, 128),
    ) -> None:
        super().__init__()
        if len(widths) != 4 or len(cpm_widths) != 2:
            raise ValueError(f"widths needs 4 entries and cpm_widths 2, got {tuple(widths)}, {tuple(cpm_widths)}")
        self._order: list[str] = []
        channels = in_channels
        for name, level in _VGG_LAYERS:
            self._add(name, nn.Conv2d(channels, widths[level], 3, padding=1))
            channels = widths[level]
            suffix = name[len("conv") :]
            self._add(f"prelu{suffix}" if name == "conv4_2" else f"relu{suffix}", _activation(name, channels))
            if name in _VGG_POOL_AFTER:
                self._add(_VGG_POOL_AFTER[name], nn.MaxPool2d(2, 2, ceil_mode=True))
        for k, width in zip((3, 4), cpm_widths, strict=True):
            self._add(f"conv4_{k}_CPM", nn.Conv2d(channels, width, 3, padding=1))
            self._add(f"prelu4_{k}_CPM", nn.PReLU(width))
            channels = width
        self.out_channels = channels

    def _add(self, name: str, module: nn.Module) -> None:
        self.add_module(name, module)
        self._order.append(name)

    def caffe_layers(self) -> dict[str, CaffeLayer]:
        return {n: m for n, m in self.named_children() if isinstance(m, nn.Conv2d | nn.PReLU)}

    def forward(self, x: Tensor) -> Tensor:
        for name in self._order:
            x = getattr(self, name)(x)
        return x


def _activation(conv_name: str, channels: int) -> nn.Module:
    return nn.PReLU(channels) if conv_name == "conv4_2" else nn.ReLU(inplace=True)


class TimmTrunk(Trunk):
    """A timm backbone's stride-8 map (``backbone`` is e.g. a :class:`TimmBackbone` with an out index at stride 8)
    followed by a 3x3 conv + PReLU to ``out_channels``. It has no Caffe counterpart."""

    def __init__(self, backbone: Backbone, out_channels: int, feature_name: str = "res3") -> None:
        super().__init__()
        shapes = backbone.output_shapes()
        if feature_name not in shapes:
            raise ValueError(f"backbone has no output {feature_name!r}; it has {sorted(shapes)}")
        in_channels, stride = shapes[feature_name]
        if stride != 8:
            raise ValueError(f"backbone output {feature_name!r} has stride {stride}, expected 8")
        self.backbone = backbone
        self.feature_name = feature_name
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.prelu = nn.PReLU(out_channels)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.prelu(self.conv(self.backbone(x)[self.feature_name]))


def stage_norm_layer(norm: str, channels: int) -> nn.Module:
    """The normalization after a stage convolution (not in OpenPose): ``""`` none, ``"BN"`` batch norm, ``"GN"``
    group norm (up to 32 groups of at least 4 channels). From scratch, the plain 3x3 stacks of the stages barely pass
    a signal at PyTorch's default initialization and the maps stay at zero; a normalization fixes that."""
    if norm == "":
        return nn.Identity()
    if norm == "BN":
        return nn.BatchNorm2d(channels)
    if norm == "GN":
        groups = max(1, min(32, channels // 4))
        while channels % groups:
            groups -= 1
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"stage norm must be '', 'BN' or 'GN', got {norm!r}")


class DenseBlock(nn.Module):
    """Three 3x3 conv + PReLU in sequence; the output concatenates the three (``3 * width`` channels). ``norm``:
    a normalization between each conv and its PReLU (``stage_norm_layer``; OpenPose has none)."""

    def __init__(self, in_channels: int, width: int, prefix: str, norm: str = "") -> None:
        super().__init__()
        self.names: list[tuple[str, str]] = []
        self.norms = nn.ModuleList()
        channels = in_channels
        for k in range(3):
            conv_name, prelu_name = f"M{prefix.format(kind='conv')}_{k}", f"M{prefix.format(kind='prelu')}_{k}"
            self.add_module(conv_name, nn.Conv2d(channels, width, 3, padding=1))
            self.add_module(prelu_name, nn.PReLU(width))
            self.norms.append(stage_norm_layer(norm, width))
            self.names.append((conv_name, prelu_name))
            channels = width
        self.concat_name = f"M{prefix.format(kind='conv')}_concat"
        self.add_module(self.concat_name, Concat())
        self.out_channels = 3 * width

    def forward(self, x: Tensor) -> Tensor:
        outputs = []
        for (conv_name, prelu_name), norm in zip(self.names, self.norms, strict=True):
            x = getattr(self, prelu_name)(norm(getattr(self, conv_name)(x)))
            outputs.append(x)
        return getattr(self, self.concat_name)(*outputs)


class Stage(nn.Module):
    """One refinement stage: ``blocks`` dense blocks of ``width``, 1x1 conv to ``mid_channels`` + PReLU, 1x1 conv
    to ``out_channels``. ``branch`` is ``"L2"`` (PAFs) or ``"L1"`` (heatmaps); ``index`` is the Caffe stage index."""

    def __init__(
        self,
        in_channels: int,
        width: int,
        blocks: int,
        mid_channels: int,
        out_channels: int,
        index: int,
        branch: str,
        norm: str = "",
    ) -> None:
        super().__init__()
        if branch not in ("L1", "L2"):
            raise ValueError(f"branch must be 'L1' (heatmaps) or 'L2' (PAFs), got {branch!r}")
        if blocks < 1 or width < 1 or mid_channels < 1:
            raise ValueError(f"stage needs blocks, width and mid_channels >= 1, got {blocks}, {width}, {mid_channels}")
        tag = f"stage{index}_{branch}"
        self.blocks = nn.ModuleList()
        channels = in_channels
        for b in range(1, blocks + 1):
            block = DenseBlock(channels, width, f"{{kind}}{b}_{tag}", norm)
            self.blocks.append(block)
            channels = block.out_channels
        self.mid_name, self.mid_prelu_name = f"Mconv{blocks + 1}_{tag}", f"Mprelu{blocks + 1}_{tag}"
        self.out_name = f"Mconv{blocks + 2}_{tag}"
        self.add_module(self.mid_name, nn.Conv2d(channels, mid_channels, 1))
        self.add_module(self.mid_prelu_name, nn.PReLU(mid_channels))
        self.mid_norm = stage_norm_layer(norm, mid_channels)
        self.add_module(self.out_name, nn.Conv2d(mid_channels, out_channels, 1))
        if norm:  # normalized features feed the output: start the maps near zero, as Caffe's gaussian(0.01) filler
            nn.init.normal_(getattr(self, self.out_name).weight, std=0.01)
            nn.init.zeros_(getattr(self, self.out_name).bias)
        self.out_channels = out_channels

    def caffe_layers(self) -> dict[str, CaffeLayer]:
        layers: dict[str, CaffeLayer] = {}
        for block in self.blocks:
            layers.update({n: m for n, m in block.named_children() if isinstance(m, nn.Conv2d | nn.PReLU)})
        for name in (self.mid_name, self.mid_prelu_name, self.out_name):
            layers[name] = getattr(self, name)
        return layers

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        x = getattr(self, self.mid_prelu_name)(self.mid_norm(getattr(self, self.mid_name)(x)))
        return getattr(self, self.out_name)(x)


@dataclass
class WholeBodyOutput:
    """Every stage's outputs, in stage order: ``pafs`` (B, 304, h, w) and ``heatmaps`` (B, 135, h, w)."""

    pafs: list[Tensor]
    heatmaps: list[Tensor]

    @property
    def final_pafs(self) -> Tensor:
        return self.pafs[-1]

    @property
    def final_heatmaps(self) -> Tensor:
        return self.heatmaps[-1]


class WholeBodyNet(nn.Module):
    """Trunk, then PAF stages, then CM stages (module docstring). Stage ``i`` of a branch uses ``widths[i]``,
    ``blocks[i]`` and ``mid_channels[i]``; the number of stages is the length of these sequences."""

    def __init__(
        self,
        trunk: Trunk,
        feature_channels: int,
        paf_widths: Sequence[int],
        paf_blocks: Sequence[int],
        paf_mid_channels: Sequence[int],
        cm_widths: Sequence[int],
        cm_blocks: Sequence[int],
        cm_mid_channels: Sequence[int],
        num_heatmaps: int = 135,
        num_pafs: int = 304,
        stage_norm: str = "",
    ) -> None:
        super().__init__()
        if trunk.out_channels != feature_channels:
            raise ValueError(f"trunk gives {trunk.out_channels} channels, feature_channels is {feature_channels}")
        if not len(paf_widths) == len(paf_blocks) == len(paf_mid_channels) >= 1:
            raise ValueError("paf_widths, paf_blocks and paf_mid_channels need the same length >= 1")
        if not len(cm_widths) == len(cm_blocks) == len(cm_mid_channels) >= 1:
            raise ValueError("cm_widths, cm_blocks and cm_mid_channels need the same length >= 1")
        self.trunk = trunk
        self.num_heatmaps, self.num_pafs = num_heatmaps, num_pafs
        self.paf_stages = nn.ModuleList()
        for s, (w, n, m) in enumerate(zip(paf_widths, paf_blocks, paf_mid_channels, strict=True)):
            in_channels = feature_channels + (num_pafs if s > 0 else 0)
            self.paf_stages.append(Stage(in_channels, w, n, m, num_pafs, s, "L2", stage_norm))
        self.cm_stages = nn.ModuleList()
        for s, (w, n, m) in enumerate(zip(cm_widths, cm_blocks, cm_mid_channels, strict=True)):
            in_channels = feature_channels + num_pafs + (num_heatmaps if s > 0 else 0)
            self.cm_stages.append(Stage(in_channels, w, n, m, num_heatmaps, s, "L1", stage_norm))
        self.input_concats = nn.ModuleDict(
            {f"concat_stage{s}_L2": Concat() for s in range(1, len(self.paf_stages))}
            | {f"concat_stage{s}_L1": Concat() for s in range(len(self.cm_stages))}
        )
        self.net_output = Concat()

    def caffe_layers(self) -> dict[str, CaffeLayer]:
        """``{caffe_layer_name: Conv2d or PReLU}`` of every layer with a Caffe counterpart (names are unique)."""
        layers = dict(self.trunk.caffe_layers())
        for stage in [*self.paf_stages, *self.cm_stages]:
            assert isinstance(stage, Stage)
            layers.update(stage.caffe_layers())
        return layers

    def forward(self, x: Tensor) -> WholeBodyOutput:
        features = self.trunk(x)
        pafs: list[Tensor] = []
        heatmaps: list[Tensor] = []
        for s, stage in enumerate(self.paf_stages):
            inp = features if s == 0 else self.input_concats[f"concat_stage{s}_L2"](features, pafs[-1])
            pafs.append(stage(inp))
        for s, stage in enumerate(self.cm_stages):
            previous = [heatmaps[-1]] if s > 0 else []
            inp = self.input_concats[f"concat_stage{s}_L1"](features, *previous, pafs[-1])
            heatmaps.append(stage(inp))
        return WholeBodyOutput(pafs=pafs, heatmaps=heatmaps)

    def net_output_blob(self, output: WholeBodyOutput) -> Tensor:
        """Caffe's ``net_output``: ``concat(final heatmaps, final PAFs)`` (439 channels for BODY_135)."""
        return self.net_output(output.final_heatmaps, output.final_pafs)
