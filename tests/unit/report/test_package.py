"""The report package's modules import one way: playlist -> analysis -> figures, html -> write."""

from __future__ import annotations

import ast
from pathlib import Path

import audiosim.report

ALLOWED = {
    "playlist": set(),
    "analysis": {"playlist"},
    "figures": {"analysis"},
    "html": {"analysis"},
    "write": {"analysis", "figures", "html"},
}


def _report_imports(path: Path) -> set[str]:
    """The ``audiosim.report`` modules a file imports, anywhere in it (module top or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("audiosim.report."):
            found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("audiosim.report.")}
    return found


def test_report_modules_import_one_way():
    folder = Path(audiosim.report.__file__).parent
    assert {p.stem for p in folder.glob("*.py")} - {"__init__"} == set(ALLOWED)
    for name, allowed in ALLOWED.items():
        assert _report_imports(folder / f"{name}.py") <= allowed, name


def test_the_page_template_is_in_the_package():
    assert (Path(audiosim.report.__file__).parent / "templates" / "report.html.j2").is_file()
