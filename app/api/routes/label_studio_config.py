"""The Label Studio labeling config of a project: the XML its exports and ML backend match."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.api.deps import CurrentKey, SessionDep
from app.api.params import ProjectId
from app.services.projects import get_project_or_raise
from worker.export_formats.label_studio import labeling_config

router = APIRouter(tags=["label-studio"])


@router.get(
    "/v1/projects/{project_id}/label-studio/config",
    response_class=Response,
    responses={
        200: {
            "description": "Label Studio labeling config: Image + BrushLabels, one Label per "
            "category (its colour), in class-index order",
            "content": {"application/xml": {"schema": {"type": "string"}}},
        }
    },
)
def label_studio_config(project_id: ProjectId, session: SessionDep, who: CurrentKey) -> Response:
    project = get_project_or_raise(session, project_id, who)
    xml = labeling_config([(c.class_index, c.name, c.color) for c in project.categories])
    return Response(xml, media_type="application/xml")
