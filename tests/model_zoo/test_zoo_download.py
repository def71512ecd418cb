"""Downloads through the path handlers, from a local HTTP server standing in for
dl.fbaipublicfiles.com (MASK2FORMER_ZOO_MIRROR): good file, cache and offline use, wrong md5,
short transfers (resumed, restarted, given up), server down, missing file."""
import os

import pytest
from zoo_server import md5, released_format_pkl

from detectron2.utils.file_io import PathManager
from mask2former.model_zoo import (
    ChecksumMismatchError,
    ZooDownloadError,
    cache_path,
    download,
    mirror_url,
)
from mask2former.checkpoint.weights import load_pickle_weights


def _good(server, seed=0):
    data = released_format_pkl(seed)
    return server.put(data, f"model_final_{md5(data)[:6]}.pkl"), data


def _assert_one_line(err, *parts):
    msg = str(err)
    assert "\n" not in msg, msg
    for p in parts:
        assert p in msg, (p, msg)
    # no chained urllib traceback
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_mirror_replaces_only_the_zoo_host(monkeypatch):
    url = f"{download.ZOO_HOST}/maskformer/mask2former/x/model_final_abcdef.pkl"
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    assert mirror_url(url) == url
    monkeypatch.setenv(download.MIRROR_ENV, "http://localhost:8000/")
    assert mirror_url(url) == url.replace(download.ZOO_HOST, "http://localhost:8000")
    assert mirror_url("https://example.com/a.pkl") == "https://example.com/a.pkl"


def test_good_file_is_downloaded_verified_cached_and_used_offline(zoo_server, zoo_env):
    url, data = _good(zoo_server)
    local = PathManager.get_local_path(url)
    # cached where Detectron2's URL handler caches: $FVCORE_CACHE/<URL path>
    assert local == os.path.join(str(zoo_env), url.split("://", 1)[1].split("/", 1)[1])
    assert local == cache_path(url)
    assert open(local, "rb").read() == data
    assert not os.path.exists(local + ".part")
    assert len(zoo_server.requests) == 1 and zoo_server.requests[0][1] is None
    # the released format loads with the safe (numpy-only) unpickler
    ckpt = load_pickle_weights(local)
    assert ckpt["model"]["sem_seg_head.predictor.class_embed.bias"].tolist() == list(range(8))

    assert PathManager.get_local_path(url) == local  # second load: no HTTP request
    assert len(zoo_server.requests) == 1
    zoo_server.stop()  # offline: still served from the verified cache
    assert PathManager.get_local_path(url) == local
    with PathManager.open(url, "rb") as f:
        assert f.read() == data


def test_cached_file_that_changed_is_downloaded_again(zoo_server):
    url, data = _good(zoo_server)
    local = PathManager.get_local_path(url)
    with open(local, "wb") as f:
        f.write(b"garbage" * 10)
    assert PathManager.get_local_path(url) == local
    assert open(local, "rb").read() == data and len(zoo_server.requests) == 2


def test_file_put_into_the_cache_by_hand_is_verified_and_used_offline(closed_port_mirror):
    data = released_format_pkl(3)
    url = f"{download.ZOO_HOST}/maskformer/mask2former/test/hand/model_final_{md5(data)[:6]}.pkl"
    dest = cache_path(url)
    os.makedirs(os.path.dirname(dest))
    with open(dest, "wb") as f:
        f.write(data)
    assert PathManager.get_local_path(url) == dest  # the mirror is down: no download needed


def test_wrong_md5_is_refused_and_nothing_is_cached(zoo_server):
    data = released_format_pkl(1)
    assert not md5(data).startswith("000000")
    url = zoo_server.put(data, "model_final_000000.pkl")
    with pytest.raises(ChecksumMismatchError) as e:
        PathManager.get_local_path(url)
    _assert_one_line(e.value, zoo_server.url, md5(data), "000000", cache_path(url))
    dest = cache_path(url)
    assert not os.path.exists(dest) and not os.path.exists(dest + ".part")


def test_short_transfer_is_resumed_with_a_range_request(zoo_server):
    url, data = _good(zoo_server)
    zoo_server.short_transfers = 1  # the first response stops half-way
    local = PathManager.get_local_path(url)
    assert open(local, "rb").read() == data
    ranges = [r for _, r in zoo_server.requests]
    assert ranges == [None, f"bytes={len(data) // 2}-"], ranges


def test_short_transfer_restarts_when_the_server_cannot_resume(zoo_server):
    url, data = _good(zoo_server)
    zoo_server.short_transfers = 2
    zoo_server.ignore_range = True  # always answers 200 with the whole file
    local = PathManager.get_local_path(url)
    assert open(local, "rb").read() == data and len(zoo_server.requests) == 3


def test_partial_file_that_cannot_be_resumed_is_downloaded_again(zoo_server):
    """A .part as long as the file (killed before the rename): HTTP 416, then from scratch."""
    url, data = _good(zoo_server)
    part = cache_path(url) + ".part"
    os.makedirs(os.path.dirname(part))
    with open(part, "wb") as f:
        f.write(b"x" * len(data))
    assert open(PathManager.get_local_path(url), "rb").read() == data
    assert [r for _, r in zoo_server.requests] == [f"bytes={len(data)}-", None]


def test_server_that_keeps_failing_gives_one_clear_line(zoo_server):
    url, data = _good(zoo_server)
    zoo_server.short_transfers = 100
    zoo_server.short_fraction = 0.0  # headers, then it hangs up: never any progress
    with pytest.raises(ZooDownloadError) as e:
        PathManager.get_local_path(url)
    assert len(zoo_server.requests) == download.MAX_ATTEMPTS
    _assert_one_line(e.value, url, zoo_server.url, f"after 0 of {len(data)} bytes",
                     download.MIRROR_ENV, cache_path(url), "MODEL.WEIGHTS")
    assert not os.path.exists(cache_path(url))


def test_server_down_gives_one_clear_line(closed_port_mirror):
    url = f"{download.ZOO_HOST}/maskformer/mask2former/test/down/model_final_abcdef.pkl"
    with pytest.raises(ZooDownloadError) as e:
        PathManager.get_local_path(url)
    _assert_one_line(e.value, url, closed_port_mirror, "connection refused",
                     download.MIRROR_ENV, cache_path(url), "MODEL.WEIGHTS")


def test_missing_file_is_not_retried(zoo_server):
    url = f"{download.ZOO_HOST}/maskformer/mask2former/test/none/model_final_abcdef.pkl"
    with pytest.raises(ZooDownloadError) as e:
        PathManager.get_local_path(url)
    _assert_one_line(e.value, url, "HTTP 404")
    assert len(zoo_server.requests) == 1


def test_files_without_md5_in_their_name_are_cached_unverified(zoo_server):
    """e.g. Detectron2's ImageNet R-50.pkl (detectron2:// resolves to the zoo host)."""
    data = b"not a checkpoint"
    zoo_server.put(data, "R-50.pkl", folder="detectron2/ImageNetPretrained/torchvision")
    local = PathManager.get_local_path("detectron2://ImageNetPretrained/torchvision/R-50.pkl")
    assert open(local, "rb").read() == data
    assert zoo_server.requests[0][0] == "/detectron2/ImageNetPretrained/torchvision/R-50.pkl"
