"""The call engine: one RTCPeerConnection driven by signaling, no Qt."""
