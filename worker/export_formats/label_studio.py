"""Label Studio tasks with predictions: one brush region per (image, category present).

Import into a project whose labeling config is
`<View><Image name="image" value="$image"/><BrushLabels name="tag" toName="image">
<Label value="..."/>...</BrushLabels></View>`.
"""

from __future__ import annotations

import json

from worker.export_formats.base import ExportItem, ExportMask, ExportWriter
from worker.export_formats.brush_rle import encode_mask

FROM_NAME = "tag"
TO_NAME = "image"


def model_version(mask: ExportMask) -> str:
    """ "human" for people's masks; else the job (and model version) that made the mask."""
    if mask.source == "human":
        return "human"
    parts = []
    if mask.job_id is not None:
        parts.append(f"job-{mask.job_id}")
    if mask.model_version_id is not None:
        parts.append(f"model-version-{mask.model_version_id}")
    return "-".join(parts) or "pseudo"


class LabelStudioWriter(ExportWriter):
    extension = ".json"
    media_type = "application/json"
    needs_confidence = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._first = True
        self.out.write(b"[\n")

    def add(self, item: ExportItem) -> int:
        im, mask = item.image, item.mask
        results = []
        for idx in item.classes(self.project.categories):
            binary = item.array == idx
            region: dict[str, object] = {
                "id": f"m{mask.id}c{idx}",
                "from_name": FROM_NAME,
                "to_name": TO_NAME,
                "type": "brushlabels",
                "original_width": im.width,
                "original_height": im.height,
                "image_rotation": 0,
                "value": {
                    "format": "rle",
                    "rle": encode_mask(binary),
                    "brushlabels": [self.project.categories[idx]],
                },
            }
            score = item.class_score(idx, binary)
            if score is not None:
                region["score"] = score
            results.append(region)
        prediction: dict[str, object] = {"model_version": model_version(mask)}
        if mask.source == "human":
            prediction["score"] = 1.0
        elif mask.mean_confidence is not None:
            prediction["score"] = float(mask.mean_confidence)
        prediction["result"] = results
        task = {
            "data": {"image": f"/v1/images/{im.id}/file"},
            "meta": {
                "image_id": im.id,
                "filename": im.filename,
                "mask_id": mask.id,
                "source": mask.source,
                "review_state": mask.review_state,
            },
            "predictions": [prediction],
        }
        self.out.write((("" if self._first else ",\n") + json.dumps(task)).encode())
        self._first = False
        return len(results)

    def finish(self) -> None:
        self.out.write(b"\n]\n")
