"""Device listing for views that must not import the media tracks (and aiortc) themselves.

The desktop UI lists cameras and sound devices for its pickers through here;
every function blocks (cameras open one by one), so call them off the GUI
thread, e.g. with ``asyncio.to_thread``.
"""

from __future__ import annotations

from callapp.media.camera import CameraInfo, list_cameras
from callapp.media.devices import AudioDevice, list_audio_devices, refresh_devices

__all__ = ["AudioDevice", "CameraInfo", "list_audio_devices", "list_cameras", "refresh_devices"]
