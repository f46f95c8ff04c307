"""The account's settlement currency and the TEST exchange rates into it.

Stripe writes a US account's balance transactions in usd, whatever the payment's currency, with
the ``exchange_rate`` it converted at (an amount in the payment's currency, in major units, times
the rate is the amount in usd). The emulator's account is a US one. Stripe converts at the day's
market rate; the emulator has a fixed table instead: roughly what the currencies were worth in
usd around 2024, one figure each, never maintained. TEST rates, a stand-in so that balance
transactions have Stripe's shape and a plausible size: never convert anyone's money with them.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from bookpay.money import exponent

SETTLEMENT = "usd"

# usd per major unit of each currency the emulator takes (validate.CURRENCIES).
_RATES = """
aed .272 afn .0141 all .0107 amd .00258 ang .555 aoa .00115 ars .00105 aud .66 awg .556
azn .588 bam .553 bbd .5 bdt .0085 bgn .553 bhd 2.65 bif .000348 bmd 1 bnd .745 bob .145
brl .19 bsd 1 bwp .0735 byn .305 bzd .496 cad .735 cdf .00036 chf 1.13 clp .00106 cny .139
cop .000245 crc .00195 cve .0098 czk .0435 djf .00562 dkk .145 dop .0167 dzd .00745 egp .0205
etb .0085 eur 1.08 fjd .445 fkp 1.27 gbp 1.27 gel .365 gip 1.27 gmd .0147 gnf .000116
gtq .128 gyd .00478 hkd .128 hnl .0403 htg .00755 huf .00275 idr .0000625 ils .27 inr .012
isk .0072 jmd .0064 jod 1.41 jpy .0067 kes .0077 kgs .0115 khr .000245 kmf .0022 krw .00074
kwd 3.25 kyd 1.2 kzt .0021 lak .000046 lbp .0000112 lkr .0033 lrd .0052 lsl .054 mad .1
mdl .056 mga .00022 mkd .0175 mmk .000476 mnt .00029 mop .124 mur .0215 mvr .0648
mwk .000577 mxn .055 myr .215 mzn .0157 nad .054 ngn .00065 nio .0272 nok .093 npr .0075
nzd .6 omr 2.6 pab 1 pen .265 pgk .26 php .0175 pkr .0036 pln .25 pyg .000133 qar .275
ron .217 rsd .0092 rub .011 rwf .00076 sar .267 sbd .118 scr .072 sek .095 sgd .745
shp 1.27 sle .044 sos .00175 srd .03 std .0000455 szl .054 thb .028 tjs .092 tnd .32
top .42 try .031 ttd .147 twd .031 tzs .00038 uah .025 ugx .00026 usd 1 uyu .025
uzs .000079 vnd .00004 vuv .0084 wst .36 xaf .00165 xcd .37 xof .00165 xpf .00905 yer .004
zar .054 zmw .038
""".split()
RATES = {code: Decimal(rate) for code, rate in zip(_RATES[::2], _RATES[1::2], strict=True)}


def rate(currency: str) -> float | None:
    """The ``exchange_rate`` of a balance transaction in ``currency``: None when nothing was
    converted (the settlement currency itself), as Stripe writes it."""
    code = currency.lower()
    return None if code == SETTLEMENT else float(RATES[code])


def settle(amount: int, currency: str) -> int:
    """``amount`` (minor units of ``currency``) in the settlement currency's minor units."""
    code = currency.lower()
    if code == SETTLEMENT:
        return amount
    major = Decimal(amount).scaleb(-exponent(code)) * RATES[code]
    return int(major.scaleb(exponent(SETTLEMENT)).quantize(Decimal(1), ROUND_HALF_UP))
