"""The Debian package, ``callapp_<version>_<arch>.deb``, made from the Linux bundle.

    .venv/bin/python packaging/build.py                  # bundle, tarball, .deb, AppImage
    .venv/bin/python packaging/deb.py dist/bundle/callapp dist   # a .deb from a built folder

Layout (Debian policy 9.1.1: an add-on package under ``/opt/<package>``):

- ``/opt/callapp/``: the PyInstaller folder as it is, less the PortAudio
  that Debian's ``libportaudio2`` provides (with its security updates);
- ``/usr/bin/callapp``, ``/usr/bin/callapp-signaling``: symlinks into it
  (the bootloader finds ``_internal/`` through the resolved path);
- ``/usr/share/applications/callapp.desktop`` and hicolor icons (16 to
  256 px PNGs out of ``callapp/resources/callapp.ico``, and the SVG);
- ``/usr/share/doc/callapp/copyright``.

``Depends`` is computed, not written by hand: every DT_NEEDED name in the
folder that the folder does not hold must be in :data:`SYSTEM_PACKAGES`
(the build stops on one that is not), glibc at the newest ``GLIBC_2.x``
symbol version any file asks for, plus :data:`RUNTIME_PACKAGES`, which are
loaded by name at run time and appear in no ELF header. The menu entry and
icon caches are refreshed by the file triggers of desktop-file-utils and
hicolor-icon-theme, so the package needs no maintainer scripts, and
``dpkg --purge`` removes exactly the files it unpacked.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import bundle_elf  # packaging/bundle_elf.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "callapp" / "resources"
DESKTOP_ENTRY = ROOT / "packaging" / "linux" / "callapp.desktop"
INSTALL_DIR = "opt/callapp"
COMMANDS = ("callapp", "callapp-signaling")

#: What the bundle takes from the system (by the name its ELF files ask for)
#: and the Debian package that provides it. glibc's names map to libc6.
SYSTEM_PACKAGES = {
    "libGL.so.1": "libgl1",  # GL must match the machine's driver: never bundled
    "libEGL.so.1": "libegl1",
    "libxcb.so.1": "libxcb1",  # the X server's client library, as for every X client
}
GLIBC_NAMES = frozenset(
    {
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
        "libc.so.6",
        "libm.so.6",
        "libdl.so.2",
        "libpthread.so.0",
        "librt.so.1",
        "libutil.so.1",
    }
)
#: Loaded by name at run time, so in no DT_NEEDED: sounddevice dlopens
#: PortAudio (the .deb leaves out the bundle's copy for Debian's), and the
#: bundled fontconfig reads /etc/fonts, which names at least one font.
RUNTIME_PACKAGES = ("libportaudio2", "fontconfig-config")
#: Bundled libraries the .deb leaves to RUNTIME_PACKAGES; what only they
#: link (ALSA's and JACK's client libraries) goes with them.
LEFT_TO_THE_SYSTEM = frozenset({"libportaudio.so.2"})
#: The hicolor sizes installed, from the PNG entries of callapp.ico.
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}

MIT_LICENSE = """\
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all
 copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
"""


@dataclass(frozen=True)
class ProjectInfo:
    """What both installers say about the app, from pyproject.toml's [project]."""

    name: str
    version: str
    description: str
    license: str
    maintainer: str  # "Name <email>"
    homepage: str | None


def project_info(pyproject: Path = ROOT / "pyproject.toml") -> ProjectInfo:
    """Name, version, description, licence, maintainer and home page from ``pyproject``."""
    project = tomllib.loads(pyproject.read_text())["project"]
    people = project.get("maintainers") or project.get("authors") or []
    if not people or "email" not in people[0]:
        raise SystemExit("pyproject.toml: [project] needs maintainers (or authors) with an email")
    person = people[0]
    urls = project.get("urls", {})
    return ProjectInfo(
        name=str(project["name"]),
        version=str(project["version"]),
        description=str(project["description"]),
        license=str(project["license"]),
        maintainer=f"{person.get('name', person['email'])} <{person['email']}>",
        homepage=urls.get("Homepage") or urls.get("homepage"),
    )


def deb_arch(machine: str | None = None) -> str:
    """Debian's name for this machine's architecture (amd64, arm64, ...)."""
    machine = (machine or platform.machine()).lower()
    return DEB_ARCH.get(machine, machine)


def elf_files(folder: Path) -> list[Path]:
    """The regular files under ``folder`` that are ELF (libraries, executables)."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as f:
            if f.read(4) == b"\x7fELF":
                found.append(path)
    return found


def dropped_with(folder: Path, names: frozenset[str]) -> list[Path]:
    """The files named ``names`` directly in ``folder``/_internal, and what only they link.

    A library goes when no ELF file that stays asks for it by name; repeated,
    since one dropped library can be the last user of another.
    """
    internal = folder / "_internal"
    files = elf_files(folder)
    needs = {path: bundle_elf.needed(path) for path in files}
    dropped = {internal / name for name in names if (internal / name).is_file()}
    while True:
        linked: set[str] = set()
        for path, wanted in needs.items():
            if path not in dropped:
                linked |= wanted
        used_only_by_dropped = {
            path
            for path in files
            if path.parent == internal
            and path not in dropped
            and path.name not in linked
            and any(path.name in needs[d] for d in dropped)
        }
        if not used_only_by_dropped:
            return sorted(dropped)
        dropped |= used_only_by_dropped


def system_needs(folder: Path, leaving_out: Collection[Path] = ()) -> dict[str, str]:
    """DT_NEEDED names that no file in ``folder`` provides, each with one file that asks."""
    left_out = set(leaving_out)
    present = {p.name for p in folder.rglob("*") if p not in left_out}
    wanted: dict[str, str] = {}
    for path in elf_files(folder):
        if path in left_out:
            continue
        for name in sorted(bundle_elf.needed(path)):
            if name not in present:
                wanted.setdefault(name, str(path.relative_to(folder)))
    return wanted


GLIBC_VERSION = re.compile(rb"GLIBC_2\.(\d+)(?:\.(\d+))?\x00")


def glibc_version(folder: Path, leaving_out: Collection[Path] = ()) -> str:
    """The newest ``GLIBC_2.x`` symbol version any ELF file in ``folder`` asks for."""
    best = (2, 0)
    left_out = set(leaving_out)
    for path in elf_files(folder):
        if path in left_out:
            continue
        for match in GLIBC_VERSION.finditer(path.read_bytes()):
            best = max(best, (int(match.group(1)), int(match.group(2) or 0)))
    minor, patch = best
    return f"2.{minor}" + (f".{patch}" if patch else "")


def depends(folder: Path, leaving_out: Collection[Path] = ()) -> list[str]:
    """The Depends field's entries for the bundle in ``folder``, less ``leaving_out``.

    Raises SystemExit naming the file when the bundle asks the system for a
    library that :data:`SYSTEM_PACKAGES` does not map to a package.
    """
    packages = {f"libc6 (>= {glibc_version(folder, leaving_out)})"}
    unknown = {}
    for name, by in system_needs(folder, leaving_out).items():
        if name in GLIBC_NAMES:
            continue
        if name in SYSTEM_PACKAGES:
            packages.add(SYSTEM_PACKAGES[name])
        else:
            unknown[name] = by
    if unknown:
        raise SystemExit(f"deb: no Debian package known for {unknown}: add it to SYSTEM_PACKAGES")
    return sorted(packages) + list(RUNTIME_PACKAGES)


def ico_pngs(ico: Path) -> dict[int, bytes]:
    """The PNG entries of an .ico file (as make_icons.py writes them), by pixel size."""
    data = ico.read_bytes()
    _, kind, count = struct.unpack_from("<HHH", data, 0)
    if kind != 1:
        raise ValueError(f"{ico} is not an icon file")
    pngs = {}
    for i in range(count):
        width, _, _, _, _, _, size, offset = struct.unpack_from("<BBBBHHII", data, 6 + 16 * i)
        blob = data[offset : offset + size]
        if blob[:8] == b"\x89PNG\r\n\x1a\n":
            (pixels,) = struct.unpack_from(">I", blob, 16)  # IHDR width
            pngs[pixels] = blob
        elif width:
            raise ValueError(f"{ico}: the {width} px entry is not PNG")
    return pngs


def install_desktop_files(target: Path, icon_sizes: tuple[int, ...] = ICON_SIZES) -> list[Path]:
    """The desktop entry and hicolor icons under ``target`` (a ``usr/share``), as paths written."""
    written = []
    entry = target / "applications" / "callapp.desktop"
    entry.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DESKTOP_ENTRY, entry)
    written.append(entry)
    pngs = ico_pngs(RESOURCES / "callapp.ico")
    missing = [size for size in icon_sizes if size not in pngs]
    if missing:
        raise SystemExit(f"deb: callapp.ico has no {missing} px entries (run make_icons.py)")
    for size in icon_sizes:
        path = target / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "callapp.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pngs[size])
        written.append(path)
    svg = target / "icons" / "hicolor" / "scalable" / "apps" / "callapp.svg"
    svg.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RESOURCES / "callapp.svg", svg)
    written.append(svg)
    return written


def control(info: ProjectInfo, arch: str, needs: list[str], installed_kib: int) -> str:
    """The DEBIAN/control file."""
    lines = [
        f"Package: {info.name}",
        f"Version: {info.version}",
        f"Architecture: {arch}",
        f"Maintainer: {info.maintainer}",
        f"Installed-Size: {installed_kib}",
        f"Depends: {', '.join(needs)}",
        "Section: net",
        "Priority: optional",
    ]
    if info.homepage:
        lines.append(f"Homepage: {info.homepage}")
    lines += [
        f"Description: {info.description}",
        " One person presses Host and shares the room's link; the other joins from",
        " callapp or any browser. Video and audio go peer to peer (WebRTC). The",
        " standalone signaling server is callapp-signaling.",
    ]
    return "\n".join(lines) + "\n"


def copyright_file(info: ProjectInfo) -> str:
    """/usr/share/doc/<package>/copyright in Debian's machine-readable format."""
    holder = info.maintainer.split(" <")[0]
    text = MIT_LICENSE if info.license == "MIT" else f" See the {info.license} licence.\n"
    return (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        f"Upstream-Name: {info.name}\n\n"
        f"Files: *\nCopyright: {holder}\nLicense: {info.license}\n{text}\n"
        "Files: opt/callapp/_internal/*\n"
        "Copyright: the authors of CPython, Qt for Python, aiortc, PyAV, FFmpeg,\n"
        " OpenCV, NumPy and the other libraries the bundle carries\n"
        "License: various\n"
        " Each library's licence is in its own folder under /opt/callapp/_internal\n"
        " where its wheel ships one (the *.dist-info/ folders).\n"
    )


def stage(bundle: Path, staging: Path, info: ProjectInfo, arch: str) -> list[str]:
    """Lay out the package's tree in ``staging``; return its Depends."""
    left_out = dropped_with(bundle, LEFT_TO_THE_SYSTEM)
    needs = depends(bundle, left_out)
    opt = staging / INSTALL_DIR
    opt.parent.mkdir(parents=True)
    shutil.copytree(bundle, opt, symlinks=True)
    for path in left_out:
        (opt / path.relative_to(bundle)).unlink()
    for sub in ("callapp.desktop", "callapp.png"):  # the tarball's extras, if build.py put them
        (opt / sub).unlink(missing_ok=True)
    bin_dir = staging / "usr" / "bin"
    bin_dir.mkdir(parents=True)
    for command in COMMANDS:
        (bin_dir / command).symlink_to(f"/{INSTALL_DIR}/{command}")
    share = staging / "usr" / "share"
    install_desktop_files(share)
    doc = share / "doc" / info.name
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(copyright_file(info))
    changelog = f"{info.name} ({info.version}) unstable; urgency=medium\n\n  * Release.\n\n"
    changelog += f" -- {info.maintainer}  Thu, 01 Jan 1970 00:00:00 +0000\n"
    (doc / "changelog.gz").write_bytes(gzip.compress(changelog.encode(), mtime=0))
    # Policy: files 644 or 755 (and owned by root: dpkg-deb --root-owner-group).
    for path in staging.rglob("*"):
        if path.is_symlink():
            continue
        if path.is_dir() or path.stat().st_mode & 0o111:
            path.chmod(0o755)
        else:
            path.chmod(0o644)
    installed = sum(p.lstat().st_size for p in staging.rglob("*") if not p.is_dir())
    debian = staging / "DEBIAN"
    debian.mkdir()
    (debian / "control").write_text(control(info, arch, needs, installed // 1024 + 1))
    (debian / "md5sums").write_text(md5sums(staging))
    return needs


def md5sums(staging: Path) -> str:
    """DEBIAN/md5sums for the regular files of ``staging`` (``debsums`` reads it)."""
    lines = []
    for path in sorted(staging.rglob("*")):
        if path.is_file() and not path.is_symlink() and "DEBIAN" not in path.parts:
            digest = hashlib.md5(path.read_bytes()).hexdigest()
            lines.append(f"{digest}  {path.relative_to(staging)}")
    return "\n".join(lines) + "\n"


def build_deb(bundle: Path, out: Path, compression: str = "xz", level: int = 6) -> Path:
    """``out/<name>_<version>_<arch>.deb`` from the bundle folder; returns its path.

    ``compression`` and ``level`` go to ``dpkg-deb -Z -z`` (xz at 6 for a
    release; tests use gzip at 1 for speed).
    """
    if shutil.which("dpkg-deb") is None:
        raise SystemExit("deb: dpkg-deb is not on PATH (Debian's dpkg)")
    info = project_info()
    arch = deb_arch()
    target = out / f"{info.name}_{info.version}_{arch}.deb"
    with tempfile.TemporaryDirectory(prefix="callapp-deb-", dir=out) as tmp:
        staging = Path(tmp) / "root"
        staging.mkdir()
        stage(bundle, staging, info, arch)
        command = ["dpkg-deb", "--root-owner-group", f"-Z{compression}", f"-z{level}"]
        subprocess.run([*command, "--build", str(staging), str(target)], check=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """Build the .deb from an already built bundle folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="the PyInstaller folder (dist/bundle/callapp)")
    parser.add_argument("out", type=Path, help="where the .deb goes")
    parser.add_argument("-Z", "--compression", default="xz", choices=("xz", "gzip", "zstd"))
    parser.add_argument("-z", "--level", type=int, default=6)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    deb = build_deb(args.bundle.resolve(), args.out.resolve(), args.compression, args.level)
    print(f"deb: {deb} {deb.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
