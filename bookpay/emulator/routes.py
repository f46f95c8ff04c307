"""The /v1 operations the emulator serves: method, path, handler, implemented parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import (
    capture,
    confirmation,
    customers,
    disputes,
    intents,
    methods,
    refunds,
    resources,
    tax_calculations,
    tax_reversals,
    tax_transactions,
)
from .params import UNSUPPORTED
from .wire import ApiError

Handler = Callable[..., dict[str, Any]]
ID = "{id}"  # a path segment holding an object id: any non-empty text, so a bad id is "No such"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as Stripe documents it: /v1/payment_intents/{id}/confirm
    handler: Handler
    spec: dict[str, Any]  # the parameters implemented (see params.py)
    publishable: bool = False  # allowed with a publishable key (what Stripe.js may do)
    # The top-level parameters a publishable key may send, if fewer than the spec's.
    publishable_params: frozenset[str] | None = None

    @property
    def op(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/")[2:])


ROUTES: list[Route] = [
    Route("GET", "/v1/payment_intents", intents.list_, intents.LIST_SPEC),
    Route("POST", "/v1/payment_intents", intents.create, intents.CREATE_SPEC),
    Route("GET", "/v1/payment_intents/{id}", intents.retrieve, intents.RETRIEVE_SPEC, True),
    Route("POST", "/v1/payment_intents/{id}", intents.update, intents.UPDATE_SPEC),
    Route(
        "POST",
        "/v1/payment_intents/{id}/confirm",
        confirmation.confirm,
        confirmation.CONFIRM_SPEC,
        True,
        confirmation.PUBLISHABLE_PARAMS,
    ),
    Route("POST", "/v1/payment_intents/{id}/capture", capture.capture, capture.CAPTURE_SPEC),
    Route("POST", "/v1/payment_intents/{id}/cancel", intents.cancel, intents.CANCEL_SPEC),
    Route("POST", "/v1/payment_methods", methods.create, methods.CREATE_SPEC, True),
    Route("GET", "/v1/payment_methods/{id}", methods.retrieve, methods.RETRIEVE_SPEC),
    Route("GET", "/v1/charges", resources.charge_list, resources.CHARGE_LIST_SPEC),
    Route("GET", "/v1/charges/{id}", resources.charge_retrieve, resources.RETRIEVE_SPEC),
    Route("GET", "/v1/refunds", refunds.list_, refunds.LIST_SPEC),
    Route("POST", "/v1/refunds", refunds.create, refunds.CREATE_SPEC),
    Route("GET", "/v1/refunds/{id}", refunds.retrieve, refunds.RETRIEVE_SPEC),
    Route("POST", "/v1/refunds/{id}", refunds.update, refunds.UPDATE_SPEC),
    Route("POST", "/v1/refunds/{id}/cancel", refunds.cancel, refunds.CANCEL_SPEC),
    Route("GET", "/v1/customers", customers.list_, customers.LIST_SPEC),
    Route("POST", "/v1/customers", customers.create, customers.CREATE_SPEC),
    Route("GET", "/v1/customers/{id}", customers.retrieve, customers.RETRIEVE_SPEC),
    Route("POST", "/v1/customers/{id}", customers.update, customers.UPDATE_SPEC),
    Route("DELETE", "/v1/customers/{id}", customers.delete, customers.DELETE_SPEC),
    Route("GET", "/v1/disputes", disputes.list_, disputes.LIST_SPEC),
    Route("GET", "/v1/disputes/{id}", disputes.retrieve, disputes.RETRIEVE_SPEC),
    Route("POST", "/v1/disputes/{id}", disputes.update, disputes.UPDATE_SPEC),
    Route("POST", "/v1/disputes/{id}/close", disputes.close, disputes.CLOSE_SPEC),
    Route("GET", "/v1/events", resources.event_list, resources.EVENT_LIST_SPEC),
    Route("GET", "/v1/events/{id}", resources.event_retrieve, resources.RETRIEVE_SPEC),
    Route("GET", "/v1/webhook_endpoints", resources.endpoint_list, resources.ENDPOINT_LIST_SPEC),
    Route(
        "POST", "/v1/webhook_endpoints", resources.endpoint_create, resources.ENDPOINT_CREATE_SPEC
    ),
    Route(
        "GET", "/v1/webhook_endpoints/{id}", resources.endpoint_retrieve, resources.RETRIEVE_SPEC
    ),
    Route(
        "POST",
        "/v1/webhook_endpoints/{id}",
        resources.endpoint_update,
        resources.ENDPOINT_UPDATE_SPEC,
    ),
    Route("DELETE", "/v1/webhook_endpoints/{id}", resources.endpoint_delete, {}),
    Route("POST", "/v1/tax/calculations", tax_calculations.create, tax_calculations.CREATE_SPEC),
    Route(
        "GET",
        "/v1/tax/calculations/{id}",
        tax_calculations.retrieve,
        tax_calculations.RETRIEVE_SPEC,
    ),
    Route(
        "GET",
        "/v1/tax/calculations/{id}/line_items",
        tax_calculations.list_line_items,
        tax_calculations.LINE_ITEMS_SPEC,
    ),
    Route(
        "POST",
        "/v1/tax/transactions/create_from_calculation",
        tax_transactions.create_from_calculation,
        tax_transactions.CREATE_SPEC,
    ),
    Route(
        "POST",
        "/v1/tax/transactions/create_reversal",
        tax_reversals.create_reversal,
        tax_reversals.REVERSAL_SPEC,
    ),
    Route(
        "GET",
        "/v1/tax/transactions/{id}",
        tax_transactions.retrieve,
        tax_transactions.RETRIEVE_SPEC,
    ),
    Route(
        "GET",
        "/v1/tax/transactions/{id}/line_items",
        tax_transactions.list_line_items,
        tax_transactions.LINE_ITEMS_SPEC,
    ),
]


# Stripe's Search API (``GET /v1/payment_intents/search?query=...``) for the resources the
# emulator holds: not supported yet, so refused by name, never taken for a retrieve of an object
# whose id is "search" (a 404 "No such payment_intent: 'search'").
SEARCHABLE = frozenset({"charges", "customers", "payment_intents"})


def match(method: str, path: str, segments: list[str]) -> tuple[Route, list[str]]:
    """The route for a request and the ids in its path; Stripe's 404 for anything else."""
    # (A POST to /v1/customers/search is an update of a customer whose id is "search".)
    searched = method == "GET" and len(segments) == 2 and segments[1] == "search"
    if searched and segments[0] in SEARCHABLE:
        raise search_unsupported(segments[0])
    for route in ROUTES:
        if route.method != method or len(route.segments) != len(segments):
            continue
        pairs = list(zip(route.segments, segments, strict=True))
        if all(got if want == ID else got == want for want, got in pairs):
            return route, [got for want, got in pairs if want == ID]
    raise unrecognized(method, path)


def search_unsupported(resource: str) -> ApiError:
    return ApiError(
        400,
        f"The bookpay emulator does not support the Search API (GET /v1/{resource}/search) yet."
        f" Stripe accepts it: list with the list's filters here (GET /v1/{resource}), or run"
        " against Stripe test mode.",
        code=UNSUPPORTED,
    )


def unrecognized(method: str, path: str) -> ApiError:
    return ApiError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we"
        " can help at https://support.stripe.com/.",
    )
