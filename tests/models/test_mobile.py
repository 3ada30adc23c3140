"""Mobile Parsing R-CNN's parts: BiFPN, fast normalized fusion, the conv box head, expansion features, and the
presets' parameter counts against the paper's tables."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from densehuman.models.box_head import FastRCNNConvFCHead
from densehuman.models.build import build_model
from densehuman.models.necks import BiFPN, FastNormalizedFusion
from densehuman.models.zoo import preset
from densehuman.models.zoo_mobile import mobile_model

SHAPES = {"res2": (72, 4), "res3": (120, 8), "res4": (288, 16), "res5": (1152, 32)}


def test_fast_normalized_fusion_known_answer() -> None:
    fuse = FastNormalizedFusion(3)
    with torch.no_grad():
        fuse.weight.copy_(torch.tensor([1.0, 3.0, -2.0]))  # the negative weight is cut to 0 by the ReLU
    a, b, c = torch.full((1, 1, 2, 2), 2.0), torch.full((1, 1, 2, 2), 6.0), torch.full((1, 1, 2, 2), 100.0)
    torch.testing.assert_close(fuse([a, b, c]), torch.full((1, 1, 2, 2), (2.0 + 18.0) / (4.0 + 1e-4)))
    with pytest.raises(ValueError, match="takes 3 maps"):
        fuse([a, b])


def test_bifpn_outputs_strides_and_every_input_reaches_every_output() -> None:
    neck = BiFPN(SHAPES, out_channels=16)
    features = {k: torch.randn(1, c, 128 // s, 96 // s, requires_grad=True) for k, (c, s) in SHAPES.items()}
    out = neck(features)
    assert list(out) == ["p2", "p3", "p4", "p5", "p6"]
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == {
        "p2": (32, 24), "p3": (16, 12), "p4": (8, 6), "p5": (4, 3), "p6": (2, 2)
    }  # fmt: skip
    assert neck.output_shapes() == {f"p{k}": (16, 2**k) for k in range(2, 7)}
    # Bidirectional: p2 sees res5 (top-down) and p5 sees res2 (bottom-up).
    grad_p2 = torch.autograd.grad(out["p2"].sum(), features["res5"], retain_graph=True)[0]
    grad_p5 = torch.autograd.grad(out["p5"].sum(), features["res2"])[0]
    assert grad_p2.abs().sum() > 0
    assert grad_p5.abs().sum() > 0
    # Down-sampling is a strided separable convolution, not a max-pool; six fusions of 2, 2, 2, 3, 3, 2 maps.
    assert [m.depthwise.stride for m in neck.down] == [(2, 2)] * 3
    assert [f.weight.numel() for f in neck.fuse] == [2, 2, 2, 3, 3, 2]
    with pytest.raises(ValueError, match="four levels"):
        BiFPN({"res2": (8, 4)}, in_features=("res2",))


def test_conv_box_head_has_two_convolutions_and_no_fc() -> None:
    head = FastRCNNConvFCHead(64, 7, num_fc=0, num_conv=2, conv_dim=64)
    assert [n for n, _ in head.named_children()] == ["conv1", "conv2"]
    assert head.out_dim == 64 * 7 * 7
    assert head(torch.randn(5, 64, 7, 7)).shape == (5, 64 * 7 * 7)


@pytest.mark.parametrize(
    ("width", "neck", "location", "paper"),
    [(256, "bifpn", "expansion", 10.53), (112, "bifpn", "expansion", 4.41), (88, "bifpn", "expansion", 3.82),
     (64, "bifpn", "expansion", 3.35)],
)  # fmt: skip
def test_parameter_counts_match_the_papers_table_3(width: int, neck: str, location: str, paper: float) -> None:
    """Table 3 of "Making DensePose fast and light" (frozen backbone norms are buffers, not parameters)."""
    model = build_model(mobile_model(width, neck, location))
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert count == pytest.approx(paper, rel=0.01)


def test_table_1_models_and_what_the_presets_run() -> None:
    counts = {
        name: sum(p.numel() for p in build_model(preset(name).model).parameters()) / 1e6
        for name in ("densepose_rcnn_r50_fpn_legacy", "mobile_parsing_rcnn_a", "mobile_parsing_rcnn_b")
    }
    assert counts["densepose_rcnn_r50_fpn_legacy"] == pytest.approx(59.73, rel=0.001)  # the DensePose R-CNN column
    assert counts["mobile_parsing_rcnn_b"] == pytest.approx(3.35, rel=0.01)
    assert counts["mobile_parsing_rcnn_a"] == pytest.approx(11.35, rel=0.06)  # 11.93: see the README
    parsing = preset("densepose_parsing_rcnn_r50_fpn")
    fnl = replace(parsing.model, densepose=replace(parsing.model.densepose, nonlocal_ratio=0.5))
    assert sum(p.numel() for p in build_model(fnl).parameters()) / 1e6 == pytest.approx(54.56, rel=0.001)
    model = build_model(preset("mobile_parsing_rcnn_b_test_tuned").model).eval()
    with torch.no_grad():
        (prediction,) = model.predict([torch.randint(0, 255, (3, 128, 160), dtype=torch.uint8)])
    assert prediction.densepose is not None
    assert prediction.densepose.u.shape[-2:] == (64, 64)  # 32 x 32 RoIs, one deconvolution, no upsampling
    assert model.rpn.pre_nms_topk[1] == model.rpn.post_nms_topk[1] == 100


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from densehuman.synth.engine import SynthJob, run_synth
    from densehuman.synth.generator import SynthConfig

    root = tmp_path_factory.mktemp("mobile") / "ds"
    config = SynthConfig(size=(128, 160), max_people=2)
    job = SynthJob(root, images=2, seed=5, val_fraction=0.0, config=config, workers=1, preview_count=0)
    run_synth(job, progress=False)
    return root


@pytest.mark.parametrize(
    "name",
    ["mobile_parsing_rcnn_a", "mobile_parsing_rcnn_b", "mobile_parsing_rcnn_b_test_tuned", "mobile_parsing_rcnn_b_cpu"],
)
def test_every_mobile_preset_trains_and_its_run_folder_predicts(name: str, tiny_dataset: Path, tmp_path: Path) -> None:
    """Two training steps on synthetic images change the weights, and the run folder is a model for the Predictor."""
    from safetensors.torch import load_file

    from densehuman.config import apply_overrides, parse_set
    from densehuman.engine.checkpoint import last_checkpoint
    from densehuman.engine.trainer import run_training
    from densehuman.inference.predictor import Predictor

    settings = ["input.min_size_test=128", "input.max_size_test=160", "input.min_size_train=[128]",
                "input.max_size_train=160", "solver.max_iter=2", "solver.ims_per_batch=2", "solver.warmup_iters=1",
                "solver.steps=[10]", "solver.checkpoint_period=2", "data.num_workers=0",
                "data.eval_max_images=0"]  # fmt: skip
    config = apply_overrides(preset(name), parse_set(settings))
    torch.manual_seed(0)
    start = {k: v.clone() for k, v in build_model(config.model).state_dict().items()}
    result = run_training(config, tiny_dataset, tmp_path / "run", progress=False)
    assert result["iteration"] == 2
    checkpoint = last_checkpoint(tmp_path / "run")
    assert checkpoint is not None
    trained = load_file(str(checkpoint))
    moved = [k for k in start if k.startswith("extra_heads.0") and not torch.equal(start[k], trained[k])]
    assert moved, "the DensePose head did not change"
    image = torch.randint(0, 255, (128, 160, 3), dtype=torch.uint8).numpy()
    people = Predictor(tmp_path / "run", min_score=0.0)(image).people
    assert all(p.chart is not None for p in people)
