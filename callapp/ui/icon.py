"""The app's icon, found inside the installed package.

The icon files live in ``callapp/resources/`` and ship as package data, so
:func:`app_icon` finds them through :mod:`importlib.resources` wherever the
package is: a wheel installed by pip, an editable install, a PyInstaller
bundle (``_internal/callapp/resources/``) or the ``.deb`` built from it.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from PySide6.QtGui import QIcon, QPixmap

#: The folder inside the ``callapp`` package that holds the resources.
RESOURCES = "resources"
#: The icon's files, best first: the SVG scales to any size, the PNG (256 px)
#: is there if Qt has no SVG plugin.
ICON_FILES = ("callapp.svg", "callapp.png")


def resource(name: str) -> Traversable:
    """``callapp/resources/NAME`` inside the installed package (it may not exist)."""
    return resources.files("callapp").joinpath(RESOURCES, name)


def icon_file(name: str = ICON_FILES[0]) -> Path | None:
    """The icon file ``name`` as a path on disk, or None if it is not one.

    Every way callapp is installed today keeps its files on disk; a zip
    import would not, and then only :func:`app_icon` can read the icon.
    """
    item = resource(name)
    return item if isinstance(item, Path) and item.is_file() else None


def app_icon() -> QIcon:
    """The window icon: the SVG and the PNG from inside the package.

    Null only if neither file is there (a broken install). Needs a
    QGuiApplication, as every QIcon does when it is drawn.
    """
    icon = QIcon()
    for name in ICON_FILES:
        item = resource(name)
        if not item.is_file():
            continue
        if isinstance(item, Path):
            icon.addFile(str(item))
            continue
        pixmap = QPixmap()  # not on disk (a zip import): read the bytes
        if pixmap.loadFromData(item.read_bytes(), name.rpartition(".")[2].upper()):
            icon.addPixmap(pixmap)
    return icon


__all__ = ["ICON_FILES", "app_icon", "icon_file", "resource"]
