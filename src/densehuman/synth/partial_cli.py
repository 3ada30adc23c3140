"""The ``densehuman synth-partial`` parser, apart from ``densehuman.synth.partial`` so that building the command line
imports neither OpenCV nor PyTorch (``densehuman --help`` stays fast)."""

from __future__ import annotations

import argparse

# ``densehuman.data.wholebody``'s KINDS and KIND_ALIASES, sorted (a test keeps the two equal)
KIND_CHOICES = ("body", "coco_body", "coco_foot", "dome", "face", "foot", "hand", "hand21", "hand42", "wholebody")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    text = "write a partial COCO-WholeBody dataset (one kind's parts; face and hand close-up crops) from a synth one"
    p = sub.add_parser("synth-partial", help=text, description=text)
    p.add_argument("dataset", help="a dataset folder written by `densehuman synth`")
    p.add_argument("--kind", required=True, choices=KIND_CHOICES, help="the parts to keep (hand = hand42)")
    p.add_argument("--split", default="train", help="the split to read (default %(default)s)")
    p.add_argument("--out", default=None, help="the JSON to write (default annotations/coco_wholebody_KIND_SPLIT.json)")
    p.add_argument("--seed", type=int, default=0, help="seed of the crop sizes (default %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing JSON and crops")
    return p
