"""The layering rules of docs/architecture.md, checked over the source's imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "callapp"

# (files, forbidden top-level modules or callapp subpackages, why)
RULES: list[tuple[str, tuple[str, ...], str]] = [
    (
        "signaling/messages.py",
        ("websockets", "asyncio", "PySide6", "aiortc", "qasync", "redis"),
        "the protocol core is sans-I/O",
    ),
    (
        "signaling/rooms.py",
        ("websockets", "asyncio", "PySide6", "aiortc", "qasync", "redis"),
        "the room router is sans-I/O",
    ),
    (
        "signaling/**/*.py",
        ("PySide6", "aiortc", "qasync", "cv2", "callapp.call", "callapp.media", "callapp.ui"),
        "signaling knows no Qt, media or calls",
    ),
    (
        "media/**/*.py",
        ("PySide6", "qasync", "callapp.call", "callapp.ui", "callapp.signaling"),
        "media knows no Qt and no calls; the UI converts frames",
    ),
    (
        "call/**/*.py",
        ("PySide6", "qasync", "cv2", "callapp.ui"),
        "the call engine knows no Qt; cameras live in media/",
    ),
    (
        "ui/**/*.py",
        ("aiortc", "websockets"),
        "the UI talks to the call engine, not to aiortc or sockets",
    ),
]


# Parsed in a fresh interpreter: CPython 3.11's AST recursion-depth bookkeeping
# can be left out of step by a RecursionError caught earlier in the process
# (the JSON-nesting tests provoke them), and ast.parse then raises
# "SystemError: AST constructor recursion depth mismatch".
_LIST_IMPORTS = """
import ast, json, sys
found = {}
for name in sys.argv[1:]:
    modules = set()
    for node in ast.walk(ast.parse(open(name, encoding="utf-8").read(), filename=name)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    found[name] = sorted(modules)
print(json.dumps(found))
"""


def imported_modules(*paths: Path) -> dict[Path, set[str]]:
    """The absolute imports of each file in ``paths``."""
    result = subprocess.run(
        [sys.executable, "-c", _LIST_IMPORTS, *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return {Path(name): set(modules) for name, modules in json.loads(result.stdout).items()}


def violates(module: str, forbidden: str) -> bool:
    return module == forbidden or module.startswith(forbidden + ".")


@pytest.mark.parametrize(("pattern", "forbidden", "why"), RULES, ids=[r[0] for r in RULES])
def test_layering(pattern: str, forbidden: tuple[str, ...], why: str) -> None:
    files = sorted(PACKAGE.glob(pattern))
    assert files, f"no files match {pattern}: the rule is stale"
    problems = [
        f"{path.relative_to(PACKAGE)} imports {module} ({why})"
        for path, modules in imported_modules(*files).items()
        for module in sorted(modules)
        if any(violates(module, bad) for bad in forbidden)
    ]
    assert not problems, "\n".join(problems)


def test_rule_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom PySide6.QtCore import QObject\n")
    modules = imported_modules(bad)[bad]
    assert any(violates(m, "PySide6") for m in modules)
    assert any(violates(m, "asyncio") for m in modules)
    assert not any(violates(m, "PySide") for m in modules)
