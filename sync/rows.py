"""Wire models <-> local store rows.

The mirror tables carry the wire models' fields one to one (see localstore.models),
so the conversion is by column name; kept in one place so BOD sync, the live
mirror and the local readers agree."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import inspect
from sqlalchemy.orm import Mapper

from contract import wire
from localstore.models import (
    ClientLimitRow,
    ClientRow,
    InstrumentRow,
    OrderRow,
    PositionRow,
    RecordSource,
    TradeRow,
)

_COLUMNS: dict[type, frozenset[str]] = {}

M = TypeVar("M", bound=BaseModel)


def _columns(row_cls: type) -> frozenset[str]:
    cols = _COLUMNS.get(row_cls)
    if cols is None:
        mapper: Mapper[Any] = inspect(row_cls)
        keys: list[str] = [prop.key for prop in mapper.column_attrs]
        cols = _COLUMNS[row_cls] = frozenset(keys)
    return cols


def to_row_values(model: BaseModel, row_cls: type, **extra: Any) -> dict[str, Any]:
    """Column values for ``row_cls`` taken from a wire model (Python-mode values)."""
    cols = _columns(row_cls)
    values = {k: v for k, v in model.model_dump().items() if k in cols}
    values.update(extra)
    return values


def to_model(row: Any, model_cls: type[M]) -> M:
    """A wire model from a store row (extra columns such as ``source`` are ignored)."""
    return model_cls.model_validate({k: getattr(row, k) for k in _columns(type(row))})


ROW_OF = {
    wire.Instrument: InstrumentRow,
    wire.Client: ClientRow,
    wire.ClientLimit: ClientLimitRow,
    wire.Position: PositionRow,
    wire.Order: OrderRow,
    wire.Trade: TradeRow,
}

__all__ = ["ROW_OF", "RecordSource", "to_model", "to_row_values"]
