"""The AppImage, ``callapp-<version>-<machine>.AppImage``, made from the Linux bundle.

    .venv/bin/python packaging/build.py                        # bundle, tarball, .deb, AppImage
    .venv/bin/python packaging/appimage.py dist/bundle/callapp dist   # from a built folder

An AppImage (type 2) is a runtime ELF with a squashfs image appended. The
reference runtime and appimagetool are only released on GitHub, which this
project's machines cannot reach, and neither Debian 12 nor PyPI packages
them (PyPI's appimage, pyproject-appimage and python-appimage all download
appimagetool when they run). So ``appimage/runtime.c`` is built here with
gcc against Debian's static libsquashfuse and libfuse3 (packages
libsquashfuse-dev, libfuse3-dev and the compression libraries' -dev
packages) and the image is made with ``mksquashfs`` (squashfs-tools).

The image's root:

- ``AppRun``: a shell script that runs ``callapp/callapp`` (or
  ``callapp/callapp-signaling`` when started through a link of that name);
- ``callapp/``: the PyInstaller folder as it is, PortAudio included;
- ``fallback/<soname>/``: what the .deb leaves to ``Depends`` (GL, EGL and
  libxcb, from the build machine, with the libraries they link), each put on
  ``LD_LIBRARY_PATH`` by AppRun only when the system has no library of that
  name, since a desktop's own GL must match its driver;
- ``fonts/``: DejaVu Sans from the build machine's fonts-dejavu-core, and a
  ``fonts.conf`` naming it, which AppRun hands to the bundled fontconfig
  only on a system with no ``/etc/fonts/fonts.conf`` (a system without
  fontconfig's configuration has no fonts either, and Qt would draw boxes);
- ``callapp.desktop``, ``callapp.png``, ``.DirIcon`` and hicolor icons, for
  desktop integration tools.

The runtime is compiled with the project's version, and the SHA-256 of the
squashfs image is written into it (``DIGEST_MARKER``): it names the
runtime's extract-once cache, ``$XDG_CACHE_HOME/callapp/appimage/
<version>-<digest>``, from which the app starts as fast as the unpacked
folder (see runtime.c and README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bundle_elf  # packaging/bundle_elf.py, beside this script
import deb  # packaging/deb.py: metadata, Depends, icons

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_SOURCE = ROOT / "packaging" / "appimage" / "runtime.c"
#: Bytes 8-10 of an AppImage: "AI" and the type, 2.
MAGIC = b"AI\x02"
MAGIC_OFFSET = 8
#: In the runtime: this, then 64 hex digits the build replaces with the
#: image's SHA-256 (runtime.c's image_digest).
DIGEST_MARKER = b"CALLAPP-IMAGE-SHA256:"
#: The one font the image carries, and its licence (Debian's fonts-dejavu-core).
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FONT_LICENCE = Path("/usr/share/doc/fonts-dejavu-core/copyright")
FONTS_CONF = """\
<?xml version="1.0"?>
<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">
<!-- callapp's AppImage: used only where the system has no /etc/fonts/fonts.conf
     (AppRun sets FONTCONFIG_FILE). The image's DejaVu Sans, and any fonts
     the system or the user has in the usual places. -->
<fontconfig>
  <dir prefix="relative">.</dir>
  <dir>/usr/share/fonts</dir>
  <dir>/usr/local/share/fonts</dir>
  <dir prefix="xdg">fonts</dir>
  <cachedir prefix="xdg">fontconfig</cachedir>
</fontconfig>
"""
RUNTIME_LIBS = ("squashfuse_ll", "squashfuse", "fuse3", "zstd", "lzma", "lz4", "lzo2", "z")
#: Debian packages the runtime is built from (scripts/setup.sh installs them).
RUNTIME_BUILD_PACKAGES = (
    "gcc",
    "libsquashfuse-dev",
    "libfuse3-dev",
    "libzstd-dev",
    "liblzma-dev",
    "liblz4-dev",
    "liblzo2-dev",
    "zlib1g-dev",
    "squashfs-tools",
)

APPRUN = """\
#!/bin/sh
# callapp's AppImage entry point. The runtime mounts (or extracts) the image
# and runs this with APPDIR set to where the image's tree is.
HERE="${APPDIR:-$(dirname "$(readlink -f "$0")")}"
# GL, EGL and libxcb must be the desktop's own where it has them (GL has to
# match the driver); the image's copies are used only for a name it lacks.
known="$( (ldconfig -p || /sbin/ldconfig -p) 2>/dev/null)"
for group in "$HERE"/fallback/*; do
    [ -d "$group" ] || continue
    case "$known" in
        *"${group##*/} "*) ;;
        *) LD_LIBRARY_PATH="$group${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
    esac
done
export LD_LIBRARY_PATH
# A system without fontconfig's configuration has no fonts either: Qt would
# draw boxes. The image's fonts.conf names its own DejaVu Sans.
if [ ! -e /etc/fonts/fonts.conf ] && [ -z "${FONTCONFIG_FILE:-}" ] && [ -d "$HERE/fonts" ]; then
    export FONTCONFIG_FILE="$HERE/fonts/fonts.conf"
fi
case "${ARGV0##*/}" in
    callapp-signaling*) exec "$HERE/callapp/callapp-signaling" "$@" ;;
esac
exec "$HERE/callapp/callapp" "$@"
"""


def machine() -> str:
    """The AppImage file name's architecture: x86_64, aarch64, ..."""
    return platform.machine().lower()


def build_runtime(work: Path, cc: str = "gcc") -> Path:
    """Compile appimage/runtime.c statically into ``work``; return the runtime's path.

    The compiled file is kept beside a hash of its source, so a second build
    in the same work folder reuses it.
    """
    flags = ["-O2", "-Wall", "-static", "-s", "-ffunction-sections", "-fdata-sections"]
    flags += ["-Wl,--gc-sections", "-I/usr/include/squashfuse"]
    flags.append(f'-DCALLAPP_APP_VERSION="{deb.project_info().version}"')
    source = RUNTIME_SOURCE.read_bytes() + "\0".join(flags).encode()
    runtime = work / f"appimage-runtime-{hashlib.sha256(source).hexdigest()[:16]}"
    if runtime.is_file():
        return runtime
    if shutil.which(cc) is None:
        raise SystemExit(f"appimage: no {cc}; install {' '.join(RUNTIME_BUILD_PACKAGES)}")
    work.mkdir(parents=True, exist_ok=True)
    command = [cc, *flags, "-o", str(runtime)]
    command += [str(RUNTIME_SOURCE), *(f"-l{lib}" for lib in RUNTIME_LIBS), "-lpthread"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(
            f"appimage: the runtime did not build (Debian packages needed: "
            f"{' '.join(RUNTIME_BUILD_PACKAGES)}):\n{result.stderr[-3000:]}"
        )
    return runtime


def system_library_paths() -> dict[str, Path]:
    """Sonames the dynamic loader knows on this machine (``ldconfig -p``) and their files."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    listing = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, check=True).stdout
    found: dict[str, Path] = {}
    for line in listing.splitlines()[1:]:
        name, _, rest = line.strip().partition(" (")
        flags, _, path = rest.partition(") => ")
        if "x86-64" in flags or "AArch64" in flags or machine() not in ("x86_64", "aarch64"):
            found.setdefault(name, Path(path))
    return found


def fallback_libraries(soname: str, known: dict[str, Path], bundled: set[str]) -> list[Path]:
    """``soname``'s file on this machine and every library it links, glibc and the bundle aside."""
    wanted, files = [soname], []
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in seen or name in deb.GLIBC_NAMES or name in bundled:
            continue
        seen.add(name)
        if name not in known:
            raise SystemExit(f"appimage: {name} (for {soname}) is not on this machine to carry")
        files.append(known[name])
        wanted += sorted(bundle_elf.needed(known[name].resolve()))
    return files


def make_appdir(bundle: Path, appdir: Path, info: deb.ProjectInfo) -> list[Path]:
    """All of the image but the bundle, in ``appdir``; returns its top-level entries."""
    apprun = appdir / "AppRun"
    apprun.write_text(APPRUN)
    apprun.chmod(0o755)
    entry = deb.DESKTOP_ENTRY.read_text()
    (appdir / "callapp.desktop").write_text(
        entry.rstrip("\n") + f"\nX-AppImage-Version={info.version}\n"
    )
    share = appdir / "usr" / "share"
    deb.install_desktop_files(share)
    (share / "applications" / "callapp.desktop").unlink()  # the one at the root is used
    (share / "applications").rmdir()
    (appdir / "callapp.png").write_bytes(deb.ico_pngs(deb.RESOURCES / "callapp.ico")[256])
    (appdir / ".DirIcon").symlink_to("callapp.png")
    fonts = appdir / "fonts"
    fonts.mkdir()
    for source in (FONT, FONT_LICENCE):
        if not source.is_file():
            raise SystemExit(f"appimage: no {source} to carry (Debian's fonts-dejavu-core)")
    shutil.copyfile(FONT, fonts / FONT.name)
    shutil.copyfile(FONT_LICENCE, fonts / "COPYING.DejaVu")
    (fonts / "fonts.conf").write_text(FONTS_CONF)
    known = system_library_paths()
    bundled = {p.name for p in bundle.rglob("*")}
    for soname in sorted(deb.SYSTEM_PACKAGES):
        group = appdir / "fallback" / soname
        group.mkdir(parents=True)
        for path in fallback_libraries(soname, known, bundled):
            shutil.copyfile(path.resolve(), group / path.name)
    return sorted(appdir.iterdir())


def file_sha256(path: Path, offset: int = 0) -> str:
    """The SHA-256 (hex) of ``path`` from ``offset`` to its end."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        f.seek(offset)
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def with_digest(runtime: bytes, digest: str) -> bytearray:
    """The runtime with ``digest`` written after its one ``DIGEST_MARKER``."""
    if runtime.count(DIGEST_MARKER) != 1:
        raise SystemExit("appimage: the runtime must hold its digest marker exactly once")
    at = runtime.index(DIGEST_MARKER) + len(DIGEST_MARKER)
    if len(digest) != 64 or runtime[at : at + 64] != b"0" * 64:
        raise SystemExit("appimage: no room for the image's digest in the runtime")
    head = bytearray(runtime)
    head[at : at + 64] = digest.encode()
    return head


def build_appimage(
    bundle: Path, out: Path, work: Path, compression: str = "zstd", level: int = 19
) -> Path:
    """``out/callapp-<version>-<machine>.AppImage`` from the bundle folder; returns its path.

    ``compression`` and ``level`` go to mksquashfs (zstd at 19 for a release;
    tests use zstd at 1 for speed). zstd, since the mounted image decompresses
    blocks as the app reads them, at start-up: xz is smaller but slower there.
    """
    mksquashfs = shutil.which("mksquashfs")
    if mksquashfs is None:
        raise SystemExit("appimage: mksquashfs is not on PATH (Debian's squashfs-tools)")
    if bundle.name != "callapp":
        raise SystemExit(f"appimage: the bundle folder must be named callapp, not {bundle.name}")
    info = deb.project_info()
    runtime = build_runtime(work)
    target = out / f"{info.name}-{info.version}-{machine()}.AppImage"
    with tempfile.TemporaryDirectory(prefix="callapp-appimage-", dir=out) as tmp:
        appdir = Path(tmp) / "AppDir"
        appdir.mkdir()
        entries = make_appdir(bundle, appdir, info)
        image = Path(tmp) / "image.squashfs"
        # Several sources: each becomes a top-level entry, so the bundle goes
        # in as callapp/ without a copy of its 400 MB.
        command = [mksquashfs, *map(str, entries), str(bundle), str(image), "-noappend"]
        command += ["-root-owned", "-all-root", "-no-xattrs", "-quiet", "-b", "1M"]
        command += ["-comp", compression]
        if compression in ("zstd", "gzip"):
            command += ["-Xcompression-level", str(level)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        head = with_digest(runtime.read_bytes(), file_sha256(image))
        head[MAGIC_OFFSET : MAGIC_OFFSET + len(MAGIC)] = MAGIC
        with target.open("wb") as f:
            f.write(head)
            with image.open("rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
    target.chmod(0o755)
    return target


def main(argv: list[str] | None = None) -> int:
    """Build the AppImage from an already built bundle folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the PyInstaller folder (dist/bundle/callapp)")
    parser.add_argument("out", type=Path, help="where the AppImage goes")
    parser.add_argument("--work", type=Path, help="where the runtime is compiled (default OUT)")
    parser.add_argument("--comp", default="zstd", choices=("zstd", "xz", "gzip"))
    parser.add_argument("--level", type=int, default=19)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    image = build_appimage(
        args.bundle.resolve(), out, (args.work or out).resolve(), args.comp, args.level
    )
    print(f"appimage: {image} {image.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
