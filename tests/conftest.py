"""Shared test setup: headless Qt, and helpers every test package may use."""

from __future__ import annotations

import os

import pytest

# Qt must never look for a display in tests; set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

LONG_REASON = "a long real-part test: run with --long (the README's test command does)"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        help="also run the tests marked long (installers, impaired networks, bench smoke)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The default run stays a developer's quick loop (under 15 minutes on 2
    # cores); --long adds the minutes-long tests that build installers, fresh
    # Debian roots and impaired networks. CI passes --long.
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason=LONG_REASON)
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)
