"""One server per module: `server` trains (2 workers), `api_only` never does (--workers 0)."""
import pytest

from .server import Server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("server"), workers=2).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api_only(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("api-only"), workers=0,
                     env={"NEEDLE_MAX_BODY_BYTES": "200000",
                          "NEEDLE_MAX_UPLOAD_BYTES": "100000"}).start()
    yield running
    running.stop()
