"""The .deb and the AppImage, installed and run on a fresh minimal Debian.

The artefacts come from the session's one ``build.py --fast`` run (the
``bundle`` fixture). The fresh system is ``mmdebstrap --variant=apt
bookworm``, made once and cached (tests/packaging/fresh_root.py): no GL, no
X libraries, no PortAudio, no Python. On a copy of it:

- ``apt-get install ./callapp_*.deb`` resolves the package's Depends from
  the Debian archive, as on a user's machine; then the installed
  ``callapp --self-test`` passes offscreen, the installed
  ``callapp-signaling`` and two installed ``callapp call`` hold a call, the
  window paints, and ``dpkg --purge`` leaves none of the package's files;
- on another copy, with nothing installed, the AppImage's self-test passes
  through ``--appimage-extract-and-run`` (a chroot has no FUSE), PortAudio
  included, Qt finding the image's own font; started plainly, it unpacks
  itself once into the user's cache and runs from there;
- on this machine, the AppImage started from its cache paints its window as
  fast as the build's folder, notices a damaged copy or image, removes
  other versions' stale copies, and still mounts with FUSE when told to;
- in both, Qt's xcb plugin shows a window on an Xvfb of the host's (a
  system without libxcb-cursor0 and friends, which the bundle carries).

Marked ``long`` (run with ``--long``, as CI does): the session's build then
makes both installers too, and these take about 2.5 minutes on two busy
cores after the first run (which also runs mmdebstrap and downloads the
Depends, a minute or two more). The desktop entry's validation and the
Depends rules need no artefact and run in every suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging import fresh_root
from tests.packaging.fresh_root import FreshRoot
from tests.packaging.frozen import ROOT, Bundle, Running, call_stats, load_packaging_module
from tests.xdisplay import XVFB, xvfb

DESKTOP_ENTRY = ROOT / "packaging" / "linux" / "callapp.desktop"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)
#: What the AppImage's self-test must say on a system with nothing but apt.
SELF_TEST_OK = "self-test: 9 ok, 0 failed"
#: Qt's font database logging: which font files it found.
FONT_LOG = {"QT_LOGGING_RULES": "qt.text.font.db=true"}
#: A real font, not fontconfig's bare aliases (Qt adds "Sans Serif" and
#: friends with no file behind them when fontconfig finds nothing).
FONT_FOUND = 'Adding font: familyName "DejaVu Sans"'
UNPACKING = "first start of this image: unpacking it to "
#: Paths that change on any Debian system as packages come and go (dpkg's
#: and apt's state, caches, logs): not files a package leaves behind.
STATE_DIRS = ("var/lib/dpkg", "var/lib/apt", "var/cache", "var/log", "var/lib/ucf")


def project() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return data


def env_inside() -> dict[str, str]:
    """A login shell's environment inside the fresh root, offscreen."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "offscreen",
        "DEBIAN_FRONTEND": "noninteractive",
    }


def assert_the_window_opens_on_x11(fresh: FreshRoot, callapp: list[str | Path]) -> None:
    """Qt's xcb plugin loads inside the root and shows a window on a host Xvfb.

    The root shares the host's network namespace, so it reaches Xvfb's
    abstract socket (``@/tmp/.X11-unix/X<n>``) without a bind mount.
    """
    if XVFB is None:
        return  # the offscreen self-test above still ran
    with xvfb(640, 480) as (display, _):
        env = env_inside() | {"DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
        result = fresh.run([*callapp, "--self-test", "--only", "qt"], env, 60)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "platform xcb, a window shown" in result.stdout, result.stdout[-3000:]


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[FreshRoot]:
    missing = fresh_root.missing_tools()
    if missing:
        pytest.skip(f"no {', '.join(missing)} here (scripts/setup.sh installs mmdebstrap)")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no mount namespaces here: {probe.stderr!r}")
    root = FreshRoot(tmp_path / "root")
    yield root
    shutil.rmtree(root.path, ignore_errors=True)  # 600 MB once the .deb is in


def test_the_desktop_entry_validates() -> None:
    validate = shutil.which("desktop-file-validate")
    if validate is None:
        pytest.skip("no desktop-file-validate (desktop-file-utils)")
    result = subprocess.run([validate, str(DESKTOP_ENTRY)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == "", "warnings count too"
    entry = DESKTOP_ENTRY.read_text()
    assert "\nExec=callapp\n" in entry
    assert "\nIcon=callapp\n" in entry


def test_depends_names_the_package_of_every_library_the_bundle_asks_for(
    tmp_path: Path,
) -> None:
    deb = load_packaging_module("deb")
    portaudio = Path("/usr/lib/x86_64-linux-gnu/libportaudio.so.2")
    if not portaudio.is_file():
        pytest.skip("no libportaudio2 on this machine to build a folder from")
    internal = tmp_path / "callapp" / "_internal"
    internal.mkdir(parents=True)
    shutil.copyfile(portaudio, internal / "libportaudio.so.2")
    # PortAudio links ALSA and JACK, which this folder does not carry and
    # SYSTEM_PACKAGES does not map: the build must stop and say which.
    with pytest.raises(SystemExit, match=r"libasound\.so\.2"):
        deb.depends(tmp_path / "callapp")
    left_out = deb.dropped_with(tmp_path / "callapp", frozenset({"libportaudio.so.2"}))
    assert left_out == [internal / "libportaudio.so.2"]
    needs = deb.depends(tmp_path / "callapp", left_out)
    assert needs[0].startswith("libc6 (>= 2."), needs
    assert "libportaudio2" in needs  # left to the system, so depended on


@pytest.mark.long
@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_deb_says_what_pyproject_says_and_holds_the_desktop_files(bundle: Bundle) -> None:
    deb, _ = bundle.installers()

    def field(name: str) -> str:
        result = subprocess.run(
            ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
        )
        return result.stdout.strip()

    meta = project()
    assert field("Package") == meta["name"]
    assert field("Version") == meta["version"]
    assert field("Description").splitlines()[0] == meta["description"]
    maintainers = meta["maintainers"]
    assert isinstance(maintainers, list)
    assert field("Maintainer") == f"{maintainers[0]['name']} <{maintainers[0]['email']}>"
    depends = [d.strip() for d in field("Depends").split(",")]
    for package in ("libgl1", "libegl1", "libxcb1", "libportaudio2"):
        assert package in depends, depends
    assert any(d.startswith("libc6 (>= 2.") for d in depends), depends

    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    paths = {line.split()[5].removeprefix(".") for line in listing.splitlines()}
    for size in ICON_SIZES:
        assert f"/usr/share/icons/hicolor/{size}x{size}/apps/callapp.png" in paths
    for path in (
        "/usr/share/icons/hicolor/scalable/apps/callapp.svg",
        "/usr/share/applications/callapp.desktop",
        "/usr/share/doc/callapp/copyright",
        "/usr/bin/callapp",
        "/usr/bin/callapp-signaling",
        "/opt/callapp/callapp",
        "/opt/callapp/_internal/callapp/resources/callapp.svg",
    ):
        assert path in paths, path
    assert "-> /opt/callapp/callapp" in listing
    # Debian's libportaudio2 is used instead of the bundle's copy.
    assert not [p for p in paths if "libportaudio" in p]
    assert not [p for p in paths if p.startswith(("/usr/local", "/home", "/etc"))]


@pytest.mark.long
@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_deb_installs_calls_and_purges_on_a_fresh_debian(
    bundle: Bundle, fresh: FreshRoot, tmp_path: Path
) -> None:
    deb, _ = bundle.installers()
    env = env_inside()
    before = fresh.files()
    assert not (fresh.path / "usr/lib/x86_64-linux-gnu/libGL.so.1").exists(), "not fresh"
    shutil.copyfile(deb, fresh.path / "tmp" / deb.name)

    apt = fresh.apt_install(f"./{deb.name}", env=env)
    assert apt.returncode == 0, apt.stdout[-4000:]
    for package in ("libgl1", "libportaudio2", "callapp"):
        status = fresh.run(["dpkg-query", "-W", "-f=${Status}", package], env)
        assert status.stdout == "install ok installed", (package, status.stdout)

    entry = fresh.path / "usr/share/applications/callapp.desktop"
    validate = shutil.which("desktop-file-validate")
    if validate:
        result = subprocess.run([validate, str(entry)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    assert (fresh.path / "usr/share/icons/hicolor/48x48/apps/callapp.png").is_file()

    selftest = fresh.run(["callapp", "--self-test"], env | FONT_LOG, timeout=120)
    assert selftest.returncode == 0, selftest.stdout[-4000:]
    assert "frozen bundle" in selftest.stdout
    # fontconfig-config in Depends brings /etc/fonts and fonts-dejavu-core.
    assert FONT_FOUND in selftest.stdout, selftest.stdout[-4000:]
    assert "Fontconfig error" not in selftest.stdout, selftest.stdout[-4000:]
    assert "PortAudio loads" in selftest.stdout  # Debian's, through Depends
    assert "skipped" not in selftest.stdout
    assert_the_window_opens_on_x11(fresh, ["callapp"])

    started: list[Running] = []
    try:
        server = Running(
            fresh.command(["callapp-signaling", "--host", "127.0.0.1", "--port", "0"]),
            tmp_path,
            env,
        )
        started.append(server)
        url = server.wait_line(r"listening on (ws://\S+)").group(1)
        common = ["callapp", "call", "--server", url, "--room", "fresh", "--allow-loopback"]
        common += ["--size", "320x240"]
        a = Running(
            fresh.command([*common, "--seconds", "3", "--stats-json", "/tmp/a.json"]),
            tmp_path,
            env,
        )
        started.append(a)
        a.wait_line(r"joined room: fresh")
        b = Running(fresh.command([*common, "--stats-json", "/tmp/b.json"]), tmp_path, env)
        started.append(b)
        a.finished()
        b.finished()
    finally:
        for proc in started:
            proc.stop()
    caller = call_stats(fresh.path / "tmp" / "a.json")
    callee = call_stats(fresh.path / "tmp" / "b.json")
    assert (caller["role"], callee["role"]) == ("caller", "callee")
    for side in (caller, callee):
        assert side["received_size"] == [320, 240], side
        assert side["frames_received"] >= 30, side

    # Start to window, alternating with the build's own folder so that both
    # see the same load from other work: the install must cost nothing.
    measure = load_packaging_module("measure_start")
    installed, folder = [], []
    for i in range(3):
        settings = Path(f"/tmp/start-{i}.ini")  # inside the root
        installed.append(measure.first_paint_ms(fresh.command(["callapp"]), settings, False, 30))
        here = tmp_path / f"start-{i}.ini"
        folder.append(measure.first_paint_ms([str(bundle.callapp)], here, False, 30))
    assert min(installed) < max(2000, 1.5 * min(folder)), (installed, folder)

    shipped = (fresh.path / "var/lib/dpkg/info/callapp.list").read_text().split()
    after_install = fresh.files()
    purged = fresh.run(["dpkg", "--purge", "callapp"], env)
    assert purged.returncode == 0, purged.stdout
    after_purge = fresh.files()
    owned = fresh.owned()
    # Each file and folder dpkg unpacked is gone, but for folders other
    # packages share (/usr/bin, /usr/share/icons/hicolor, ...).
    left = [
        path
        for path in (p.lstrip("/") for p in shipped)
        if path and path in after_purge and path not in owned and path not in before
    ]
    assert left == [], left
    # Nothing the app wrote while it ran (self-test, call, window) stays
    # outside the home folder and /tmp.
    written = sorted(p for p in after_purge - after_install if not p.startswith(STATE_DIRS))
    assert written == [], written
    unowned = [p for p in after_purge - before - owned if "callapp" in p]
    assert unowned == [], unowned
    assert not (fresh.path / "opt" / "callapp").exists()
    assert not (fresh.path / "usr" / "bin" / "callapp").is_symlink()


@pytest.mark.long
@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_appimage_runs_on_a_fresh_debian_with_nothing_installed(
    bundle: Bundle, fresh: FreshRoot
) -> None:
    lib = fresh.path / "usr/lib/x86_64-linux-gnu"
    for absent in ("libGL.so.1", "libxcb.so.1", "libportaudio.so.2"):
        assert not (lib / absent).exists(), f"{absent}: not a fresh root"
    assert not list((fresh.path / "usr" / "bin").glob("python3*")), "python3: not a fresh root"
    _, appimage = bundle.installers()
    image = Path("/tmp") / appimage.name
    shutil.copyfile(appimage, fresh.path / image.relative_to("/"))
    (fresh.path / image.relative_to("/")).chmod(0o755)

    env = env_inside() | FONT_LOG
    result = fresh.run([image, "--appimage-extract-and-run", "--self-test"], env, 120)
    assert result.returncode == 0, result.stdout[-4000:]
    assert SELF_TEST_OK in result.stdout, result.stdout[-4000:]
    # No /etc/fonts, no fonts here: AppRun hands fontconfig the image's own.
    assert FONT_FOUND in result.stdout, result.stdout[-4000:]
    assert "Fontconfig error" not in result.stdout, result.stdout[-4000:]
    # The image's own PortAudio, found by the runtime hook, and its GL and
    # libxcb from fallback/, since this system has none.
    assert "PortAudio loads" in result.stdout, result.stdout[-4000:]
    assert "icon callapp.svg drawn" in result.stdout
    assert_the_window_opens_on_x11(fresh, [image, "--appimage-extract-and-run"])
    leftovers = [p.name for p in (fresh.path / "tmp").glob("appimage_extracted_*")]
    assert leftovers == [], "the extracted copy was not removed"

    # A double-click: no FUSE in a chroot, and none needed: the first start
    # unpacks the image into the user's cache, the next runs from it.
    only = ["--self-test", "--only", "runtime"]
    first = fresh.run([image, *only], env_inside(), 120)
    assert first.returncode == 0, first.stdout[-4000:]
    assert UNPACKING + "/root/.cache/callapp/appimage/" in first.stdout, first.stdout[-4000:]
    assert "cannot mount" not in first.stdout, first.stdout[-4000:]
    again = fresh.run([image, *only], env_inside(), 120)
    assert again.returncode == 0, again.stdout[-4000:]
    assert UNPACKING not in again.stdout, again.stdout[-4000:]
    entries = list((fresh.path / "root/.cache/callapp/appimage").iterdir())
    assert [e.name.split("-")[0] for e in entries] == [project()["version"]], entries


def cache_entry(cache: Path) -> Path:
    """The one unpacked copy under ``$XDG_CACHE_HOME/callapp/appimage``."""
    entries = [e for e in (cache / "callapp" / "appimage").iterdir() if e.name[0] != "."]
    assert len(entries) == 1, entries
    return entries[0]


@pytest.mark.long
@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_appimage_unpacks_once_into_its_cache_and_starts_from_it(
    bundle: Bundle, tmp_path: Path
) -> None:
    _, appimage = bundle.installers()
    appimage_module = load_packaging_module("appimage")
    cache = tmp_path / "cache"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(cache)}
    env["QT_QPA_PLATFORM"] = "offscreen"

    def start(image: Path = appimage) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(image), "--self-test", "--only", "runtime"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = start()
    assert first.returncode == 0, first.stdout + first.stderr
    assert UNPACKING in first.stderr, first.stderr
    entry = cache_entry(cache)
    offset = int(subprocess.check_output([str(appimage), "--appimage-offset"], text=True))
    digest = appimage_module.file_sha256(appimage, offset)
    assert entry.name == f"{project()['version']}-{digest[:16]}"
    assert (entry / ".callapp-appimage").read_text() == digest + "\n"
    assert (entry / "fonts" / "DejaVuSans.ttf").is_file()
    assert oct(entry.stat().st_mode & 0o777) == "0o700"

    # Later starts run from the copy (their speed is packaging/measure_start.py's
    # and docs/benchmarks.md's business, not a timed assertion here).
    again = start()
    assert again.returncode == 0, again.stdout + again.stderr
    assert UNPACKING not in again.stderr, again.stderr
    assert cache_entry(cache) == entry  # the same copy, not unpacked again

    # A damaged copy (a file cut short) is noticed and unpacked again.
    victim = entry / "callapp" / "callapp"
    size = victim.stat().st_size
    with victim.open("r+b") as f:
        f.truncate(size // 2)
    repaired = start()
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "incomplete or altered" in repaired.stderr, repaired.stderr
    assert victim.stat().st_size == size

    # Another version's copy not started for two days goes when a new copy
    # is made; one started an hour ago may still be running and stays.
    root = entry.parent
    stale, recent = root / "0.0.1-0123456789abcdef", root / "0.0.2-fedcba9876543210"
    for other, age in ((stale, 2 * 86400), (recent, 3600)):
        (other / "callapp").mkdir(parents=True)
        marker = other / ".callapp-appimage"
        marker.write_text("0" * 64 + "\n")
        os.utime(marker, (time.time() - age, time.time() - age))
    shutil.rmtree(entry)
    assert start().returncode == 0
    assert sorted(p.name for p in root.iterdir()) == sorted([entry.name, recent.name])

    # An image that does not match its digest is never cached: it runs
    # from its mount (or a temporary copy) instead.
    shutil.rmtree(entry)
    damaged = tmp_path / appimage.name
    damaged.write_bytes(appimage.read_bytes() + b"\0")  # squashfs ignores what follows it
    damaged.chmod(0o755)
    result = start(damaged)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "does not match its SHA-256" in result.stderr, result.stderr
    assert not entry.exists()


@pytest.mark.long
@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_appimage_is_a_type_2_image_that_mounts_with_fuse(bundle: Bundle) -> None:
    _, appimage = bundle.installers()
    data = appimage.read_bytes()[:4096]
    assert data[:4] == b"\x7fELF"
    assert data[8:11] == b"AI\x02"
    offset = subprocess.run(
        [str(appimage), "--appimage-offset"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with appimage.open("rb") as f:
        f.seek(int(offset))
        assert f.read(4) == b"hsqs", "no squashfs image where the runtime says it starts"
    fuse = Path("/dev/fuse")
    if not fuse.exists() or (shutil.which("fusermount3") is None and os.geteuid() != 0):
        pytest.skip("no FUSE here; the fresh-root test covers extract-and-run")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/root", "QT_QPA_PLATFORM": "offscreen"}
    only = ["--self-test", "--only", "runtime", "--only", "web assets"]
    result = subprocess.run(
        [str(appimage), "--appimage-no-cache", *only],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cannot mount" not in result.stderr, result.stderr  # mounted, not extracted
    assert "self-test: 2 ok, 0 failed" in result.stdout
