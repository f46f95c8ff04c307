"""Amounts in minor units, and how to show them.

Stripe counts money in the currency's smallest unit (2300 is $23.00, but 2300 is ¥2,300), so
bookpay keeps amounts as integers and only turns them into text at the edge.
"""

from __future__ import annotations

# Currencies Stripe charges in without a minor unit (Stripe's "zero-decimal currencies"). Its
# list names UGX too, but its "Special cases" table says how UGX amounts are written: as ISK's.
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf vnd vuv xaf xof xpf".split())
# Stripe's three-decimal currencies: Stripe charges them in tens of the minor unit (an amount
# must end in 0), so that a payment can be settled in them.
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())
# Stripe's "Special cases" ISK and UGX: they "transitioned to a zero-decimal currency, but
# backwards compatibility requires you to represent it as a two-decimal value, where the decimal
# amount is always 00" (500 is 5 ISK). Charged in whole units: an amount must end in 00. (HUF
# and TWD, its other special cases, are zero-decimal for payouts only, which bookpay never makes.)
WHOLE_UNITS = frozenset("isk ugx".split())
# Stripe's largest amount: eight digits in the minor unit (99999999 is $999,999.99).
MAX_AMOUNT = 99_999_999
# Stripe's smallest charge in the minor unit, for the currencies its table of minimum charge
# amounts names ($0.50 in USD). In any other currency Stripe wants the equivalent of 50 US cents
# at the day's exchange rate, which bookpay cannot know: there it only asks for a positive amount.
MIN_AMOUNTS = {
    "usd": 50, "aud": 50, "brl": 50, "cad": 50, "chf": 50, "dkk": 250, "eur": 50, "gbp": 30,
    "hkd": 400, "inr": 50, "jpy": 50, "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50,
    "pln": 200, "sek": 300, "sgd": 50, "thb": 1000, "czk": 1500, "huf": 17500, "ron": 200,
    "bgn": 100, "aed": 200,
}  # fmt: skip

# ISO 4217 codes that Stripe accepts for card payments (lower case, as Stripe writes them).
CURRENCIES = frozenset(
    """
    aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob brl bsd bwp byn
    bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd
    gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak
    lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd
    omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd std
    szl thb tjs tnd top try ttd twd tzs uah ugx usd uyu uzs vnd vuv wst xaf xcd xof xpf yer zar
    zmw
    """.split()
)

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$", "inr": "₹"}


def exponent(currency: str) -> int:
    """How many digits of the amount are below the major unit."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def format_amount(amount: int, currency: str) -> str:
    """An amount for people: ``format_amount(2300, "usd") == "$23.00"``;
    ``format_amount(2300, "jpy") == "¥2,300"``.

    ISK and UGX are shown in whole units, as the other zero-decimal currencies are
    (``format_amount(250000, "isk") == "2,500 ISK"``), though Stripe writes them with two
    decimals; an amount with hundredths (which Stripe never charges, but Stripe Tax may
    calculate: 371.20 ISK) keeps them. Stripe's own form is the integer, for machines."""
    code = currency.lower()
    digits = exponent(code)
    if code in WHOLE_UNITS and amount % 100 == 0:
        digits, amount = 0, amount // 100
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**digits)
    number = f"{major:,}" + (f".{minor:0{digits}d}" if digits else "")
    symbol = _SYMBOLS.get(code)
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {code.upper()}"


def released_text(amount: int | None, captured: int | None, currency: str) -> str | None:
    """What a payment authorized and what of it a partial capture released, for people:
    ``"$29.67, of which $14.67 was released, not charged"`` when ``captured`` (what was taken)
    is less than ``amount`` (what was authorized); None when nothing was released (``captured``
    None: all of it was taken). The receipt's "Authorized" line and the success page's."""
    if captured is None or amount is None or captured >= amount:
        return None
    authorized = format_amount(amount, currency)
    released = format_amount(amount - captured, currency)
    return f"{authorized}, of which {released} was released, not charged"


def charge_step(currency: str) -> int:
    """What every amount Stripe charges in ``currency`` is a multiple of: 10 in a three-decimal
    currency, 100 in ISK and UGX (whole units written with two decimals), else 1."""
    code = currency.lower()
    if code in THREE_DECIMAL:
        return 10
    if code in WHOLE_UNITS:
        return 100
    return 1


def chargeable(amount: int, currency: str) -> int:
    """``amount`` rounded down to one Stripe can charge in ``currency`` (a multiple of its
    `charge_step`): ``chargeable(371, "kwd") == 370``, ``chargeable(1299, "isk") == 1200``."""
    step = charge_step(currency)
    return amount - amount % step


def largest_amount(currency: str) -> int:
    """Stripe's largest charge in ``currency`` (minor units): its eight digits, `MAX_AMOUNT`,
    rounded down to what it charges (`chargeable`): 99999999 ($999,999.99) in USD, 99999900
    (999,999 ISK) in ISK, 99999990 (99,999.990 KWD) in KWD."""
    return chargeable(MAX_AMOUNT, currency)


def min_amount(currency: str) -> int:
    """Stripe's smallest charge in ``currency`` (minor units): 50 for USD, 1 when unknown."""
    return MIN_AMOUNTS.get(currency.lower(), 1)


def charge_problem(amount: int, currency: str) -> str | None:
    """Why Stripe would refuse one payment of ``amount`` (minor units of ``currency``), or None:
    ``"is less than $0.50, the smallest payment Stripe takes in USD"``."""
    code = currency.lower()
    least = min_amount(code)
    if amount < least:
        return (
            f"is less than {format_amount(least, code)}, the smallest payment Stripe takes in"
            f" {code.upper()}"
        )
    if amount > largest_amount(code):
        return (
            f"is more than {format_amount(largest_amount(code), code)}, the largest payment"
            f" Stripe takes in {code.upper()}"
        )
    return None


def amount_problem(amount: object, currency: str) -> str | None:
    """Why Stripe could never charge ``amount`` (minor units of ``currency``), or None (also
    for what is not a whole number of them, from nothing up: that has its own message).

    ``"is more than Stripe's largest amount, $999,999.99"`` (in ISK 999,999 ISK: the largest it
    charges, `largest_amount`); ``"must end in 0: KWD is a three-decimal currency, which Stripe
    charges in tens of its minor unit (5120 for 5.120 KWD)"``; ``"must end in 00: Stripe charges
    ISK in whole units, written with two decimals (500 for 5.00 ISK)"``.
    """
    code = currency.lower()
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        return None
    if amount > MAX_AMOUNT:
        return f"is more than Stripe's largest amount, {format_amount(largest_amount(code), code)}"
    if code in THREE_DECIMAL and amount % 10:
        return (
            f"must end in 0: {code.upper()} is a three-decimal currency, which Stripe charges in"
            f" tens of its minor unit (5120 for {format_amount(5120, code)})"
        )
    if code in WHOLE_UNITS and amount % 100:
        return (
            f"must end in 00: Stripe charges {code.upper()} in whole units, written with two"
            f" decimals (500 for 5.00 {code.upper()})"  # the API form it explains
        )
    return None
