"""A local stand-in for https://dl.fbaipublicfiles.com: an HTTP server on 127.0.0.1 serving a temp
folder laid out like the real URL paths, with switchable faults (short transfers, ignored
Range requests), and synthetic checkpoints in the released format (fixtures in conftest.py)."""
import hashlib
import http.server
import os
import pickle
import re
import threading

import numpy as np

from mask2former.model_zoo import download

ZOO_DIR = "maskformer/mask2former/test/synthetic"  # below the host, as the real checkpoints


def released_format_pkl(seed: int = 0) -> bytes:
    """A small checkpoint in the released format: {"model": {name: ndarray}, "__author__": ...}."""
    rng = np.random.default_rng(seed)
    model = {
        "sem_seg_head.predictor.query_feat.weight": rng.standard_normal((8, 32)).astype(np.float32),
        "sem_seg_head.predictor.class_embed.bias": np.arange(8, dtype=np.float32),
    }
    return pickle.dumps({"model": model, "__author__": "tests/model_zoo (synthetic)"}, protocol=2)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        path = os.path.join(server.root, self.path.lstrip("/"))
        if not os.path.isfile(path):
            self.send_error(404, "Not Found")
            return
        data = open(path, "rb").read()
        start = 0
        rng = self.headers.get("Range")
        if rng and not server.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if server.short_transfers > 0:  # promise everything, send part of it, hang up
            server.short_transfers -= 1
            self.wfile.write(body[: int(len(body) * server.short_fraction)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class ZooServer(http.server.ThreadingHTTPServer):
    """Serves ``root``; ``requests`` records (path, Range header) of every GET.

    Faults: the next ``short_transfers`` responses send only ``short_fraction`` of their body;
    ``ignore_range`` answers every request with the whole file (HTTP 200).
    """

    daemon_threads = True

    def __init__(self, root):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.requests = []
        self.short_transfers = 0
        self.short_fraction = 0.5
        self.ignore_range = False
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def put(self, data: bytes, name: str, folder: str = ZOO_DIR) -> str:
        """Serve ``data`` at ``/<folder>/<name>``; returns the dl.fbaipublicfiles.com URL."""
        os.makedirs(os.path.join(self.root, folder), exist_ok=True)
        with open(os.path.join(self.root, folder, name), "wb") as f:
            f.write(data)
        return f"{download.ZOO_HOST}/{folder}/{name}"

    def stop(self):
        self.shutdown()
        self.server_close()
        self._thread.join()


