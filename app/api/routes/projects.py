"""Projects and categories."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import Admin, CurrentKey, SessionDep
from app.api.params import ProjectId
from app.api.responses import errors
from app.errors import Forbidden
from app.schemas.project import CategoryCreate, CategoryOut, ProjectCreate, ProjectOut
from app.services import projects as svc
from app.tables import Category, Project

router = APIRouter(prefix="/v1/projects", tags=["projects"])


def category_out(c: Category) -> CategoryOut:
    return CategoryOut(id=c.id, name=c.name, index=c.class_index, color=c.color)


def project_out(p: Project) -> ProjectOut:
    return ProjectOut(
        id=p.id,
        name=p.name,
        categories=[category_out(c) for c in p.categories],
        created_at=p.created_at,
    )


@router.post("", status_code=201, response_model=ProjectOut, responses=errors(409))
def create_project(body: ProjectCreate, session: SessionDep, who: Admin) -> ProjectOut:
    if who.project_id is not None:
        raise Forbidden("A key scoped to one project cannot create projects.")
    return project_out(svc.create_project(session, body))


@router.get("", response_model=dict[str, list[ProjectOut]])
def list_projects(session: SessionDep, who: CurrentKey) -> dict[str, list[ProjectOut]]:
    return {"items": [project_out(p) for p in svc.list_projects(session, who)]}


@router.get("/{project_id}", response_model=ProjectOut)
def get_project(project_id: ProjectId, session: SessionDep, who: CurrentKey) -> ProjectOut:
    return project_out(svc.get_project_or_raise(session, project_id, who))


@router.post(
    "/{project_id}/categories", status_code=201, response_model=CategoryOut, responses=errors(409)
)
def add_category(
    project_id: ProjectId, body: CategoryCreate, session: SessionDep, who: Admin
) -> CategoryOut:
    project = svc.get_project_or_raise(session, project_id, who)
    return category_out(svc.add_category(session, project, body))
