"""``callapp-signaling`` as a subprocess, and its argument checks in-process."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.exceptions import ConnectionClosed

from callapp.signaling.cli import main
from callapp.signaling.client import ServerUnreachable, SignalingClient
from tests.signaling.conftest import TIMEOUT, http_get, open_ws, recv_json, send_json

SCRIPT = Path(sys.executable).parent / "callapp-signaling"
URL_LINE = re.compile(r"(wss?)://127\.0\.0\.1:(\d+)/ws")


class Running:
    """A ``callapp-signaling`` process and the URL it printed."""

    def __init__(self, process: asyncio.subprocess.Process, url: str, port: int) -> None:
        self.process = process
        self.url = url
        self.port = port


async def start_cli(*args: str) -> Running:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--log-level",
        "warning",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    async with asyncio.timeout(TIMEOUT):
        line = (await process.stdout.readline()).decode()
    match = URL_LINE.search(line)
    assert match, f"no URL in {line!r}"
    port = int(match.group(2))
    assert port > 0
    return Running(process, match.group(0), port)


@pytest.fixture
async def running() -> AsyncIterator[list[Running]]:
    started: list[Running] = []
    yield started
    for run in started:
        if run.process.returncode is None:
            run.process.kill()
            await run.process.wait()


async def test_prints_url_serves_and_exits_0_on_sigterm(running: list[Running]) -> None:
    run = await start_cli("--ice-server", "stun:stun.example.org:3478")
    running.append(run)
    status, _, body = await http_get(run.port, "/healthz")
    assert (status, body) == (200, b"ok")
    ws = await open_ws(run.url)
    welcome = await recv_json(ws)
    assert welcome["iceServers"] == [{"urls": "stun:stun.example.org:3478"}]

    run.process.send_signal(signal.SIGTERM)
    with pytest.raises(ConnectionClosed):
        await recv_json(ws)
    assert ws.close_code == 1001
    async with asyncio.timeout(TIMEOUT):
        assert await run.process.wait() == 0


async def test_sigint_exits_0(running: list[Running]) -> None:
    run = await start_cli()
    running.append(run)
    run.process.send_signal(signal.SIGINT)
    async with asyncio.timeout(TIMEOUT):
        assert await run.process.wait() == 0


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--port", "abc"], "not a port number"),
        (["--port", "70000"], "ports are 0-65535"),
        (["--room-capacity", "0"], "rooms hold 2 to 8 people, not 0"),
        (["--room-capacity", "1"], "rooms hold 2 to 8 people, not 1"),
        (["--max-room-capacity", "9"], "rooms hold 2 to 8 people, not 9"),
        (["--max-room-capacity", "four"], "not an integer: 'four'"),
        (["--room-capacity", "5"], "--room-capacity 5 is above --max-room-capacity 4"),
        (
            ["--room-capacity", "6", "--max-room-capacity", "5"],
            "--room-capacity 6 is above --max-room-capacity 5",
        ),
        (["--ice-server", "http://x"], "not a stun:/turn: URL"),
        (["--log-level", "loud"], "invalid choice"),
        (["--cert", "c.pem"], "--cert and --key go together"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("callapp-signaling: error: ")
    assert fragment in err


def test_help_describes_the_capacity_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-room-capacity N largest capacity (2-8) a client creating a room" in text
    assert "(default: 4)" in text
    assert "--room-capacity N members that make a room complete" in text


async def test_max_room_capacity_bounds_what_creators_ask_for(running: list[Running]) -> None:
    run = await start_cli("--room-capacity", "3", "--max-room-capacity", "6")
    running.append(run)
    ws = await open_ws(run.url)
    me = (await recv_json(ws))["connectionId"]
    await send_json(ws, {"type": "join", "room": "default"})
    assert await recv_json(ws) == {
        "type": "created",
        "room": "default",
        "connectionId": me,
        "capacity": 3,
    }
    await send_json(ws, {"type": "join", "room": "six", "capacity": 6})
    assert (await recv_json(ws))["capacity"] == 6
    await send_json(ws, {"type": "join", "room": "seven", "capacity": 7, "id": 1})
    assert await recv_json(ws) == {
        "type": "error",
        "code": "bad-message",
        "message": "this server allows rooms of 2 to 6 people",
        "ref": 1,
    }


async def test_require_room_keys(running: list[Running]) -> None:
    run = await start_cli("--require-room-keys")
    running.append(run)
    ws = await open_ws(run.url)
    await recv_json(ws)  # welcome
    await send_json(ws, {"type": "join", "room": "open", "id": 1})
    refused = await recv_json(ws)
    assert (refused["type"], refused["code"], refused["ref"]) == ("error", "unauthorized", 1)
    key = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq80"
    await send_json(ws, {"type": "join", "room": "keyed", "key": key})
    assert (await recv_json(ws))["type"] == "created"


async def test_bad_arguments_in_a_subprocess() -> None:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "--port",
        "nope",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT):
        out, err = await process.communicate()
    assert process.returncode == 2
    assert out == b""
    assert err.decode().count("\n") == 1


async def test_busy_port_exits_1(running: list[Running]) -> None:
    run = await start_cli()
    running.append(run)
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "--port",
        str(run.port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT):
        _, err = await process.communicate()
    assert process.returncode == 1
    assert f"cannot listen on 127.0.0.1:{run.port}" in err.decode()


async def test_an_unreachable_redis_exits_1_saying_so() -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "--port",
        "0",
        "--redis",
        f"redis://127.0.0.1:{port}/0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT):
        _, err = await process.communicate()
    assert process.returncode == 1
    assert err.decode().startswith(
        f"callapp-signaling: error: cannot reach Redis at redis://127.0.0.1:{port}/0"
    )
    assert "Traceback" not in err.decode()


def test_a_server_without_redis_does_not_load_redis_py() -> None:
    # redis-py costs every process 6 MiB: only --redis loads it.
    code = "import sys, callapp.signaling.cli; print('redis' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "False"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls(running: list[Running], tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    run = await start_cli("--cert", str(cert), "--key", str(key))
    running.append(run)
    assert run.url.startswith("wss://")
    trust = ssl.create_default_context(cafile=str(cert))
    client = SignalingClient(run.url, ssl_context=trust)
    try:
        welcome = await client.connect()
        assert welcome.connection_id == client.connection_id
    finally:
        await client.close()
    # Without trusting the certificate, the error says why.
    untrusting = SignalingClient(run.url)
    with pytest.raises(ServerUnreachable, match="does not trust"):
        await untrusting.connect()
    run.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(TIMEOUT):
        assert await run.process.wait() == 0


def test_unreadable_certificate_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.pem")
    assert main(["--port", "0", "--cert", missing, "--key", missing]) == 1
    assert "cannot load --cert/--key" in capsys.readouterr().err
