"""PyInstaller runtime hook: PortAudio from the system, else the bundle's copy.

sounddevice finds PortAudio with ``ctypes.util.find_library("portaudio")``,
which asks ``ldconfig`` and so never sees ``_internal/libportaudio.so.2``: on
a machine without Debian's ``libportaudio2`` the tarball and the AppImage
would be silent although they carry the library. The system's copy still
wins where there is one (it matches the machine's ALSA and JACK); the .deb
leaves the bundled copy out and depends on ``libportaudio2`` instead. With
the bundled copy, ALSA gets the bundled configuration where the system has
none.
"""

import ctypes.util
import os
import sys

_find_library = ctypes.util.find_library
_HERE = getattr(sys, "_MEIPASS", "")
_BUNDLED = os.path.join(_HERE, "libportaudio.so.2")
_ALSA = os.path.join(_HERE, "alsa")


def _find_library_or_bundled(name: str) -> str | None:
    found = _find_library(name)
    if found is None and name == "portaudio" and os.path.isfile(_BUNDLED):
        # The bundled ALSA library crashes listing devices when the system
        # has no ALSA configuration (no libasound2-data): lend it the copy
        # the spec bundles.
        if not os.path.isfile("/usr/share/alsa/alsa.conf") and os.path.isdir(_ALSA):
            os.environ.setdefault("ALSA_CONFIG_DIR", _ALSA)
            os.environ.setdefault("ALSA_CONFIG_PATH", os.path.join(_ALSA, "alsa.conf"))
        return _BUNDLED
    return found


ctypes.util.find_library = _find_library_or_bundled
