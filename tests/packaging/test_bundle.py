"""The frozen Linux bundle, built from this working tree, runs with no Python.

One build per session (``packaging/build.py --fast`` into a temporary
folder, the ``bundle`` fixture of conftest.py, shared with
test_installers.py; it installs the PyInstaller pinned in pyproject.toml's
``packaging`` extra into this environment when it is missing, as the
README's setup only installs ``.[dev]``). Then:

- the frozen ``callapp --self-test`` passes with the repository, the venv and
  every Python installation on this machine hidden (a private mount
  namespace; skipped where namespaces are not allowed);
- the folder is trimmed as packaging/callapp.spec says, and the archive holds
  the executables, the desktop entry and the icon;
- two frozen ``callapp call`` processes hold a call, once through the frozen
  ``callapp-signaling`` and once through the server of ``callapp call --host``.

Building takes about a minute on two cores (PyInstaller, strip, then the
tarball, the .deb and the AppImage at their fastest levels); the calls a few
seconds each.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.frozen import (
    ROOT,
    Bundle,
    Running,
    call_stats,
    frozen_env,
    load_packaging_module,
)

pytestmark = [
    pytest.mark.long,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds the Linux bundle"),
]

# What the trimmed folder may hold of Qt (packaging/callapp.spec, QT_PLUGINS).
ALLOWED_PLUGIN_FOLDERS = {
    "platforms",
    "platforminputcontexts",
    "xcbglintegrations",
    "styles",
    "imageformats",
    "iconengines",
}
# What the bundle may still take from the system: glibc, the OpenGL/EGL
# drivers (never bundled: they must match the machine's GPU driver) and
# libxcb (the X server's client library). Anything else must be inside.
SYSTEM_LIBRARIES = {
    "ld-linux-x86-64.so.2",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libutil.so.1",
    "libGL.so.1",
    "libEGL.so.1",
    "libxcb.so.1",
}
# The trimmed folder measured 387 MB (untrimmed: 522 MB); a change that
# brings back QML, GTK or a second FFmpeg shows up here.
FOLDER_BUDGET_BYTES = 420_000_000
# The goal is 150 MB as a gzip -9 archive; the test packs at level 1 for
# speed. Measured on the same folder: 161.6 MB at level 1, 146.7 MB at 9, so
# 165 MB at level 1 stands for about 150 MB at level 9.
ARCHIVE_BUDGET_LEVEL1_BYTES = 165_000_000


def test_build_runs_the_frozen_self_test(bundle: Bundle) -> None:
    # build.py refuses to pack a bundle whose self-test failed.
    assert "self-test: " in bundle.build_log
    assert re.search(r"self-test: \d+ ok, 0 failed", bundle.build_log), bundle.build_log[-3000:]


def hidden_python_dirs() -> list[Path]:
    """The repository, this venv's base Python and the system's Pythons."""
    candidates = [ROOT, Path(sys.prefix), Path(sys.base_prefix)]
    for pattern in ("/usr/lib/python3*", "/usr/local/lib/python3*"):
        candidates += Path("/").glob(pattern.lstrip("/"))
    found = {p.resolve() for p in candidates if p.is_dir()}
    # Only the outermost: once /work/main is covered, /work/main/.venv is gone.
    return sorted(p for p in found if not any(q in p.parents for q in found))


def test_self_test_passes_with_every_python_hidden(bundle: Bundle, tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    hidden = hidden_python_dirs()
    mounts = " && ".join(f"mount -t tmpfs none '{d}'" for d in hidden)
    probe = subprocess.run(
        [unshare or "unshare", "-m", "sh", "-c", f"{mounts} && test ! -e '{ROOT / 'callapp'}'"],
        capture_output=True,
    )
    if unshare is None or probe.returncode != 0:
        pytest.skip(f"cannot hide directories in a mount namespace here: {probe.stderr!r}")
    script = f"{mounts} && exec '{bundle.callapp}' --self-test"
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        cwd=tmp_path,
        env=frozen_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr[-3000:]
    assert "frozen bundle" in output
    # This tree has a signaling server and web assets: the bundle must too.
    for check in ("signaling server", "web assets", "peer connection", "audio devices"):
        line = next(line for line in output.splitlines() if f" {check}: " in line)
        assert line.startswith("ok"), line
        assert "skipped" not in line, line
    assert "FFmpeg back-end wrote and read" in output
    # PortAudio came from this machine (libportaudio2) into the bundle.
    assert "PortAudio loads" in output


def test_folder_is_trimmed(bundle: Bundle) -> None:
    internal = bundle.folder / "_internal"
    plugins = internal / "PySide6" / "Qt" / "plugins"
    folders = {p.name for p in plugins.iterdir()}
    assert folders <= ALLOWED_PLUGIN_FOLDERS, folders - ALLOWED_PLUGIN_FOLDERS
    platforms = {p.name for p in (plugins / "platforms").iterdir()}
    assert {"libqoffscreen.so", "libqxcb.so"} <= platforms, platforms
    assert not (internal / "PySide6" / "Qt" / "translations").exists()
    names = [p.name for p in internal.rglob("*")]
    for unwanted in ("libQt6Qml", "libQt6Quick", "libQt6Wayland", "libgtk-3", "_tkinter"):
        assert not [n for n in names if n.startswith(unwanted)], unwanted
    # OpenCV's FFmpeg is PyAV's: links that resolve, and no second libavcodec file.
    opencv_libs = internal / "opencv_python_headless.libs"
    avcodec = [p for p in opencv_libs.iterdir() if p.name.startswith("libavcodec")]
    assert avcodec, "OpenCV no longer links its own FFmpeg: revisit share_ffmpeg"
    assert all(p.is_symlink() and p.resolve().is_file() for p in avcodec), avcodec
    assert bundle.report["bundle_bytes"] < FOLDER_BUDGET_BYTES, bundle.report


def test_packed_size_stays_within_the_budget(bundle: Bundle) -> None:
    if not bundle.report["stripped_libraries"]:
        pytest.skip("no strip(1) on this machine (binutils): the budget assumes stripping")
    assert bundle.report["archive_bytes"] < ARCHIVE_BUDGET_LEVEL1_BYTES, bundle.report


def test_bundle_needs_only_the_desktop_basics_from_the_system(bundle: Bundle) -> None:
    elf = load_packaging_module("bundle_elf")
    files = [p for p in bundle.folder.rglob("*") if p.is_file() and not p.is_symlink()]
    present = {p.name for p in bundle.folder.rglob("*")}
    wanted: dict[str, str] = {}
    for path in files:
        for name in elf.needed(path):
            wanted.setdefault(name, str(path.relative_to(bundle.folder)))
    outside = {name: by for name, by in wanted.items() if name not in present}
    assert "libQt6Core.so.6" in wanted, "the ELF reader found no Qt: it is broken"
    assert set(outside) <= SYSTEM_LIBRARIES, {
        n: by for n, by in outside.items() if n not in SYSTEM_LIBRARIES
    }


def test_archive_holds_the_bundle_the_desktop_entry_and_the_icon(bundle: Bundle) -> None:
    assert bundle.archive.name.endswith(".tar.gz")
    with tarfile.open(bundle.archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    for name in (
        "callapp/callapp",
        "callapp/callapp-signaling",
        "callapp/callapp.desktop",
        "callapp/callapp.png",
        "callapp/_internal/callapp/signaling/web/index.html",
    ):
        assert name in members, name
    assert members["callapp/callapp"].mode & 0o111, "callapp is not executable"
    assert any(m.issym() for m in members.values()), "symlinks were not kept"
    desktop = (bundle.folder / "callapp.desktop").read_text()
    assert "Exec=callapp" in desktop
    assert "Icon=callapp" in desktop


@pytest.fixture
def running(tmp_path: Path) -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for proc in started:
        proc.stop()


def start(running: list[Running], cwd: Path, *args: str | Path) -> Running:
    proc = Running(list(args), cwd)
    running.append(proc)
    return proc


def test_frozen_call_through_the_frozen_signaling_server(
    bundle: Bundle, running: list[Running], tmp_path: Path
) -> None:
    server = start(running, tmp_path, bundle.signaling, "--host", "127.0.0.1", "--port", "0")
    url = server.wait_line(r"listening on (ws://\S+)").group(1)
    common = ["call", "--server", url, "--room", "frozen", "--allow-loopback", "--size", "320x240"]
    a = start(
        running, tmp_path, bundle.callapp, *common, "--seconds", "3", "--stats-json", "a.json"
    )
    a.wait_line(r"joined room: frozen")
    b = start(running, tmp_path, bundle.callapp, *common, "--stats-json", "b.json")
    a.finished()
    b.finished()
    caller, callee = call_stats(tmp_path / "a.json"), call_stats(tmp_path / "b.json")
    assert (caller["role"], callee["role"]) == ("caller", "callee")
    for side in (caller, callee):
        assert side["received_size"] == [320, 240], side
        assert side["frames_received"] >= 30, side


def test_frozen_call_through_the_embedded_server(
    bundle: Bundle, running: list[Running], tmp_path: Path
) -> None:
    host = start(
        running,
        tmp_path,
        bundle.callapp,
        *("call", "--host", "--room", "embedded", "--allow-loopback", "--size", "320x240"),
        *("--seconds", "2", "--stats-json", "host.json"),
    )
    invite = host.wait_line(r"invite: (http://\S+)").group(1)  # the room has a secret
    guest = start(
        running,
        tmp_path,
        bundle.callapp,
        *("call", "--invite", invite, "--allow-loopback"),
        *("--size", "320x240", "--stats-json", "guest.json"),
    )
    host.finished()
    guest.finished()
    assert call_stats(tmp_path / "host.json")["frames_received"] >= 20
    assert call_stats(tmp_path / "guest.json")["frames_received"] >= 20


def test_frozen_window_opens_within_two_seconds(bundle: Bundle, tmp_path: Path) -> None:
    measure = load_packaging_module("measure_start")
    times = [
        measure.first_paint_ms([str(bundle.callapp)], tmp_path / f"{i}.ini", False, 30.0)
        for i in range(3)
    ]
    # The best of three, so that a burst of load from other work does not decide it.
    assert min(times) < 2000, times
