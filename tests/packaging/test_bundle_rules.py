"""The bundle's trim and FFmpeg-sharing rules, on every platform's file names.

packaging/callapp.spec applies these on Linux, Windows and macOS; only the
Linux build runs here, so the Windows and macOS names are checked this way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "packaging" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rules = _load("bundle_rules")


@pytest.mark.parametrize(
    ("dest", "kept"),
    [
        # Linux wheels
        ("PySide6/Qt/plugins/platforms/libqxcb.so", True),
        ("PySide6/Qt/plugins/platforms/libqoffscreen.so", True),
        ("PySide6/Qt/plugins/platforms/libqwayland.so", False),
        ("PySide6/Qt/plugins/platforms/libqeglfs.so", False),
        ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", False),
        ("PySide6/Qt/plugins/imageformats/libqsvg.so", True),
        ("PySide6/Qt/plugins/imageformats/libqjpeg.so", False),
        ("PySide6/Qt/plugins/iconengines/libqsvgicon.so", True),
        ("PySide6/Qt/plugins/xcbglintegrations/libqxcb-glx-integration.so", True),
        ("PySide6/Qt/plugins/wayland-shell-integration/libxdg-shell.so", False),
        ("PySide6/Qt/translations/qtbase_de.qm", False),
        ("PySide6/Qt/lib/libQt6Core.so.6", True),
        ("PySide6/Qt/qml/QtQuick/qmldir", False),
        # Windows wheels: plugins/ straight under PySide6, backslashes
        ("PySide6\\plugins\\platforms\\qwindows.dll", True),
        ("PySide6\\plugins\\platforms\\qdirect2d.dll", False),
        ("PySide6\\plugins\\styles\\qmodernwindowsstyle.dll", True),
        ("PySide6\\plugins\\imageformats\\qico.dll", True),
        ("PySide6\\plugins\\imageformats\\qtiff.dll", False),
        ("PySide6\\translations\\qtbase_fr.qm", False),
        ("PySide6\\Qt6Widgets.dll", True),
        # macOS wheels
        ("PySide6/Qt/plugins/platforms/libqcocoa.dylib", True),
        ("PySide6/Qt/plugins/styles/libqmacstyle.dylib", True),
        ("PySide6/Qt/plugins/imageformats/libqicns.dylib", False),
        ("PySide6/Qt/lib/QtGui.framework/Versions/A/QtGui", True),
        # not Qt: untouched
        ("cv2/cv2.abi3.so", True),
        ("callapp/signaling/web/index.html", True),
        ("resources/callapp.svg", True),
    ],
)
def test_what_the_trim_keeps(dest: str, kept: bool) -> None:
    assert rules.kept(dest) is kept


def test_every_kept_platform_plugin_is_one_qt_ships() -> None:
    # A typo in QT_PLUGINS would silently drop the plugin it meant to keep.
    wanted = rules.QT_PLUGINS["platforms"]
    assert wanted == {"offscreen", "xcb", "minimal", "windows", "cocoa"}
    for filename in ("libqxcb.so", "qwindows.dll", "libqcocoa.dylib", "libqoffscreen.so"):
        assert rules.plugin_name(filename) in wanted, filename


def test_excludes_leave_the_used_qt_modules_and_aiortcs_needs_alone() -> None:
    excluded = set(rules.EXCLUDES)
    for needed in ("asyncio", "ssl", "ctypes", "numpy", "av", "cv2", "PySide6.QtWidgets"):
        assert needed not in excluded, needed
    assert {"QtCore", "QtGui", "QtWidgets"} == rules.QT_MODULES_USED


def test_ffmpeg_names_are_parsed_by_library_and_major() -> None:
    key = rules.ffmpeg_key
    assert key("av.libs/libavcodec-5e6b81c2.so.62.28.102") == ("av.libs", "avcodec", "62")
    assert key("opencv_python_headless.libs/libswscale-fe215b0b.so.9.5.101") == (
        "opencv_python_headless.libs",
        "swscale",
        "9",
    )
    assert key("av.libs/libx265-f5385bb8.so.216") is None  # not FFmpeg
    assert key("libavcodec.so.62") is None  # not from a wheel's .libs folder
    assert key("av.libs/nested/libavcodec-1.so.62") is None


def test_opencv_shares_pyav_ffmpeg_of_the_same_major_and_drops_orphans() -> None:
    cv, av = "opencv_python_headless.libs", "av.libs"
    toc = [
        ("cv2/cv2.abi3.so", "/src/cv2.abi3.so", "EXTENSION"),
        (f"{cv}/libavcodec-c42.so.62.28.101", "/src/cv-avcodec", "BINARY"),
        (f"{cv}/libavformat-476.so.62.12.101", "/src/cv-avformat", "BINARY"),
        (f"{cv}/libavutil-bef.so.59.1.100", "/src/cv-avutil", "BINARY"),  # other major
        (f"{cv}/libssl-812.so.1.1.1k", "/src/cv-ssl", "BINARY"),
        (f"{cv}/libcrypto-540.so.1.1.1k", "/src/cv-crypto", "BINARY"),
        (f"{cv}/libopenblas-59f.so", "/src/cv-blas", "BINARY"),
        (f"{av}/libavcodec-5e6.so.62.28.102", "/src/av-avcodec", "BINARY"),
        (f"{av}/libavformat-463.so.62.12.102", "/src/av-avformat", "BINARY"),
        (f"{av}/libavutil-580.so.60.26.102", "/src/av-avutil", "BINARY"),
    ]
    links = {
        "/src/cv2.abi3.so": {
            "libavcodec-c42.so.62.28.101",
            "libavformat-476.so.62.12.101",
            "libavutil-bef.so.59.1.100",
            "libopenblas-59f.so",
        },
        "/src/cv-avformat": {"libssl-812.so.1.1.1k"},  # gone once it is a symlink
        "/src/cv-ssl": {"libcrypto-540.so.1.1.1k"},  # an orphan keeping another alive
        "/src/av-avformat": {"libavcodec-5e6.so.62.28.102"},
    }
    shared, log = rules.share_ffmpeg(toc, lambda src: links.get(src, set()))
    by_dest = {dest: (src, typecode) for dest, src, typecode in shared}
    assert by_dest[f"{cv}/libavcodec-c42.so.62.28.101"] == (
        f"../{av}/libavcodec-5e6.so.62.28.102",
        "SYMLINK",
    )
    assert by_dest[f"{cv}/libavformat-476.so.62.12.101"][1] == "SYMLINK"
    # A different major version keeps OpenCV's own copy.
    assert by_dest[f"{cv}/libavutil-bef.so.59.1.100"] == ("/src/cv-avutil", "BINARY")
    # OpenSSL went with OpenCV's libavformat, libcrypto with OpenSSL.
    assert f"{cv}/libssl-812.so.1.1.1k" not in by_dest
    assert f"{cv}/libcrypto-540.so.1.1.1k" not in by_dest
    assert f"{cv}/libopenblas-59f.so" in by_dest  # still linked by cv2
    assert all(dest in by_dest for dest, _, _ in toc if dest.startswith(av))
    assert len(log) == 4, log


def test_elf_reader_finds_what_a_real_library_links() -> None:
    elf = _load("bundle_elf")
    import PySide6

    folder = Path(PySide6.__file__).parent
    qtcore = next(p for p in folder.glob("QtCore.*") if p.suffix in {".so", ".pyd"})
    if not elf.needed(qtcore):
        pytest.skip(f"{qtcore.name} is not a 64-bit ELF file on this platform")
    assert any(name.startswith(("libQt6Core", "libpyside6")) for name in elf.needed(qtcore))
    assert elf.load_segments_aligned(qtcore)
    assert elf.needed(ROOT / "README.md") == set()
