"""The ``lab`` fixture: a :class:`~tests.net.lab.Lab` of the test's own, torn down after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.net.lab import Lab, lab_or_skip


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Namespaces A, M (the impairment bridge), B and S (signaling); skipped without root."""
    with lab_or_skip(seed=14) as running:
        yield running
