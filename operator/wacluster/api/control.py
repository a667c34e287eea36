"""The coreapp's control port (Port.CONTROL), as webapps and masters call it: the bodies both
sides build from these models, so they cannot drift apart.

`POST /messages` hands a batch of stored messages to the owner of their shard. Only the ids
matter: the coreapp sends what the database holds for each id, and only the rows it could claim
(queued, in that shard, owned by it at its epoch). Answers: 202 `HandOffAccepted` (the batch is
durable and in the right hands, whether this owner sends each message or another does), 400
(malformed body), 409 (not the serving owner of that shard), 503 (no room or no database right
now; retry). Errors use the API's error shape (`wacluster.api.errors`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_HAND_OFF = 1000  # messages in one POST /messages


class HandedMessage(BaseModel):
    # Earlier webapps also sent the recipient and body; they are ignored: the row is the truth.
    model_config = ConfigDict(extra="ignore")

    id: str = Field(..., min_length=1, max_length=128, strict=True)


class HandOff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shard: int = Field(..., ge=0, strict=True, description="The shard the webapp routed the batch to.")
    messages: list[HandedMessage] = Field(..., min_length=1, max_length=MAX_HAND_OFF)


class HandOffAccepted(BaseModel):
    accepted: list[str] = Field(..., description="Every id of the batch.")
    claimed: list[str] = Field(..., description="The ids this owner claimed now and will send.")


class Heartbeat(BaseModel):
    """GET /heartbeat: what a master learns from a coreapp."""

    name: str
    node_id: str
    serving: bool
    shard: int | None
    epoch: int | None
    stopping: bool
    state: str


class HandoffRequest(BaseModel):
    """POST /handoff: the primary master asks the owner of (shard, epoch) for a planned handoff
    (a fenced coreapp, a switchover); the coreapp drains, releases the shard and stands by."""

    model_config = ConfigDict(extra="forbid")

    shard: int = Field(ge=0)
    epoch: int = Field(ge=0)
    reason: str = Field(max_length=500)
