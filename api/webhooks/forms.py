"""Form submissions: the body as field -> value, authenticated, checked against a profile.

A form service posts one submission as a JSON object (Formspree and most of its peers) or as
``application/x-www-form-urlencoded``. Field names are the export's column names of the
named lead profile (``email``, ``business_type``, ...). Values are kept as sent: a repeated
form field (checkboxes) becomes a list, written as JSON text in the raw layer.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import msgspec
import pandas as pd

from api.webhooks.config import FormWebhook
from leadscore_core.profiles import Profile, as_text

FORM_ENCODED = "application/x-www-form-urlencoded"
JSON = "application/json"
Scalar = str | int | float | bool | None
_submission = msgspec.json.Decoder(dict[str, Scalar | list[Scalar]])


class Rejected(ValueError):
    """A delivery refused: ``status`` to answer, ``reason`` for the metrics, the message for
    the sender."""

    def __init__(self, status: int, reason: str, message: str,
                 problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.problems = problems


def authenticate(form: FormWebhook, headers: Mapping[str, str], query: Mapping[str, str],
                 body: bytes) -> None:
    """Raise :class:`Rejected` (401) unless the delivery carries the form's secret."""
    given = headers.get(form.header_name) or ""
    if form.auth == "token":
        given = given or query.get("token", "")
        if not given:
            raise Rejected(401, "missing_signature", f"missing {form.header_name} header")
        if not any(hmac.compare_digest(given.encode(), s.encode()) for s in form.secrets):
            raise Rejected(401, "bad_signature", f"wrong {form.header_name}")
        return
    if not given:
        raise Rejected(401, "missing_signature", f"missing {form.header_name} header")
    digest = given.strip().removeprefix("sha256=")
    for secret in form.secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(digest.encode(), expected.encode()):
            return
    raise Rejected(401, "bad_signature",
                   f"{form.header_name} is not the HMAC-SHA256 of the body with this form's "
                   "secret")


def parse_submission(content_type: str, body: bytes) -> dict[str, Any]:
    if content_type == JSON:
        try:
            return _submission.decode(body)
        except msgspec.ValidationError as exc:
            raise Rejected(400, "not_a_submission",
                           f"a submission is a JSON object of field names to values: {exc}"
                           ) from exc
        except msgspec.DecodeError as exc:
            raise Rejected(400, "not_json", f"body is not JSON: {exc}") from exc
    try:
        text = body.decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text),
                          errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(400, "not_form_encoded", f"body is not form-encoded UTF-8: {exc}") from exc
    return {k: v[0] if len(v) == 1 else v for k, v in fields.items()}


def submission_record(profile: Profile, fields: dict[str, Any], received: datetime
                      ) -> tuple[dict[str, Any], dict[str, int]]:
    """The line written for a submission, and the feature values the profile cannot read
    (stored as sent; cleaning quarantines the lead with the field and value).

    Every column the profile names is present (null when the form did not send it), so the
    sealed file is recognised and read as this profile's; a submission without its
    created-time column is dated when it arrived. A submission the profile cannot use (no
    id, an unreadable created time) is refused with 422 naming the field.
    """
    if not fields:
        raise Rejected(422, "invalid_submission", "the submission has no fields")
    # every column the profile names, so the sealed file is read as this profile's
    record: dict[str, Any] = dict.fromkeys((*profile.detect, *profile.missing_columns([])))
    record.update(fields)
    created = profile.created_at.column if profile.created_at else None
    if created and record.get(created) in (None, ""):
        # UTC, written as the exports write a time (no offset): cleaning reads every file's
        # times alike
        record[created] = received.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    text = pd.DataFrame([{k: as_text(v) for k, v in record.items()}], dtype="string")
    typed = profile.resolve(list(record)).type_frame(text)
    if len(typed.problems):
        problems = [{"field": str(p.field), "reason": str(p.rule),
                     "value": None if pd.isna(p.value) else str(p.value)}
                    for p in typed.problems.itertuples()]
        shown = "; ".join(f"{p['field']}: {p['reason']}" for p in problems)
        raise Rejected(422, "invalid_submission",
                       f"not a usable {profile.name} lead: {shown}", problems)
    return record, dict(typed.field_counts)


def delivery_key(headers: Mapping[str, str], body: bytes) -> str:
    """The sender's ``Idempotency-Key`` when given, else the body's SHA-256 (a retry of a
    submission sends the same bytes)."""
    given = headers.get("idempotency-key", "").strip()
    if given:
        return f"key:{given[:200]}"
    return f"sha256:{hashlib.sha256(body).hexdigest()}"
