"""The layering rules of docs/architecture.md, checked over the source's imports."""

from __future__ import annotations

import ast
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


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def violates(module: str, forbidden: str) -> bool:
    return module == forbidden or module.startswith(forbidden + ".")


@pytest.mark.parametrize(("pattern", "forbidden", "why"), RULES, ids=[r[0] for r in RULES])
def test_layering(pattern: str, forbidden: tuple[str, ...], why: str) -> None:
    files = sorted(PACKAGE.glob(pattern))
    assert files, f"no files match {pattern}: the rule is stale"
    problems = [
        f"{path.relative_to(PACKAGE)} imports {module} ({why})"
        for path in files
        for module in imported_modules(path)
        if any(violates(module, bad) for bad in forbidden)
    ]
    assert not problems, "\n".join(problems)


def test_rule_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom PySide6.QtCore import QObject\n")
    modules = imported_modules(bad)
    assert any(violates(m, "PySide6") for m in modules)
    assert any(violates(m, "asyncio") for m in modules)
    assert not any(violates(m, "PySide") for m in modules)
