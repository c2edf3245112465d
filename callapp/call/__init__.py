"""The call engine: one RTCPeerConnection driven by signaling, no Qt.

One concept per module:

- :mod:`~callapp.call.session` -- :class:`CallSession`, what views drive.
- :mod:`~callapp.call.state` -- phases and immutable snapshots (shared contract).
- :mod:`~callapp.call.transitions` -- the table of phase transitions.
- :mod:`~callapp.call.config` / :mod:`~callapp.call.errors` -- what to do, what failed.
- :mod:`~callapp.call.channel` -- the signaling seam (``tests/call/memory.py``
  is its in-memory twin for tests, on the real room router).
- :mod:`~callapp.call.wire` -- SDP/ICE/BYE call messages inside ``data``.
- :mod:`~callapp.call.peer` -- one RTCPeerConnection per call, and its media.
- :mod:`~callapp.call.ice` -- explicit ICE servers, bounded gathering, loopback.
- :mod:`~callapp.call.stats` -- numbers from ``getStats()``.
- :mod:`~callapp.call.sources` / :mod:`~callapp.call.recording` -- glue to
  :mod:`callapp.media`.
- :mod:`~callapp.call.cli` -- ``callapp call``, headless.
"""
