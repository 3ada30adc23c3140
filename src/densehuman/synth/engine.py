"""``densehuman synth``: generate a whole dataset, in parallel, resumably, deterministically.

Every image is drawn from its own random stream (seed, index), so the output does not depend on the number of
workers or on the order they finish in. Each image's files are written atomically and its record last; an
interrupted run leaves ``.partial/`` behind and ``--resume`` continues from the images that have records.
The JSON files and ``dataset.json`` are assembled at the end, ``dataset.json`` last.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from densehuman import atomic
from densehuman.synth.generator import GENERATOR_VERSION, ImageGenerator, SynthConfig, build_generator
from densehuman.synth.writers import CIHP_ROOT, MHP_ROOT, assemble, read_record, record_path, write_image_files

PARTIAL = ".partial"
OWNED = ("dataset.json", "preview.jpg", "images", "annotations", "dense", "CIHP", MHP_ROOT.as_posix(), PARTIAL)


@dataclass(frozen=True)
class SynthJob:
    out: Path
    images: int
    seed: int = 0
    val_fraction: float = 0.1
    config: SynthConfig = dataclasses.field(default_factory=SynthConfig)
    workers: int = 0  # 0: one per CPU core, at most 8
    preview_count: int = 8

    def __post_init__(self) -> None:
        if self.images < 1:
            raise ValueError(f"--images must be at least 1, got {self.images}")
        if self.images > 10_000_000:
            raise ValueError(f"--images {self.images} is absurd (at most 10,000,000)")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"--seed must be a non-negative integer below 2**63, got {self.seed}")
        if self.config.backgrounds is not None and not Path(self.config.backgrounds).is_dir():
            raise ValueError(f"--backgrounds {self.config.backgrounds}: not a folder")

    def options(self) -> dict[str, Any]:
        """The options that determine the output (what a resumed run must match)."""
        cfg = self.config
        return {
            "images": self.images,
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "size": list(cfg.size),
            "min_people": cfg.min_people,
            "max_people": cfg.max_people,
            "backgrounds": str(Path(cfg.backgrounds).resolve()) if cfg.backgrounds else None,
            "jpeg_quality": list(cfg.jpeg_quality),
            "placement": dataclasses.asdict(cfg.placement),
            "cameras": dataclasses.asdict(cfg.cameras),
            "annotation": dataclasses.asdict(cfg.annotation),
        }

    def splits(self) -> list[str]:
        n_val = round(self.images * self.val_fraction)
        order = np.random.default_rng([self.seed, 2**32 - 1]).permutation(self.images)
        split = ["train"] * self.images
        for i in order[:n_val]:
            split[int(i)] = "val"
        return split


def _option_differences(stored: dict[str, Any], options: dict[str, Any]) -> str:
    """``"seed: 0 there, 1 here; images: ..."`` for the options that differ ('' when none)."""
    wanted = json.loads(json.dumps(options))  # as stored: tuples become lists
    keys = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
    return "; ".join(f"{k}: {stored.get(k)!r} there, {wanted.get(k)!r} here" for k in keys)


def prepare_folder(job: SynthJob, resume: bool, overwrite: bool) -> None:
    """Check the output folder and claim it; refuses to touch what the user did not ask to replace."""
    out = job.out
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    partial = out / PARTIAL
    options_path = partial / "options.json"
    if overwrite:
        for name in OWNED:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    elif (out / "dataset.json").exists():
        if resume:
            try:
                done = json.loads((out / "dataset.json").read_text()).get("options", {})
            except (OSError, json.JSONDecodeError, AttributeError):
                done = {}
            differ = _option_differences(done, job.options()) if isinstance(done, dict) else ""
            made = f"; it was made with other options ({differ})" if differ else ""
            raise ValueError(f"--resume: {out} holds a complete dataset, nothing to resume{made}")
        raise ValueError(f"{out} already holds a dataset (dataset.json); choose another folder or pass --overwrite")
    elif partial.exists():
        if not resume:
            raise ValueError(
                f"{out} holds an interrupted run ({PARTIAL}/); pass --resume to continue it or --overwrite to restart"
            )
        try:
            saved = json.loads(options_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{options_path}: cannot read the interrupted run's options ({err})") from err
        differ = _option_differences(saved, job.options())
        if differ:
            raise ValueError(f"{out}: the interrupted run used other options ({differ}); use the same ones")
        return
    elif out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; choose a new or empty folder (or pass --overwrite)")
    partial.mkdir(parents=True, exist_ok=True)
    atomic.write_json(options_path, job.options(), indent=1)


_WORKER: dict[str, Any] = {}


def _init_worker(config: SynthConfig, seed: int, root: Path, splits: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["root"] = root
    _WORKER["splits"] = splits
    try:
        _WORKER["generator"] = build_generator(config, seed)
    except Exception as err:  # a pool re-spawns workers whose initializer fails; report it from the first task
        _WORKER["error"] = err


def _make_one(index: int) -> tuple[int, dict[str, float]]:
    if "error" in _WORKER:
        raise _WORKER["error"]
    gen: ImageGenerator = _WORKER["generator"]
    root: Path = _WORKER["root"]
    started = time.perf_counter()
    sample = gen.make(index)
    made = time.perf_counter()
    record = write_image_files(root, _WORKER["splits"][index], sample, gen.config)
    atomic.write_json(record_path(root / PARTIAL, index), record)
    return index, {"make": made - started, "write": time.perf_counter() - made}


def run_synth(job: SynthJob, resume: bool = False, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Generate the dataset described by ``job``; returns the manifest (also written as ``dataset.json``)."""
    from densehuman.synth.backgrounds import BackgroundSource

    BackgroundSource(job.config.backgrounds)  # a bad backgrounds folder fails here, before any file is written
    prepare_folder(job, resume, overwrite)
    root = job.out
    splits = job.splits()
    todo = [i for i in range(job.images) if not record_path(root / PARTIAL, i).exists()]
    workers = job.workers or min(os.cpu_count() or 1, 8)
    workers = max(1, min(workers, len(todo))) if todo else 1
    started = time.perf_counter()
    bar = tqdm(total=job.images, initial=job.images - len(todo), desc="synth", unit="img", disable=not progress)
    if todo and workers == 1:
        import torch

        threads = torch.get_num_threads()
        _init_worker(job.config, job.seed, root, splits)
        try:
            for index in todo:
                _make_one(index)
                bar.update()
        finally:
            torch.set_num_threads(threads)  # in-process generation must not leave the caller single-threaded
            _WORKER.clear()
    elif todo:
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(job.config, job.seed, root, splits)) as pool:
            for _ in pool.imap_unordered(_make_one, todo, chunksize=1):
                bar.update()
    bar.close()
    elapsed = time.perf_counter() - started
    records = [read_record(record_path(root / PARTIAL, i)) for i in range(job.images)]
    info = {
        "description": "densehuman synthetic people (Anny body model)",
        "version": GENERATOR_VERSION,
        "year": 2026,
        "contributor": "densehuman synth",
        "seed": job.seed,
    }
    counts = assemble(root, records, info)
    manifest = {
        "generator": "densehuman.synth",
        "generator_version": GENERATOR_VERSION,
        "seed": job.seed,
        "options": job.options(),
        "counts": counts,
        "variety": variety(records),
        "files": {
            "images": "images/{split}/<id>.jpg",
            "densepose": "annotations/densepose_{split}.json",
            "wholebody": "annotations/coco_wholebody_{split}.json",
            "body135": "annotations/body135_{split}.json",
            "iuv": "dense/{split}/<id>_IUV.png",
            "inds": "dense/{split}/<id>_INDS.png (value k = the image's k-th annotation in id order)",
            "cihp": f"{CIHP_ROOT.as_posix()}/{{Training,Validation}}",
            "mhp": f"{MHP_ROOT.as_posix()}/{{train,val}} (parsing_annos/<id>_<NN>_<k>.png; list/{{train,val}}.txt)",
        },
    }
    if job.preview_count > 0:
        from densehuman.synth.preview import write_dataset_preview

        write_dataset_preview(root, root / "preview.jpg", count=job.preview_count)
    atomic.write_json(root / "dataset.json", manifest, indent=1)
    shutil.rmtree(root / PARTIAL)
    manifest["_elapsed_s"] = elapsed
    manifest["_generated"] = len(todo)
    return manifest


def variety(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the people in the dataset look like: pose families, hands, ages, garments, people per image (counted
    over the people that are visible)."""
    families: Counter[str] = Counter()
    hands: Counter[str] = Counter()
    garments: Counter[str] = Counter()
    styles: Counter[str] = Counter()
    patterns: Counter[str] = Counter()
    ages: list[float] = []
    per_image: Counter[int] = Counter()
    for r in records:
        per_image[len(r["people"])] += 1
        for d in r["description"]:
            families[d["pose"]] += 1
            hands.update(d["hands"])
            ages.append(d["age_years"])
            outfit = d.get("outfit", {})
            for name, garment in outfit.items():
                if name in ("skin", "eyes"):
                    continue
                garments[name] += 1
                if isinstance(garment, dict):
                    if "style" in garment:
                        styles[f"{name}: {garment['style']}"] += 1
                    pattern = garment.get("material", {}).get("pattern")
                    if pattern:
                        patterns[pattern] += 1
    age_bins = np.histogram(ages, bins=[0, 12, 18, 40, 65, 200])[0] if ages else np.zeros(5, dtype=int)
    return {
        "people_per_image": {str(k): v for k, v in sorted(per_image.items())},
        "pose_families": dict(sorted(families.items())),
        "hand_shapes": dict(sorted(hands.items())),
        "garments": dict(sorted(garments.items())),
        "garment_styles": dict(sorted(styles.items())),
        "patterns": dict(sorted(patterns.items())),
        "ages": dict(zip(["0-11", "12-17", "18-39", "40-64", "65+"], [int(x) for x in age_bins], strict=True)),
    }
