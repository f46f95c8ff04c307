"""Customers, to the extent PaymentIntents reference them: create, retrieve, update, delete, list,
with email, name, phone, address and shipping; and the check of a `customer` reference."""

from __future__ import annotations

import secrets
from typing import Any

from . import render, validate
from .context import Ctx
from .events import changed
from .params import ANY
from .store import buried, field_is
from .wire import malformed, new_id, no_such, now

_FIELDS = {
    "email": None,
    "name": None,
    "phone": None,
    "description": None,
    "address": validate.ADDRESS_SPEC,
    "shipping": {"address": validate.ADDRESS_SPEC, "name": None, "phone": None},
    "metadata": ANY,
    "expand": None,
}
CREATE_SPEC = dict(_FIELDS)
UPDATE_SPEC = dict(_FIELDS)
RETRIEVE_SPEC = {"expand": None}
DELETE_SPEC: dict[str, Any] = {}
LIST_SPEC = {**render.LIST_SPEC, "email": None}


def reference(ctx: Ctx, value: Any, param: str) -> str | None:
    """A customer id given as a parameter: it must exist (an empty value unsets it)."""
    cus_id = validate.string(value, param)
    if cus_id is not None and ctx.store.get(cus_id, "customer") is None:
        raise no_such("customer", cus_id, param, 400)
    return cus_id


def _customer() -> dict[str, Any]:
    return {
        "id": new_id("cus", 14),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": now(),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "email": None,
        "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def _apply(customer: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    """Set what the request gives; return the previous values of what changed."""
    before = dict(customer)
    if "email" in p:
        customer["email"] = validate.email(p["email"], "email")
    for field in ("name", "phone", "description"):
        if field in p:
            customer[field] = validate.string(p[field], field)
    if "address" in p:
        customer["address"] = _address(p["address"], "address")
    if "shipping" in p:
        customer["shipping"] = _shipping(p["shipping"])
    if "metadata" in p:
        customer["metadata"] = validate.metadata(p["metadata"], customer["metadata"])
    return changed(customer, before)


def _address(value: Any, param: str) -> dict[str, Any] | None:
    if value == "":
        return None
    if not isinstance(value, dict):
        raise malformed(f"Invalid hash: {param}", param)
    return validate.address(value)


def _shipping(value: Any) -> dict[str, Any] | None:
    if value == "":
        return None
    shipping = validate.shipping(value)
    if shipping is None:
        return None
    return {k: shipping[k] for k in ("address", "name", "phone")}


def create(ctx: Ctx) -> dict[str, Any]:
    customer = _customer()
    _apply(customer, ctx.params)
    ctx.store.save(customer)
    ctx.emit("customer.created", customer)
    return customer


def _load(ctx: Ctx, cus_id: str) -> dict[str, Any]:
    customer = ctx.store.get(cus_id, "customer")
    if customer is None:
        raise no_such("customer", cus_id)
    return customer


def retrieve(ctx: Ctx, cus_id: str) -> dict[str, Any]:
    """The customer; a deleted one is answered as Stripe does, with its id, its object and
    ``deleted: true`` (stripe-python's DeletedCustomer), where its update is a 404."""
    found = ctx.store.get(cus_id, "customer") or ctx.store.get(cus_id, buried("customer"))
    if found is None:
        raise no_such("customer", cus_id)
    return found


def update(ctx: Ctx, cus_id: str) -> dict[str, Any]:
    customer = _load(ctx, cus_id)
    previous = _apply(customer, ctx.params)
    ctx.store.save(customer)
    if previous:
        ctx.emit("customer.updated", customer, previous)
    return customer


def delete(ctx: Ctx, cus_id: str) -> dict[str, Any]:
    customer = _load(ctx, cus_id)
    stub = {"id": cus_id, "object": "customer", "deleted": True}
    ctx.store.bury(stub)
    ctx.emit("customer.deleted", customer)
    return stub


def list_(ctx: Ctx) -> dict[str, Any]:
    email = ctx.params.get("email")
    where = [field_is("email", email)] if email else []
    return render.page(ctx.store, "customer", ctx.params, "/v1/customers", where)
