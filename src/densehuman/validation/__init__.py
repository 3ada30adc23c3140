"""One validation layer for every file densehuman reads.

Each reader checks its input here before using it, and every failure is an ``InputError`` (a ``ValueError``)
whose message names the file, the item in it and the field: ``"gt.json: annotations[3] (id 17): bbox: ..."``.

- ``files``: JSON and YAML files (binary content, bad syntax with line and column, nesting too deep to parse);
- ``records``: typed getters for the fields of one object;
- ``coco``: COCO-style annotation files whole (DensePose-COCO, COCO-WholeBody, BODY_135): ids, references,
  geometry, labels, RLEs;
- ``rle``: COCO run-length encodings, checked before pycocotools' C code sees them;
- ``images``: image and video files (header size limits, truncation), before they are decoded.
"""

from densehuman.validation.errors import InputError
from densehuman.validation.files import check_file, read_json, read_yaml

__all__ = ["InputError", "check_file", "read_json", "read_yaml"]
