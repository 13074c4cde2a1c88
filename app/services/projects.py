"""Projects and categories."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from app.errors import Conflict, NotFound, ValidationFailed
from app.imaging import default_color
from app.schemas.project import MAX_CATEGORIES, CategoryCreate, ProjectCreate
from app.services.scope import Principal
from app.tables import Category, Project


def get_project_or_raise(session: Session, project_id: int, who: Principal) -> Project:
    """The project with its categories; 404 when missing or outside the key's scope."""
    project = (
        session.execute(
            select(Project).where(Project.id == project_id).options(joinedload(Project.categories))
        )
        .unique()
        .scalar_one_or_none()
    )
    if project is None or not who.can_see(project.id):
        raise project_not_found(project_id)
    return project


@dataclass(frozen=True)
class CategoryRef:
    id: int
    name: str
    class_index: int


@dataclass(frozen=True)
class ProjectRef:
    """What a list page needs of a project (id, categories for a tag filter), without the ORM."""

    id: int
    categories: list[CategoryRef]


# The project's id and categories, one row per category (param project_id).
PROJECT_REF = (
    select(Project.id, Category.id, Category.name, Category.class_index)
    .select_from(Project)
    .outerjoin(Category, Category.project_id == Project.id)
    .where(Project.id == bindparam("project_id"))
)


def project_ref_of(rows: list[Any], project_id: int, who: Principal) -> ProjectRef:
    """The ProjectRef of PROJECT_REF rows; 404 like get_project_or_raise."""
    if not rows or not who.can_see(project_id):
        raise project_not_found(project_id)
    cats = [CategoryRef(cid, name, idx) for _, cid, name, idx in rows if cid is not None]
    return ProjectRef(project_id, sorted(cats, key=lambda c: c.class_index))


def project_not_found(project_id: int) -> NotFound:
    return NotFound(f"Project {project_id} does not exist.")


def list_projects(session: Session, who: Principal) -> list[Project]:
    stmt = select(Project).options(selectinload(Project.categories)).order_by(Project.id)
    if who.project_id is not None:
        stmt = stmt.where(Project.id == who.project_id)
    return list(session.scalars(stmt))


def create_project(session: Session, data: ProjectCreate) -> Project:
    if session.scalar(select(Project.id).where(Project.name == data.name)) is not None:
        raise Conflict(f"A project named {data.name!r} already exists.")
    project = Project(name=data.name, settings={})
    project.categories = [
        Category(name=c.name, class_index=i, color=c.color or default_color(i))
        for i, c in enumerate(data.categories, start=1)
    ]
    session.add(project)
    try:
        session.flush()
    except IntegrityError as e:
        raise Conflict(f"A project named {data.name!r} already exists.") from e
    return project


def add_category(session: Session, project: Project, data: CategoryCreate) -> Category:
    """Append a category with the next class index."""
    if any(c.name == data.name for c in project.categories):
        raise Conflict(f"Category {data.name!r} already exists in this project.")
    last = session.scalar(
        select(func.max(Category.class_index)).where(Category.project_id == project.id)
    )
    index = (last or 0) + 1
    if index > MAX_CATEGORIES:
        raise ValidationFailed(f"A project holds at most {MAX_CATEGORIES} categories.")
    category = Category(
        project_id=project.id,
        name=data.name,
        class_index=index,
        color=data.color or default_color(index),
    )
    session.add(category)
    try:
        session.flush()
    except IntegrityError as e:
        raise Conflict("The category was added concurrently; try again.") from e
    return category


# class_index, name and color of a project's categories (param project_id).
CATEGORY_ROWS = select(Category.class_index, Category.name, Category.color).where(
    Category.project_id == bindparam("project_id")
)
