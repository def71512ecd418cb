"""Fixtures of the model-zoo tests. No test touches the internet: MASK2FORMER_ZOO_MIRROR points at
a local server (zoo_server.py) or at a closed port, and FVCORE_CACHE at a temp folder."""
import socket

import pytest

from mask2former.model_zoo import download
from zoo_server import ZooServer


@pytest.fixture
def zoo_env(tmp_path, monkeypatch):
    """FVCORE_CACHE in a temp folder, no proxy for 127.0.0.1, no waiting between retries."""
    cache = tmp_path / "fvcore_cache"
    monkeypatch.setenv("FVCORE_CACHE", str(cache))
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    monkeypatch.setattr(download, "RETRY_DELAY", 0.0)
    monkeypatch.setattr(download, "TIMEOUT", 10.0)
    return cache


@pytest.fixture
def zoo_server(tmp_path, zoo_env, monkeypatch):
    """A running :class:`ZooServer`, with MASK2FORMER_ZOO_MIRROR pointing at it."""
    server = ZooServer(str(tmp_path / "served"))
    monkeypatch.setenv(download.MIRROR_ENV, server.url)
    yield server
    if server.socket.fileno() != -1:
        server.stop()


@pytest.fixture
def closed_port_mirror(zoo_env, monkeypatch):
    """MASK2FORMER_ZOO_MIRROR pointing at a port where nothing listens (a server that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv(download.MIRROR_ENV, url)
    return url
