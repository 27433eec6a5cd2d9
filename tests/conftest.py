"""Shared fixtures: isolated zoo/W&B folders for every test, a local HTTP server (the real images are found by ``real_data``)."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
from zoo_helpers import Server


@pytest.fixture(autouse=True)
def isolated_stores(tmp_path, monkeypatch):
    """Every test gets its own zoo store, record of verified data files and W&B folder; W&B never goes online."""
    monkeypatch.setenv("LIGHTNING_SSL_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("LIGHTNING_SSL_CACHE", str(tmp_path / "lightning-ssl-cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture(autouse=True, scope="session")
def one_thread_per_test_process() -> None:
    """Under ``pytest -n 2`` each of the two workers (and every run it starts) gets one CPU thread, so the two never
    fight over the cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[Server]:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``tmp_path/served``."""
    root = tmp_path / "served"
    root.mkdir()
    state = Server(root=root, url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append({"path": self.path, **dict(self.headers)})
            if state.fail_first > 0:
                state.fail_first -= 1
                self.send_error(503, "try again")
                return
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            start = int(match.group(1)) if match and state.support_range else 0
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if state.cut_after is not None:
                body, state.cut_after = body[: state.cut_after], None
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights.pt"
