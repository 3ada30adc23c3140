from __future__ import annotations

from pathlib import Path

import pytest

from densehuman.body.surface import BodySurface
from densehuman.cli import main


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "body" in out
    assert "demo" in out


def test_body_info_json(
    surface: BodySurface, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The figures come from the cached file's small members: the whole surface (its geodesic table) is not loaded."""
    import json

    def no_full_load(*args: object) -> None:
        raise AssertionError("body info loaded the whole surface")

    monkeypatch.setattr(BodySurface, "load", no_full_load)
    assert main(["body", "info", "--json", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert len(info["charts"]) == 24
    assert info["faces"] == surface.faces.shape[0]
    assert info["vertices"] == surface.vertices.shape[0]
    assert info["skin_vertices"] == len(set(surface.faces.ravel().tolist()))
    assert info["geodesic_table_vertices"] == surface.geodesic_vertices.size
    assert all(c["final"]["flipped"] == 0 for c in info["charts"].values())


def test_surface_summary_names_a_damaged_file(tmp_path: Path) -> None:
    from densehuman.body.cache import surface_summary

    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.npz"):
        surface_summary(tmp_path / "bad.npz")


def test_light_commands_do_not_import_torch() -> None:
    """`densehuman --help`, `evaluate` and `body info` start in well under 2 s: no PyTorch, torchvision or SciPy
    behind the parser (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys; from densehuman.cli import build_parser; build_parser(); "
        "import densehuman.evaluation.cli, densehuman.body.cache; "
        "print(sorted(m for m in ('torch', 'torchvision', 'scipy', 'anny') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_body_preview_writes_pictures_and_refuses_to_overwrite(
    surface: BodySurface, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    assert main(["body", "preview", "--out", str(tmp_path), "--quiet"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        [
            "body_charts_front_back.png",
            "body_u_front_back.png",
            "body_v_front_back.png",
            "body_checkerboard_front_back.png",
            "uv_layouts.png",
        ]
    )
    with Image.open(tmp_path / "body_charts_front_back.png") as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None
    assert len(colours) == 25  # white background and one colour per chart
    capsys.readouterr()
    assert main(["body", "preview", "--out", str(tmp_path), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["body", "preview", "--out", str(tmp_path), "--quiet", "--overwrite"]) == 0


def test_demo_writes_body_pictures_a_dataset_and_its_evaluation(tmp_path: Path) -> None:
    import json

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--images", "8", "--quiet"]) == 0
    assert (out / "body" / "uv_layouts.png").is_file()
    assert json.loads((out / "synth" / "dataset.json").read_text())["counts"]["val"]["images"] == 2
    perfect = json.loads((out / "evaluation" / "perfect.json").read_text())
    random = json.loads((out / "evaluation" / "random.json").read_text())
    assert perfect["gt_people_with_points"] > 0
    assert perfect["gps"]["AP"] > 0.99
    assert random["gps"]["AP"] < 0.05
    assert (out / "evaluation" / "perturbed_rcp.png").is_file()
    # The bundled model's page: predictions next to the ground truth, with the AP table.
    from densehuman.demo import bundled_model

    assert bundled_model() is not None
    page = (out / "model" / "index.html").read_text()
    assert "GPSM" in page
    assert len(list((out / "model" / "images").glob("*.png"))) == 2
    # ... the bundled whole-body network on the same images, with its COCO-WholeBody AP ...
    assert "Whole-body keypoints" in page
    assert len(list((out / "model" / "wholebody").glob("*.png"))) == 2
    assert (out / "model" / "wholebody_evaluation.json").is_file()
    # ... and both on the three real photographs, read from matplotlib and scikit-image
    assert "Real photographs" in page
    assert sorted(p.name for p in (out / "model" / "photos").glob("*.jpg")) == [
        "astronaut.jpg",
        "camera.jpg",
        "grace_hopper.jpg",
    ]
    # The demo refuses to overwrite what it wrote unless asked.
    assert main(["demo", "--out", str(out), "--images", "8", "--quiet"]) == 2
