"""Validation of client rows with a Great Expectations suite, one batch at a time.

The suite checks what each row must satisfy on its own: a name, an email address of a valid
form, a website URL of a valid form (after normalisation). Uniqueness of the natural key within
the file is checked by `KeyRegistry` across batches, because a file is validated in batches and
an expectation sees one batch only: it would miss duplicates that straddle two batches, and it
would reject every copy, where a person expects the first row to stand and the later ones to be
reported as duplicates of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from .normalise import ClientRecord

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
WEBSITE_PATTERN = r"^https?://(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}(?::[0-9]{1,5})?(?:/\S*)?$"

_REASONS = {
    "name": lambda r: "name is missing",
    "email": lambda r: f"email {r.email!r} is not a valid address",
    "website": lambda r: f"website {r.website_input!r} is not a valid http(s) URL with a domain name",
}


@dataclass(frozen=True)
class Reject:
    row_number: int
    column: str | None
    reason: str
    raw: dict


class _Suite:
    """An ephemeral GX context with one pandas asset and the client suite, built once per process."""

    def __init__(self) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        asset = self.context.data_sources.add_pandas("clients").add_dataframe_asset("client_rows")
        self.batch_definition = asset.add_batch_definition_whole_dataframe("batch")
        self.suite = self.context.suites.add(gx.ExpectationSuite(name="client_rows"))
        self.suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column="name"))
        self.suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_PATTERN))
        self.suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column="website", regex=WEBSITE_PATTERN))

    def failing_rows(self, records: list[ClientRecord]) -> dict[int, list[str]]:
        """row number → the columns whose expectation it fails."""
        import pandas as pd

        frame = pd.DataFrame(
            {
                "name": [r.name for r in records],
                "email": [r.email for r in records],
                "website": [r.website for r in records],
            },
            index=[r.row_number for r in records],
            dtype=object,
        )
        batch = self.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(self.suite, result_format={"result_format": "COMPLETE"})
        failing: dict[int, list[str]] = {}
        for outcome in result.results:
            if outcome.exception_info and outcome.exception_info.get("raised_exception"):
                raise RuntimeError(f"validation could not run: {outcome.exception_info.get('exception_message')}")
            column = outcome.expectation_config.kwargs["column"]
            for row_number in outcome.result.get("unexpected_index_list") or []:
                failing.setdefault(int(row_number), []).append(column)
        return failing


@lru_cache(maxsize=1)
def _suite() -> _Suite:
    return _Suite()


class KeyRegistry:
    """Natural keys seen so far in one file, with the row that first had each."""

    def __init__(self) -> None:
        self._first_row: dict[str, int] = {}

    def claim(self, record: ClientRecord) -> int | None:
        """Record the key; return the earlier row number if the key was already taken."""
        key = record.natural_key
        earlier = self._first_row.setdefault(key, record.row_number)
        return None if earlier == record.row_number else earlier


def validate_batch(records: list[ClientRecord], keys: KeyRegistry) -> tuple[list[ClientRecord], list[Reject]]:
    """Split a batch into valid records and rejects (one reject per row, every problem named)."""
    if not records:
        return [], []
    failing = _suite().failing_rows(records)
    valid: list[ClientRecord] = []
    rejects: list[Reject] = []
    for record in records:
        columns = failing.get(record.row_number)
        if columns:
            reason = "; ".join(_REASONS[c](record) for c in columns)
            rejects.append(Reject(record.row_number, ", ".join(columns), reason, record.raw))
            continue
        earlier = keys.claim(record)
        if earlier is not None:
            what = record.natural_key.split(":", 1)
            label = {"domain": "website domain", "ext": "external id", "name": "name"}[what[0]]
            rejects.append(Reject(record.row_number, "website" if what[0] == "domain" else
                                  ("external_id" if what[0] == "ext" else "name"),
                                  f"duplicate of row {earlier} (same {label} {what[1]!r})", record.raw))
            continue
        valid.append(record)
    return valid, rejects


def warm_up() -> None:
    """Build the suite now (importing Great Expectations takes a few seconds)."""
    _suite()

