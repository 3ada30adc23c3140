"""Atomic writes: the file appears whole or not at all, with the mode a plain write would give it."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from densehuman import atomic


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def test_written_files_get_the_umask_mode_not_mkstemps_private_one(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "sub" / "figures.json"
    atomic.write_json(target, {"ap": 0.5})
    assert target.read_text() == '{"ap":0.5}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE(plain.stat().st_mode) == stat.S_IMODE(target.stat().st_mode)
    assert atomic.default_mode() == 0o666 & ~umask
    assert atomic.default_mode(directory=True) == 0o777 & ~umask
    assert sorted(p.name for p in target.parent.iterdir()) == ["figures.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")

    def interrupted_write() -> None:
        with atomic.replacing(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted_write()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]
