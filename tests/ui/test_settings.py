"""Settings survive a restart, and tests never touch the real settings file."""

from __future__ import annotations

from pathlib import Path

from callapp.ui.settings import Settings, SettingsStore, parse_ice_servers


def test_settings_round_trip(temporary_settings: Path) -> None:
    store = SettingsStore()
    assert Path(store.location) == temporary_settings
    assert store.load() == Settings()
    wanted = Settings().with_changes(
        server_url="ws://10.0.0.2:8765/ws",
        room="amber-otter-42",
        video="/tmp/clip.mp4",
        resolution=(1280, 720),
        ice_servers=("stun:stun.example.org:3478", "turn:turn.example.org"),
        cert_file="/home/me/certs/lan.crt",
        key_file="/home/me/certs/lan.key",
    )
    store.save(wanted)
    assert temporary_settings.exists()
    again = SettingsStore().load()  # a new store reads the file afresh
    assert again == wanted


def test_unreadable_values_fall_back_to_defaults(tmp_path: Path) -> None:
    path = tmp_path / "odd.ini"
    path.write_text("[media]\nwidth=wide\nheight=-3\n")
    loaded = SettingsStore(path).load()
    assert (loaded.width, loaded.height) == (640, 480)


def test_ice_server_text_is_split_on_commas_and_spaces() -> None:
    assert parse_ice_servers(" stun:a:1, turn:b\nstun:c ") == ("stun:a:1", "turn:b", "stun:c")
    assert parse_ice_servers("") == ()


def test_call_options_come_from_the_settings() -> None:
    from callapp.ui.viewmodel import CallOptions

    settings = Settings().with_changes(
        video="test", resolution=(1280, 720), ice_servers=("stun:s:3478",)
    )
    options = CallOptions.from_settings(settings, allow_loopback=True)
    config = options.config("ws://h:1/ws")
    assert (config.video, config.width, config.height) == ("test", 1280, 720)
    assert config.ice_servers == ("stun:s:3478",)
    assert config.allow_loopback
    assert config.server_url == "ws://h:1/ws"
