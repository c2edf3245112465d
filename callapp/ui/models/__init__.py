"""The view-models, one per concern: QObjects that turn engine state into Qt signals.

* ``call`` -- the session's lifecycle, the legs as tiles, the phase, the call
  timer and quality, accept / decline, hang up in every state, mute, camera,
  screen sharing and recording;
* ``hosting`` -- the embedded server, the room secret and the one invite link;
* ``devices`` -- the system's cameras, microphones and speakers;
* ``chat`` -- the chat lines, the unread count, sending;
* ``app`` -- the four together, as the window and the launcher use them.
"""
