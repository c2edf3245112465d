"""What a call session is asked to do: one immutable value, built once.

The Qt app builds a :class:`CallConfig` from its settings dialog, the headless
CLI from its flags; :class:`~callapp.call.session.CallSession` only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Codecs the session can prefer; the value is the RTP mime subtype.
CODECS: tuple[str, ...] = ("vp8", "h264")


@dataclass(frozen=True)
class CallConfig:
    """Settings of one call session.

    ``video`` is a media source spec: ``camera``, ``camera:N``, ``test`` (a
    generated pattern) or the path of a video file. ``ice_servers`` are the
    user's own STUN/TURN URLs; the session merges them with the list the
    signaling server sends in its welcome. ``allow_loopback`` adds 127.0.0.1
    host candidates, for calls between two apps on one host or in a sandbox
    whose only interface is loopback.
    """

    server_url: str
    #: Our display name, sent to the others (cleaned: trimmed, 1-64 characters).
    name: str = "Guest"
    #: Video source spec: ``camera``, ``camera:N``, ``test``, ``screen``,
    #: ``screen:N`` or a video file's path.
    video: str = "test"
    #: Audio source spec: ``mic``, ``mic:DEVICE`` (index or part of a name),
    #: ``tone:HZ``, ``none`` (silence) or an audio file's path. A missing
    #: microphone sends silence and says so; it never stops a call.
    audio: str = "mic"
    #: Speaker for the peer's audio: None for the default, an index or part of
    #: a name, or ``"none"`` to play nothing. A missing speaker never stops a call.
    speaker: str | None = None
    #: Speaker volume, 0 (silent) to 2 (double).
    volume: float = 1.0
    width: int = 640
    height: int = 480
    fps: float = 30.0
    codec: str = "vp8"
    ice_servers: tuple[str, ...] = ()
    #: Offer and use only TURN-relayed candidates (``iceTransportPolicy: "relay"``):
    #: the peers never learn each other's addresses, and calls need a TURN server.
    relay_only: bool = False
    allow_loopback: bool = False
    auto_answer: bool = False
    #: Longest wait for a STUN/TURN server while gathering candidates, in seconds.
    #: aioice waits 5 s; a server that drops packets must not stall the call.
    gather_timeout: float = 0.5
    #: An outgoing call nobody answers ends with ``NO_ANSWER`` after this long.
    ring_timeout: float = 30.0
    #: A call whose transport does not come up within this long ends ``FAILED``.
    connect_timeout: float = 15.0
    #: A connected call that receives nothing for this long has lost its peer.
    silence_timeout: float = 1.5
    #: A PEM certificate to trust, alone, for a ``wss://`` server: the desktop
    #: app connecting to the server it hosts with a (often self-signed)
    #: certificate it holds. That certificate is pinned, so the host name is not
    #: checked. ``None``: the system's trust store and the usual checks.
    tls_pin: str | None = None
    #: An invite's certificate pin (SHA-256 of the server certificate, see
    #: :mod:`callapp.signaling.invite`): trust exactly that ``wss://`` server.
    server_pin: str | None = None
    #: This app runs the signaling server it uses (it "hosts"): closing the
    #: session takes the server away, so its BYEs say ``host-ended`` and the
    #: others end with ``HOST_LEFT`` instead of reconnecting to it.
    hosting: bool = False
    #: How long a lost signaling server is retried, in seconds, once no media
    #: flows with anyone (a live peer-to-peer call keeps it retrying); then the
    #: link is GONE with ``LinkEnd.GAVE_UP``. ``math.inf``: retry until closed.
    reconnect_for: float = 30.0
    #: How long a call whose media path died (while signaling works) keeps
    #: renegotiating a fresh ICE session before it ends, once the peer answered
    #: on signaling (unheard, it ends after 6 s: ``leg.UNHEARD_RESTART_S``); 0
    #: ends it at once, as a lost peer (``PEER_UNREACHABLE``).
    restart_for: float = 20.0

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, not {self.codec!r}")
        if not 0.0 <= self.volume <= 2.0:
            raise ValueError(f"volume must be between 0 and 2, not {self.volume}")
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError("width, height and fps must be positive")
        if not self.restart_for >= 0:  # also refuses NaN
            raise ValueError(f"restart_for must be 0 or more seconds, not {self.restart_for}")
        if not self.reconnect_for >= 0:  # also refuses NaN
            raise ValueError(f"reconnect_for must be 0 or more seconds, not {self.reconnect_for}")
