"""What the bundle keeps and shares: the rules callapp.spec applies, as plain functions.

Kept apart from the spec so that they can be tested on every platform's file
names from any one machine (tests/packaging/test_bundle_rules.py): the
Windows and macOS branches of the spec never run on the development machine.

A TOC entry is PyInstaller's ``(dest_name, src_name, typecode)``: the path
inside the bundle (``/`` or ``\\`` separated), where it comes from, and its
kind (``BINARY``, ``DATA``, ``EXTENSION``, ``SYMLINK``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

TocEntry = tuple[str, str, str]

#: The Qt bindings the app uses; the spec excludes every other PySide6 module.
QT_MODULES_USED = frozenset({"QtCore", "QtGui", "QtWidgets"})

#: Qt plugins kept, by folder; a folder not listed is dropped whole, and None
#: keeps every plugin in its folder. Names are without ``lib``/``q`` and suffix.
QT_PLUGINS: dict[str, frozenset[str] | None] = {
    # offscreen: --self-test and CI; xcb: X11, and Wayland through XWayland
    # (Qt falls back to it when the wayland plugin is absent); minimal: tests.
    "platforms": frozenset({"offscreen", "xcb", "minimal", "windows", "cocoa"}),
    "platforminputcontexts": None,  # compose key and IBus input methods
    "xcbglintegrations": None,  # GLX/EGL for xcb, loaded lazily, tiny
    "styles": None,  # the native Windows and macOS styles
    "imageformats": frozenset({"ico", "svg"}),  # PNG is built into QtGui
    "iconengines": frozenset({"svgicon"}),  # QIcon from an SVG file
}

#: Modules the app never imports, left out of every analysis.
EXCLUDES = (
    "tkinter",
    "_tkinter",
    "turtle",
    "readline",  # interactive prompts only; pulls in libreadline and libtinfo
    "curses",
    "idlelib",
    "lib2to3",
    "pydoc_data",
    "test",
    "unittest.test",
    "distutils",
    "setuptools",
    "pkg_resources",
    "pip",
    "IPython",
    "matplotlib",
    "PIL",
    "scipy",
    "pandas",
    "pytest",
    "_pytest",
    "hypothesis",
    "mypy",
    "numpy.tests",
    "numpy.random",  # loaded lazily by numpy, used by nothing here
    "numpy._core._multiarray_tests",
    "numpy.f2py",
    "numpy.distutils",
    "av.tests",
    "PySide6.scripts",
    "PySide6.support.deprecated",
)

#: FFmpeg's libraries, which opencv-python-headless and PyAV both carry.
FFMPEG_LIBS = frozenset({"avcodec", "avformat", "avutil", "swscale", "swresample"})
OPENCV_LIBS = "opencv_python_headless.libs"
PYAV_LIBS = "av.libs"


def plugin_name(filename: str) -> str:
    """A plugin's short name: ``libqxcb.so``, ``qwindows.dll``, ``libqcocoa.dylib`` -> ``xcb``..."""
    stem = filename.split(".")[0]
    stem = stem.removeprefix("lib")
    return stem.removeprefix("q")


def plugin_kept(folder: str, filename: str) -> bool:
    """Whether the Qt plugin ``plugins/<folder>/<filename>`` stays in the bundle."""
    if folder not in QT_PLUGINS:
        return False
    wanted = QT_PLUGINS[folder]
    return wanted is None or plugin_name(filename) in wanted


def kept(dest: str) -> bool:
    """Whether a collected file, by its path inside the bundle, stays."""
    parts = PurePosixPath(dest.replace("\\", "/")).parts
    if not parts or parts[0] not in {"PySide6", "shiboken6"}:
        return True
    if "translations" in parts:
        return False  # the UI is English only
    if "plugins" in parts:
        rest = parts[parts.index("plugins") + 1 :]
        return len(rest) >= 2 and plugin_kept(rest[0], rest[-1])
    return not ("qml" in parts or "metatypes" in parts or "include" in parts)


def ffmpeg_key(dest: str) -> tuple[str, str, str] | None:
    """(folder, library, major) of ``x.libs/libavcodec-1a2b3c4d.so.62.28.101``, else None."""
    path = PurePosixPath(dest)
    if len(path.parts) != 2 or not path.parts[0].endswith(".libs"):
        return None
    stem, _, version = path.name.partition(".so.")
    library = stem.rsplit("-", 1)[0].removeprefix("lib")
    if library not in FFMPEG_LIBS or not version:
        return None
    return path.parts[0], library, version.split(".")[0]


def share_ffmpeg(
    toc: Iterable[TocEntry], needed: Callable[[str], set[str]]
) -> tuple[list[TocEntry], list[str]]:
    """OpenCV's FFmpeg libraries as symlinks to PyAV's of the same major version.

    Then OpenCV's libraries that no kept binary links any more (by
    ``needed(src)``, the DT_NEEDED names of a file) are dropped, repeatedly,
    since one orphan can be the last user of another. Returns the new TOC
    and one line per change, for the build log.
    """
    entries = list(toc)
    pyav = {}
    for dest, _, _ in entries:
        key = ffmpeg_key(dest)
        if key and key[0] == PYAV_LIBS:
            pyav[key[1:]] = dest
    log: list[str] = []
    shared: list[TocEntry] = []
    for dest, src, typecode in entries:
        key = ffmpeg_key(dest)
        if key and key[0] == OPENCV_LIBS and key[1:] in pyav:
            target = "../" + pyav[key[1:]]
            shared.append((dest, target, "SYMLINK"))
            log.append(f"{dest} -> {target}")
        else:
            shared.append((dest, src, typecode))
    while True:
        linked: set[str] = set()
        for _, src, typecode in shared:
            if typecode in ("BINARY", "EXTENSION"):
                linked |= needed(src)
        orphans = [
            entry
            for entry in shared
            if entry[2] == "BINARY"
            and PurePosixPath(entry[0]).parts[0] == OPENCV_LIBS
            and PurePosixPath(entry[0]).name not in linked
        ]
        if not orphans:
            return shared, log
        log += [f"dropping {dest}, nothing links it now" for dest, _, _ in orphans]
        shared = [entry for entry in shared if entry not in orphans]
