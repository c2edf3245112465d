"""Signaling: protocol v1 (sans-I/O core), the websockets server and client."""
