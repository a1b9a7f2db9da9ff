"""Imports point down the layers, functions' own imports included:

    callpulse -> {dashboards, streams, producers} -> analytics -> warehouse -> core

(producers need only core). A module importing a layer above its own, or a sibling layer,
fails here with the file, line and import."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What each top-level package may import, besides itself.
ALLOWED = {
    "callpulse": {"dashboards", "streams", "producers", "analytics", "warehouse", "core"},
    "dashboards": {"analytics", "warehouse", "core"},
    "streams": {"analytics", "warehouse", "core"},
    "producers": {"core"},
    "analytics": {"warehouse", "core"},
    "warehouse": {"core"},
    "core": set(),
}


def imported_packages(source: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import of a project package in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return [(line, module) for line, module in found if module.split(".")[0] in ALLOWED]


def test_every_import_points_down_the_layers():
    wrong = []
    for package, allowed in ALLOWED.items():
        for source in sorted((ROOT / package).rglob("*.py")):
            for line, module in imported_packages(source):
                target = module.split(".")[0]
                if target != package and target not in allowed:
                    wrong.append(f"{source.relative_to(ROOT)}:{line} imports {module} ({package} -> {target})")
    assert wrong == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("def run():\n    from streams.app import create_app\n    import warehouse.client\n")
    assert imported_packages(source) == [(2, "streams.app"), (3, "warehouse.client")]
