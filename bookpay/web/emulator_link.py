"""A shop and the local emulator it may share with other shops.

How a shared emulator is owned:

- A shop uses the emulator that answers at BOOKPAY_EMULATOR_URL's port, or starts one in its own
  process when none does; that shop is then its owner.
- Each shop process has one webhook endpoint, tagged with its shop id and process
  (``metadata[bookpay_shop]``, ``metadata[bookpay_process]``). When it stops it disables the
  endpoint rather than removing it, and its data folder keeps the endpoint's id and secret
  (``bookpay.web.kept_endpoint``): the next start adopts it (new URL, enabled again), so the
  deliveries queued for it meanwhile reach the shop, and the catch-up at start
  (``bookpay.web.catchup``) handles at once what Stripe lists as not delivered. At start it
  first clears what earlier runs left enabled: an endpoint for its own URL, and its shop's
  endpoints whose server no longer answers. A restart never leaves two enabled endpoints.
- The owner stops the emulator only when no other shop is still registered with it (enabled,
  and answering). Until then its shop is stopped (port closed, endpoint disabled) but its process
  keeps the emulator running, says so, and exits when the last other shop has gone; a second
  Ctrl-C stops it anyway.
- Every shop watches the emulator: when it stops answering the shop says so on its console, and
  when it answers again the shop says so and registers again if its endpoint is gone (an
  emulator restarted with ``--ephemeral``, say), or enables it again if another start disabled
  it; then the catch-up runs again for what was made meanwhile (``EmulatorLink.on_back``).

Only this module (with the commands that run the emulator) imports ``bookpay.emulator``; the
rest is HTTP, as with Stripe.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from bookpay.config import Settings
from bookpay.errors import BookpayError, NotFound, UsageError
from bookpay.web import kept_endpoint
from bookpay.web.catchup import WITHIN

# When a kept endpoint was disabled, in its metadata (Unix seconds): whoever disables one says
# when, so that its adopter catches up with the events made since, whichever process it was.
DISABLED_AT = "bookpay_disabled_at"
WATCH_EVERY = 2.0  # seconds between looks at the emulator
PROBE_TIMEOUT = 1.0
# What the endpoint's disable (or removal) at stop may take: one retry, all within two seconds.
# A slow or failing emulator must not hold a stop for the 15 s of a shopper's call (nor a test's
# teardown: a fault rule left in place). A disable that does not happen in time loses nothing:
# the data folder keeps the endpoint's record all the same, and its next start adopts it,
# enabled or not, with what was queued for it.
STOP_LIMITS = {"connect_timeout": 1.0, "read_timeout": 2.0, "total_timeout": 2.0, "max_retries": 1}
# What the link's part of a stop takes at most, whatever the emulator does: the watcher's look
# under way is waited for (a probe's timeout at most), and the disable has what is left.
STOP_WITHIN = 2.5  # seconds
# A direct opener: the emulator and the shops are local, never behind an HTTP(S)_PROXY.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get_json(url: str, headers: dict | None = None) -> tuple[int, dict | None]:
    """(status, body) of a GET, or (0, None) when nothing answers in time."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with _opener.open(request, timeout=PROBE_TIMEOUT) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None
    except (OSError, ValueError):
        return 0, None


def emulator_answers(url: str) -> bool:
    status, body = _get_json(f"{url}/healthz")
    return status == 200 and bool(body) and body.get("service") == "bookpay-emulator"


def shop_answers(webhook_url: str) -> bool:
    """Whether the shop behind a webhook URL is up (its /healthz answers)."""
    parts = urlsplit(webhook_url)
    status, _ = _get_json(f"{parts.scheme}://{parts.netloc}/healthz")
    return status == 200


def _port_of(url: str) -> int | None:
    """The port an emulator URL names (its hostname may be spelled several ways: localhost,
    127.0.0.1; the port is what tells two local emulators apart)."""
    try:
        return urlsplit(url).port or 12111
    except ValueError:
        return None


# The shop's wildcard addresses, and the loopback address an emulator it starts listens on.
_LOOPBACK_FOR = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def emulator_state(data_dir) -> Path:
    """The emulator's state file in bookpay's data folder, private as everything there (it holds
    shoppers' e-mail and postal addresses): the folder made 0700 if missing, the file created
    0600 before SQLite opens it, which gives its -wal and -shm files the same mode. (Here, not
    in the emulator package, which imports nothing of bookpay's but money and terminal.)"""
    from bookpay.emulator import EMULATOR_DB
    from bookpay.privatefiles import private_dir, private_file

    return private_file(private_dir(data_dir) / EMULATOR_DB)


def ensure_emulator(settings: Settings, host: str, port: int | None):
    """Settings pointing at a running emulator on ``port``: one already there, or one we start.

    One we start listens on ``host``, the shop's address, but on loopback when that is a wildcard
    (`--host 0.0.0.0`): its test keys and control routes stay off the network. Nothing is lost:
    for a wildcard the pages point the browser at the emulator's loopback URL anyway (Stripe.js
    calls it directly), so a browser elsewhere needs an emulator it can reach, at
    BOOKPAY_EMULATOR_URL, or the shop on an address of its own.

    Returns (settings, the emulator we started or None).
    """
    from bookpay.web.runner import url_host

    parts = urlsplit(settings.emulator_url)
    if port is None and parts.path.strip("/"):
        # Served under a reverse proxy's path: used as it is, never started here (an emulator
        # started on the proxy's port would be on no path, and that port is the proxy's).
        if emulator_answers(settings.emulator_url):
            return settings, None
        raise UsageError(
            f"No bookpay emulator answers at BOOKPAY_EMULATOR_URL ({settings.emulator_url}), "
            "and one under a path cannot be started here.",
            hint="Start the emulator the proxy serves (`bookpay emulator`), or unset "
            "BOOKPAY_EMULATOR_URL for serve to start one of its own.",
            code="emulator_not_found",
        )
    port = (parts.port or 12111) if port is None else port
    wanted = f"{parts.scheme}://{parts.hostname or url_host(host)}:{port}"
    if emulator_answers(wanted):
        return dataclasses.replace(settings, emulator_url=wanted), None
    from bookpay.emulator import EmulatorOptions, StateInUse, start_emulator

    host = _LOOPBACK_FOR.get(host, host)
    db_path = emulator_state(settings.data_dir)
    options = EmulatorOptions(db_path=db_path)
    try:
        emulator = start_emulator(host, port, options)
    except StateInUse as exc:
        # Not a second emulator on the same state: both would list both shops' endpoints and
        # send every event to both.
        use = f"--emulator-port {urlsplit(exc.url).port}, " if exc.url else ""
        raise UsageError(
            f"Cannot start an emulator on {host}:{port}: its state, {db_path}, is in use by "
            f"{exc.holder}.",
            hint=f"Use that one ({use}or its BOOKPAY_EMULATOR_URL), or give this shop a "
            "BOOKPAY_DATA_DIR of its own.",
            code="emulator_state_in_use",
        ) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"Port {port} on {host} is in use, and not by a bookpay emulator."
        else:
            # The emulator wraps the socket's error in one that names itself; say the cause once.
            cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
            reason = " ".join(str(cause.strerror or cause).split())  # one line, whatever it says
            message = f"Cannot start the emulator on {host}:{port}: {reason}."
        raise UsageError(
            message, hint="Choose another port with --emulator-port.", code="port_in_use"
        ) from None
    return dataclasses.replace(settings, emulator_url=emulator.url), emulator


class EmulatorLink:
    """This shop process's webhook endpoint at the emulator, kept registered while it runs."""

    def __init__(
        self,
        settings: Settings,
        gateway,
        webhook_url: str,
        *,
        on_secret: Callable[[str], None],
        say: Callable[[str], None] = print,
        on_back: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        self.webhook_url = webhook_url
        self.on_secret = on_secret
        self.say = say
        self.process = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.endpoint_id: str | None = None
        self.state: str | None = None  # the emulator's state, as its /healthz names it
        self.ephemeral: bool | None = None
        self.kept = None  # the data folder's record of the endpoint, held while this runs
        # When the adopted endpoint was disabled (its shop stopped), or a kept one found gone for
        # good: events since then were never queued for it, so the catch-up lists them too.
        self.since: float | None = None
        # What to do once the watcher has the endpoint back after it went away (registered
        # again, or enabled again): the catch-up of the events made since the time it is given.
        self.on_back = on_back
        # When the endpoint was last known to be there and enabled (registered, adopted, or
        # seen so by the watcher): events made before then were queued for it, or sent.
        self.seen_at: float | None = None
        self._stop = threading.Event()
        self._stop_took = 0.0  # how long stop_watching waited for the watcher
        self._leaving = threading.Event()  # set by unregister: a late look acts on nothing
        self._thread: threading.Thread | None = None

    def register(self) -> str:
        """Adopt the endpoint this data folder kept from an earlier run, or register a new one
        (removing what earlier runs left either way); its secret."""
        self.since = None
        self.state, self.ephemeral = self._emulator_state()
        kept, endpoint = self._adoptable()
        try:
            self._clear_leftovers(keep=kept.id if kept else None)
            self._clear_orphans()
            if kept is not None:
                metadata = {**self._metadata(), DISABLED_AT: ""}  # "": unset, as Stripe has it
                self.gateway.update_webhook(
                    kept.id, url=self.webhook_url, metadata=metadata, disabled=False
                )
                self.since = _earliest(self.since, _since(kept, endpoint))
                with contextlib.suppress(OSError):  # only the catch-up's hint of when it stopped
                    kept.save(
                        disabled_at=None,
                        adopted_at=time.time(),
                        state=self.state,
                        ephemeral=self.ephemeral,
                    )
                secret, self.endpoint_id = kept.secret, kept.id
            else:
                created = self.gateway.create_webhook(self.webhook_url, metadata=self._metadata())
                secret, self.endpoint_id = created["secret"], created["id"]
                kept = self._keep(created)
        except BaseException:
            if kept is not None:
                kept.release()
            raise
        self.kept = kept
        self.seen_at = time.time()
        self.on_secret(secret)
        return secret

    def _metadata(self) -> dict[str, str]:
        return {
            "bookpay_shop": self.settings.shop_id,
            "bookpay_process": self.process,
            # Which emulator the shop uses: an endpoint an earlier emulator kept in the same
            # state file may belong to a shop that uses another one now.
            "bookpay_emulator": self.settings.emulator_url,
            "bookpay_kept": "true" if kept_endpoint.SUPPORTED else "false",
            # Which data folder keeps it (``_clear_orphans``).
            "bookpay_folder": kept_endpoint.folder_tag(self.settings.data_dir),
        }

    def _adoptable(self):
        """The record (held) of a kept endpoint this shop may use again, and that endpoint: it
        still exists at this emulator and is this shop's; else (None, None). A record whose
        endpoint this emulator does not have is discarded only when it is known lost for good
        (``_lost``), else left for when the shop uses the emulator that has it again (an
        --ephemeral emulator for one run on the same port, say). One this emulator has at
        another port (its state file is the same: a shop's own emulator started on another
        --emulator-port) is adopted."""
        port = _port_of(self.settings.emulator_url)
        for kept in kept_endpoint.unheld(self.settings.data_dir, self._warn):
            if kept.shop != self.settings.shop_id:
                kept.release()
                continue
            try:
                endpoint = self.gateway.retrieve_webhook(kept.id)
            except BaseException:
                kept.release()
                raise
            if endpoint is None:
                if self._lost(kept):
                    # Gone for good: what was made since it was disabled never reached the shop,
                    # and its new endpoint will not get it either: caught up with at start.
                    self.since = _earliest(self.since, _since(kept, None))
                    kept.discard()
                else:
                    kept.release()
                continue
            metadata = (endpoint or {}).get("metadata") or {}
            if endpoint is not None and metadata.get("bookpay_shop") == self.settings.shop_id:
                if _port_of(kept.emulator) != port:
                    kept.save(emulator=self.settings.emulator_url)
                return kept, endpoint
            kept.discard()
        return None, None

    def _emulator_state(self) -> tuple[str | None, bool | None]:
        """The name of the emulator's state and whether it is in memory, as its /healthz says;
        (None, None) from an emulator that does not say."""
        _, body = _get_json(f"{self.settings.emulator_url}/healthz")
        body = body if isinstance(body, dict) else {}
        state, ephemeral = body.get("state"), body.get("ephemeral")
        return (
            state if isinstance(state, str) else None,
            ephemeral if isinstance(ephemeral, bool) else None,
        )

    def _lost(self, kept) -> bool:
        """Whether the endpoint of a record, missing at this emulator, is gone for good: the
        state that had it has lost it (deleted, or a reset), or that state was in memory and
        another emulator answers at its port now, or the record is older than the catch-up
        window (what it could catch up with is gone from Stripe's lists anyway)."""
        if self.state is not None and kept.state == self.state:
            return True
        here = _port_of(self.settings.emulator_url)
        if kept.ephemeral and self.state is not None and _port_of(kept.emulator) == here:
            return True
        times = (kept.disabled_at, kept.adopted_at, kept.mtime)
        return time.time() - max((t for t in times if t is not None), default=0.0) > WITHIN

    def _warn(self, message: str) -> None:
        self.say(f"WARNING: {message}")

    def _keep(self, created: dict):
        """Record a new endpoint's id and secret in the data folder, for the next run."""
        try:
            return kept_endpoint.keep(
                self.settings.data_dir,
                created,
                emulator=self.settings.emulator_url,
                shop=self.settings.shop_id,
                state=self.state,
                ephemeral=self.ephemeral,
            )
        except OSError as exc:
            self.say(
                f"WARNING: could not keep the webhook endpoint's secret in the data folder "
                f"({exc.strerror or exc}): it is removed when the shop stops."
            )
            return None

    def _clear_leftovers(self, keep: str | None) -> None:
        """What earlier runs left, but ``keep`` (the endpoint about to be adopted): an endpoint
        for this shop's own URL, and this shop's endpoints whose server does not answer, are
        left enabled by no running process, and would have every event sent to them twice over.
        A disabled one is a stopped process's, kept for its next run (of this data folder or
        another one's); an enabled one that a process keeps is disabled, so that the process
        adopts it, queued deliveries and all; others (from before endpoints were kept) go."""
        data_dir = self.settings.data_dir
        for old in self.gateway.webhook_endpoints():
            if old["id"] == keep or old.get("status") == "disabled":
                continue
            metadata = old.get("metadata") or {}
            ours = metadata.get("bookpay_shop") == self.settings.shop_id
            if old["url"] != self.webhook_url and not (ours and not shop_answers(old["url"])):
                continue
            if kept_endpoint.held_elsewhere(data_dir, old["id"]):
                continue  # another process of this data folder is adopting it right now
            if metadata.get("bookpay_kept") == "true":
                with contextlib.suppress(NotFound):  # deleted meanwhile: as good
                    self.gateway.update_webhook(old["id"], disabled=True, metadata=_disabled_now())
            else:
                self.gateway.delete_webhook(old["id"])

    def _clear_orphans(self) -> None:
        """Remove the disabled endpoints kept for this data folder whose record is gone (the
        folder wiped, or a corrupt record removed): their secret went with it, so nothing can
        adopt them, and they would stay in the emulator's state for ever. One is this shop's
        (``bookpay_shop``), kept (``bookpay_kept``), disabled, and names this data folder
        (``bookpay_folder``); one from before endpoints named it, the URL this start registers.
        Never one a running process uses: that process holds its record (it is enabled, or
        disabled by a start that took it for a dead one's, and has a record all the same), and
        no running process has this shop's URL."""
        if not kept_endpoint.SUPPORTED:
            return
        data_dir = self.settings.data_dir
        tag = kept_endpoint.folder_tag(data_dir)
        for old in self.gateway.webhook_endpoints():
            metadata = old.get("metadata") or {}
            if (
                old.get("status") != "disabled"
                or metadata.get("bookpay_kept") != "true"
                or metadata.get("bookpay_shop") != self.settings.shop_id
            ):
                continue
            named = metadata.get("bookpay_folder")
            if named != tag and (named is not None or old.get("url") != self.webhook_url):
                continue
            if kept_endpoint.recorded(data_dir, old["id"]):
                continue
            self.gateway.delete_webhook(old["id"])  # one already gone is no error
            self.say(
                f"Removed webhook endpoint {old['id']} ({old.get('url')}), disabled and kept for "
                "this data folder, whose record of it is gone: nothing can use it again."
            )

    def unregister(self) -> None:
        """At stop: disable the endpoint, kept for the next run with its queued deliveries
        (Stripe sends a disabled endpoint nothing, and its retries keep their schedule); one
        that could not be kept is removed."""
        if self.endpoint_id is None:
            return
        self._leaving.set()
        kept, self.kept = self.kept, None
        gateway = self._stopping_gateway()
        try:
            if kept is None:
                with contextlib.suppress(BookpayError):
                    gateway.delete_webhook(self.endpoint_id)
            else:
                with contextlib.suppress(BookpayError):
                    gateway.update_webhook(
                        self.endpoint_id, disabled=True, metadata=_disabled_now()
                    )
                with contextlib.suppress(OSError):
                    kept.save(disabled_at=time.time())
        finally:
            if gateway is not self.gateway:
                gateway.close()
            if kept is not None:
                kept.release()
            self.endpoint_id = None

    def _stopping_gateway(self):
        """A gateway for the calls at stop: the shop's own, held to ``STOP_LIMITS`` (never
        longer than the shop's limits), its breaker apart (an open one still lets the disable
        try once). The shop's gateway itself when it is not bookpay's (a test's stand-in)."""
        from bookpay.payments import Gateway

        if not isinstance(self.gateway, Gateway):
            return self.gateway
        limits = self.settings.stripe_limits
        # What the wait for the watcher took is the disable's less (STOP_WITHIN in all).
        left = max(STOP_WITHIN - self._stop_took, 0.5)
        most = {**STOP_LIMITS, "total_timeout": min(STOP_LIMITS["total_timeout"], left)}
        most["read_timeout"] = min(most["read_timeout"], most["total_timeout"])
        shorter = {name: min(getattr(limits, name), cap) for name, cap in most.items()}
        return Gateway(
            dataclasses.replace(self.settings, stripe_limits=dataclasses.replace(limits, **shorter))
        )

    def other_shops(self) -> list[str]:
        """The webhook URLs of the other shop processes registered with this emulator that
        still answer. An endpoint registered with another emulator's port (kept in this one's
        state from an earlier run, its shop now using another) is not one: its shop does not
        need this emulator."""
        try:
            endpoints = self.gateway.webhook_endpoints()
        except BookpayError:
            return []
        return [
            endpoint["url"]
            for endpoint in endpoints
            if endpoint["id"] != self.endpoint_id
            and endpoint.get("status") != "disabled"  # a stopped shop's, kept for its next run
            and self._registered_here(endpoint)
            and shop_answers(endpoint["url"])
        ]

    def _registered_here(self, endpoint: dict) -> bool:
        used = (endpoint.get("metadata") or {}).get("bookpay_emulator")
        if not used:  # a shop of a bookpay from before the tag: as before, counted
            return True
        return _port_of(used) == _port_of(self.settings.emulator_url)

    # Watching ---------------------------------------------------------------------------------

    def watch(self) -> None:
        """Look at the emulator every few seconds in a daemon thread, until ``stop_watching``."""
        self._thread = threading.Thread(target=self._watch, name="bookpay-emulator", daemon=True)
        self._thread.start()

    def stop_watching(self) -> None:
        """Stop the watcher: its look under way is waited for a probe's timeout at most (a
        look held longer, by a slow emulator, acts on nothing once ``unregister`` has begun);
        what that took is taken from the disable's time then (``STOP_WITHIN`` in all)."""
        self._stop.set()
        if self._thread is not None:
            started = time.monotonic()
            self._thread.join(timeout=PROBE_TIMEOUT)
            self._stop_took = time.monotonic() - started

    def _watch(self) -> None:
        up = True
        while not self._stop.wait(WATCH_EVERY):
            up = self.look(up)

    def look(self, up: bool = True) -> bool:
        """One look of the watcher at the emulator, which answered at the last look (``up``)
        or not: says what changed, registers again what it lost; whether it answers now."""
        url = self.settings.emulator_url
        looked_at = time.time()
        answers = emulator_answers(url)
        if self._leaving.is_set():  # the stop's disable has the endpoint now
            return answers
        if up and not answers:
            self.say(
                f"WARNING: the Stripe emulator at {url} is not answering: checkouts fail "
                "and webhooks wait until it is back (start it with `bookpay emulator`)."
            )
        elif answers and not up:
            self._recover(url, was_down=True)
        elif answers:
            state, _ = self._endpoint()
            if state in ("missing", "disabled"):
                self._recover(url, was_down=False)
            elif state == "enabled":
                self.seen_at = looked_at
        return answers

    def _endpoint(self) -> tuple[str | None, dict]:
        """ "missing", or the endpoint's status ("enabled", "disabled"), None when unknown;
        and the endpoint ({} when not known)."""
        status, body = _get_json(
            f"{self.settings.emulator_url}/v1/webhook_endpoints/{self.endpoint_id}",
            {"Authorization": f"Bearer {self.settings.api_key}"},
        )
        if status == 404:
            return "missing", {}
        if status == 200 and isinstance(body, dict):
            return body.get("status"), body
        return None, {}

    def _recover(self, url: str, *, was_down: bool) -> None:
        """The endpoint back, enabled, after it went away (disabled, or gone from the emulator);
        then the catch-up (``on_back``) of what was made meanwhile, which Stripe never sends:
        since it was last seen in place, or since it was disabled if that is known earlier."""
        if was_down:
            self.say(f"The Stripe emulator at {url} is answering again.")
        seen_at = self.seen_at
        state, endpoint = self._endpoint()
        if self._leaving.is_set():  # never enabled again after (or as) the stop disables it
            return
        try:
            if state == "disabled":  # by another shop's start that found this one not answering
                self.gateway.update_webhook(
                    self.endpoint_id, disabled=False, metadata={DISABLED_AT: ""}
                )
                self.seen_at = time.time()
                self.say(f"Enabled this shop's webhook endpoint again ({self.webhook_url}).")
                self._back(seen_at, _tagged_disabled_at(endpoint))
                return
            if state == "enabled":
                self.seen_at = time.time()
            if state != "missing":
                return
            if self.kept is not None:  # its endpoint is gone here: kept unless gone for good
                self.state, self.ephemeral = self._emulator_state()
                self.kept.discard() if self._lost(self.kept) else self.kept.release()
                self.kept = None
            self.register()
        except BookpayError as exc:
            self.say(f"WARNING: could not register the webhook endpoint again: {exc.message}")
            return
        self.say(f"Registered this shop's webhook endpoint with it again ({self.webhook_url}).")
        self._back(seen_at, self.since)  # since: of a kept endpoint it adopted instead

    def _back(self, *times: float | None) -> None:
        """Ask for the catch-up from the earliest of ``times`` (now, when none is known)."""
        known = [t for t in times if t is not None]
        if self.on_back is not None:
            self.on_back(min(known) if known else time.time())


def _disabled_now() -> dict[str, str]:
    return {DISABLED_AT: repr(time.time())}


def _since(kept, endpoint: dict | None) -> float:
    """Since when the events of an adopted endpoint may not have reached its shop: the
    earliest time it is known to have been disabled (by its process at stop, in the record, or
    by whoever disabled it, in its metadata: another data folder's start, say, after its
    process was killed). Not known: since its record was last taken into use, never later."""
    known = [kept.disabled_at] if kept.disabled_at is not None else []
    tagged = _tagged_disabled_at(endpoint)
    if tagged is not None:
        known.append(tagged)
    if known:
        return min(known)
    for fallback in (kept.adopted_at, kept.mtime):
        if fallback is not None:
            return fallback
    return time.time() - WITHIN


def _earliest(known: float | None, other: float) -> float:
    return other if known is None else min(known, other)


def _tagged_disabled_at(endpoint: dict | None) -> float | None:
    """When whoever disabled ``endpoint`` says they did (its metadata), if it says."""
    tagged = ((endpoint or {}).get("metadata") or {}).get(DISABLED_AT)
    with contextlib.suppress(TypeError, ValueError):
        if math.isfinite(float(tagged)):
            return float(tagged)
    return None


def linger_for_other_shops(link: EmulatorLink, say: Callable[[str], None]) -> None:
    """Keep the emulator this process started running while other shops still use it."""
    others = link.other_shops()
    if not others:
        return
    count = len(others)
    say(
        f"The shop has stopped. The emulator it started keeps running for {count} other shop"
        f"{'s' if count != 1 else ''} registered with it ({', '.join(others)}); this process "
        "exits when they have stopped. Press Ctrl-C again to stop the emulator now."
    )
    while link.other_shops():
        time.sleep(WATCH_EVERY / 2)
    say("No other shop is registered with the emulator: stopping it.")
