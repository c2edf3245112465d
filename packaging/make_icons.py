"""Render callapp/resources/callapp.svg into the per-platform icon files.

Writes ``callapp.png`` (256 px, Linux and the window icon), ``callapp.ico``
(Windows; PNG entries, which Windows Vista and later read) and
``callapp.icns`` (macOS; PNG entries). PyInstaller could convert a PNG by
itself, but only with Pillow installed, which the app does not need; keeping
the converted files in the repository keeps the build free of it.

Run after editing the SVG: ``.venv/bin/python packaging/make_icons.py``.
"""

from __future__ import annotations

import os
import struct
import sys
import tempfile
from pathlib import Path

# Inside the package: the app finds its icon there (callapp/ui/icon.py), in a
# pip install as in the bundle.
RESOURCES = Path(__file__).resolve().parent.parent / "callapp" / "resources"
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# icns types holding PNG data, by pixel size (ic07..ic10; ic11..ic14 are @2x).
ICNS_TYPES = ((b"ic07", 128), (b"ic08", 256), (b"ic09", 512), (b"ic10", 1024))


def render_png(svg: Path, size: int) -> bytes:
    """The SVG drawn at ``size`` x ``size`` pixels, as PNG bytes."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / f"{size}.png"
        if not image.save(str(target)):
            raise RuntimeError(f"Qt could not write {target}")
        return target.read_bytes()


def ico(pngs: dict[int, bytes]) -> bytes:
    """An .ico file whose entries are the given PNGs."""
    sizes = sorted(pngs)
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = len(header) + 16 * len(sizes)
    entries, blobs = b"", b""
    for size in sizes:
        blob = pngs[size]
        dim = 0 if size >= 256 else size  # 0 means 256
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(blob), offset)
        offset += len(blob)
        blobs += blob
    return header + entries + blobs


def icns(pngs: dict[bytes, bytes]) -> bytes:
    """An .icns file whose entries are the given PNGs, keyed by icns type."""
    body = b"".join(kind + struct.pack(">I", 8 + len(d)) + d for kind, d in pngs.items())
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    """Write the PNG, ICO and ICNS next to the SVG."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    svg = RESOURCES / "callapp.svg"
    (RESOURCES / "callapp.png").write_bytes(render_png(svg, 256))
    (RESOURCES / "callapp.ico").write_bytes(ico({s: render_png(svg, s) for s in ICO_SIZES}))
    (RESOURCES / "callapp.icns").write_bytes(
        icns({kind: render_png(svg, size) for kind, size in ICNS_TYPES})
    )
    for name in ("callapp.png", "callapp.ico", "callapp.icns"):
        print(f"{RESOURCES / name}: {(RESOURCES / name).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
