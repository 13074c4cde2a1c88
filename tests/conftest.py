"""Fixtures for the whole suite live in tests/fixtures/; imported here so pytest finds them."""

from tests.fixtures.app import admin, client, make_client, make_settings, new_key, settings
from tests.fixtures.celery import redis_url, settings_env, start_worker
from tests.fixtures.db import db_url, pg_url, sqlite_url
from tests.fixtures.label_studio import file_host, ls_scene
from tests.fixtures.label_studio_server import label_studio
from tests.fixtures.webhooks import receiver

__all__ = [
    "admin",
    "client",
    "db_url",
    "file_host",
    "label_studio",
    "ls_scene",
    "make_client",
    "make_settings",
    "new_key",
    "pg_url",
    "receiver",
    "redis_url",
    "settings",
    "settings_env",
    "sqlite_url",
    "start_worker",
]
