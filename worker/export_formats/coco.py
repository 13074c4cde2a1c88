"""COCO JSON: one RLE annotation per (image, category present), counts as a string.

`images` go straight to the output; `annotations` go to a scratch file that is appended at
the end, so one pass writes the file without holding either list in memory.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
from pycocotools import mask as coco_mask

from worker.export_formats.base import ExportItem, ExportWriter, copy_file


class CocoWriter(ExportWriter):
    extension = ".json"
    media_type = "application/json"
    needs_confidence = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._ann_path = self.workdir / "annotations.part"
        self._ann = self.scratch(self._ann_path.name)
        self._next_id = 1
        self._first_image = True
        info = {
            "description": f"tag2mask project {self.project.name!r} ({self.project.include})",
            "version": "1.0",
            "year": datetime.now(UTC).year,
            "contributor": "tag2mask",
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        categories = [
            {"id": idx, "name": name, "supercategory": ""}
            for idx, name in sorted(self.project.categories.items())
        ]
        self.out.write(
            (
                f'{{"info": {json.dumps(info)}, "licenses": [], '
                f'"categories": {json.dumps(categories)}, "images": [\n'
            ).encode()
        )

    def add(self, item: ExportItem) -> int:
        im = item.image
        entry = {
            "id": im.id,
            "file_name": im.filename,
            "width": im.width,
            "height": im.height,
            "coco_url": self.image_url(im.id),
        }
        self.out.write((("" if self._first_image else ",\n") + json.dumps(entry)).encode())
        self._first_image = False
        written = 0
        for idx in item.classes(self.project.categories):
            binary = item.array == idx
            rle = coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))
            ann: dict[str, object] = {
                "id": self._next_id,
                "image_id": im.id,
                "category_id": idx,
                "segmentation": {
                    "size": [int(s) for s in rle["size"]],
                    "counts": rle["counts"].decode("ascii"),
                },
                "area": int(coco_mask.area(rle)),
                "bbox": [float(v) for v in coco_mask.toBbox(rle)],
                "iscrowd": 0,
                "source": item.mask.source,
                "review_state": item.mask.review_state,
                "mask_id": item.mask.id,
            }
            score = item.class_score(idx, binary)
            if score is not None:
                ann["score"] = score
            self._ann.write((("" if self._next_id == 1 else ",\n") + json.dumps(ann)).encode())
            self._next_id += 1
            written += 1
        return written

    def finish(self) -> None:
        self._ann.close()
        self.out.write(b'\n], "annotations": [\n')
        copy_file(self._ann_path, self.out)
        self.out.write(b"\n]}\n")
