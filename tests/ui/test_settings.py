"""Settings survive a restart, and tests never touch the real settings file."""

from __future__ import annotations

import argparse
from pathlib import Path

from callapp.ui.settings import (
    Overrides,
    Settings,
    SettingsKeeper,
    SettingsStore,
    changed_fields,
    effective,
    parse_ice_servers,
    saved_after_edit,
)


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
    from callapp.ui.models.call import CallOptions

    settings = Settings().with_changes(
        video="test", resolution=(1280, 720), ice_servers=("stun:s:3478",)
    )
    options = CallOptions.from_settings(settings, allow_loopback=True)
    config = options.config("ws://h:1/ws")
    assert (config.video, config.width, config.height) == ("test", 1280, 720)
    assert config.ice_servers == ("stun:s:3478",)
    assert config.allow_loopback
    assert config.server_url == "ws://h:1/ws"


def test_relay_only_round_trips_and_reaches_the_call(tmp_path: Path) -> None:
    from callapp.ui.models.call import CallOptions

    path = tmp_path / "relay.ini"
    assert SettingsStore(path).load().relay_only is False  # not in an old file: off
    SettingsStore(path).save(Settings().with_changes(relay_only=True))
    again = SettingsStore(path).load()
    assert again.relay_only is True
    assert CallOptions.from_settings(again).config("ws://h:1/ws").relay_only is True


# -- new settings, old files -----------------------------------------------------------


def test_name_and_hosting_port_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.ini"
    wanted = Settings().with_changes(name="Ana", host_port=9000)
    SettingsStore(path).save(wanted)
    again = SettingsStore(path).load()
    assert (again.name, again.host_port) == ("Ana", 9000)
    assert again == wanted


def test_an_old_settings_file_still_reads(tmp_path: Path) -> None:
    # What the app wrote before the name and the hosting port were settings.
    path = tmp_path / "old.ini"
    path.write_text(
        "[call]\nice_servers=stun:a:3478 turn:b\n"
        "[connection]\nroom=amber-otter-42\nserver_url=ws://10.0.0.2:8765/ws\n"
        "[host]\ncert_file=/c.pem\nkey_file=/k.pem\n"
        "[media]\naudio=tone:440\nheight=720\nspeaker=none\nvideo=test\nvolume=150\nwidth=1280\n"
    )
    loaded = SettingsStore(path).load()
    assert loaded == Settings(
        server_url="ws://10.0.0.2:8765/ws",
        room="amber-otter-42",
        video="test",
        width=1280,
        height=720,
        audio="tone:440",
        speaker="none",
        volume=150,
        ice_servers=("stun:a:3478", "turn:b"),
        cert_file="/c.pem",
        key_file="/k.pem",
    )
    assert (loaded.name, loaded.host_port) == ("", 8765)
    # Saving keeps the old keys, so an older version still reads the file.
    SettingsStore(path).save(loaded.with_changes(name="Ana"))
    text = path.read_text()
    for key in (
        "server_url=",
        "room=",
        "video=",
        "width=",
        "volume=",
        "ice_servers=",
        "cert_file=",
    ):
        assert key in text


def test_hand_edited_values_with_commas_and_odd_ports(tmp_path: Path) -> None:
    path = tmp_path / "odd.ini"
    # Unquoted commas make QSettings read a list; a port out of range is ignored.
    path.write_text("[call]\nice_servers=stun:a:1, stun:b:2\n[host]\nport=70000\n")
    loaded = SettingsStore(path).load()
    assert loaded.ice_servers == ("stun:a:1", "stun:b:2")
    assert loaded.host_port == 8765
    path.write_text("[host]\nport=0\n[profile]\nname=  Ana  \n")
    loaded = SettingsStore(path).load()
    assert (loaded.host_port, loaded.name) == (0, "Ana")


def test_with_changes_keeps_the_old_keywords_and_clamps() -> None:
    s = Settings().with_changes(volume=500, host_port=-1, resolution=(1280, 720))
    assert (s.volume, s.host_port, s.resolution) == (200, 0, (1280, 720))
    assert Settings().with_changes() == Settings()


# -- the policy: flags for this run, edits saved ---------------------------------------


def launcher_args(*argv: str) -> argparse.Namespace:
    from callapp.ui.launcher import build_parser

    return build_parser().parse_args(list(argv))


def test_overrides_from_the_launchers_flags() -> None:
    args = argparse.Namespace(
        server="ws://h:1/ws",
        room="r",
        video="test",
        audio=None,
        speaker="",
        cert="/c.pem",
        key=None,
        port=None,
        host=False,
    )
    o = Overrides.from_args(args)
    assert o == Overrides(
        server_url="ws://h:1/ws",
        room="r",
        video="test",
        speaker="",
        cert_file="/c.pem",
        key_file="",
    )
    assert o.fields() == ("server_url", "room", "video", "speaker", "cert_file", "key_file")
    assert not Overrides()
    assert Overrides(resolution=(320, 240)).fields() == ("width", "height")
    # flags this parser may grow: --name, --size, --ice-server, --port
    more = argparse.Namespace(name="Ana", size="1280x720", ice_server=["stun:s"], port=0)
    assert Overrides.from_args(more) == Overrides(
        name="Ana", resolution=(1280, 720), ice_servers=("stun:s",), host_port=0
    )


def test_the_real_parser_gives_overrides() -> None:
    o = Overrides.from_args(launcher_args("--server", "ws://h:1/ws", "--video", "test"))
    assert (o.server_url, o.video, o.room, o.audio) == ("ws://h:1/ws", "test", None, None)


def test_effective_puts_the_flags_over_the_saved_settings() -> None:
    saved = Settings(video="camera", room="kept", volume=80)
    run = effective(saved, Overrides(video="test", server_url="ws://h:1/ws"))
    assert (run.video, run.server_url, run.room, run.volume) == ("test", "ws://h:1/ws", "kept", 80)
    assert saved.with_overrides(Overrides(video="test")) == saved.with_changes(video="test")
    assert effective(saved, Overrides()) == saved


def test_only_what_the_person_changed_is_saved() -> None:
    saved = Settings(video="camera", room="kept")
    shown = effective(saved, Overrides(video="test"))
    edited = shown.with_changes(name="Ana")
    assert changed_fields(shown, edited) == ("name",)
    to_save = saved_after_edit(saved, shown, edited)
    assert to_save == saved.with_changes(name="Ana"), "the --video flag is not written back"
    # Changing the overridden field itself is a choice, and is saved.
    chosen = shown.with_changes(video="camera:1")
    assert saved_after_edit(saved, shown, chosen).video == "camera:1"


def test_flags_are_not_saved(tmp_path: Path) -> None:
    path = tmp_path / "s.ini"
    SettingsStore(path).save(Settings(video="camera", server_url="ws://saved:1/ws"))
    overrides = Overrides.from_args(
        launcher_args("--server", "ws://flag:2/ws", "--video", "test", "--room", "once")
    )
    keeper = SettingsKeeper(SettingsStore(path), overrides)
    assert keeper.current.video == "test"
    assert keeper.current.server_url == "ws://flag:2/ws"
    assert keeper.saved.video == "camera"
    assert not keeper.dirty
    assert keeper.save() is False, "nothing changed: nothing written"
    keeper.edit(keeper.current.with_changes(name="Ana", resolution=(1280, 720)))
    assert keeper.current.video == "test", "this run keeps the flag"
    assert keeper.save() is True
    again = SettingsStore(path).load()
    assert again.video == "camera"
    assert again.server_url == "ws://saved:1/ws"
    assert again.room == ""
    assert (again.name, again.resolution) == ("Ana", (1280, 720))


def test_volume_ticks_are_not_written_until_save(tmp_path: Path) -> None:
    path = tmp_path / "s.ini"
    saves: list[Settings] = []

    class CountingStore(SettingsStore):
        def save(self, settings: Settings) -> None:
            saves.append(settings)
            super().save(settings)

    store = CountingStore(path)
    store.save(Settings())
    saves.clear()
    keeper = SettingsKeeper(store)
    for percent in range(100, 151):
        keeper.set_volume(percent)
    assert saves == [], "no write per tick"
    assert keeper.current.volume == 150
    assert keeper.dirty
    assert keeper.save()
    assert len(saves) == 1
    assert SettingsStore(path).load().volume == 150
    assert not keeper.save(), "saved already"


def test_a_first_run_writes_the_file_so_its_place_exists(tmp_path: Path) -> None:
    path = tmp_path / "new" / "s.ini"
    keeper = SettingsKeeper(SettingsStore(path), Overrides(video="test"))
    assert keeper.location == str(path)
    assert keeper.save()
    assert path.exists()
    assert SettingsStore(path).load() == Settings(), "defaults, not the flag"


def test_a_keeper_without_a_store_keeps_edits_in_memory() -> None:
    keeper = SettingsKeeper(None, saved=Settings(room="r"))
    keeper.set_volume(30)
    assert keeper.current.volume == 30
    assert keeper.location is None
    assert keeper.save() is False


def test_an_edit_takes_only_the_dialogs_changes_when_current_moved_on() -> None:
    keeper = SettingsKeeper(None, Overrides(video="test"), saved=Settings())
    shown = keeper.current  # the dialog opens with this
    keeper.edit(keeper.current.with_changes(audio="none"))  # meanwhile, in the lobby
    edited = shown.with_changes(name="Ana")
    current = keeper.edit(edited, shown=shown)
    assert (current.name, current.audio, current.video) == ("Ana", "none", "test")
    assert (keeper.saved.name, keeper.saved.audio, keeper.saved.video) == ("Ana", "none", "camera")
