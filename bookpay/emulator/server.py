"""Running the emulator on waitress in a background thread."""

from __future__ import annotations

import errno
import threading
from typing import Any

from waitress import create_server, wasyncore

from .api import Emulator


class RunningEmulator:
    """A started emulator: `.url`, `.host`, `.port`, `.app`; `stop()`, or use it with `with`."""

    def __init__(self, host: str, port: int, options: Any) -> None:
        self.app = Emulator(options)
        try:
            self._server = create_server(
                self.app,
                host=host,
                port=port,
                threads=options.threads,
                connection_limit=max(100, options.threads * 4),
                ident="bookpay-emulator",
                asyncore_use_poll=True,
                clear_untrusted_proxy_headers=True,
            )
        except OSError as exc:
            self.app.close()
            if exc.errno == errno.EADDRINUSE:
                raise OSError(
                    exc.errno, f"cannot start the emulator: {host}:{port} is already in use"
                ) from exc
            raise OSError(exc.errno, f"cannot start the emulator on {host}:{port}: {exc}") from exc
        self.host = host
        self.port = int(self._server.effective_port)
        self.url = f"http://{host}:{self.port}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="emulator-http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # Loop in short slices so stop() can end the server from another thread cleanly.
        socket_map = self._server._map
        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.05, use_poll=True, map=socket_map, count=1)
        for channel in list(socket_map.values()):
            channel.close()
        self._server.task_dispatcher.shutdown(timeout=2)

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._thread.join(timeout=5)
        self.app.close()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningEmulator {self.url}>"
