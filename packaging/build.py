"""Build the callapp bundle for this platform and pack it.

    .venv/bin/python packaging/build.py            # build, self-test, pack
    .venv/bin/python packaging/build.py --help

Steps: install the PyInstaller that pyproject.toml's ``packaging`` extra pins
(when another or none is installed), run packaging/callapp.spec, strip the
Linux libraries that can be stripped safely, run the frozen
``callapp --self-test``, and pack:

- Linux: ``callapp-<version>-linux-<machine>.tar.gz``, the bundle folder with
  ``callapp.desktop`` and ``callapp.png`` beside the executables; then
  ``callapp_<version>_<arch>.deb`` (packaging/deb.py) and
  ``callapp-<version>-<machine>.AppImage`` (packaging/appimage.py), unless
  ``--no-deb`` / ``--no-appimage``;
- Windows: ``callapp-<version>-windows-<machine>.zip`` of the bundle folder;
- macOS: ``callapp-<version>-macos-<machine>.zip`` of ``callapp.app`` (made
  with ``ditto``, which keeps the framework symlinks and signatures).

The last line printed is JSON with the sizes, for scripts and tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path

import bundle_elf  # packaging/bundle_elf.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "callapp.spec"
RESOURCES = ROOT / "callapp" / "resources"
DESKTOP_ENTRY = ROOT / "packaging" / "linux" / "callapp.desktop"


def pinned_pyinstaller() -> str:
    """The requirement in pyproject.toml's packaging extra, e.g. pyinstaller==6.22.3."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["optional-dependencies"]["packaging"]:
        if requirement.lower().startswith("pyinstaller"):
            return str(requirement)
    raise SystemExit("pyproject.toml: no pyinstaller in the packaging extra")


def ensure_pyinstaller(python: str) -> None:
    """Install the pinned PyInstaller into ``python``'s environment if needed."""
    requirement = pinned_pyinstaller()
    wanted = requirement.split("==", 1)[1] if "==" in requirement else None
    probe = subprocess.run(
        [python, "-c", "import PyInstaller; print(PyInstaller.__version__)"],
        capture_output=True,
        text=True,
    )
    have = probe.stdout.strip() if probe.returncode == 0 else None
    if have and (wanted is None or have == wanted):
        return
    print(f"build: installing {requirement} (found {have or 'none'})", flush=True)
    subprocess.run([python, "-m", "pip", "install", "-q", requirement], check=True)


def version() -> str:
    """The project version from pyproject.toml."""
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def platform_tag() -> str:
    """linux-x86_64, windows-amd64, macos-arm64, ..."""
    system = {"win32": "windows", "darwin": "macos"}.get(sys.platform, sys.platform)
    system = "linux" if system.startswith("linux") else system
    return f"{system}-{platform.machine().lower()}"


def run_pyinstaller(python: str, dist: Path, work: Path, trim: bool) -> None:
    """Run the spec; dist/callapp (and dist/callapp.app on macOS) appear."""
    env = dict(os.environ, CALLAPP_TRIM="1" if trim else "0")
    command = [
        python,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level",
        "WARN",
        "--distpath",
        str(dist),
        "--workpath",
        str(work),
        str(SPEC),
    ]
    print("build: " + " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env, cwd=ROOT)


def strip_libraries(folder: Path) -> tuple[int, int]:
    """Strip the shared libraries under ``folder`` that survive stripping.

    PyInstaller's own ``strip=True`` strips everything, which breaks the
    patchelf-rewritten libraries of manylinux wheels (numpy's OpenBLAS). Here
    each library is stripped in place and put back as it was when the result
    would not load. Returns (stripped, kept as they were). Linux only.
    """
    strip = shutil.which("strip")
    if strip is None:
        print("build: no strip(1) on PATH; libraries left as they are", flush=True)
        return 0, 0
    stripped = reverted = 0
    for path in sorted(folder.rglob("*.so*")):
        if path.is_symlink() or not path.is_file():
            continue
        original = path.read_bytes()
        if original[:4] != b"\x7fELF":
            continue
        result = subprocess.run([strip, "--strip-unneeded", str(path)], capture_output=True)
        if result.returncode != 0 or not bundle_elf.load_segments_aligned(path):
            path.write_bytes(original)
            reverted += 1
        elif path.stat().st_size < len(original):
            stripped += 1
    return stripped, reverted


def folder_size(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (symlinks not followed)."""
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def frozen_executable(dist: Path, console: bool = True) -> Path:
    """The frozen ``callapp`` to run from a shell on this platform."""
    if sys.platform == "win32":
        return dist / "callapp" / ("callapp-cli.exe" if console else "callapp.exe")
    if sys.platform == "darwin":
        return dist / "callapp.app" / "Contents" / "MacOS" / "callapp"
    return dist / "callapp" / "callapp"


def self_test(dist: Path) -> None:
    """Run the frozen ``callapp --self-test``; raise if it fails."""
    exe = frozen_executable(dist)
    env = dict(os.environ)
    if sys.platform.startswith("linux") and not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    print(f"build: {exe} --self-test", flush=True)
    result = subprocess.run([str(exe), "--self-test"], env=env, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"build: the frozen self-test failed (exit {result.returncode})")


def pack_linux(dist: Path, out: Path, compresslevel: int = 9) -> Path:
    """A .tar.gz of the bundle folder with the desktop entry and the icon in it."""
    bundle = dist / "callapp"
    shutil.copy2(DESKTOP_ENTRY, bundle / "callapp.desktop")
    shutil.copy2(RESOURCES / "callapp.png", bundle / "callapp.png")
    archive = out / f"callapp-{version()}-{platform_tag()}.tar.gz"
    with tarfile.open(archive, "w:gz", compresslevel=compresslevel) as tar:
        tar.add(bundle, arcname="callapp")
    return archive


def pack_windows(dist: Path, out: Path, compresslevel: int = 9) -> Path:
    """A .zip of the bundle folder."""
    archive = out / f"callapp-{version()}-{platform_tag()}.zip"
    bundle = dist / "callapp"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                zf.write(path, Path("callapp") / path.relative_to(bundle))
    return archive


def pack_macos(dist: Path, out: Path) -> Path:
    """A .zip of callapp.app, made by ditto so symlinks and signatures survive."""
    archive = out / f"callapp-{version()}-{platform_tag()}.zip"
    command = ["ditto", "-c", "-k", "--sequesterRsrc", "--keepParent"]
    subprocess.run([*command, str(dist / "callapp.app"), str(archive)], check=True)
    return archive


def linux_installers(
    bundle: Path, out: Path, work: Path, args: argparse.Namespace
) -> dict[str, object]:
    """The .deb and the AppImage, as the flags ask; their paths, sizes and seconds."""
    import appimage  # packaging/appimage.py
    import deb  # packaging/deb.py

    made: dict[str, object] = {}
    if not args.no_deb:
        started = time.monotonic()
        compression, level = ("gzip", 1) if args.fast else ("xz", 6)
        package = deb.build_deb(bundle, out, compression, level)
        made |= {"deb": str(package), "deb_bytes": package.stat().st_size}
        made["deb_seconds"] = round(time.monotonic() - started, 1)
        print(f"build: packed {package.name}: {package.stat().st_size / 1e6:.1f} MB", flush=True)
    if not args.no_appimage:
        started = time.monotonic()
        image = appimage.build_appimage(bundle, out, work, "zstd", 1 if args.fast else 19)
        made |= {"appimage": str(image), "appimage_bytes": image.stat().st_size}
        made["appimage_seconds"] = round(time.monotonic() - started, 1)
        print(f"build: packed {image.name}: {image.stat().st_size / 1e6:.1f} MB", flush=True)
    return made


def main(argv: list[str] | None = None) -> int:
    """Build, check and pack; print the sizes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the archive goes")
    parser.add_argument("--dist", type=Path, help="PyInstaller's dist folder (default OUT/bundle)")
    parser.add_argument("--work", type=Path, help="PyInstaller's work folder (default build/)")
    parser.add_argument("--no-trim", action="store_true", help="collect what the hooks collect")
    parser.add_argument("--no-strip", action="store_true", help="leave the libraries unstripped")
    parser.add_argument("--no-self-test", action="store_true", help="skip the frozen self-test")
    parser.add_argument("--no-pack", action="store_true", help="build the folder only")
    parser.add_argument(
        "-z",
        "--compresslevel",
        type=int,
        default=9,
        choices=range(1, 10),
        metavar="1-9",
        help="gzip/zip level (default 9; tests use 1 for speed)",
    )
    parser.add_argument("--no-deb", action="store_true", help="Linux: no .deb")
    parser.add_argument("--no-appimage", action="store_true", help="Linux: no AppImage")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="every archive at its fastest level: gzip 1, .deb gzip 1, AppImage zstd 1 (tests)",
    )
    parser.add_argument("--python", default=sys.executable, help="the environment to freeze")
    args = parser.parse_args(argv)
    if args.fast:
        args.compresslevel = 1

    out: Path = args.out.resolve()
    dist: Path = (args.dist or out / "bundle").resolve()
    work: Path = (args.work or ROOT / "build" / "pyinstaller").resolve()
    out.mkdir(parents=True, exist_ok=True)
    trim = not args.no_trim

    started = time.monotonic()
    ensure_pyinstaller(args.python)
    run_pyinstaller(args.python, dist, work, trim)
    built = time.monotonic()
    stripped = 0
    if sys.platform.startswith("linux") and trim and not args.no_strip:
        stripped, kept = strip_libraries(dist / "callapp")
        print(f"build: stripped {stripped} libraries, {kept} left as they were", flush=True)
    if not args.no_self_test:
        self_test(dist)

    bundle = dist / ("callapp.app" if sys.platform == "darwin" else "callapp")
    bundle_bytes = folder_size(bundle)
    report: dict[str, object] = {
        "platform": platform_tag(),
        "trim": trim,
        "bundle": str(bundle),
        "bundle_bytes": bundle_bytes,
        "build_seconds": round(built - started, 1),
        "stripped_libraries": stripped,
    }
    if not args.no_pack:
        if sys.platform == "win32":
            archive = pack_windows(dist, out, args.compresslevel)
        elif sys.platform == "darwin":
            archive = pack_macos(dist, out)
        else:
            archive = pack_linux(dist, out, args.compresslevel)
        report["archive"] = str(archive)
        report["archive_bytes"] = archive.stat().st_size
        print(f"build: packed {archive.name}: {archive.stat().st_size / 1e6:.1f} MB", flush=True)
        if sys.platform.startswith("linux"):
            report.update(linux_installers(bundle, out, work, args))
    print(f"build: bundle folder {bundle_bytes / 1e6:.1f} MB", flush=True)
    (out / "build-report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
