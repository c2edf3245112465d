"""Media sources (camera, test pattern, file) as aiortc tracks, and sinks."""
