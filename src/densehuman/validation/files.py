"""Reading JSON and YAML files with errors that name the file and say what is wrong, whatever the bytes are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from densehuman.validation.errors import InputError

MAX_TEXT_FILE_BYTES = 8 << 30  # 8 GiB: far above real annotation files (DensePose-COCO train is under 1 GiB)


def check_file(path: str | Path, what: str = "file") -> Path:
    """``path`` as a ``Path`` if it is a readable, non-empty regular file; ``FileNotFoundError`` if it is missing,
    ``InputError`` if it is a folder, empty or absurdly large."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such {what}")
    if p.is_dir():
        raise InputError(p, f"is a folder, not a {what}")
    size = p.stat().st_size
    if size == 0:
        raise InputError(p, f"empty file (a {what} cannot be empty)")
    if size > MAX_TEXT_FILE_BYTES:
        raise InputError(p, f"{size:,} bytes is too large for a {what}")
    return p


def _text(p: Path, what: str) -> str:
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 1]
        raise InputError(p, f"not UTF-8 text (byte {err.start} is {bad!r}): a binary file, not a {what}") from None


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed content of a JSON file. Binary files, bad syntax (with line and column), and nesting too deep
    to parse are ``InputError``s naming the file."""
    p = check_file(path, what)
    text = _text(p, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(p, f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    except RecursionError:
        raise InputError(p, "JSON nested too deeply to read") from None


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """The parsed content of a YAML file (safe loader); errors name the file and the line."""
    p = check_file(path, what)
    text = _text(p, what)
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InputError(p, f"not valid YAML: {err.problem or err}{where}") from None
    except yaml.YAMLError as err:
        raise InputError(p, f"not valid YAML: {err}") from None
    except RecursionError:
        raise InputError(p, "YAML nested too deeply to read") from None
