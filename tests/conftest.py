"""Shared fixtures: seeded generators, the offline data root, and a local HTTP server.

The server listens on 127.0.0.1 only and serves in-memory files with HTTP Range support, so the
download code is tested for real (resume, retries, checksums) without the internet.
"""
from __future__ import annotations

import http.server
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
    # a test that called start_chapter installed the determinism check in this process: take it
    # out, so that its findings cannot reach another test's results file
    from advtut.book import determinism

    determinism.uninstall()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The offline data root: ``$ADVTUT_DATA``, else the library's default (``data_root()``)."""
    from advtut.data import data_root as default_root

    root = default_root()
    if not (root / "MNIST").is_dir():
        pytest.fail(f"offline data not found at {root}: set ADVTUT_DATA to a folder with the "
                    "datasets (CONTRIBUTING.md)")
    return root


class _Files:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: dict[str, int] = {}   # path -> bytes to send before dropping (once)
        self.stall: set[str] = set()           # paths that never answer


def _handler(state: _Files):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            if self.path in state.stall:
                threading.Event().wait(3)
                return
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = 0
            if rng:
                start = int(rng.split("=")[1].split("-")[0])
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            cut = state.cut_after.pop(self.path, None)
            if cut is not None:
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                self.connection.close()  # the client sees a short read
                return
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def http_files():
    """``(state, base_url)``: put bytes in ``state.files["/name"]``; see ``state.requests``."""
    state = _Files()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
