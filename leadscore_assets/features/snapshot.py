"""Customer snapshot features: the clean customer table joined with payment aggregates.

The label (``churned``) and the features come from the customer profile. Where a customer's
email matches payments, their payment history adds what the snapshot does not say: failed
payments, refunds and disputes are some of the earliest signs of an account about to leave.
Customers with no email or no matching payment keep null aggregates (missing, not zero:
"no payments seen" is not "paid nothing").

Money is added up per currency, never across currencies (``leadscore_core.money``). Each
amount (``amount_paid``: succeeded, refunded and disputed payments; ``amount_refunded``:
every refund) is the sum of the payments it counts when they are all in one currency. When
they are in several, no single number is what the source meant (150 USD + 20 EUR is not 170
of anything), so the model's feature is missing. Across customers a feature is in one
currency too, or a tree would compare 150 USD with 150 JPY: the one the plan catalogue
declares, else the one every customer's amount is in; an amount in another is missing, and
with several and none declared none is chosen (``money_features_currency``). Each missing
amount is set aside (``money_set_aside``: customer, file, row, field, the amount in each
currency and the rule). Amounts are not converted: no export states a rate, and a rate
chosen here (which day's, whose) would be a guess; a missing value is what the model is
trained to read. Either way ``payment_amounts`` keeps each amount per currency (JSON,
``{"amount_paid": {"EUR": 20.0, "USD": 150.0}, ...}``) for the pages and the API to show as
"€20.00 + $150.00"; it is never a model input. Nothing paid (or refunded) is 0 in any
currency.

No Dagster imports here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore_core.money import PAYMENT_AMOUNTS, amounts_text, record_amounts

PAYMENT_FEATURES: dict[str, str] = {
    "payments_count": "numeric",
    "payments_failed": "numeric",
    "failed_share": "numeric",
    "refunds_count": "numeric",
    "amount_paid": "numeric",
    "amount_refunded": "numeric",
    "disputes_count": "numeric",
}
# The payment features that are amounts of money: summed within one currency only.
MONEY_FEATURES = ("amount_paid", "amount_refunded")
# The rules a set-aside amount broke: its payments are in several currencies; it is in
# another currency than the feature is in across customers.
SEVERAL_CURRENCIES, OTHER_CURRENCY = "several_currencies", "other_currency"
# Where features/customer_snapshot sets those amounts aside, one row per customer and field.
MONEY_SET_ASIDE = "quarantine.customer_payment_amounts"
SET_ASIDE_COLUMNS = ("customer_id", "email", "_source_file", "_row_number", "field", "value",
                     "currencies", "rule", "reason")


def payment_aggregates(payments: pd.DataFrame) -> pd.DataFrame:
    """Per lower-cased customer email: counts of payments by outcome, and the amounts paid
    and refunded where each is in one currency (missing where in several; every currency's
    amount is in ``payment_amounts``)."""
    p = payments[payments["customer_email"].notna()].copy()
    p["email"] = p["customer_email"].astype("string").str.strip().str.lower()
    status = p["status"].astype("string")
    refunded = p["amount_refunded"].astype(float).fillna(0.0) if "amount_refunded" in p \
        else pd.Series(0.0, index=p.index)
    succeeded_like = status.isin(["succeeded", "refunded", "partially_refunded", "disputed"])
    # clean/payments wrote each currency as its ISO code (the one place it is read)
    currency = (p["currency"].astype("string") if "currency" in p
                else pd.Series(pd.NA, index=p.index, dtype="string"))
    p = p.assign(
        _failed=(status == "failed").astype(int),
        _refund=(status.isin(["refunded", "partially_refunded"]) | (refunded > 0)).astype(int),
        _dispute=(status == "disputed").astype(int),
        _currency=currency.fillna(""),  # "" : a payment whose currency is not known
    )
    g = p.groupby("email")
    out = pd.DataFrame({
        "payments_count": g.size().astype(float),
        "payments_failed": g["_failed"].sum().astype(float),
        "refunds_count": g["_refund"].sum().astype(float),
        "disputes_count": g["_dispute"].sum().astype(float),
    })
    out["failed_share"] = out["payments_failed"] / out["payments_count"]
    counted = {"amount_paid": (p["amount"].astype(float), succeeded_like.fillna(False)),
               "amount_refunded": (refunded, refunded > 0)}
    # customers and currencies as numbers: grouping on one integer key is the quick way
    customer, emails = pd.factorize(p["email"], sort=True)  # emails: out.index, in order
    currency, codes = pd.factorize(p["_currency"], sort=True)
    key = customer * max(len(codes), 1) + currency
    per_currency = []
    for field, (amount, counts) in counted.items():
        # one sum per customer and currency, over the payments this amount counts
        mask = counts.to_numpy(bool)
        sums = pd.Series(amount.to_numpy(float)[mask]).groupby(key[mask]).sum()
        who, what = np.divmod(sums.index.to_numpy(), max(len(codes), 1))
        currencies = np.bincount(who, minlength=len(emails))
        total = np.bincount(who, weights=sums.to_numpy(), minlength=len(emails))
        # none counted: nothing paid (or got back); several currencies: no one number
        out[field] = np.where(currencies <= 1, total, np.nan)
        # the one currency of the amount (null: none counted, or several)
        one = np.full(len(emails), None, dtype=object)
        alone = currencies[who] == 1
        one[who[alone]] = np.asarray(codes, dtype=object)[what[alone]]
        out[_currency_of(field)] = pd.array(one, dtype="string")
        # '"EUR": 20.0, "USD": 150.0' per customer (codes sorted, as the key sorts them)
        pairs = ('"' + pd.Series(np.asarray(codes, dtype=object)[what]) + '": '
                 + sums.astype(str).reset_index(drop=True))
        joined = [""] * len(emails)
        for i, pair in zip(who.tolist(), pairs.tolist(), strict=True):
            joined[i] = f"{joined[i]}, {pair}" if joined[i] else pair
        per_currency.append(f'"{field}": {{' + pd.Series(joined, index=out.index) + "}")
    # ``money.PAYMENT_AMOUNTS``: JSON, its keys sorted (MONEY_FEATURES is in that order)
    document = per_currency[0]
    for part in per_currency[1:]:
        document = document + ", " + part
    out[PAYMENT_AMOUNTS] = "{" + document + "}"
    return out[[*PAYMENT_FEATURES, PAYMENT_AMOUNTS, *map(_currency_of, MONEY_FEATURES)]]


def _currency_of(field: str) -> str:
    return f"_{field}_currency"


def snapshot_features(customers: pd.DataFrame, payments: pd.DataFrame | None = None,
                      currency: str | None = None) -> pd.DataFrame:
    """Clean customers plus payment aggregates (by email), ``payment_amounts`` and
    ``payments_matched``. ``currency``: the one the plan catalogue declares, the only one
    the money features are in; without it, the one every customer's amount is in, else
    none (``money_features_currency``)."""
    out = customers.copy()
    if payments is None or payments.empty or "email" not in out:
        for name in PAYMENT_FEATURES:
            out[name] = pd.Series(float("nan"), index=out.index, dtype="float64")
        out[PAYMENT_AMOUNTS] = pd.Series(pd.NA, index=out.index, dtype="string")
        out["payments_matched"] = False
        return out
    agg = payment_aggregates(payments)
    email = out["email"].astype("string").str.strip().str.lower()
    joined = agg.reindex(email.to_numpy())
    for name in PAYMENT_FEATURES:
        out[name] = joined[name].to_numpy()
    for field in MONEY_FEATURES:
        # an amount in another currency than the feature's is not comparable: missing
        code = joined[_currency_of(field)]
        same = code.eq(money_features_currency(code, currency)).fillna(False).to_numpy(bool)
        out[field] = out[field].where(same | code.isna().to_numpy(bool))
    out[PAYMENT_AMOUNTS] = pd.array(joined[PAYMENT_AMOUNTS].to_numpy(), dtype="string")
    out["payments_matched"] = email.isin(agg.index).fillna(False).to_numpy()
    return out


def money_features_currency(codes: pd.Series, declared: str | None) -> str | None:
    """The currency a money feature is in across customers: the declared one, else the one
    currency every customer's amount is in; None when they are in several (none is
    chosen: each of those customers' amounts is set aside)."""
    if declared:
        return declared
    seen = codes.dropna().unique()
    return str(seen[0]) if len(seen) == 1 else None


def money_set_aside(frame: pd.DataFrame, currency: str | None = None) -> pd.DataFrame:
    """One row per customer and money feature left missing for its currency: the payments it
    counts are in several currencies (``several_currencies``), or in another than the one
    the feature is in across customers (``other_currency``; ``currency`` as for
    ``snapshot_features``). Each names the customer, their file and row, the field, each
    currency's amount (``value``: "€20.00 + $150.00"), the currencies and the rule."""
    rows: list[dict] = []
    paying = frame[frame[PAYMENT_AMOUNTS].notna()] if PAYMENT_AMOUNTS in frame else frame[:0]
    named = [c for c in ("customer_id", "email", "_source_file", "_row_number", PAYMENT_AMOUNTS)
             if c in paying]
    for field in MONEY_FEATURES if len(paying) else ():
        # each customer's one currency of this amount ("" when not known; NaN: none, several)
        ones = paying[PAYMENT_AMOUNTS].astype("string").str.extract(
            rf'"{field}": \{{"([A-Z]*)": [^,}}]*\}}', expand=False)
        chosen = money_features_currency(ones, currency)
        seen = ", ".join(sorted(ones.dropna().unique()))
        # the customers snapshot_features left without this amount, though they have one
        for row in paying.loc[paying[field].isna(), named].to_dict("records"):
            by_currency = record_amounts(row).get(field, {})
            if not by_currency:
                continue
            value = amounts_text(by_currency)
            if len(by_currency) > 1:
                rule, why = SEVERAL_CURRENCIES, (
                    f"is in {len(by_currency)} currencies ({value}): amounts in different "
                    "currencies are not added up")
            elif chosen:
                rule, why = OTHER_CURRENCY, (
                    f"is {value}, and the feature is in {chosen}"
                    f"{' (declared in the plan catalogue)' if currency else ''}: amounts in "
                    "different currencies are not compared")
            else:
                rule, why = OTHER_CURRENCY, (
                    f"is {value}, and the customers' amounts are in {seen}: none is the "
                    "feature's currency until the plan catalogue declares one")
            rows.append({
                "customer_id": row.get("customer_id"), "email": row.get("email"),
                "_source_file": row.get("_source_file"), "_row_number": row.get("_row_number"),
                "field": field, "value": value, "currencies": ",".join(sorted(by_currency)),
                "rule": rule, "reason": f"{field} of this customer {why}, so the feature is "
                                        "missing"})
    out = pd.DataFrame(rows, columns=list(SET_ASIDE_COLUMNS))
    return out.astype({c: "Int64" if c == "_row_number" else "string" for c in out.columns})


def snapshot_feature_kinds(profile_features: dict[str, str],
                           frame: pd.DataFrame) -> dict[str, str]:
    """The profile's features, plus the payment aggregates when any customer matched."""
    kinds = dict(profile_features)
    if "payments_matched" in frame and frame["payments_matched"].any():
        kinds.update(PAYMENT_FEATURES)
    return kinds
