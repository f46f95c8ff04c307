"""`bookpay serve` behind the CLI: settings checked, port bound, emulator found or started.

The order matters: the settings are checked and the shop's port is bound before anything starts,
so a configuration problem or a busy port is one line and an exit code, with nothing to clean up.
The ledger is opened (and migrated) before the first request, so a database that cannot be
reached is said at start, not at the first payment. How shops share the emulator is in
``bookpay.web.emulator_link``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time

from bookpay.config import Settings, webhook_secret_missing
from bookpay.errors import UsageError

TEST_CARDS = (
    ("4242 4242 4242 4242", "succeeds"),
    ("4000 0000 0000 0002", "is declined"),
    ("4000 0000 0000 9995", "is declined: insufficient funds"),
    ("4000 0027 6000 3184", "asks for 3-D Secure, then succeeds or fails"),
)


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 4242,
    emulator_port: int | None = None,
    open_browser: bool = False,
    capacity=None,
    say=print,
    log_requests: bool = False,
    workers: bool = True,
) -> None:
    """Run the shop on waitress until Ctrl-C, with an emulator in emulator mode.

    Raises ConfigError for unusable settings and UsageError for a port in use, before anything
    starts; the CLI turns both into one line and an exit code.
    """
    from bookpay.web import runner

    capacity = capacity or runner.DEFAULT_CAPACITY
    with stop_on_signals():  # from the start: a `kill` while starting up cleans up too
        try:
            shop = start_shop(
                settings,
                host=host,
                port=port,
                emulator_port=emulator_port,
                capacity=capacity,
                say=say,
                log_requests=log_requests,
                workers=workers,
            )
        except KeyboardInterrupt:  # Ctrl-C before the server was up
            say("Stopping.")
            return
        try:
            _banner(shop, capacity, say, configured=settings)
            if open_browser:
                import webbrowser

                webbrowser.open(shop.url)
            shop.server.run()  # until Ctrl-C (or SIGTERM, SIGHUP): a KeyboardInterrupt
            say("Stopping.")
        except KeyboardInterrupt:
            say("Stopping.")
        finally:
            with contextlib.suppress(KeyboardInterrupt):  # again while stopping: all done still
                shop.stop(linger=True)


@dataclasses.dataclass
class RunningShop:
    """A shop started by ``start_shop``: its server, the core it serves, its emulator link.

    ``url`` is where shoppers reach it (BOOKPAY_BASE_URL, else the server's own address) and
    ``own_url`` the server's own address (where the emulator delivers webhooks). ``stop()``
    undoes everything ``start_shop`` did, in reverse.
    """

    url: str
    own_url: str
    settings: Settings
    server: object
    services: object
    note: str = ""  # "started here" or "already running", in emulator mode
    link: object = None
    catch_up: object = None  # the catch-up with undelivered events, in emulator mode
    emulator: object = None  # the emulator this shop started, if it did
    secrets: list = dataclasses.field(default_factory=list)
    say: object = print
    stopped: bool = False

    def stop(self, *, linger: bool = False) -> None:
        """Stop serving; with ``linger``, keep an emulator we started while others use it."""
        from bookpay import replay
        from bookpay.web.emulator_link import linger_for_other_shops

        if self.stopped:
            return
        self.stopped = True

        def forget_secrets() -> None:
            for secret in self.secrets:
                replay.forget_secret(self.settings.data_dir, secret, replay.port_of(self.own_url))

        def stop_server() -> None:
            self.server.stop(say=self.say)

        catching_up = False

        def stop_catch_up() -> None:
            nonlocal catching_up
            catching_up = self.catch_up is not None and not self.catch_up.stop()

        def close_services() -> None:
            # Not the ledger under a request (or the catch-up's event) still at work after the
            # wait (a SQLite write waiting for another process's lock): closing its connection
            # could crash the process; the process's exit closes it.
            self.services.close(ledger_in_use=self.server.unfinished > 0 or catching_up)

        # The requests under way finish before the endpoint is disabled: an event being handled
        # when the stop came is recorded, not cut off with its delivery then left to a retry.
        steps = [stop_server, stop_catch_up, forget_secrets, close_services]
        if self.link is not None:
            steps[:0] = [self.link.stop_watching]
            steps[3:3] = [self.link.unregister]
        interrupted = False
        try:
            # Every step is taken even when a second Ctrl-C (or SIGTERM) cuts one short, so the
            # endpoint, the saved secret and the ledger are never left behind half-stopped; the
            # interrupt is raised again once they all have been.
            for step in steps:
                try:
                    step()
                except KeyboardInterrupt:
                    interrupted = True
        finally:
            if self.emulator is not None:
                try:
                    if linger and self.link is not None and not interrupted:
                        linger_for_other_shops(self.link, self.say)
                except KeyboardInterrupt:
                    self.say("Stopping the emulator.")
                finally:
                    self.emulator.stop()
        if interrupted:
            raise KeyboardInterrupt


def start_shop(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    emulator_port: int | None = None,
    capacity=None,
    say=print,
    background: bool = False,
    log_requests: bool = False,
    workers: bool = True,
) -> RunningShop:
    """Check the settings, bind, find or start the emulator, open the ledger, build the app and
    register its webhook endpoint: a shop ready to serve (``background``: serving already, in a
    thread; else call ``.server.run()``). What `bookpay serve` and ``bookpay.testing`` run.

    Raises ConfigError or UsageError before anything has started; anything that fails later
    stops what had started. ``workers=False``: receipts and tax records are left in the ledger
    for `bookpay worker`.
    """
    from bookpay import replay
    from bookpay.config import require_data_dir
    from bookpay.privatefiles import private_dir
    from bookpay.server import Services, create_app
    from bookpay.web import runner
    from bookpay.web.emulator_link import EmulatorLink, ensure_emulator

    capacity = capacity or runner.DEFAULT_CAPACITY
    settings.check()
    require_data_dir(settings.data_dir)  # the ledger, the outbox, the emulator's state
    problems = capacity.problems()
    if problems:
        raise UsageError("; ".join(problems).capitalize() + ".", code="bad_capacity")
    settings = _bounded_bulkhead(settings, capacity)
    sock = runner.bind(host, port)  # first, so a busy port fails before the emulator starts
    emulator = running = services = None
    try:
        note = ""
        if settings.is_emulated:
            settings, emulator = ensure_emulator(settings, host, emulator_port)
            note = "started here" if emulator else "already running"
        services = Services(settings, workers=workers)
        services.ledger  # opened now: an unreachable database fails the start  # noqa: B018
        receiver = services.receiver
        if log_requests:
            from bookpay.web.logs import LoggedReceiver, RequestLog

            receiver = LoggedReceiver(services.receiver, services.ledger)

        def make_app(own_url: str):
            app = create_app(
                settings,
                gateway=services.gateway,
                catalog=services.catalog,
                ledger=services.ledger,
                fulfiller=services.fulfiller,
                receiver=receiver,
                public_url=own_url,
            )
            return RequestLog(app) if log_requests else app

        running = runner.start(make_app, host, sock=sock, capacity=capacity, background=background)
        shop = RunningShop(
            url=settings.base_url or running.url,
            own_url=running.url,
            settings=settings,
            server=running,
            services=services,
            note=note,
            emulator=emulator,
            say=say,
        )
    except BaseException:
        if running is not None:
            running.stop()
        else:
            sock.close()
        if services is not None:
            services.close()
        if emulator is not None:
            emulator.stop()
        raise
    if settings.is_emulated:

        def accept(secret: str) -> None:
            services.receiver.add_secret(secret)
            # For `webhook replay --to <this port>`, beside other servers' on this data folder.
            replay.save_secret(private_dir(settings.data_dir), secret, replay.port_of(running.url))
            shop.secrets.append(secret)

        # The emulator is local, so it delivers to the server's own address even when
        # BOOKPAY_BASE_URL names a public one.
        from bookpay.web.catchup import CatchUp, OwnEvents

        def back(since: float) -> None:  # the watcher has the endpoint back: catch up again
            if shop.catch_up is not None:
                shop.catch_up.again(since)

        shop.link = EmulatorLink(
            settings,
            services.gateway,
            running.url + "/webhook",
            on_secret=accept,
            say=say,
            on_back=back,
        )
        try:
            shop.link.register()
        except BaseException:
            shop.stop()
            raise
        # In a thread: start-up and /healthz never wait for Stripe's event list.
        shop.catch_up = CatchUp(
            services.gateway,
            services.receiver,
            since=shop.link.since,
            say=say,
            ours=OwnEvents(settings.shop_id, services.gateway, services.ledger),
        )
        shop.catch_up.start()
        shop.link.watch()
    return shop


def _banner(shop: RunningShop, capacity, say, configured: Settings | None = None) -> None:
    settings = shop.settings
    ledger = shop.services.ledger
    say(f"bookpay is serving the shop at {shop.url}")
    say(f"Shop id: {settings.shop_id}; orders ledger: {ledger.where} ({ledger.kind}).")
    if settings.is_emulated:
        say("Mode: local test mode: payments are emulated, no real card is charged.")
        say(f"      Stripe emulator at {settings.emulator_url} ({shop.note}).")
        if configured is not None and not _same_place(
            configured.emulator_url, settings.emulator_url
        ):
            # `intent show` and the rest look where the environment says, not at --emulator-port.
            say(
                "      Other bookpay commands find it with "
                f"BOOKPAY_EMULATOR_URL={settings.emulator_url} in their environment."
            )
        say(f"      Webhooks: the emulator sends events to {shop.own_url}/webhook")
    else:
        say(f"Mode: {settings.mode_label} (api.stripe.com, Stripe.js from js.stripe.com).")
        if not settings.webhook_secrets:
            missing = webhook_secret_missing(f"{shop.own_url}/webhook")
            say(f"WARNING: {missing.message}. {missing.fix[0].upper()}{missing.fix[1:]}.")
    limits = settings.stripe_limits
    say(
        f"Capacity: {capacity.threads} threads ({limits.max_concurrent} may wait on Stripe, "
        f"for {limits.total_timeout:g} s at most), {capacity.connection_limit} connections, "
        f"idle ones closed after {capacity.idle_timeout} s."
    )
    if not shop.services.workers:
        say("Receipts and tax records: left in the ledger for `bookpay worker` (--no-worker).")
    say("Test cards (any future expiry date, any CVC, any postal code):")
    for number, outcome in TEST_CARDS:
        say(f"  {number}  {outcome}")
    say("Press Ctrl-C to stop.")


def _same_place(url: str, other: str) -> bool:
    """Whether two emulator URLs name one server (scheme, host and port; a trailing slash or
    the host's case do not matter)."""
    from urllib.parse import urlsplit

    def place(text: str):
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = None
        return parts.scheme.lower(), (parts.hostname or "").lower(), port

    return place(url) == place(other)


def _bounded_bulkhead(settings: Settings, capacity) -> Settings:
    """Settings whose Stripe bulkhead leaves a third of the threads for everything else."""
    limits = settings.stripe_limits
    if limits.max_concurrent <= capacity.stripe_slots:
        return settings
    bounded = dataclasses.replace(limits, max_concurrent=capacity.stripe_slots)
    return dataclasses.replace(settings, stripe_limits=bounded)


# Seconds of each slice of ``until_interrupted``'s wait: a signal that wakes nothing is acted on
# within one.
SIGNAL_SLICE = 0.2


def until_interrupted() -> None:
    """Wait until Ctrl-C (or SIGTERM, SIGHUP, under ``stop_on_signals``) raises
    KeyboardInterrupt, in slices. Python runs a signal's handler in the main thread between two
    bytecodes: a signal taken by another thread, or just before the main thread blocks, wakes
    nothing, and an endless wait (``threading.Event().wait()``) never ran it (a `kill` of
    `bookpay emulator` on a busy machine was ignored). Each slice's end runs it."""
    while True:
        time.sleep(SIGNAL_SLICE)


@contextlib.contextmanager
def stop_on_signals():
    """While in it, `kill` (SIGTERM) and a terminal that closes (SIGHUP) stop the process as
    cleanly as Ctrl-C does (a KeyboardInterrupt), start-up and shutdown included; the handlers
    before it are put back after. A SIGHUP already ignored (`nohup`) stays ignored."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, interrupt)}
    hangup = getattr(signal, "SIGHUP", None)  # not on Windows
    if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:
        previous[hangup] = signal.signal(hangup, interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
