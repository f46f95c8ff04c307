"""`bookpay serve` behind the CLI: settings checked, port bound, emulator found or started.

The order matters: the settings are checked and the shop's port is bound before anything starts,
so a configuration problem or a busy port is one line and an exit code, with nothing to clean up.
The ledger is opened (and migrated) before the first request, so a database that cannot be
reached is said at start, not at the first payment. How shops share the emulator is in
``bookpay.web.emulator_link``.
"""

from __future__ import annotations

import dataclasses
import threading

from bookpay.config import Settings
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
) -> None:
    """Run the shop on waitress until Ctrl-C, with an emulator in emulator mode.

    Raises ConfigError for unusable settings and UsageError for a port in use, before anything
    starts; the CLI turns both into one line and an exit code.
    """
    from bookpay import replay
    from bookpay.privatefiles import private_dir
    from bookpay.server import Services, create_app
    from bookpay.web import runner
    from bookpay.web.emulator_link import EmulatorLink, ensure_emulator, linger_for_other_shops

    capacity = capacity or runner.DEFAULT_CAPACITY
    settings.check()
    problems = capacity.problems()
    if problems:
        raise UsageError("; ".join(problems).capitalize() + ".", code="bad_capacity")
    settings = _bounded_bulkhead(settings, capacity)
    sock = runner.bind(host, port)  # first, so a busy port fails before the emulator starts
    emulator = running = services = link = None
    secrets: list[str] = []
    try:
        note = ""
        if settings.is_emulated:
            settings, emulator = ensure_emulator(settings, host, emulator_port)
            note = "started here" if emulator else "already running"
        services = Services(settings)
        ledger = services.ledger  # opened now: an unreachable database fails the start
        running = runner.start(
            lambda own_url: create_app(
                settings,
                gateway=services.gateway,
                catalog=services.catalog,
                ledger=services.ledger,
                fulfiller=services.fulfiller,
                receiver=services.receiver,
                public_url=own_url,
            ),
            host,
            sock=sock,
            capacity=capacity,
        )
        shop_url = settings.base_url or running.url
        say(f"bookpay is serving the shop at {shop_url}")
        say(f"Shop id: {settings.shop_id}; orders ledger: {ledger.where} ({ledger.kind}).")
        if settings.is_emulated:

            def accept(secret: str) -> None:
                services.receiver.add_secret(secret)
                replay.save_secret(private_dir(settings.data_dir), secret)  # for `webhook replay`
                secrets.append(secret)

            # The emulator is local, so it delivers to the server's own address even when
            # BOOKPAY_BASE_URL names a public one.
            link = EmulatorLink(
                settings, services.gateway, running.url + "/webhook", on_secret=accept, say=say
            )
            link.register()
            link.watch()
            say("Mode: local test mode: payments are emulated, no real card is charged.")
            say(f"      Stripe emulator at {settings.emulator_url} ({note}).")
            say(f"      Webhooks: the emulator sends events to {running.url}/webhook")
        else:
            say(f"Mode: {settings.mode_label} (api.stripe.com, Stripe.js from js.stripe.com).")
            if not settings.webhook_secrets:
                say(
                    "WARNING: STRIPE_WEBHOOK_SECRET is not set: /webhook will refuse every event "
                    "(503) and orders are fulfilled only from the success page. Run `stripe listen "
                    f"--forward-to {running.url}/webhook` and set the whsec_ secret it prints."
                )
        limits = settings.stripe_limits
        say(
            f"Capacity: {capacity.threads} threads ({limits.max_concurrent} may wait on Stripe, "
            f"for {limits.total_timeout:g} s at most), {capacity.connection_limit} connections, "
            f"idle ones closed after {capacity.idle_timeout} s."
        )
        say("Test cards (any future expiry date, any CVC, any postal code):")
        for number, outcome in TEST_CARDS:
            say(f"  {number}  {outcome}")
        say("Press Ctrl-C to stop.")
        if open_browser:
            import webbrowser

            webbrowser.open(shop_url)
        _stop_on_sigterm()
        running.run()  # returns on Ctrl-C: waitress handles the KeyboardInterrupt itself
        say("Stopping.")
    except KeyboardInterrupt:  # Ctrl-C before the server was up
        say("Stopping.")
    finally:
        if link is not None:
            link.stop_watching()
            link.unregister()
        if running is not None:
            running.stop()
        else:
            sock.close()
        for secret in secrets:
            replay.forget_secret(settings.data_dir, secret)
        if services is not None:
            services.close()
        if emulator is not None:
            try:
                if link is not None:
                    linger_for_other_shops(link, say)
            except KeyboardInterrupt:
                say("Stopping the emulator.")
            finally:
                emulator.stop()


def _bounded_bulkhead(settings: Settings, capacity) -> Settings:
    """Settings whose Stripe bulkhead leaves a third of the threads for everything else."""
    limits = settings.stripe_limits
    if limits.max_concurrent <= capacity.stripe_slots:
        return settings
    bounded = dataclasses.replace(limits, max_concurrent=capacity.stripe_slots)
    return dataclasses.replace(settings, stripe_limits=bounded)


def _stop_on_sigterm() -> None:
    """Let `kill` stop the server as cleanly as Ctrl-C does."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
