"""The widgets, one module per view; each renders a view-model and forwards intents.

``main_window`` (the lobby and the call screen in one stack), ``lobby``,
``call_screen``, ``tile``, ``toolbar``, ``chat_panel``, ``ringing_panel``,
``invite_panel``, ``help_overlay``; ``preferences`` is the Preferences dialog.
"""
