"""The detectron2 importer: reading pickles and .pth files safely, config translation (``_BASE_``, defaults,
refusals), zoo names and hashes, tensor accounting, and agreement with detectron2's outputs on the four model-zoo
fixtures, from the network input and from the original image (skipped where the fixtures are absent)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from densehuman.cli import main as cli
from densehuman.config import to_dict
from densehuman.engine.detectron2 import (
    UnsupportedModelError,
    WeightMismatchError,
    config_from_detectron2,
    load_detectron2_model,
    load_detectron2_yaml,
    read_detectron2_weights,
    zoo_config,
    zoo_names,
)
from densehuman.engine.detectron2.convert import infer_config
from densehuman.engine.detectron2.weights import densehuman_name, load_detectron2_weights, map_weights
from densehuman.engine.detectron2.zoo import canonical_name, name_from_file
from densehuman.inference.predictor import Predictor
from densehuman.models.build import build_model

FIXTURES = Path("/work/shared/fixtures/detectron2")
NAMES = [
    "densepose_rcnn_R_50_FPN_s1x",
    "densepose_rcnn_R_50_FPN_s1x_legacy",
    "densepose_rcnn_R_50_FPN_DL_s1x",
    "densepose_rcnn_R_50_FPN_WC1M_s1x",
]
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason="detectron2 fixtures not available")


def fixture_state(name: str) -> dict[str, np.ndarray]:
    with (FIXTURES / name / "model.pkl").open("rb") as f:
        state: dict[str, np.ndarray] = pickle.load(f)["model"]
    return state


# --- reading files ------------------------------------------------------------------------------------------------


def test_reads_zoo_pickle_and_pth_alike(tmp_path: Path) -> None:
    arrays = {"backbone.fpn_lateral2.weight": np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1)}
    pkl = tmp_path / "model_final_abc.pkl"
    pkl.write_bytes(pickle.dumps({"model": arrays, "__author__": "me", "matching_heuristics": False}))
    pth = tmp_path / "model_0004999.pth"
    state = {"module." + k: torch.from_numpy(v) for k, v in arrays.items()}  # a DDP-wrapped state dict
    torch.save({"model": state, "iteration": 4999, "optimizer": {"state": {}, "param_groups": []}}, pth)
    a, b = read_detectron2_weights(pkl), read_detectron2_weights(pth)
    assert set(a.tensors) == set(b.tensors) == set(arrays)
    torch.testing.assert_close(a.tensors["backbone.fpn_lateral2.weight"], b.tensors["backbone.fpn_lateral2.weight"])
    assert a.extra["__author__"] == "me"
    assert b.extra["iteration"] == 4999


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/densehuman_pwned",))


def test_refuses_pickles_that_run_code_and_other_bad_files(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"model": {"w": _Evil()}}))
    with pytest.raises(ValueError, match="refusing to load"):
        read_detectron2_weights(evil)
    assert not Path("/tmp/densehuman_pwned").exists()
    cases = {
        "empty.pkl": b"",
        "text.pkl": b"not a pickle at all",
        "list.pkl": pickle.dumps([1, 2]),
        "blobs.pkl": pickle.dumps({"blobs": {"conv1_w": np.zeros(3, np.float32)}}),
        "heuristics.pkl": pickle.dumps({"model": {"w": np.zeros(1, np.float32)}, "matching_heuristics": True}),
        "strings.pkl": pickle.dumps({"model": {"w": "zero"}}),
    }
    messages = ["empty file", "not a readable", "dict of weights", "Detectron1", "matching_heuristics", "not an array"]
    for (name, data), message in zip(cases.items(), messages, strict=True):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=message) as err:
            read_detectron2_weights(tmp_path / name)
        assert name in str(err.value)
    with pytest.raises(FileNotFoundError, match=r"missing\.pkl"):
        read_detectron2_weights(tmp_path / "missing.pkl")


# --- configs ------------------------------------------------------------------------------------------------------


def test_base_files_merge_and_absent_keys_take_detectron2_defaults(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    base = {
        "MODEL": {
            "BACKBONE": {"NAME": "build_resnet_fpn_backbone"},
            "RESNETS": {"OUT_FEATURES": ["res2", "res3", "res4", "res5"], "DEPTH": 50},
            "FPN": {"IN_FEATURES": ["res2", "res3", "res4", "res5"]},
            "ANCHOR_GENERATOR": {"SIZES": [[32], [64], [128], [256], [512]]},
            "RPN": {"IN_FEATURES": ["p2", "p3", "p4", "p5", "p6"], "POST_NMS_TOPK_TEST": 1000},
            "ROI_HEADS": {"NAME": "DensePoseROIHeads", "IN_FEATURES": ["p2", "p3", "p4", "p5"], "NUM_CLASSES": 1},
            "ROI_BOX_HEAD": {"NAME": "FastRCNNConvFCHead", "NUM_FC": 2, "POOLER_RESOLUTION": 7},
            "ROI_DENSEPOSE_HEAD": {"NAME": "DensePoseV1ConvXHead", "POOLER_TYPE": "ROIAlign"},
        }
    }
    (tmp_path / "base" / "Base.yaml").write_text(yaml.safe_dump(base))
    child = {"_BASE_": "base/Base.yaml", "MODEL": {"RESNETS": {"DEPTH": 101}}, "SOLVER": {"BASE_LR": 0.02}}
    (tmp_path / "child.yaml").write_text(yaml.safe_dump(child))
    cfg = config_from_detectron2(load_detectron2_yaml(tmp_path / "child.yaml"))
    assert cfg.model.backbone.depth == 101  # the child wins
    assert cfg.model.box_head.pooler_resolution == 7  # from the base
    assert cfg.solver.base_lr == 0.02
    # Absent keys: detectron2's defaults, e.g. ROIAlignV2 for the box pooler, 1000 pre-NMS proposals... 6000 in d2
    assert cfg.model.box_head.pooler_aligned is True
    assert cfg.model.box_head.pooler_sampling_ratio == 0
    assert cfg.model.rpn.pre_nms_topk_test == 6000
    assert cfg.model.densepose.pooler_aligned is False
    assert cfg.model.densepose.heatmap_size == 112
    # A missing base file and a loop are named.
    (tmp_path / "orphan.yaml").write_text("_BASE_: nowhere.yaml\n")
    with pytest.raises(FileNotFoundError, match=r"orphan.yaml: its _BASE_ file .*nowhere.yaml is missing"):
        load_detectron2_yaml(tmp_path / "orphan.yaml")
    (tmp_path / "a.yaml").write_text("_BASE_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\n")
    with pytest.raises(ValueError, match="loop"):
        load_detectron2_yaml(tmp_path / "a.yaml")


@needs_fixtures
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MODEL": {"ROI_DENSEPOSE_HEAD": {"PREDICTOR_NAME": "DensePoseEmbeddingPredictor"}}}, "CSE"),
        ({"MODEL": {"BACKBONE": {"NAME": "build_hrfpn_backbone"}}}, "HRNet"),
        ({"MODEL": {"MASK_ON": True}}, "MODEL.MASK_ON"),
        ({"MODEL": {"RESNETS": {"NUM_GROUPS": 32}}}, "NUM_GROUPS = 32 is not supported"),
        ({"MODEL": {"ANCHOR_GENERATOR": {"SIZES": [[32, 64]]}}}, "one anchor size per FPN level"),
        ({"MODEL": {"ROI_DENSEPOSE_HEAD": {"NAME": "DensePoseV1ConvXGNHead"}}}, "DensePoseV1ConvXGNHead"),
        ({"TEST": {"AUG": {"ENABLED": True}}}, "test-time augmentation"),
    ],
)
def test_unsupported_settings_are_refused_by_name(change: dict, message: str) -> None:
    from densehuman.engine.detectron2.config import merge

    cfg = merge(load_detectron2_yaml(FIXTURES / NAMES[0] / "config.yaml"), change)
    with pytest.raises(UnsupportedModelError, match=message):
        config_from_detectron2(cfg, source="cfg.yaml")


@needs_fixtures
@pytest.mark.parametrize("name", NAMES)
def test_fixture_configs_equal_the_zoo_config_and_the_inferred_one(name: str) -> None:
    """Three routes to a config agree: the detectron2 YAML, the zoo name (+ the fixture's narrow widths), and the
    tensors alone."""
    from_yaml = config_from_detectron2(load_detectron2_yaml(FIXTURES / name / "config.yaml"))
    zoo = zoo_config(name)
    inferred, inferred_name = infer_config(read_detectron2_weights(FIXTURES / name / "model.pkl"))
    assert inferred_name == name
    narrow = {
        "backbone": {"width_per_group": 8, "stem_out_channels": 16, "res2_out_channels": 32},
        "fpn": {"out_channels": 32},
        "box_head": {"fc_dim": 64, "detections_per_image": 10},
        "densepose": {"conv_dim": 32, "decoder_conv_dims": 32, "decoder_num_classes": 32},
    }

    def model_dict(config: object, widths: dict) -> dict:
        d = to_dict(config)["model"]
        for section, values in widths.items():
            d[section].update(values)
        if not d["densepose"]["decoder"]:  # unused when the decoder is off
            d["densepose"].pop("decoder_conv_dims")
            d["densepose"].pop("decoder_num_classes")
        return d

    assert model_dict(from_yaml, {}) == model_dict(zoo, narrow)
    assert model_dict(inferred, {"box_head": {"detections_per_image": 10}}) == model_dict(from_yaml, {})
    assert (from_yaml.input.min_size_test, from_yaml.input.max_size_test) == (800, 1333)


def test_zoo_names_and_file_hashes() -> None:
    assert len(zoo_names()) == 22
    assert canonical_name("R_101_FPN_DL_WC2M_s1x") == "densepose_rcnn_R_101_FPN_DL_WC2M_s1x"
    assert canonical_name("configs/densepose_rcnn_R_50_FPN_s1x_legacy.yaml") == "densepose_rcnn_R_50_FPN_s1x_legacy"
    assert canonical_name("densepose_rcnn_R_50_FPN_DL_s1x_legacy") is None  # no such zoo model
    assert canonical_name("mask_rcnn_R_50_FPN_3x") is None
    with pytest.raises(UnsupportedModelError, match="CSE"):
        canonical_name("cse/densepose_rcnn_R_50_FPN_s1x")
    with pytest.raises(UnsupportedModelError, match="HRNet"):
        canonical_name("densepose_rcnn_HRFPN_HRNet_w32_s1x")
    assert name_from_file("/dl/model_final_162be9.pkl") == "densepose_rcnn_R_50_FPN_s1x"
    assert name_from_file("model_final_d366fa.pkl") == "densepose_rcnn_R_50_FPN_s1x_legacy"
    assert name_from_file("weights.pkl") is None
    with pytest.raises(UnsupportedModelError, match="continuous surface embedding"):
        name_from_file("model_final_c4ea5f.pkl")
    c = zoo_config("densepose_rcnn_R_101_FPN_DL_WC2M_s1x").model
    assert (c.backbone.depth, c.densepose.head, c.densepose.uv_confidence, c.densepose.segm_confidence) == (
        101,
        "deeplab",
        "indep_aniso",
        True,
    )
    legacy = zoo_config("R_101_FPN_s1x_legacy").model.densepose
    assert (legacy.decoder, legacy.num_coarse_segm, legacy.pooler_resolution, legacy.heatmap_size) == (
        False,
        15,
        14,
        56,
    )


# --- tensors ------------------------------------------------------------------------------------------------------


@needs_fixtures
def test_every_tensor_is_accounted_for_and_problems_are_named() -> None:
    name = NAMES[0]
    state = {k: torch.from_numpy(v) for k, v in fixture_state(name).items()}
    model = build_model(config_from_detectron2(load_detectron2_yaml(FIXTURES / name / "config.yaml")).model)
    mapped, report = map_weights(state, model, "ckpt")
    assert report.ok
    assert report.mapped == len(state) == len(mapped) == len(model.state_dict())
    assert all(densehuman_name(k) in model.state_dict() for k in state)

    broken = dict(state)
    del broken["roi_heads.densepose_head.body_conv_fcn3.bias"]
    broken["roi_heads.mask_head.mask_fcn1.weight"] = torch.zeros(3, 3)
    broken["roi_heads.box_head.fc2.weight"] = torch.zeros(64, 65)
    # Buffers detectron2 no longer loads are checked, not loaded.
    broken["pixel_mean"] = torch.tensor([103.53, 116.28, 123.675]).view(3, 1, 1)
    broken["proposal_generator.anchor_generator.cell_anchors.0"] = model.rpn.anchor_generator.level_cell_anchors(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightMismatchError) as err:
        load_detectron2_weights(model, broken, "ckpt")
    text = str(err.value)
    assert "missing from the checkpoint: extra_heads.0.head.body_conv_fcn3.bias [32]" in text
    assert "not in the model: roi_heads.mask_head.mask_fcn1.weight [3, 3]" in text
    assert "shape mismatch: roi_heads.box_head.fc2.weight: checkpoint [64, 65], model [64, 64]" in text
    assert "pixel_mean: equal to the normalization" in text
    assert "cell_anchors.0: equal to the anchors" in text
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # all or nothing


# --- conversion and the command line ------------------------------------------------------------------------------


@needs_fixtures
def test_convert_cli_round_trip_refusals_and_predict_with_detectron2_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "densepose_rcnn_R_50_FPN_s1x_legacy"
    # A zoo file name without its config: the config comes from the tensors, with a warning that says so.
    renamed = tmp_path / "weights.pkl"
    renamed.write_bytes((FIXTURES / name / "model.pkl").read_bytes())
    out = tmp_path / "converted.safetensors"
    with pytest.warns(UserWarning, match="inferred from the weights"):
        assert cli(["convert", "detectron2", str(renamed), "--out", str(out)]) == 0
    assert "319 tensors mapped" in capsys.readouterr().out
    summary_out = tmp_path / "with_config.safetensors"
    config_args = ["--config", str(FIXTURES / name / "config.yaml"), "--json"]
    assert cli(["convert", "detectron2", str(renamed), *config_args, "--out", str(summary_out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["tensors"], summary["config"], summary["model"]) == (
        319,
        str(FIXTURES / name / "config.yaml"),
        name,
    )
    assert cli(["convert", "detectron2", str(renamed), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    # The zoo name alone describes the full-width model: every mismatch is named, nothing is written.
    bad = tmp_path / "bad.safetensors"
    assert cli(["convert", "detectron2", str(renamed), "--config", name, "--out", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "shape mismatch: backbone.bottom_up.stem.conv1.weight: checkpoint [16, 3, 7, 7], model [64, 3, 7, 7]" in err
    assert not bad.exists()

    ref = np.load(FIXTURES / name / "reference.npz")
    image = ref["image_bgr"]
    direct = Predictor(FIXTURES / name / "model.pkl", config=FIXTURES / name / "config.yaml", min_score=0.05)
    converted = Predictor(out, min_score=0.05)
    a, b = direct(image, bgr=True), converted(image, bgr=True)
    # The converted model's config was inferred (100 detections per image); the YAML says 10.
    assert (len(a.people), len(b.people)) == (10, converted.config.model.box_head.detections_per_image)
    assert [p.box for p in a.people] == [p.box for p in b.people][:10]
    assert all(np.array_equal(p.chart.labels, q.chart.labels) for p, q in zip(a.people, b.people, strict=False))

    # `predict --model` takes the detectron2 file directly.
    image_path = tmp_path / "image.png"
    __import__("cv2").imwrite(str(image_path), image)
    code = cli(
        [
            "predict",
            str(image_path),
            "--model",
            str(FIXTURES / name / "model.pkl"),
            "--config",
            str(FIXTURES / name / "config.yaml"),
            "--out",
            str(tmp_path / "pred"),
            "--min-score",
            "0.05",
            "--vis",
            "none",
            "--save",
            "results",
            "--quiet",
        ]
    )
    assert code == 0
    assert (tmp_path / "pred" / "results.json").is_file()


def test_cse_and_hrnet_checkpoints_get_a_clear_message(tmp_path: Path) -> None:
    cse = tmp_path / "cse.pkl"
    cse.write_bytes(pickle.dumps({"model": {"roi_heads.embedder.smpl_27554.embeddings": np.zeros((2, 16), "f4")}}))
    with pytest.raises(UnsupportedModelError, match="continuous surface embedding"):
        load_detectron2_model(cse)
    hrnet = tmp_path / "hr.pkl"
    hrnet.write_bytes(pickle.dumps({"model": {"backbone.bottom_up.stage2.0.weight": np.zeros(3, "f4")}}))
    with pytest.raises(UnsupportedModelError, match="HRNet"):
        load_detectron2_model(hrnet)
    assert cli(["convert", "detectron2", str(cse), "--out", str(tmp_path / "x.safetensors")]) == 2


@needs_fixtures
def test_a_pth_of_detectron2_training_loads_like_the_zoo_pickle(tmp_path: Path) -> None:
    """detectron2's own training writes ``model_*.pth`` (torch.save, DDP prefixes possible) beside config.yaml."""
    name = "densepose_rcnn_R_50_FPN_WC1M_s1x"
    state = {"module." + k: torch.from_numpy(v) for k, v in fixture_state(name).items()}
    torch.save({"model": state, "iteration": 129999, "scheduler": {"last_epoch": 129999}}, tmp_path / "model_final.pth")
    (tmp_path / "config.yaml").write_bytes((FIXTURES / name / "config.yaml").read_bytes())
    from_pth = load_detectron2_model(tmp_path / "model_final.pth")
    from_pkl = load_detectron2_model(FIXTURES / name / "model.pkl")
    assert from_pth.iteration == 129999
    assert from_pth.config_source == str(tmp_path / "config.yaml")
    assert from_pth.config.model == from_pkl.config.model
    ours, theirs = from_pth.model.state_dict(), from_pkl.model.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@needs_fixtures
def test_fine_tuning_starts_from_detectron2_weights(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`train --init model.pkl` takes the checkpoint's own config (config.yaml beside it) and weights: after two
    iterations the frozen stem still holds detectron2's values and the trained heads have moved."""
    from safetensors.torch import load_file

    from densehuman.synth.engine import SynthJob, run_synth
    from densehuman.synth.generator import SynthConfig

    data = tmp_path / "ds"
    synth = SynthConfig(size=(128, 128), max_people=2)
    run_synth(SynthJob(data, images=2, seed=5, val_fraction=0.0, config=synth, workers=1, preview_count=0), False)
    name = "densepose_rcnn_R_50_FPN_s1x"
    settings = [
        "input.min_size_train=[128]",
        "input.max_size_train=128",
        "solver.ims_per_batch=2",
        "solver.max_iter=2",
        "solver.warmup_iters=1",
        "solver.base_lr=1e-6",  # the fixture's random weights give huge activations
        "solver.checkpoint_period=0",
        "data.num_workers=0",
    ]
    run = tmp_path / "run"
    args = ["train", "--init", str(FIXTURES / name / "model.pkl"), "--data", str(data), "--out", str(run)]
    assert cli([*args, "--quiet", "--set", *settings]) == 0
    capsys.readouterr()
    assert "detectron2 weights" in (run / "init.json").read_text()
    weights = load_file(str(run / "model_0000002.safetensors"))
    state = fixture_state(name)
    np.testing.assert_array_equal(
        weights["backbone.stem.conv1.weight"].numpy(), state["backbone.bottom_up.stem.conv1.weight"]
    )
    moved = weights["extra_heads.0.head.body_conv_fcn1.weight"].numpy()
    assert not np.array_equal(moved, state["roi_heads.densepose_head.body_conv_fcn1.weight"])
    # A preset of another width: every mismatch named, no run started.
    bad = ["train", "--preset", name, "--init", str(FIXTURES / name / "model.pkl"), "--data", str(data)]
    assert cli([*bad, "--out", str(tmp_path / "bad"), "--quiet", "--set", *settings]) == 2
    assert "shape mismatch: backbone.bottom_up.stem.conv1.weight" in capsys.readouterr().err
