"""CIHP and MHP v2.0 split folders as the releases lay them out (and ``densehuman synth`` writes them).

CIHP (``instance-level_human_parsing/{Training,Validation}/``)::

    Images/<id>.jpg  Category_ids/<id>.png (global part labels 0..19)  Human_ids/<id>.png (person k = k, 0 none)
    Instance_ids/<id>.png + <id>.txt (lines "part_instance_id class_id human_id")
    ../{train,val}_id.txt (one image id per line, the split's images in order)

MHP v2.0 (``LV-MHP-v2/{train,val}/``)::

    images/<id>.jpg  parsing_annos/<id>_<NN>_<k>.png (person k of NN, labels 0..58; 3-channel files: red channel)
    ../list/{train,val}.txt

``open_parsing_split`` indexes a split (paths only); ``read_people`` / ``read_global`` read an image's label maps,
each checked (``densehuman.validation.images.read_label_map``): sizes agree with the image, labels are classes.
An image's people are its human ids in increasing order (CIHP) or its per-person files in order of k (MHP).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densehuman.data.parsing_classes import CIHP, DATASETS, MHP, ParsingClasses
from densehuman.validation import InputError
from densehuman.validation.images import image_header, read_label_map

CIHP_SPLITS = {"train": "Training", "val": "Validation", "test": "Testing"}
MHP_PERSON_FILE = re.compile(r"^(?P<image>.+)_(?P<count>\d+)_(?P<k>\d+)\.png$")


@dataclass(frozen=True)
class ParsingEntry:
    """One image of a split: its id (file stem), image file and label files."""

    image_id: int  # 1-based position in the split's id list (the results files' ``image_id``)
    name: str
    image: Path
    category: Path | None = None  # CIHP
    human: Path | None = None  # CIHP
    instance: Path | None = None  # CIHP part instances (for APr)
    instance_table: Path | None = None
    person_maps: tuple[Path, ...] = ()  # MHP


@dataclass(frozen=True)
class ParsingSplit:
    classes: ParsingClasses
    root: Path  # the split folder
    split: str
    entries: tuple[ParsingEntry, ...]

    @property
    def has_part_instances(self) -> bool:
        return bool(self.entries) and all(e.instance is not None and e.instance_table is not None for e in self)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def _read_ids(path: Path) -> list[str]:
    try:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise InputError(path, "not a text list of image ids") from None
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(path, f"image id {dup!r} is listed twice")
    return names


def find_split_folder(root: Path, split: str, dataset: str | None = None) -> tuple[str, Path]:
    """(dataset, split folder) for ``root``: the split folder itself, a CIHP ``instance-level_human_parsing``
    folder, an MHP ``LV-MHP-v2`` folder, or a ``densehuman synth`` dataset (its ``CIHP`` or ``LV-MHP-v2``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    candidates: list[tuple[str, Path]] = []
    cihp_names = [CIHP_SPLITS.get(split, split), split]
    for base in (root, root / "CIHP" / "instance-level_human_parsing", root / "instance-level_human_parsing"):
        if (base / "Category_ids").is_dir():
            candidates.append(("cihp", base))
        for name in cihp_names:
            if (base / name / "Category_ids").is_dir():
                candidates.append(("cihp", base / name))
    for base in (root, root / "LV-MHP-v2"):
        if (base / "parsing_annos").is_dir():
            candidates.append(("mhp", base))
        if (base / split / "parsing_annos").is_dir():
            candidates.append(("mhp", base / split))
    if dataset is not None:
        candidates = [c for c in candidates if c[0] == dataset]
    if not candidates:
        wanted = {"cihp": "CIHP", "mhp": "MHP v2.0"}.get(dataset or "", "CIHP or MHP v2.0")
        raise InputError(root, f"no {wanted} {split} split here (Category_ids/ or parsing_annos/ folders)")
    return candidates[0]


def open_parsing_split(root: str | Path, split: str = "val", dataset: str | None = None) -> ParsingSplit:
    """Index a CIHP or MHP v2.0 split (``dataset``: "cihp", "mhp" or None to recognise the layout)."""
    if dataset is not None and dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    kind, folder = find_split_folder(Path(root), split, dataset)
    return _open_cihp(folder, split) if kind == "cihp" else _open_mhp(folder, split)


def _open_cihp(folder: Path, split: str) -> ParsingSplit:
    id_file = folder.parent / f"{split}_id.txt"
    # without an id list: every category map of the folder
    listed = id_file.is_file()
    names = _read_ids(id_file) if listed else sorted(p.stem for p in (folder / "Category_ids").glob("*.png"))
    entries = []
    for k, name in enumerate(names, start=1):
        image = folder / "Images" / f"{name}.jpg"
        if not image.is_file():
            matches = sorted((folder / "Images").glob(f"{name}.*"))
            if not matches:
                raise InputError(id_file if id_file.is_file() else folder, f"image {name}: no Images/{name}.jpg")
            image = matches[0]
        category, human = folder / "Category_ids" / f"{name}.png", folder / "Human_ids" / f"{name}.png"
        for path in (category, human):
            if not path.is_file():
                raise InputError(path, f"missing (image {name} of {folder})")
        instance, table = folder / "Instance_ids" / f"{name}.png", folder / "Instance_ids" / f"{name}.txt"
        has_instances = instance.is_file() and table.is_file()
        entries.append(
            ParsingEntry(
                k, name, image, category, human, instance if has_instances else None, table if has_instances else None
            )
        )
    return ParsingSplit(CIHP, folder, split, tuple(entries))


def _open_mhp(folder: Path, split: str) -> ParsingSplit:
    list_file = folder.parent / "list" / f"{split}.txt"
    people: dict[str, list[tuple[int, int, Path]]] = {}
    for path in sorted((folder / "parsing_annos").glob("*.png")):
        match = MHP_PERSON_FILE.match(path.name)
        if match is None:
            raise InputError(path, "not an MHP v2.0 person file name (<image>_<persons>_<person>.png)")
        people.setdefault(match["image"], []).append((int(match["k"]), int(match["count"]), path))
    names = _read_ids(list_file) if list_file.is_file() else sorted(people)
    entries = []
    for k, name in enumerate(names, start=1):
        images = sorted((folder / "images").glob(f"{name}.*"))
        if not images:
            raise InputError(folder / "images", f"image {name}: no image file")
        files = sorted(people.get(name, []))
        counts = {count for _, count, _ in files}
        if len(counts) > 1 or (files and [p for p, _, _ in files] != list(range(1, len(files) + 1))):
            raise InputError(
                folder / "parsing_annos", f"image {name}: person files {[f.name for _, _, f in files]} are not 1..N"
            )
        if files and counts != {len(files)}:
            raise InputError(files[0][2], f"names {counts.pop()} persons but image {name} has {len(files)} files")
        entries.append(ParsingEntry(k, name, images[0], person_maps=tuple(f for _, _, f in files)))
    return ParsingSplit(MHP, folder, split, tuple(entries))


def _check_size(labels: np.ndarray, path: Path, size: tuple[int, int]) -> None:
    if labels.shape != size:
        raise InputError(path, f"label map is {labels.shape[1]}x{labels.shape[0]}, its image {size[1]}x{size[0]}")


def image_size(entry: ParsingEntry) -> tuple[int, int]:
    """(H, W) of the entry's image, from its header."""
    _, height, width = image_header(entry.image)
    return height, width


def read_people(entry: ParsingEntry, classes: ParsingClasses) -> np.ndarray:
    """(K, H, W) uint8: person k's part labels over the whole image (0 elsewhere), people in order."""
    size = image_size(entry)
    if entry.person_maps:
        maps = []
        for path in entry.person_maps:
            labels = read_label_map(path, classes.num_classes)
            _check_size(labels, path, size)
            maps.append(labels)
        return np.stack(maps)
    if entry.category is None or entry.human is None:
        return np.zeros((0, *size), np.uint8)
    category = read_label_map(entry.category, classes.num_classes)
    human = read_label_map(entry.human, ignore=None)
    _check_size(category, entry.category, size)
    _check_size(human, entry.human, size)
    ids = [int(k) for k in np.unique(human) if k > 0]
    return np.stack([np.where(human == k, category, 0) for k in ids]) if ids else np.zeros((0, *size), np.uint8)


def read_global(entry: ParsingEntry, classes: ParsingClasses) -> np.ndarray:
    """(H, W) uint8 global part labels of the image (CIHP: Category_ids; MHP: the people's maps, later people
    painted over earlier ones where they overlap). The mIoU ground truth."""
    if entry.category is not None and not entry.person_maps:
        labels = read_label_map(entry.category, classes.num_classes)
        _check_size(labels, entry.category, image_size(entry))
        return labels
    people = read_people(entry, classes)
    out = np.zeros(people.shape[1:], np.uint8)
    for labels in people:
        out = np.where(labels > 0, labels, out)
    return out


def read_part_instances(entry: ParsingEntry) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """CIHP's part instances: the (H, W) instance map and its table rows (part instance id, class id, human id)."""
    if entry.instance is None or entry.instance_table is None:
        raise InputError(entry.image, "no Instance_ids files for this image")
    instance = read_label_map(entry.instance, ignore=None)
    rows = []
    for n, line in enumerate(entry.instance_table.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise InputError(entry.instance_table, f"line {n}: expected 'part_id class_id human_id', got {line!r}")
        rows.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return instance, rows
