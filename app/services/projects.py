"""Projects and categories."""

from __future__ import annotations

from sqlalchemy import func, select
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
        raise NotFound(f"Project {project_id} does not exist.")
    return project


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


def category_names(project: Project) -> dict[int, str]:
    return {c.class_index: c.name for c in project.categories}


def category_colors(project: Project) -> dict[int, str]:
    return {c.class_index: c.color for c in project.categories}
