"""The PySide6 desktop UI: one view-model and widgets that only render.

Layout (Picard's seams: logic in plain classes, Qt only where it must be):

* pure, no window needed -- ``address`` (checking a typed server address,
  choosing the LAN address to share, the ws(s):// address and the browser
  invite link Host shows), ``names`` (room names), ``status``
  (status, duration, stats, mute and notice wording), ``devices`` (what the
  camera/microphone/speaker pickers offer, as labelled specs, and the
  blocking scan of the system's devices through ``callapp.call.devices``),
  ``errors`` (any failure as one plain
  sentence), ``controls`` (which buttons make sense now), ``frames``
  (``av.VideoFrame`` -> QImage in one swscale pass), ``settings`` (the
  settings model and its QSettings store);
* seams -- ``ports`` (the protocols the view-model needs from the call engine
  and the server; tests pass fakes), ``services`` (incoming-call prompt, file
  picker and clipboard behind a protocol tests replace);
* ``viewmodel`` -- the one QObject: session snapshots in, Qt signals out;
  button presses in, ``qasync.asyncSlot`` session calls out (mute and volume
  included, kept across sessions; device scans run on a worker thread);
* widgets -- ``video_view`` (latest-frame-wins, aspect-correct painting) and
  ``main_window``, which render the view-model and forward clicks;
* ``launcher`` -- ``callapp [--host [--cert PEM --key PEM] | --server URL]
  [--audio SPEC] [--speaker DEVICE] ...``:
  QApplication, the qasync loop, the real engine and server, the window.

Nothing here imports aiortc or websockets (``tests/test_architecture.py``).
"""
