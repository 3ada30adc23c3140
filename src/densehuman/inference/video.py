"""``densehuman predict`` on videos: every frame through the predictor, one output video per visualization."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from densehuman.inference.outputs import render


def predict_video(
    path: Path, prefix: Path, predictor: Any, vis: list[str], atlas: Any, overwrite: bool
) -> tuple[int, int]:
    """Every frame through the predictor; one output video per visualization at the input's frame rate.

    Videos are written to a temporary name and renamed when complete. Returns (frames, people found)."""
    import os

    import cv2
    import numpy as np

    from densehuman.validation.images import open_video

    capture, info = open_video(path)
    fps = info.fps
    targets = {name: Path(f"{prefix}_{name}.mp4") for name in vis}
    if not overwrite and (existing := [t for t in targets.values() if t.exists()]):
        capture.release()
        raise ValueError(f"{existing[0]} already exists (pass --overwrite to replace outputs)")
    writers: dict[str, Any] = {}
    frames = people = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = np.ascontiguousarray(bgr[..., ::-1])
            result = predictor(rgb)
            people += len(result.people)
            for name in vis:
                picture = np.ascontiguousarray(render(name, rgb, result, atlas)[..., ::-1])
                if name not in writers:
                    h, w = picture.shape[:2]
                    tmp = targets[name].with_name(f".{targets[name].stem}.tmp.mp4")
                    tmp.parent.mkdir(parents=True, exist_ok=True)  # made at the first frame: nothing before that
                    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"mp4v"), fps, (w, h))
                    writers[name] = (writer, tmp)
                    if not writer.isOpened():
                        raise ValueError(f"{tmp}: OpenCV cannot write an mp4 video here")
                writers[name][0].write(picture)
            frames += 1
        if frames == 0:
            raise ValueError(f"{path}: no frame could be read")
        for name, (writer, tmp) in writers.items():
            writer.release()
            os.replace(tmp, targets[name])
    finally:
        capture.release()
        for writer, tmp in writers.values():  # after an error or an interruption: no half-written video is left
            writer.release()
            tmp.unlink(missing_ok=True)
    return frames, people
