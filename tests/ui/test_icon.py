"""The window icon comes from inside the package: source tree, wheel, bundle."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication

import callapp
from callapp.ui.icon import ICON_FILES, app_icon, icon_file, resource

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(callapp.__file__).resolve().parent


def test_the_icon_is_drawn_from_inside_the_package(qapp: QApplication) -> None:
    icon = app_icon()
    assert not icon.isNull()
    for size in (16, 64, 256):
        pixmap = icon.pixmap(size, size)
        assert not pixmap.isNull()
        assert pixmap.width() == size
    for name in ICON_FILES:
        path = icon_file(name)
        assert path is not None, name
        assert path.resolve().parent == PACKAGE / "resources"
        assert resource(name).is_file()
    assert icon_file("no-such-file.svg") is None


def test_the_icon_files_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["callapp"]
    for name in ICON_FILES:
        assert any(Path(f"resources/{name}").match(p) for p in patterns), name


def test_the_bundle_spec_ships_the_package_resources() -> None:
    spec = (ROOT / "packaging" / "callapp.spec").read_text()
    assert '"resources/*.svg"' in spec
    assert '"resources/*.png"' in spec
    assert re.search(r'RESOURCES = ROOT / "callapp" / "resources"', spec)
    make_icons = (ROOT / "packaging" / "make_icons.py").read_text()
    assert '"callapp" / "resources"' in make_icons


def _build_wheel(src: Path, out: Path) -> Path:
    """A wheel of ``src``; without build isolation when this setuptools can build it."""
    import setuptools

    major = int(setuptools.__version__.split(".")[0])
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    if major >= 68:  # pyproject's build requirement; older ones reject its licence field
        command.insert(4, "--no-build-isolation")
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=src)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        offline = re.search(
            r"No matching distribution|Could not find a version|NewConnectionError|"
            r"Temporary failure in name resolution|Network is unreachable",
            output,
        )
        if offline:
            pytest.skip("no setuptools>=68 here and no package index to fetch it from")
        pytest.fail(f"pip wheel failed:\n{output}")
    (wheel,) = out.glob("callapp-*.whl")
    return wheel


@pytest.mark.slow
def test_a_wheel_carries_the_icon_and_finds_it_once_installed(tmp_path: Path) -> None:
    # Build from a copy: a build in the tree would write build/ and egg-info there.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "callapp", ignore=shutil.ignore_patterns("__pycache__"))
    wheel = _build_wheel(src, tmp_path / "dist")

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = {n for n in names if n.startswith("callapp/resources/")}
        assert shipped == {f"callapp/resources/{name}" for name in ICON_FILES}
        assert "callapp/ui/icon.py" in names
        site = tmp_path / "site"
        archive.extractall(site)  # what pip install puts in site-packages

    # The installed copy, not this tree, must find and draw the icon.
    probe = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from PySide6.QtGui import QGuiApplication
        app = QGuiApplication([])
        import callapp
        from callapp.ui.icon import app_icon, icon_file
        site = Path(sys.argv[1]).resolve()
        assert Path(callapp.__file__).resolve().is_relative_to(site), callapp.__file__
        assert icon_file().resolve().is_relative_to(site), icon_file()
        icon = app_icon()
        assert not icon.isNull()
        assert not icon.pixmap(48, 48).isNull()
        print("icon ok", icon_file())
        """
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", probe, str(site)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "icon ok" in result.stdout
