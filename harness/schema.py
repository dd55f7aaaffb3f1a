"""Record validation against ``record.schema.json`` (jsonschema, Draft 2020-12)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import jsonschema

from .errors import FactoryError


class RecordInvalid(FactoryError):
    pass


@lru_cache(maxsize=1)
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(resources.files("harness").joinpath("record.schema.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_record(record: dict) -> None:
    """Raise :class:`RecordInvalid` naming the record and every violation."""
    errors = sorted(validator().iter_errors(record), key=lambda e: list(e.absolute_path))
    if errors:
        where = record.get("id", "?") if isinstance(record, dict) else "?"
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:10]]
        raise RecordInvalid(f"record {where} violates the schema:\n  " + "\n  ".join(lines))
