"""models/ is a plain library: it imports nothing from app/ or worker/."""

from __future__ import annotations

import ast
from pathlib import Path

MODELS = Path(__file__).resolve().parents[2] / "models"


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_models_imports_nothing_from_app_or_worker() -> None:
    files = sorted(MODELS.rglob("*.py"))
    assert len(files) > 10
    offenders = {
        str(f.relative_to(MODELS)): sorted(
            m for m in _imported_modules(f) if m.split(".")[0] in {"app", "worker"}
        )
        for f in files
    }
    assert {f: m for f, m in offenders.items() if m} == {}
