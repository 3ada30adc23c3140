"""Malformed inputs to ``train``, ``predict``, ``convert``, ``synth`` and ``fake-predictions``: configs, ``--set``
values, datasets, checkpoints, images, videos, atlases, folders. Each case: a non-zero exit, no traceback, a message
naming the file (or option) and the field, the folder exactly as it was (see ``malformed.run_case``)."""

from __future__ import annotations

import json
import pickle
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from malformed import Case, densepose_gt, edited, run_case, write_image, write_json

KIT: dict[str, Path] = {}  # shared, valid inputs (outside the cases' folders), made once by the fixture below
TRAIN_SETS = ("data.num_workers=0", "solver.max_iter=1")


@pytest.fixture(scope="module", autouse=True)
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    from densehuman.config import to_dict
    from densehuman.engine.checkpoint import save_checkpoint
    from densehuman.models.build import build_model
    from densehuman.models.zoo import preset
    from densehuman.synth.engine import SynthJob, run_synth
    from densehuman.synth.generator import SynthConfig

    root = tmp_path_factory.mktemp("kit")
    torch.manual_seed(0)
    config = preset("densepose_rcnn_tiny_cpu")
    KIT["checkpoint"] = save_checkpoint(root / "run", 1, build_model(config.model), to_dict(config))
    other = preset("densepose_rcnn_resnet18_cpu")
    KIT["other_checkpoint"] = save_checkpoint(root / "other", 1, build_model(other.model), to_dict(other))
    KIT["image"] = write_image(root / "photo.png")
    KIT["synth"] = root / "synth"
    run_synth(
        SynthJob(KIT["synth"], images=2, seed=1, val_fraction=0.5, config=SynthConfig(size=(64, 64)), workers=1),
        progress=False,
    )
    return KIT


def _dataset(folder: Path, edit: Callable[[Any], Any] | None = None, images: bool = True) -> Path:
    """A DensePose-COCO training folder in the synthetic layout (two images), its JSON edited by ``edit``."""
    data = folder / "data"
    gt = densepose_gt()
    write_json(data / "annotations" / "densepose_train.json", gt if edit is None else edited(gt, edit))
    if images:
        for k, name in enumerate(("a.png", "b.png")):
            write_image(data / "images" / "train" / name, seed=k)
    return data


def _train(folder: Path, *extra: str, data: Path | None = None, sets: tuple[str, ...] = TRAIN_SETS) -> list[str]:
    data = data if data is not None else _dataset(folder)
    out = ["train", "--data", str(data), "--out", str(folder / "run"), "--preset", "densepose_rcnn_tiny_cpu"]
    return [*out, "--quiet", *extra, "--set", *sets]


def _set(*items: str) -> Callable[[Path], tuple[list[str], str]]:
    """``--set`` items (the defaults of ``TRAIN_SETS`` for the keys they leave alone); the message names the last."""
    keys = {item.split("=", 1)[0] for item in items}
    sets = tuple(s for s in TRAIN_SETS if s.split("=", 1)[0] not in keys) + items
    return lambda f: (_train(f, sets=sets), items[-1].split("=", 1)[0])


def _out_is_a_file(folder: Path) -> tuple[list[str], str]:
    (folder / "run").write_bytes(b"x")
    return _train(folder), str(folder / "run")


def _out_not_empty(folder: Path) -> tuple[list[str], str]:
    (folder / "run").mkdir()
    (folder / "run" / "notes.txt").write_text("mine")
    return _train(folder), str(folder / "run")


def _config_file(text: bytes, field: str, name: str) -> Case:
    def build(folder: Path) -> tuple[list[str], str]:
        path = folder / "override.yaml"
        path.write_bytes(text)
        return _train(folder, "--config", str(path)), str(path)

    return Case(name, build, field)


def _train_data(name: str, edit: Callable[[Any], Any] | None, field: str, images: bool = True) -> Case:
    def build(folder: Path) -> tuple[list[str], str]:
        data = _dataset(folder, edit, images)
        names = data / "annotations" / "densepose_train.json" if images else data / "images" / "train"
        return _train(folder, data=data), str(names)

    return Case(name, build, field)


def _missing_image(folder: Path) -> tuple[list[str], str]:
    data = _dataset(folder)
    (data / "images" / "train" / "b.png").unlink()
    return _train(folder, data=data), str(data / "annotations" / "densepose_train.json")


def _init(payload: Callable[[Path], Path]) -> Callable[[Path], tuple[list[str], str]]:
    def build(folder: Path) -> tuple[list[str], str]:
        path = payload(folder)
        return _train(folder, "--init", str(path)), str(path)

    return build


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("touch /tmp/densehuman_pwned_by_a_test",))


def _bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return make


def _copy_kit(key: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        return Path(shutil.copy(KIT[key], folder / KIT[key].name))

    return make


def _png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose IHDR chunk claims another size: a decompression bomb's header."""
    data = bytearray(_encoded(".png"))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def _encoded(suffix: str) -> bytes:
    import cv2

    rng = np.random.default_rng(5)
    ok, buf = cv2.imencode(suffix, rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _predict(inputs: Callable[[Path], list[Path]], *extra: str, names: str | None = None) -> Callable[[Path], Any]:
    def build(folder: Path) -> tuple[list[str], str]:
        paths = inputs(folder)
        out = folder / "out"
        args = ["predict", *map(str, paths), "--out", str(out), "--model", str(KIT["checkpoint"]), "--quiet", *extra]
        return args, names or str(paths[0])

    return build


def _one(name: str, data: bytes) -> Callable[[Path], list[Path]]:
    return lambda folder: [_bytes(name, data)(folder)]


def _predict_with(option: str, make: Callable[[Path], Path], *extra: str) -> Callable[[Path], Any]:
    def build(folder: Path) -> tuple[list[str], str]:
        path = make(folder)
        out = str(folder / "out")
        args = ["predict", str(KIT["image"]), "--out", out, option, str(path), "--quiet", *extra]
        if option != "--model":
            args += ["--model", str(KIT["checkpoint"])]
        return args, str(path)

    return build


def _run_folder(config: bytes | None) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        run = folder / "myrun"
        run.mkdir()
        if config is not None:
            (run / "config.yaml").write_bytes(config)
        return run

    return make


def _collision(folder: Path) -> tuple[list[str], str]:
    out = folder / "out"
    out.mkdir()
    (out / "photo_segm.png").write_bytes(b"the user's own file")
    args = ["predict", str(KIT["image"]), "--out", str(out), "--model", str(KIT["checkpoint"]), "--vis", "segm"]
    return [*args, "--quiet"], str(out / "photo_segm.png")


def _results_exist(folder: Path) -> tuple[list[str], str]:
    out = folder / "out"
    out.mkdir()
    (out / "results.json").write_text("[]")  # checked with the pictures, before the first image is predicted
    args = ["predict", str(KIT["image"]), "--out", str(out), "--model", str(KIT["checkpoint"]), "--quiet"]
    return args, str(out / "results.json")


def _convert(make: Callable[[Path], Path], *extra: str, names: str | None = None) -> Callable[[Path], Any]:
    def build(folder: Path) -> tuple[list[str], str]:
        path = make(folder)
        return ["convert", "detectron2", str(path), "--out", str(folder / "x.safetensors"), *extra], names or str(path)

    return build


def _convert_config(text: str) -> Callable[[Path], Any]:
    def build(folder: Path) -> tuple[list[str], str]:
        from detectron2_fixtures import FIXTURES

        weights = FIXTURES / "densepose_rcnn_R_50_FPN_s1x" / "model.pkl"
        if not weights.is_file():
            pytest.skip("detectron2 fixtures not available")
        config = folder / "d2.yaml"
        config.write_text(text)
        args = ["convert", "detectron2", str(weights), "--config", str(config), "--out", str(folder / "x.safetensors")]
        return args, str(config)

    return build


def _synth(*extra: str, names: str) -> Callable[[Path], Any]:
    return lambda folder: (["synth", "--out", str(folder / "ds"), "--quiet", *extra], names)


def _resume_other_options(folder: Path) -> tuple[list[str], str]:
    target = Path(shutil.copytree(KIT["synth"], folder / "ds"))
    return ["synth", "--out", str(target), "--images", "2", "--seed", "9", "--size", "64", "64", "--resume"], "seed"


def _preview(make: Callable[[Path], Path], names: str | None = None) -> Callable[[Path], Any]:
    def build(folder: Path) -> tuple[list[str], str]:
        root = make(folder)
        return ["synth", "--preview", str(root), "--out", str(folder / "p.jpg")], names or str(root)

    return build


def _broken_synth(folder: Path) -> Path:
    root = Path(shutil.copytree(KIT["synth"], folder / "ds"))
    (root / "annotations" / "densepose_train.json").write_text('{"images": [')
    return root


def _fake(make: Callable[[Path], Path], names: str | None = None, *extra: str) -> Callable[[Path], Any]:
    def build(folder: Path) -> tuple[list[str], str]:
        root = make(folder)
        return ["fake-predictions", str(root), "--out", str(folder / "pred.json"), *extra], names or str(root)

    return build


def _fake_exists(folder: Path) -> tuple[list[str], str]:
    (folder / "pred.json").write_text("[]")
    return ["fake-predictions", str(KIT["synth"]), "--out", str(folder / "pred.json")], str(folder / "pred.json")


def _mkdir(name: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / name).mkdir()
        return folder / name

    return make


CASES = [
    # --- config files and --set
    Case("config file missing", lambda f: (_train(f, "--config", str(f / "no.yaml")), str(f / "no.yaml")), "no such"),
    _config_file(bytes(range(256)), "not UTF-8 text", "config binary"),
    _config_file(b"solver: [1,\n", "not valid YAML", "config not YAML"),
    _config_file(b"- solver\n", "top level must be a mapping", "config a list"),
    _config_file(b"solver:\n  base_lrr: 1\n", "unknown config key 'solver.base_lrr'", "config unknown key"),
    _config_file(b"solver:\n  max_iter: ten\n", "'solver.max_iter' takes an integer", "config wrong type"),
    _config_file(b"solver:\n  base_lr: .nan\n", "'solver.base_lr' must be a finite number", "config NaN lr"),
    _config_file(b"solver: 5\n", "expected a mapping", "config section a number"),
    _config_file(b"model:\n  rpn:\n    nms_thresh: 0\n", "model.rpn.nms_thresh", "config nested range"),
    _config_file(b"[" * 5000 + b"]" * 5000, "override.yaml", "config nested deep"),
    Case("set NaN lr", _set("solver.base_lr=.nan"), "'solver.base_lr' must be a finite number > 0"),
    Case("set negative max_iter", _set("solver.max_iter=-5"), "'solver.max_iter' must be an integer >= 1"),
    Case("set zero batch", _set("solver.ims_per_batch=0"), "'solver.ims_per_batch' must be an integer >= 1"),
    Case("set flip 2", _set("input.flip_prob=2"), "'input.flip_prob' must be a number in [0, 1]"),
    Case("set steps decreasing", _set("solver.steps=[5, 3]"), "'solver.steps' must be a list of increasing"),
    Case("set momentum 1", _set("solver.momentum=1"), "'solver.momentum' must be a number in [0, 1)"),
    Case("set workers negative", _set("data.num_workers=-1"), "data.num_workers"),
    Case("set without =", _set("solver.max_iter"), "expected key=value"),
    Case("set the same key twice", _set("solver.max_iter=1", "solver.max_iter=2"), "solver.max_iter is already set"),
    Case("set unknown key", _set("model.nope=1"), "unknown config key 'model.nope'"),
    Case("set bad YAML value", _set("solver.steps=[1,"), "not valid YAML"),
    Case("set unknown backbone", _set("model.backbone.kind=vgg"), "model.backbone.kind must be"),
    Case("set string lr", _set("solver.base_lr=fast"), "'solver.base_lr' takes a number"),
    # --- training data, --init, --out
    Case("data without annotations", lambda f: (_train(f, data=f), str(f)), "densepose_train.json"),
    _train_data("train JSON dp_I out of range", lambda d: d["annotations"][0].update(dp_I=[30, 2, 2]), "dp_I"),
    _train_data("train JSON duplicate image ids", lambda d: d["images"][1].update(id=1), "appears twice"),
    _train_data("train JSON bbox a string", lambda d: d["annotations"][1].update(bbox="x"), "bbox"),
    _train_data("train images folder missing", None, "no image folder", images=False),
    Case("train image file missing", _missing_image, "file_name"),
    Case("init missing", lambda f: (_train(f, "--init", str(f / "w.safetensors")), str(f / "w.safetensors")), "no"),
    Case("init garbage", _init(_bytes("w.safetensors", b"garbage" * 20)), "not a readable safetensors"),
    Case("init of another model", _init(_copy_kit("other_checkpoint")), "do not fit"),
    Case("init a hostile pickle", _init(_bytes("w.pkl", pickle.dumps({"model": {"w": _Evil()}}))), "refusing"),
    Case("init an empty pickle", _init(_bytes("w.pkl", b"")), "empty file"),
    Case("out is a file", _out_is_a_file, "is a file"),
    Case("out not empty", _out_not_empty, "not empty"),
    Case("resume without a run", lambda f: (_train(f, "--resume"), str(f / "run")), "holds no run"),
    Case(
        "unknown preset",
        lambda f: (["train", "--preset", "nope", "--data", str(f), "--out", str(f / "r")], "nope"),
        "preset",
    ),
    # --- predict
    Case("model garbage", _predict_with("--model", _bytes("m.safetensors", b"junk" * 9)), "not a readable"),
    Case("model missing", _predict_with("--model", lambda f: f / "gone.safetensors"), "no such checkpoint"),
    Case("model a run folder without config", _predict_with("--model", _run_folder(None)), "config.yaml"),
    Case("model a run folder with a bad config", _predict_with("--model", _run_folder(b"\x00\xff")), "not UTF-8"),
    Case("corrupt image", _predict(_one("a.jpg", b"\xff\xd8 not a jpeg")), "not a readable image"),
    Case("zero-byte image", _predict(_one("a.png", b"")), "empty file"),
    Case("decompression bomb", _predict(_one("bomb.png", _png_claiming(60000, 60000))), "side limit"),
    Case("truncated JPEG", _predict(lambda f: [_bytes("t.jpg", _encoded(".jpg")[:-600])(f)]), "truncated JPEG"),
    Case("truncated PNG", _predict(lambda f: [_bytes("t.png", _encoded(".png")[:-300])(f)]), "truncated PNG"),
    Case("text file named .png", _predict(_one("notes.png", b"hello world")), "not a readable image"),
    Case("garbage video", _predict(_one("clip.mp4", b"\x00" * 4096)), "not a readable video"),
    Case(
        "empty folder",
        lambda f: (["predict", str(_mkdir("none")(f)), "--out", str(f / "o")], str(f / "none")),
        "no images or videos",
    ),
    Case("texture missing", _predict_with("--texture", lambda f: f / "atlas.png", "--vis", "texture"), "texture"),
    Case(
        "texture of the wrong size",
        _predict_with("--texture", lambda f: write_image(f / "atlas.png", 100, 100), "--vis", "texture"),
        "atlas must be",
    ),
    Case("texture garbage", _predict_with("--texture", _bytes("atlas.png", b"nope"), "--vis", "texture"), "not"),
    Case("unknown --vis", _predict(lambda f: [KIT["image"]], "--vis", "segm,xray", names="--vis"), "xray"),
    Case("unknown --save", _predict(lambda f: [KIT["image"]], "--save", "all", names="--save"), "all"),
    Case("min score 2", _predict(lambda f: [KIT["image"]], "--min-score", "2", names="--min-score"), "[0, 1]"),
    Case("an output exists", _collision, "already exists"),
    Case("results.json exists", _results_exist, "already exists"),
    # --- convert detectron2
    Case("convert a missing file", _convert(lambda f: f / "model.pkl"), "no such"),
    Case("convert garbage", _convert(_bytes("model.pkl", b"\x80\x04garbage")), "not a readable"),
    Case("convert a hostile pickle", _convert(_bytes("m.pkl", pickle.dumps({"model": {"w": _Evil()}}))), "refusing"),
    Case("convert config with an unknown key", _convert_config("MODEL:\n  RESNETS:\n    DEPTHH: 50\n"), "DEPTHH"),
    Case("convert config not YAML", _convert_config("MODEL: [\n"), "not valid YAML"),
    Case("convert config with a missing base", _convert_config("_BASE_: base.yaml\n"), "_BASE_"),
    Case(
        "convert a CSE model",
        _convert(
            _bytes(
                "cse.pkl",
                pickle.dumps({"model": {"roi_heads.embedder.smpl_27554.embeddings": np.zeros((2, 16), "f4")}}),
            )
        ),
        "continuous surface embedding",
    ),
    # --- synth and fake-predictions
    Case("synth zero images", _synth("--images", "0", names="--images"), "at least 1"),
    Case("synth absurd size", _synth("--images", "1", "--size", "10", "10", names="image size"), "64 and 8192"),
    Case("synth val fraction 2", _synth("--val-fraction", "2", names="--val-fraction"), "[0, 1)"),
    Case("synth no people", _synth("--max-people", "0", names="max_people"), "min_people"),
    Case("synth backgrounds missing", _synth("--backgrounds", "/nonexistent/bg", names="/nonexistent/bg"), "folder"),
    Case("synth resume with other options", _resume_other_options, "there, 9 here"),
    Case("preview of a folder that is no dataset", _preview(_mkdir("empty")), "densehuman synth dataset"),
    Case("preview of a broken dataset", _preview(_broken_synth, "densepose_train.json"), "not valid JSON"),
    Case("fake predictions of no dataset", _fake(_mkdir("empty"), None), "no such file"),
    Case("fake predictions of a broken dataset", _fake(_broken_synth, None, "--split", "train"), "not valid JSON"),
    Case("fake predictions over an existing file", _fake_exists, "already exists"),
]


def test_the_valid_inputs_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Untouched, the inputs the cases break are accepted (so each case fails for its own reason)."""
    from densehuman.cli import main

    assert main(_train(tmp_path)) == 0
    out = tmp_path / "out"
    assert main(["predict", str(KIT["image"]), "--out", str(out), "--model", str(KIT["checkpoint"]), "--quiet"]) == 0
    json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_command_input(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_case(case, tmp_path, capsys)
    assert not Path("/tmp/densehuman_pwned_by_a_test").exists()


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    """The same through the real entry point, in a fresh interpreter: exit status 2 and one line on stderr."""
    import subprocess
    import sys

    gt = tmp_path / "gt.json"
    gt.write_bytes(bytes(range(256)))
    command = [sys.executable, "-m", "densehuman", "evaluate", "--gt", str(gt), "--pred", str(gt)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        == f"densehuman: error: {gt}: not UTF-8 text (byte 128 is b'\\x80'): a binary file, not a ground-truth file"
    )
