"""Label Studio: the labeling config of a project, brush regions of a mask, and the export.

One brush region per (image, category present). The names match `labeling_config`: an
`Image` named "image" whose URL is the task's `data.image`, and `BrushLabels` named "tag".
A human mask is the task's annotation (people drew it); a pseudo-mask is its prediction,
with the `model_version` of the run that made it, the same string the ML backend
(app/label_studio/) answers for that run's masks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from xml.sax.saxutils import quoteattr

import numpy as np

from worker.export_formats.base import ExportItem, ExportMask, ExportWriter
from worker.export_formats.brush_rle import encode_mask

FROM_NAME = "tag"
TO_NAME = "image"
HUMAN_VERSION = "human"


def labeling_config(categories: list[tuple[int, str, str]]) -> str:
    """The XML for `(class index, name, #rrggbb colour)` categories, in class-index order."""
    labels = "\n".join(
        f"    <Label value={quoteattr(name)} background={quoteattr(color)}/>"
        for _, name, color in sorted(categories)
    )
    return (
        "<View>\n"
        f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <BrushLabels name="{FROM_NAME}" toName="{TO_NAME}">\n'
        f"{labels}\n"
        "  </BrushLabels>\n"
        "</View>\n"
    )


def run_version(job_id: int | None) -> str:
    """The model version of a run's predictions (a pipeline job and the networks it saved)."""
    return f"tag2mask-job-{job_id}" if job_id is not None else "tag2mask"


def model_version(mask: ExportMask) -> str:
    """ "human" for people's masks; else the run that made the mask."""
    return HUMAN_VERSION if mask.source == "human" else run_version(mask.job_id)


def brush_regions(
    array: np.ndarray,
    categories: Mapping[int, str],
    *,
    id_prefix: str,
    score: Callable[[int, np.ndarray], float | None] = lambda _i, _b: None,
) -> list[dict[str, object]]:
    """Label Studio `brushlabels` results, one per category present in a class-index mask."""
    height, width = array.shape
    present = np.flatnonzero(np.bincount(array.ravel(), minlength=256))
    out: list[dict[str, object]] = []
    for idx in (int(i) for i in present):
        if idx not in categories:  # background, ignore (255), or an unknown index
            continue
        binary = array == idx
        region: dict[str, object] = {
            "id": f"{id_prefix}c{idx}",
            "from_name": FROM_NAME,
            "to_name": TO_NAME,
            "type": "brushlabels",
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": {
                "format": "rle",
                "rle": encode_mask(binary),
                "brushlabels": [categories[idx]],
            },
        }
        s = score(idx, binary)
        if s is not None:
            region["score"] = s
        out.append(region)
    return out


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
        results = brush_regions(
            item.array, self.project.categories, id_prefix=f"m{mask.id}", score=item.class_score
        )
        task: dict[str, object] = {
            "data": {"image": self.image_url(im.id)},
            "meta": {
                "image_id": im.id,
                "filename": im.filename,
                "mask_id": mask.id,
                "source": mask.source,
                "review_state": mask.review_state,
            },
        }
        if mask.source == "human":
            task["annotations"] = [{"result": results, "ground_truth": False}]
            task["predictions"] = []
        else:
            prediction: dict[str, object] = {"model_version": model_version(mask)}
            if mask.mean_confidence is not None:
                prediction["score"] = float(mask.mean_confidence)
            prediction["result"] = results
            task["predictions"] = [prediction]
        self.out.write((("" if self._first else ",\n") + json.dumps(task)).encode())
        self._first = False
        return len(results)

    def finish(self) -> None:
        self.out.write(b"\n]\n")
