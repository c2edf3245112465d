"""The shapes the UI needs from the call engine and the signaling server.

The view-model is written against these protocols, so tests can drive it
with a fake session, and the launcher plugs in the real
:class:`~callapp.call.session.CallSession` and
:class:`~callapp.signaling.server.SignalingServer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from callapp.call.config import CallConfig
from callapp.call.report import LegRecord
from callapp.call.state import CallSnapshot, ChatMessage
from callapp.call.stats import CallStats
from callapp.media.pcm import Pcm

#: Receives an ``av.VideoFrame`` on the event loop's thread.
FrameCallback = Callable[[Any], None]
#: Receives ``(peer_id, av.VideoFrame)`` for every leg, on the event loop's thread.
PeerFrameCallback = Callable[[str, Any], None]


class SessionLike(Protocol):
    """What the view-models use of ``CallSession``."""

    @property
    def snapshot(self) -> CallSnapshot: ...

    def subscribe(self, callback: Callable[[CallSnapshot], None]) -> Callable[[], None]: ...

    def set_frame_callbacks(
        self,
        *,
        remote: FrameCallback | None = None,
        local: FrameCallback | None = None,
        remote_by_peer: PeerFrameCallback | None = None,
        remote_audio: FrameCallback | None = None,
        mixed_audio: Callable[[Pcm], None] | None = None,
    ) -> None:
        """``remote_audio`` gets each ``av.AudioFrame`` of the focus leg's audio;
        ``mixed_audio`` each block of the speaker's mix, on PortAudio's thread."""
        ...

    async def connect(self) -> str: ...

    async def join_room(
        self, room: str, capacity: int | None = None, *, secret: str | None = None
    ) -> None: ...

    async def dial(self, peer_id: str) -> None: ...

    async def accept(self) -> None: ...

    async def decline(self) -> None: ...

    async def hang_up(self) -> None: ...

    async def set_video_enabled(self, enabled: bool) -> None: ...

    async def set_muted(self, muted: bool) -> None: ...

    async def set_volume(self, volume: float) -> None: ...

    async def set_name(self, name: str) -> None: ...

    async def set_recording(self, recording: bool) -> None: ...

    async def share_screen(self, spec: str | None = "screen") -> None: ...

    async def send_chat(self, text: str) -> ChatMessage: ...

    async def stats(self) -> CallStats | None: ...

    async def all_stats(self) -> dict[str, CallStats]: ...

    def records(self) -> list[LegRecord]:
        """Every leg that reached media (for the ``--stats-json`` report)."""
        ...

    async def close(self) -> None: ...


class ServerLike(Protocol):
    """What Host uses of ``SignalingServer``."""

    @property
    def port(self) -> int: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


SessionFactory = Callable[[CallConfig], SessionLike]

#: ``(certificate file, private key file)`` of a server that speaks TLS.
TlsFiles = tuple[str, str]


class ServerFactory(Protocol):
    """``(host, port, tls) -> server`` (not yet started).

    With ``tls`` the server serves ``wss://`` and ``https://``; a certificate
    or key that cannot be used raises ``ValueError`` (whose ``str()`` says why)
    here, before anything listens.
    """

    def __call__(self, host: str, port: int, tls: TlsFiles | None = None) -> ServerLike: ...
