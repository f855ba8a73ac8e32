"""Currencies by their ISO 4217 minor units: the one place that knows how many decimals an amount has.

Only currencies Stripe accepts for card payments are allowed. Amounts are integers in the currency's minor unit
everywhere (a JPY amount is whole yen, a KWD amount is fils, thousandths of a dinar). The mechanism works in major
units (`to_major`); its prices come back in major units and are rounded down to a chargeable amount (`charge_floor`).
"""

from __future__ import annotations

from decimal import Decimal

# Stripe treats these as zero-decimal: the amount is in whole units.
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
# Three-decimal currencies: Stripe takes amounts in thousandths but requires the last digit to be 0.
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
TWO_DECIMAL = frozenset(
    {
        "usd", "eur", "gbp", "cad", "aud", "nzd", "chf", "sek", "nok", "dkk", "pln", "czk", "huf", "ron", "bgn",
        "sgd", "hkd", "mxn", "brl", "inr", "zar", "ils", "aed", "sar", "thb", "myr", "php", "idr", "try", "twd",
        "cny", "egp", "ngn", "kes", "cop", "pen", "ars", "uah", "qar", "mad",
    }
)
SUPPORTED = ZERO_DECIMAL | THREE_DECIMAL | TWO_DECIMAL
SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$", "chf": "CHF "}


class UnknownCurrency(ValueError):
    pass


def normalise(code: str) -> str:
    """Lower-case ISO code, or UnknownCurrency for anything Stripe does not take."""
    value = (code or "").strip().lower()
    if value not in SUPPORTED:
        raise UnknownCurrency(f"{code!r} is not a currency this platform can charge (use an ISO 4217 code such as USD)")
    return value


def exponent(code: str) -> int:
    value = normalise(code)
    if value in ZERO_DECIMAL:
        return 0
    if value in THREE_DECIMAL:
        return 3
    return 2


def to_major(minor: int, code: str) -> float:
    """Minor units to the major units the mechanism prices in (a float only inside the mechanism)."""
    return int(minor) / 10 ** exponent(code)


def major_to_minor_floor(major: float, code: str) -> int:
    """A price in major units to minor units, rounded down (never charge a fraction more)."""
    scale = 10 ** exponent(code)
    return max(0, int(Decimal(repr(float(major))) * scale))


def charge_floor(minor: int, code: str) -> int:
    """The largest amount <= `minor` that Stripe accepts: three-decimal currencies need a multiple of 10."""
    minor = max(0, int(minor))
    return minor - minor % 10 if normalise(code) in THREE_DECIMAL else minor


# Stripe's published minimum charge per currency, in minor units (its "minimum and maximum charge amounts" table).
# A smaller charge is refused, so callers carry small amounts over instead of charging them.
MINIMUM_CHARGE = {
    "usd": 50, "eur": 50, "gbp": 30, "aud": 50, "cad": 50, "chf": 50, "nzd": 50, "sgd": 50, "brl": 50, "inr": 50,
    "aed": 200, "bgn": 100, "czk": 1500, "dkk": 250, "hkd": 400, "huf": 17500, "jpy": 50, "mxn": 1000, "myr": 200,
    "nok": 300, "pln": 200, "ron": 200, "sek": 300, "thb": 1000,
}


def minimum_charge(code: str) -> int:
    """The least amount, in minor units, Stripe charges in this currency. Where Stripe publishes no figure: 50 minor
    units (500 for three-decimal currencies, which is 0.50 and a multiple of 10), the same half unit as USD; Stripe
    may still refuse that for a weak currency, and the caller then gets its refusal as an error."""
    value = normalise(code)
    if value in MINIMUM_CHARGE:
        return MINIMUM_CHARGE[value]
    return 500 if value in THREE_DECIMAL else 50


def parse_amount(text: str, code: str) -> int:
    """An amount typed in major units ("25.00", "1,250", "3000") to minor units, exactly. ValueError with a message a
    person can act on when it has more decimals than the currency has, or is not a plain decimal number."""
    cleaned = (text or "").strip().replace("_", "").replace(" ", "")
    for symbol in ("$", "€", "£", "¥"):
        cleaned = cleaned.removeprefix(symbol)
    if cleaned.startswith("-"):
        raise ValueError("An amount cannot be negative.")
    if not cleaned or not cleaned.isascii():
        raise ValueError("Enter the amount in plain digits, such as 25.00.")
    digits_and_point = cleaned.replace(",", "")
    if not all(c.isdigit() or c == "." for c in digits_and_point) or digits_and_point.count(".") > 1:
        raise ValueError("Enter the amount in plain digits, such as 25.00 (no exponents or signs).")
    if "," in cleaned:
        whole = cleaned.split(".")[0]
        groups = whole.split(",")
        if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
            raise ValueError("Write the amount with a decimal point, such as 1.50 (commas only between thousands).")
    amount = Decimal(digits_and_point)
    places = exponent(code)
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        unit = {0: "whole units", 2: "at most two decimal places", 3: "at most three decimal places"}[places]
        raise ValueError(f"{normalise(code).upper()} amounts use {unit}.")
    return int(amount.scaleb(places))


def format_amount(minor: int, code: str) -> str:
    """Minor units as a plain decimal string in major units, e.g. 2500 usd -> "25.00", 2500 jpy -> "2500"."""
    places = exponent(code)
    minor = int(minor)
    if places == 0:
        return str(minor)
    scale = 10**places
    return f"{minor // scale}.{minor % scale:0{places}d}"


def format_money(minor: int | None, code: str = "usd") -> str:
    """Readable amount with symbol and thousands: 123456 usd -> "$1,234.56"; 1500 jpy -> "¥1,500"."""
    if minor is None or minor == "":
        return "—"
    minor = int(minor)
    value = (code or "usd").lower()
    places = exponent(value) if value in SUPPORTED else 2
    sign = "-" if minor < 0 else ""
    minor = abs(minor)
    scale = 10**places
    number = f"{minor // scale:,}" + (f".{minor % scale:0{places}d}" if places else "")
    symbol = SYMBOLS.get(value)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {value.upper()}"
