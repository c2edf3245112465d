"""Shared test setup: headless Qt, and helpers every test package may use."""

from __future__ import annotations

import os

# Qt must never look for a display in tests; set before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
