"""The plan catalogue: which plan a payment bought, and the price list the API shows.

A payment's amount (in the currency's major unit) is matched against each plan's monthly
price, and against price + setup fee for a first month charged together with the setup.
No Dagster imports here: the API reads the same catalogue.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from leadscore_core.money import Currency, iso_code, plan_price_currency

SHIPPED_CATALOGUE = Path(__file__).with_name("plans.yaml")


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    monthly_price: Decimal = Field(gt=0)


class PlanCatalogue(BaseModel):
    """Plans with their monthly prices, in one currency, plus the one-off setup fee.

    Without a declared ``currency`` the prices hold in any currency, and the payments they
    matched say which (``leadscore_core.money``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    currency: str | None = Field(None, description="ISO code; None: prices hold in any currency")
    setup_fee: Decimal = Field(Decimal(0), ge=0)
    plans: list[Plan]

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return iso_code(value)

    @field_validator("plans")
    @classmethod
    def _distinct_prices(cls, plans: list[Plan]) -> list[Plan]:
        prices = [p.monthly_price for p in plans]
        if len(set(prices)) != len(prices):
            raise ValueError("two plans share a monthly price: a payment could not be matched")
        return plans

    @classmethod
    def load(cls, path: Path | None = None) -> PlanCatalogue:
        """The catalogue at ``path`` (``settings.plan_catalogue_path``) or the shipped one."""
        path = path or SHIPPED_CATALOGUE
        try:
            return cls.model_validate(yaml.safe_load(Path(path).read_text()))
        except Exception as exc:  # a broken catalogue must say which file
            raise ValueError(f"plan catalogue {path}: {exc}") from exc

    def match(self, amount: Decimal | float | str | None,
              currency: str | None) -> tuple[str | None, bool]:
        """``(plan name, setup fee included)`` for a payment, or ``(None, False)``.

        ``(None, True)`` is the setup fee charged on its own.

        When the catalogue names a currency, only payments in it are matched: a price in
        another currency means nothing without an exchange rate.
        """
        if amount is None:
            return None, False
        if self.currency and (currency or "").strip().upper() != self.currency:
            return None, False
        value = Decimal(str(amount))
        if self.setup_fee and value == self.setup_fee:
            return None, True  # the setup fee charged on its own
        for plan in self.plans:
            if value == plan.monthly_price:
                return plan.name, False
        if self.setup_fee:
            for plan in self.plans:
                if value == plan.monthly_price + self.setup_fee:
                    return plan.name, True
        return None, False

    def price_list(self, currency: Currency | None = None) -> list[dict[str, object]]:
        """Plans with their monthly price and first-month price (with the setup fee), in
        ``currency`` (``money.plan_price_currency``; default: the declared one, if any)."""
        currency = currency or plan_price_currency(self.currency, None)
        return [
            {"plan": p.name, "monthly_price": p.monthly_price,
             "first_month_price": p.monthly_price + self.setup_fee,
             "currency": currency.code, "currencies": list(currency.codes)}
            for p in self.plans
        ]
