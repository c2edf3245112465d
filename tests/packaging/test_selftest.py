"""``callapp --self-test`` from the source checkout: its checks, exit code and format."""

from __future__ import annotations

import re
import threading

import pytest

from callapp import app, selftest

LINE = re.compile(r"^(ok  |FAIL) [a-z ]+: .+ \(\d+\.\d\d s\)$")


def test_every_check_passes_here_and_prints_one_line_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = selftest.main([])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, "\n".join(lines)
    assert len(lines) == len(selftest.CHECKS) + 1
    for line in lines[:-1]:
        assert LINE.match(line), line
        assert line.startswith("ok"), line
    assert lines[-1] == f"self-test: {len(selftest.CHECKS)} ok, 0 failed"
    # This checkout has every part the checks look for: nothing is skipped.
    assert not [line for line in lines if "skipped" in line]


def test_a_failing_check_fails_the_run_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> str:
        raise selftest.CheckFailed("the codec is missing")

    def crashing() -> str:
        raise ImportError("libfoo.so.1: cannot open shared object file")

    checks = [("runtime", selftest.check_runtime), ("broken", broken), ("crash", crashing)]
    monkeypatch.setattr(selftest, "CHECKS", checks)
    assert selftest.main([]) == 1
    out = capsys.readouterr().out
    assert "FAIL broken: the codec is missing" in out
    assert "FAIL crash: ImportError: libfoo.so.1: cannot open shared object file" in out
    assert "self-test: 1 ok, 2 failed" in out


def test_a_check_that_hangs_fails_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    release = threading.Event()

    def hangs() -> str:
        release.wait(30)
        return "never seen"

    monkeypatch.setattr(selftest, "CHECKS", [("hangs", hangs)])
    monkeypatch.setattr(selftest, "CHECK_TIMEOUT_S", 0.2)
    try:
        assert selftest.main([]) == 1
    finally:
        release.set()
    assert "FAIL hangs: no answer in 0 s" in capsys.readouterr().out


def test_the_app_command_dispatches_and_only_selects(capsys: pytest.CaptureFixture[str]) -> None:
    assert app.main(["--self-test", "--only", "runtime", "--only", "web assets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["ok   runtime", "ok   web assets"]


def test_an_unknown_check_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exit_info:
        selftest.main(["--only", "warp drive"])
    assert exit_info.value.code == 2


def test_devices_are_not_opened_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(selftest.SKIP_DEVICES_ENV, "1")
    assert "camera not opened" in selftest.check_camera()
