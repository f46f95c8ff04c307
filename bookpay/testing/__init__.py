"""Test your own Stripe integration, or bookpay's, against bookpay's Stripe emulator.

Four pieces, each a context manager (or a plain object) for any test runner, unittest included,
and a pytest fixture of the same idea from ``bookpay.testing.plugin`` (pytest loads it through
the ``pytest11`` entry point):

==========================================  ==================  =================================
without pytest                              pytest fixture      what it is
==========================================  ==================  =================================
``with emulator() as emu:``                 ``stripe_emulator`` the emulator on a free port, in
                                                                memory: its URL, test keys, a
                                                                ``stripe.StripeClient``, events,
                                                                deliveries, ``faults``, ``clock``
``with shop(emu) as shop:``                 ``bookpay_shop``    bookpay's checkout server on a
                                                                free port against it, webhook
                                                                registered, private data folder
``cli(emu, data_dir)``                      ``bookpay_cli``     the CLI in-process, isolated:
                                                                exit code, stdout, stderr, json
``webhook_sender(shop)``                    ``webhook_sender``  signs and posts events to a shop
==========================================  ==================  =================================

Importing this package costs nothing: each piece loads what it needs when it is used.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CardDeclined",
    "Cli",
    "CliResult",
    "EmulatorError",
    "Shop",
    "ShopError",
    "StripeEmulator",
    "WebhookSender",
    "cli",
    "emulator",
    "shop",
    "webhook_sender",
]

# name -> the module holding it (private modules: `bookpay.testing.emulator` must stay the
# function, which a submodule of that name would replace once imported); a dotted name is
# bookpay's own module.
_WHERE = {
    "CardDeclined": "bookpay.errors",  # what Shop.pay raises for a declined card
    "emulator": "_emulator",
    "StripeEmulator": "_emulator",
    "EmulatorError": "_emulator",
    "ShopError": "_shop",
    "shop": "_shop",
    "Shop": "_shop",
    "cli": "_cli",
    "Cli": "_cli",
    "CliResult": "_cli",
    "webhook_sender": "_webhooks",
    "WebhookSender": "_webhooks",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'bookpay.testing' has no attribute {name!r}")
    from importlib import import_module

    where = _WHERE[name]
    return getattr(import_module(where if "." in where else f"bookpay.testing.{where}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
