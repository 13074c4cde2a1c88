"""`tag2mask keys create|list|revoke`: API keys straight in the database the settings name."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import make_url
from sqlalchemy.orm import Session

from app.db import make_engine, make_sessionmaker, session_scope
from app.migrate import upgrade_head
from app.schemas.common import DB_INT_MAX, ID_MIN
from app.services.keys import create_key, list_keys, revoke_key
from app.services.scope import SYSTEM
from app.settings import Settings

T = TypeVar("T")


def where(settings: Settings) -> str:
    """The data directory and database (without its password) the command works on."""
    db = make_url(settings.db_url).render_as_string(hide_password=True)
    return f"data directory {settings.data_dir}, database {db}"


def in_session(work: Callable[[Session], T]) -> tuple[Settings, T]:
    """`work` in one transaction on the migrated database the environment names."""
    settings = Settings()
    settings.ensure_dirs()
    upgrade_head(settings.db_url)
    engine = make_engine(settings.db_url, pool_size=1)
    try:
        with session_scope(make_sessionmaker(engine)) as s:
            return settings, work(s)
    finally:
        engine.dispose()


def db_id(text: str) -> int:
    """An argparse type: an id in the id columns' range, as the API bounds them."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an id: {text!r}") from None
    if not ID_MIN <= value <= DB_INT_MAX:
        raise argparse.ArgumentTypeError(f"an id is {ID_MIN}..{DB_INT_MAX}, not {value}")
    return value


def _fail(e: Exception) -> int:
    """One line on stderr for an ApiError (unknown project or key) or a database error."""
    print(f"error: {getattr(e, 'message', e)}", file=sys.stderr)
    return 2


def cmd_create(args: argparse.Namespace) -> int:
    """Print the new key, and nothing else, on stdout; where it went on stderr."""

    def create(s: Session) -> tuple[int, str]:
        row, secret = create_key(s, args.role, args.project, args.name)
        return row.id, secret

    try:
        settings, (row_id, secret) = in_session(create)
    except Exception as e:
        return _fail(e)
    print(f"created {args.role} key {row_id} in {where(settings)}", file=sys.stderr)
    print(secret)
    return 0


def _row(k: Any) -> list[str]:
    return [
        str(k.id),
        k.role,
        "all" if k.project_id is None else str(k.project_id),
        k.prefix + "…",
        k.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        k.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if k.revoked_at else "-",
        k.name or "",
    ]


def cmd_list(args: argparse.Namespace) -> int:
    """A table of keys (never their secrets or hashes), oldest first."""
    try:
        settings, rows = in_session(
            lambda s: [_row(k) for k in list_keys(s, SYSTEM, include_revoked=args.all)]
        )
    except Exception as e:
        return _fail(e)
    print(f"keys in {where(settings)}", file=sys.stderr)
    table = [["id", "role", "project", "prefix", "created (UTC)", "revoked (UTC)", "name"], *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke a key: API processes answer 401 within TAG2MASK_AUTH_CACHE_TTL_S."""
    try:
        settings, _ = in_session(lambda s: revoke_key(s, args.key_id, SYSTEM))
    except Exception as e:
        return _fail(e)
    print(f"revoked key {args.key_id} in {where(settings)}", file=sys.stderr)
    return 0


def add_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_cmd", required=True)
    create = keys.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--role", required=True, choices=["admin", "annotator", "viewer"])
    create.add_argument("--project", type=db_id, default=None, help="limit the key to one project")
    create.add_argument("--name", default=None)
    create.set_defaults(func=cmd_create)
    ls = keys.add_parser("list", help="list keys (id, role, project, prefix, dates, name)")
    ls.add_argument(
        "--all",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="include revoked keys (default; --no-all hides them)",
    )
    ls.set_defaults(func=cmd_list)
    revoke = keys.add_parser("revoke", help="revoke a key by its id (see `keys list`)")
    revoke.add_argument("key_id", type=db_id, metavar="ID")
    revoke.set_defaults(func=cmd_revoke)
