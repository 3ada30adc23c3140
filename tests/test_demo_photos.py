"""The demo's real photographs: read from matplotlib and scikit-image at run time, written as sheets."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from densehuman.demo_photos import PHOTOS, photos_section, real_photos


def test_the_three_photographs_are_read_from_the_installed_packages() -> None:
    photos = {name: rgb for name, _, rgb in real_photos()}
    assert set(photos) == set(PHOTOS) == {"grace_hopper", "astronaut", "camera"}
    assert photos["astronaut"].shape == (512, 512, 3)
    assert photos["camera"].shape == (512, 512, 3)
    grey = photos["camera"]
    assert (grey[..., 0] == grey[..., 1]).all()
    assert (grey[..., 1] == grey[..., 2]).all()
    hopper = photos["grace_hopper"]
    assert hopper.ndim == 3
    assert hopper.shape[2] == 3
    assert min(hopper.shape[:2]) > 300
    for rgb in photos.values():
        assert rgb.dtype == np.uint8
        assert rgb.std() > 20


def test_photo_sheets_keep_the_colours(tmp_path: Path) -> None:
    html = photos_section(tmp_path, None, None)
    assert "Real photographs" in html
    photos = {name: rgb for name, _, rgb in real_photos()}
    for name, rgb in photos.items():
        assert f"photos/{name}.jpg" in html
        written = cv2.imread(str(tmp_path / "photos" / f"{name}.jpg"))[..., ::-1]
        assert written.shape == rgb.shape
        # JPEG loses detail but not the colours: channel means agree within a few levels
        np.testing.assert_allclose(written.reshape(-1, 3).mean(0), rgb.reshape(-1, 3).mean(0), atol=3.0)
