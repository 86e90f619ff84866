"""`--scheduler` addresses where no Dask scheduler answers: one line, soon, nothing written.

Only loopback addresses: a port just closed, and a web server this test starts.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest
from bad_input_harness import predict_argv, run_cli, snapshot

from napari_labelfree.core.predict import distributed


def _last_line(err: str) -> str:
    # a warning about the model (no statistics of its training images) may come first
    return err.strip().splitlines()[-1]


def _predict(assets, work, address: str) -> list[str]:
    return predict_argv(assets, work / "out.ome.zarr", "--scheduler", address)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web_server():
    """An HTTP server on loopback: it accepts the connection, then never speaks Dask."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_closed_port_is_one_line_at_once_and_makes_no_store(work, assets, capsys, closed_port):
    before = snapshot(work, assets.root)
    t0 = time.monotonic()
    result = run_cli(_predict(assets, work, f"tcp://127.0.0.1:{closed_port}"), capsys)
    seconds = time.monotonic() - t0
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in _last_line(result.err)
    # no hidden partial store: the address is tried before any output is made
    assert snapshot(work, assets.root) == before
    assert seconds < distributed.CONNECT_SECONDS  # refused, not waited out


def test_a_web_server_instead_of_a_scheduler_is_one_line_not_a_hang(
    work, assets, capsys, monkeypatch, web_server
):
    monkeypatch.setattr(distributed, "CONNECT_SECONDS", 1.0)
    before = snapshot(work, assets.root)
    result = run_cli(_predict(assets, work, f"127.0.0.1:{web_server}"), capsys)
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert "no Dask scheduler answers at tcp://127.0.0.1:" in _last_line(result.err)
    assert "within 1 s" in _last_line(result.err)
    assert snapshot(work, assets.root) == before
