"""A fresh minimal Debian system to install into: mmdebstrap, cached between runs.

The first use runs ``mmdebstrap --variant=apt`` (Essential and apt, nothing
else: no libGL, no X libraries, no PortAudio, no Python) from the Debian
archive this machine's apt uses, and keeps the result as a tarball under
``~/.cache/callapp-tests/`` (``$XDG_CACHE_HOME`` if set), named by a hash of
everything that shaped it: the suite, the variant, the sources, the
packages. Each test unpacks its own copy into a temporary folder, so a test
can install and purge without touching the next one.

Commands run inside with ``chroot`` in a private mount and PID namespace
(``unshare``): ``/proc`` is the namespace's own, every process the command
started dies with it, and nothing stays mounted on the host. The host's
network is shared, for apt and for loopback. Packages apt downloads are kept
in ``~/.cache/callapp-tests/apt-archives`` (bind-mounted over the root's
``/var/cache/apt/archives``) so that a second run fetches nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

SUITE = "bookworm"
VARIANT = "apt"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
#: Packages beyond the variant's: none, as a user's minimal system would be.
PACKAGES: tuple[str, ...] = ()
#: Bump to throw away every cached root (when what is cached changes shape).
CACHE_FORMAT = 1
APT_OPTIONS = ('Acquire::Check-Valid-Until "false"',)


def cache_dir() -> Path:
    """Where the root tarball and apt's downloads are kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "callapp-tests"


def missing_tools() -> list[str]:
    """The host commands this needs that are not on PATH."""
    return [tool for tool in ("mmdebstrap", "unshare", "chroot") if shutil.which(tool) is None]


def cache_key() -> str:
    """A hash of what the cached root is made from."""
    parts = [SUITE, VARIANT, *PACKAGES, *APT_OPTIONS, str(CACHE_FORMAT)]
    parts.append(SOURCES.read_text() if SOURCES.is_file() else "deb.debian.org")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def root_tarball() -> Path:
    """The cached tarball of the fresh root, made by mmdebstrap if it is not there yet."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / f"debian-{SUITE}-{VARIANT}-{cache_key()}.tar"
    if tarball.is_file():
        return tarball
    partial = tarball.with_suffix(".partial.tar")
    command = ["mmdebstrap", "--quiet", f"--variant={VARIANT}", "--mode=root"]
    # Keep apt's package lists, so that apt-get install works in the copy
    # without an apt-get update first.
    command += ["--skip=cleanup/apt/lists"]
    command += [f"--aptopt={option}" for option in APT_OPTIONS]
    if PACKAGES:
        command.append(f"--include={','.join(PACKAGES)}")
    command += [SUITE, str(partial)]
    if SOURCES.is_file():
        command.append(str(SOURCES))
    subprocess.run(command, check=True, capture_output=True, timeout=900)
    partial.rename(tarball)  # whole or not at all, should a run be killed midway
    return tarball


class FreshRoot:
    """One unpacked copy of the cached root, and commands run inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        # tar(1), not tarfile: device nodes and owners as made, and faster.
        subprocess.run(["tar", "-xf", str(root_tarball()), "-C", str(path)], check=True)
        # apt resolves names with the host's resolver settings, as a user's would.
        shutil.copyfile("/etc/resolv.conf", path / "etc" / "resolv.conf")
        self.archives = cache_dir() / "apt-archives"
        (self.archives / "partial").mkdir(parents=True, exist_ok=True)

    def command(self, args: Sequence[str | Path], apt_cache: bool = False) -> list[str]:
        """``args`` as a host command that runs them inside the root."""
        root = str(self.path)
        script = 'r="$1"; shift; exec chroot "$r" "$@"'
        extra: list[str] = []
        if apt_cache:
            script = 'mount --bind "$2" "$1/var/cache/apt/archives" || exit 125\n'
            script += 'r="$1"; shift 2; exec chroot "$r" "$@"'
            extra = [str(self.archives)]
        prefix = ["unshare", "--mount", "--pid", "--fork", "--kill-child"]
        prefix += [f"--mount-proc={root}/proc", "sh", "-c", script, "sh", root, *extra]
        return prefix + [str(a) for a in args]

    def run(
        self,
        args: Sequence[str | Path],
        env: dict[str, str] | None = None,
        timeout: float = 300,
        apt_cache: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside; the output (stdout and stderr together) is in ``stdout``."""
        return subprocess.run(
            self.command(args, apt_cache),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )

    def apt_install(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """``apt-get install -y ARGS`` inside; an ``apt-get update`` first only if apt asks."""
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *args]
        result = self.run(["sh", "-c", 'cd /tmp && exec "$@"', "sh", *install], env, apt_cache=True)
        if result.returncode != 0 and ("404" in result.stdout or "update" in result.stdout):
            # The cached lists are older than the mirror: refresh them, as a user would.
            self.run(["apt-get", "update", "-q"], env, apt_cache=True)
            result = self.run(
                ["sh", "-c", 'cd /tmp && exec "$@"', "sh", *install], env, apt_cache=True
            )
        return result

    def files(self) -> set[str]:
        """Every path in the root that a package could own, relative to it."""
        skipped = {"proc", "dev", "sys", "run", "tmp", "root"}
        found: set[str] = set()
        for top in self.path.iterdir():
            if top.name in skipped:
                continue
            found.add(top.name)
            if top.is_symlink():  # /lib -> usr/lib and friends: walked as usr/
                continue
            for dirpath, dirnames, filenames in os.walk(top):
                rel = os.path.relpath(dirpath, self.path)
                for name in dirnames + filenames:
                    found.add(os.path.join(rel, name))
        return found

    def owned(self) -> set[str]:
        """Every path dpkg says an installed package owns, relative to the root."""
        owned: set[str] = set()
        for listing in (self.path / "var" / "lib" / "dpkg" / "info").glob("*.list"):
            owned |= {line.lstrip("/") for line in listing.read_text().splitlines() if line}
        # Merged /usr: a package that lists /lib/x.so owns usr/lib/x.so here.
        aliases = {top.name for top in self.path.iterdir() if top.is_symlink()}
        return owned | {f"usr/{p}" for p in owned if p.split("/", 1)[0] in aliases}
