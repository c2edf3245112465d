"""What the window shows and does, as plain functions: no QtWidgets, tested without a window.

* ``wording`` -- every sentence the window shows: status lines, endings, errors
  (and :func:`~callapp.ui.logic.wording.looks_technical`, the check that none of
  them is an exception's repr, a socket tuple or a traceback);
* ``quality`` -- good / weak / bad from loss, round trip and frame rate;
* ``shortcuts`` -- the one keyboard map, used by the window and its help overlay;
* ``tiles`` -- where each peer's tile and the self-view go;
* ``join_target`` -- whatever a person pastes into the Join field, as a target.
"""
