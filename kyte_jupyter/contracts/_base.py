"""The base of every contract model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """A shape sent across a boundary: unknown fields are an error, not silently kept.

    In the JSON Schema of what is *sent* (serialization mode), fields with defaults are
    required, since a reply always carries them.
    """

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class TolerantContract(Contract):
    """A shape read from files another version of Kyte may have written: extra fields ignored."""

    model_config = ConfigDict(extra="ignore")


#: An Airflow task-instance or DagRun state string (``"success"``…); ``None`` = no state yet.
#: Kept a plain string so a state a newer Airflow adds does not break a reply.
State = str | None
