"""BODY_135 whole-body network: structure against the reference's layer list, masked loss, overfit, Caffe weights."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from densehuman.models.bottomup.caffe_weights import CaffeModelError, load_caffe_weights, read_caffemodel
from densehuman.models.bottomup.config import WholeBodyNetConfig, build_wholebody_net
from densehuman.models.bottomup.loss import masked_l2, wholebody_loss
from densehuman.models.bottomup.network import Concat, WholeBodyNet, WholeBodyOutput, normalize_openpose
from densehuman.models.bottomup.targets import make_targets


def _conv(i: int, o: int, k: int) -> int:
    return i * o * k * k + o


def _stage(i: int, w: int, blocks: int, mid: int, out: int) -> int:
    def block(c: int) -> int:  # 3 convs 3x3, each with a per-channel PReLU
        return _conv(c, w, 3) + w + 2 * (_conv(w, w, 3) + w)

    return block(i) + (blocks - 1) * block(3 * w) + _conv(3 * w, mid, 1) + mid + _conv(mid, out, 1)


def body135_parameters_by_hand() -> int:
    """From the layer list of wholebody.md §2 (widths, blocks, 1x1 layers; PReLU from conv4_2 on)."""
    vgg = (
        _conv(3, 64, 3) + _conv(64, 64, 3) + _conv(64, 128, 3) + _conv(128, 128, 3) + _conv(128, 256, 3)
        + 3 * _conv(256, 256, 3) + _conv(256, 512, 3) + _conv(512, 512, 3) + 512
    )  # fmt: skip
    cpm = _conv(512, 256, 3) + 256 + _conv(256, 128, 3) + 128
    f, paf, cm = 128, 304, 135
    stages = (
        _stage(f, 128, 8, 256, paf) + 2 * _stage(f + paf, 128, 8, 512, paf) + _stage(f + paf, 256, 8, 512, paf)
        + _stage(f + paf, 256, 5, 512, cm)
    )  # fmt: skip
    return vgg + cpm + stages


def _counts(net: nn.Module) -> Counter[str]:
    return Counter(type(m).__name__ for m in net.modules())


def test_body135_structure_and_shapes() -> None:
    torch.manual_seed(0)
    net = build_wholebody_net(WholeBodyNetConfig.body135())
    assert body135_parameters_by_hand() == 63_578_247
    assert sum(p.numel() for p in net.parameters()) == body135_parameters_by_hand()
    counts = _counts(net)
    assert (counts["Conv2d"], counts["PReLU"], counts["ReLU"]) == (133, 119, 9)
    assert (counts["Concat"], counts["MaxPool2d"]) == (42, 3)
    calls: Counter[str] = Counter()
    for m in net.modules():
        if isinstance(m, Concat | nn.MaxPool2d):
            m.register_forward_hook(lambda mod, *_: calls.update([type(mod).__name__]))
    with torch.no_grad():
        out = net(normalize_openpose(torch.rand(1, 3, 64, 64) * 255))
        blob = net.net_output_blob(out)
    assert calls == Counter({"Concat": 42, "MaxPool2d": 3})  # every concat and pool runs once
    assert [tuple(p.shape) for p in out.pafs] == [(1, 304, 8, 8)] * 4
    assert [tuple(h.shape) for h in out.heatmaps] == [(1, 135, 8, 8)]
    assert tuple(blob.shape) == (1, 439, 8, 8)
    layers = net.caffe_layers()
    assert len(layers) == 133 + 119 - 9 + 9  # every conv and PReLU (the 9 ReLUs have no Caffe blobs)
    assert tuple(layers["conv4_4_CPM"].weight.shape) == (128, 256, 3, 3)
    assert tuple(layers["Mconv1_stage0_L2_0"].weight.shape) == (128, 128, 3, 3)
    assert tuple(layers["Mconv1_stage1_L2_0"].weight.shape) == (128, 432, 3, 3)
    assert tuple(layers["Mconv1_stage3_L2_2"].weight.shape) == (256, 256, 3, 3)
    assert tuple(layers["Mconv9_stage3_L2"].weight.shape) == (512, 768, 1, 1)
    assert tuple(layers["Mconv10_stage3_L2"].weight.shape) == (304, 512, 1, 1)
    assert tuple(layers["Mconv1_stage0_L1_0"].weight.shape) == (256, 432, 3, 3)
    assert tuple(layers["Mconv7_stage0_L1"].weight.shape) == (135, 512, 1, 1)
    assert tuple(layers["Mprelu6_stage0_L1"].weight.shape) == (512,)
    assert isinstance(layers["prelu4_2"], nn.PReLU)
    assert isinstance(net.trunk.relu4_1, nn.ReLU)


def test_cpu_preset_shapes() -> None:
    net = build_wholebody_net(WholeBodyNetConfig.body135_cpu())
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 64, 96))
    assert [tuple(p.shape) for p in out.pafs] == [(2, 304, 8, 12)] * 2
    assert [tuple(h.shape) for h in out.heatmaps] == [(2, 135, 8, 12)]
    assert out.final_pafs is out.pafs[-1]
    assert out.final_heatmaps is out.heatmaps[-1]


@pytest.mark.parametrize("norm", ["BN", "GN"])
def test_stage_norm_option(norm: str) -> None:
    """Normalization after the stage convolutions (not in OpenPose): present, no Caffe names, maps start near 0."""
    import dataclasses

    torch.manual_seed(0)
    config = dataclasses.replace(WholeBodyNetConfig.body135_cpu(), stage_norm=norm)
    net = build_wholebody_net(config).eval()
    kind = nn.BatchNorm2d if norm == "BN" else nn.GroupNorm
    stage_norms = [m for m in net.paf_stages.modules() if isinstance(m, kind)]
    assert len(stage_norms) == 2 * (3 * 3 + 1)  # 2 PAF stages of 3 blocks of 3 convs, and the 1x1 mid conv
    assert set(net.caffe_layers()) == set(build_wholebody_net(WholeBodyNetConfig.body135_cpu()).caffe_layers())
    with torch.no_grad():
        out = net(torch.rand(1, 3, 64, 64) - 0.5)
    assert float(out.final_pafs.abs().max()) < 0.5
    with pytest.raises(ValueError, match="stage_norm"):
        WholeBodyNetConfig(stage_norm="LN")


def _random_output(shape_p: tuple[int, ...], shape_h: tuple[int, ...], stages: tuple[int, int]) -> WholeBodyOutput:
    return WholeBodyOutput(
        pafs=[torch.randn(shape_p) for _ in range(stages[0])], heatmaps=[torch.randn(shape_h) for _ in range(stages[1])]
    )


def test_loss_zero_masked_and_hand_value() -> None:
    torch.manual_seed(0)
    p, h = torch.randn(2, 4, 3, 3), torch.randn(2, 3, 3, 3)
    wp, wh = (torch.rand(2, 4, 3, 3) > 0.5).float(), (torch.rand(2, 3, 3, 3) > 0.5).float()
    perfect = WholeBodyOutput(pafs=[p.clone(), p.clone()], heatmaps=[h.clone()])
    losses = wholebody_loss(perfect, p, wp, h, wh)
    assert set(losses) == {"paf_stage0", "paf_stage1", "cm_stage0", "total"}
    assert all(v.item() == 0 for v in losses.values())
    out = _random_output(p.shape, h.shape, (2, 1))
    before = {k: v.item() for k, v in wholebody_loss(out, p, wp, h, wh).items()}
    out.pafs[0][wp == 0] += 100.0
    out.heatmaps[0][wh == 0] -= 100.0
    after = {k: v.item() for k, v in wholebody_loss(out, p, wp, h, wh).items()}
    assert after == pytest.approx(before, rel=1e-6)
    # Hand value: batch 2, sum of w (pred - target)^2 = 1*(1-0)^2 + 1*(3-1)^2 (+ a masked 100^2) = 5; / (2 * 2).
    pred, target, weight = torch.zeros(2, 1, 1, 2), torch.zeros(2, 1, 1, 2), torch.zeros(2, 1, 1, 2)
    pred[0, 0, 0, 0], weight[0, 0, 0, 0] = 1.0, 1.0
    pred[1, 0, 0, 1], target[1, 0, 0, 1], weight[1, 0, 0, 1] = 3.0, 1.0, 1.0
    pred[1, 0, 0, 0] = 100.0
    assert masked_l2(pred, target, weight).item() == pytest.approx(5 / 4)
    with pytest.raises(ValueError, match="shapes differ"):
        masked_l2(pred, target[:, :, :, :1], weight)


def test_cpu_preset_overfits_one_person() -> None:
    torch.manual_seed(0)
    keypoints = np.zeros((1, 135, 3))
    rng = np.random.default_rng(0)
    keypoints[0, :25, :2] = rng.uniform(12, 52, size=(25, 2))
    keypoints[0, :25, 2] = 2
    t = make_targets(keypoints, (64, 64), np.ones(135, dtype=bool))
    pafs, paf_w, maps, map_w = (
        torch.from_numpy(a)[None] for a in (t.pafs, t.paf_weights, t.heatmaps, t.heatmap_weights)
    )
    net = build_wholebody_net(WholeBodyNetConfig.body135_cpu())
    image = torch.rand(1, 3, 64, 64) - 0.5
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        loss = wholebody_loss(net(image), pafs, paf_w, maps, map_w)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.3 * losses[0], losses[::10]
    # and it learned the targets, not just to output zeros: below 30 % of the all-zero prediction's loss too
    zeros = WholeBodyOutput(pafs=[torch.zeros_like(pafs)] * 2, heatmaps=[torch.zeros_like(maps)])
    assert min(losses[-5:]) < 0.3 * wholebody_loss(zeros, pafs, paf_w, maps, map_w)["total"].item()


# --- a tiny protobuf encoder, the writer side of caffe.proto's NetParameter --------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _blob(array: np.ndarray, legacy: bool) -> bytes:
    data = _field(5, array.astype("<f4").tobytes())  # packed floats
    if legacy:  # num/channels/height/width, right-aligned as Caffe's legacy 4-D shape; unpacked fixed32 floats
        dims = (1,) * (4 - array.ndim) + array.shape
        data = b"".join(_varint(5 << 3 | 5) + struct.pack("<f", x) for x in array.ravel().tolist())
        return b"".join(_field(k + 1, d) for k, d in enumerate(dims)) + data
    return _field(7, _field(1, b"".join(_varint(d) for d in array.shape))) + data


def _caffemodel(layers: dict[str, list[np.ndarray]], v1: bool = False) -> bytes:
    out = _field(1, b"tiny")
    for name, blobs in layers.items():
        if v1:
            body = _field(4, name.encode()) + _field(5, 4) + b"".join(_field(6, _blob(b, True)) for b in blobs)
            out += _field(2, body)
        else:
            body = _field(1, name.encode()) + _field(2, b"Convolution" if blobs else b"ReLU")
            out += _field(100, body + b"".join(_field(7, _blob(b, False)) for b in blobs))
    return out


TINY = WholeBodyNetConfig(
    vgg_widths=(4, 4, 6, 6),
    cpm_widths=(6, 5),
    feature_channels=5,
    paf_widths=(3, 4),
    paf_blocks=(1, 2),
    paf_mid_channels=(7, 6),
    cm_widths=(3,),
    cm_blocks=(2,),
    cm_mid_channels=(5,),
    num_heatmaps=3,
    num_pafs=4,
)


def _random_layers(net: WholeBodyNet) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(1)
    layers: dict[str, list[np.ndarray]] = {"data": [], "relu1_1": []}
    for name, module in net.caffe_layers().items():
        params = [module.weight] + ([module.bias] if isinstance(module, nn.Conv2d) and module.bias is not None else [])
        layers[name] = [rng.standard_normal(tuple(p.shape)).astype(np.float32) for p in params]
    return layers


@pytest.mark.parametrize("v1", [False, True])
def test_caffe_weights_round_trip(tmp_path: Path, v1: bool) -> None:
    net = build_wholebody_net(TINY)
    layers = _random_layers(net)
    path = tmp_path / "tiny.caffemodel"
    path.write_bytes(_caffemodel(layers, v1=v1))
    read = read_caffemodel(path)
    assert set(read) == set(layers)
    load_caffe_weights(net, path)
    modules = net.caffe_layers()
    for name, blobs in layers.items():
        if name in modules:
            module = modules[name]
            assert torch.equal(module.weight, torch.from_numpy(blobs[0]))
            if isinstance(module, nn.Conv2d):
                assert module.bias is not None
                assert torch.equal(module.bias, torch.from_numpy(blobs[1]))
    assert len(modules) == sum(1 for b in layers.values() if b)


def test_caffe_weights_errors(tmp_path: Path) -> None:
    net = build_wholebody_net(TINY)
    layers = _random_layers(net)
    good = _caffemodel(layers)
    truncated = tmp_path / "truncated.caffemodel"
    truncated.write_bytes(good[:-7])
    with pytest.raises(CaffeModelError, match=r"truncated\.caffemodel: truncated"):
        read_caffemodel(truncated)
    bad = dict(layers)
    del bad["Mconv1_stage1_L2_2"]
    bad["Mconv1_stage0_L2_0"] = [bad["Mconv1_stage0_L2_0"][0][:, :2], bad["Mconv1_stage0_L2_0"][1]]
    bad["conv5_1"] = [np.zeros((2, 2, 3, 3), np.float32), np.zeros(2, np.float32)]
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(_caffemodel(bad))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(CaffeModelError) as info:
        load_caffe_weights(net, path)
    message = str(info.value)
    assert "bad.caffemodel" in message
    assert "missing from the file: Mconv1_stage1_L2_2" in message
    assert "unexpected layers in the file: conv5_1" in message
    assert "Mconv1_stage0_L2_0 blob 0: shape (3, 2, 3, 3) in the file, (3, 5, 3, 3) in the net" in message
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # nothing half-loaded
    # a timm trunk has no Caffe counterpart: its parameters are reported, not silently skipped
    cpu_net = build_wholebody_net(WholeBodyNetConfig.body135_cpu())
    with pytest.raises(CaffeModelError, match="parameters without a Caffe layer: trunk"):
        load_caffe_weights(cpu_net, path)
