"""One exception tree for all of bookpay.

The core raises these; the edges translate them: the CLI into exit codes (``exit_code``), the
checkout server into HTTP statuses (``http_status``) and JSON bodies (``code``, ``message``).
Third-party exceptions (stripe, sqlite, sockets) are translated into this tree at exactly one
boundary each, with ``raise ... from exc``, so nothing above those boundaries sees them.
"""

from __future__ import annotations


class BookpayError(Exception):
    """Base class. ``hint`` is an optional next step shown to the user under the message."""

    exit_code = 1
    http_status = 500
    code = "internal_error"

    def __init__(self, message: str, *, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return {"message": self.message, "code": self.code}


class UsageError(BookpayError):
    """The user asked for something that cannot be done as asked (exit 2, HTTP 400)."""

    exit_code = 2
    http_status = 400
    code = "bad_request"


class NotFound(UsageError):
    """An id that names nothing: a book, an order, a PaymentIntent (HTTP 404)."""

    http_status = 404
    code = "not_found"


class ConfigError(BookpayError):
    """Configuration that cannot work: a live key without --live, a malformed catalog (exit 5)."""

    exit_code = 5
    http_status = 503
    code = "configuration_error"

    def __init__(self, message: str, *, problems: list[str] | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.problems = list(problems or [])


class UnknownToBookpay(BookpayError):
    """Stripe sent something this version of bookpay does not know (a Dispute status Stripe
    added since): HTTP 503, so that Stripe redelivers the event, which stays received but not
    processed until a bookpay that knows it handles it."""

    http_status = 503
    code = "unknown_to_bookpay"


class PaymentError(BookpayError):
    """Stripe (or the emulator) answered and refused the request (exit 3).

    ``stripe_code`` and ``decline_code`` carry Stripe's own codes; ``http_status`` follows the
    status Stripe answered with (402 for card errors, 400 for invalid requests, ...).
    """

    exit_code = 3
    http_status = 400
    code = "payment_rejected"

    def __init__(
        self,
        message: str,
        *,
        error_type: str | None = None,
        stripe_code: str | None = None,
        decline_code: str | None = None,
        param: str | None = None,
        http_status: int | None = None,
        payment_intent: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(message, **kwargs)
        self.error_type = error_type
        self.stripe_code = stripe_code
        self.decline_code = decline_code
        self.param = param
        self.payment_intent = payment_intent
        if http_status is not None:
            self.http_status = http_status

    def to_dict(self) -> dict:
        data = super().to_dict()
        for key in ("error_type", "stripe_code", "decline_code", "param"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


class TaxNotActive(PaymentError):
    """Stripe Tax is not active on the Stripe account (``stripe_tax_inactive``): no address's
    tax can be worked out, so no checkout can be paid, until it is activated in the Dashboard
    or the shop sells without tax (BOOKPAY_TAX=off). Not the shopper's doing, and no retry of
    theirs helps."""

    code = "tax_not_active"


class CardDeclined(PaymentError):
    """A card_error: declined, expired, wrong CVC, failed authentication (HTTP 402)."""

    http_status = 402
    code = "card_declined"


class StripeUnavailable(BookpayError):
    """Stripe or the emulator could not be reached, or answered with a server error (exit 4).

    HTTP 503 with ``Retry-After``: the shop is up, payments are not, for now. ``retry_after``
    is the wait in seconds the caller knows to be useful (None: no better guess than a default).
    """

    exit_code = 4
    http_status = 503
    code = "stripe_unavailable"

    def __init__(self, message: str, *, retry_after: int | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class WebhookSignatureError(BookpayError):
    """A webhook whose Stripe-Signature is missing, malformed, wrong or too old (HTTP 400)."""

    exit_code = 3
    http_status = 400
    code = "invalid_signature"


class DeliveryFailed(BookpayError):
    """A webhook delivery got a non-2xx answer or no answer at all (exit 6)."""

    exit_code = 6
    http_status = 502
    code = "delivery_failed"


class OutputUnwritable(BookpayError):
    """A file the command was told to write (``--output``, ``--chart``) cannot be written: a
    folder that does not exist, no permission, a full disk. The output's failure, as a closed or
    full standard output is (exit 1), not the configuration's."""

    exit_code = 1
    code = "output_unwritable"


def stripe_codes(code: str | None, decline_code: str | None) -> str:
    """Stripe's error code and decline code as support reads them: ``card_declined/stolen_card``,
    one of them alone, or once when Stripe gives the same for both (``expired_card``)."""
    return "/".join(dict.fromkeys(c for c in (code, decline_code) if c))


def refused_outright(status: int | None) -> bool:
    """Whether an HTTP status from Stripe refuses the request itself, so that sending it again
    would be refused again: a 4xx, but for those that say "not now" (408 a timeout, 409 a
    conflict with a concurrent request, 429 a rate limit), which are tried again later."""
    return isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429)
