"""The PySide6 desktop UI: plain logic, view-models split by concern, one module per view.

Layout (Picard's seams: logic in plain modules, Qt only where it must be):

* ``logic/`` -- no QtWidgets, tested without a window: ``wording`` (every
  sentence shown, and ``looks_technical``), ``quality``, ``shortcuts`` (the one
  keyboard map), ``tiles`` (tile geometry), ``join_target`` (the Join field);
  beside them ``address``, ``names``, ``devices``, ``frames`` and ``settings``;
* seams -- ``ports`` (what the view-models need from the engine and the
  server; tests pass fakes), ``services`` (questions, pickers, the clipboard
  and the Preferences dialog, behind a protocol tests replace);
* ``models/`` -- QObjects: ``call`` (the session's lifecycle, hang up in every
  state), ``hosting`` (the server, the room secret, the invite link),
  ``devices``, ``chat``, and ``app`` composing them;
* ``views/`` -- widgets that render and forward intents: ``main_window``
  (lobby <-> call screen), ``lobby``, ``call_screen``, ``tile``, ``toolbar``,
  ``chat_panel``, ``ringing_panel``, ``invite_panel``, ``help_overlay``,
  ``preferences``; ``video_view`` paints frames;
* ``launcher`` -- ``callapp [--host | --invite LINK | --server URL --room NAME] ...``.

``main_window`` and ``viewmodel`` at this level only re-export for older callers.
Nothing here imports aiortc or websockets (``tests/test_architecture.py``).
"""
