"""One build of the Linux artefacts for every packaging test in the session.

The .deb and the AppImage are built only when the tests that install them
run (``--long``): without it the build stops at the folder and the
tarball, which is all test_bundle.py needs, and saves the default run
their packing time.
"""

from __future__ import annotations

import sys

import pytest

from tests.packaging.frozen import Bundle, build_all


@pytest.fixture(scope="session")
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The folder and tarball (and with ``--long`` the .deb and AppImage) of this tree."""
    if not sys.platform.startswith("linux"):
        pytest.skip("builds the Linux artefacts")
    installers = bool(request.config.getoption("--long", default=False))
    return build_all(tmp_path_factory.mktemp("bundle"), installers=installers)
