"""callapp: peer-to-peer desktop video calls with an embeddable signaling server."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("callapp")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"
