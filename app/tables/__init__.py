"""SQLAlchemy tables of the whole data model (the schema itself changes only via Alembic)."""

from app.tables.api_key import ROLES, ApiKey
from app.tables.base import Base, utcnow
from app.tables.image import Image, image_tags
from app.tables.job import ACTIVE_STATUSES, JOB_STATUSES, Job, JobCheckpoint, JobEvent
from app.tables.label_studio import LabelStudioAnnotation
from app.tables.list_version import ListVersion
from app.tables.mask import MASK_SOURCES, REVIEW_STATES, Mask
from app.tables.model_version import ModelVersion
from app.tables.project import Category, Project
from app.tables.webhook import WEBHOOK_EVENTS, Webhook, WebhookDelivery

__all__ = [
    "ACTIVE_STATUSES",
    "JOB_STATUSES",
    "MASK_SOURCES",
    "REVIEW_STATES",
    "ROLES",
    "WEBHOOK_EVENTS",
    "ApiKey",
    "Base",
    "Category",
    "Image",
    "Job",
    "JobCheckpoint",
    "JobEvent",
    "LabelStudioAnnotation",
    "ListVersion",
    "Mask",
    "ModelVersion",
    "Project",
    "Webhook",
    "WebhookDelivery",
    "image_tags",
    "utcnow",
]
