"""The real-apply tier's Helm chart repository, served without a helm binary.

    repository = build_repository(chart_sources_folder(), tmp / "charts")   # NAME-VERSION.tgz + index.yaml
    with serve(tmp / "charts") as server:                                   # http://127.0.0.1:PORT
        ... repositoryOpts.repo = server.url ...

Packaging and indexing live in tools/chart_repository.py (tools.images renders the same charts); this
module adds the server.
"""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

# What the tier and the tests take from here, packaging included.


# --- serving -------------------------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    """Files of one folder, no listings, no request log on stderr."""

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(404, "No listing")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Server:
    """An HTTP server on 127.0.0.1 (a free port unless given one) serving one folder from a background thread."""

    def __init__(self, directory: Path, port: int = 0) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"chart-repository-{self.port}")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=10)
        self._httpd.server_close()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def serve(directory: Path, port: int = 0) -> Server:
    """Serve `directory` (a built repository) on 127.0.0.1 until .stop() or the end of a `with` block.

    The URL ends up in each Release's inputs (and so in the stack's state): a sequence of `pulumi up`
    runs that must show no changes needs the same URL each time, one server or one fixed `port`.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such folder to serve")
    return Server(directory, port)
