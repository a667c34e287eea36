"""Whether an owned object needs a server-side apply: what this operator process last applied,
against the desired object now and what the watches have since seen of the live one.

An apply is skipped only when all three agree: the desired object hashes as it did when we last
applied it, and no other field manager has changed the live object since (its entries in
`metadata.managedFields`, status writes aside, are what they were in our apply's answer). A
deleted object is forgotten, so it is applied again. A fresh process knows nothing and applies
once, unless a watch has already shown it the object as we left it (our hash annotation, and no
other manager's change at or after our last apply).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal, Mapping

# On every object the operator applies: the hash of the desired object, so a restarted operator
# recognises an object it already applied without applying it again.
APPLIED_HASH_ANNOTATION = "wacluster.io/applied-hash"

ApplyReason = Literal["never-applied", "deleted", "desired-changed", "changed-by-others", "refresh"]
ObjectKey = tuple[str, str, str]  # (kind, namespace, name)
# The safety net under the watches: an object is applied at least this often even when nothing
# seems changed (at 50 clusters, about one apply every 5 s).
REFRESH_SECONDS = 3600.0


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace") or "", meta["name"])


def desired_hash(obj: Mapping[str, Any], namespace: str, owner: Mapping[str, Any] | None) -> str:
    """A digest of everything an apply of `obj` would send."""
    text = json.dumps({"object": obj, "namespace": namespace, "owner": owner}, sort_keys=True,
                      separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def others_changes(live: Mapping[str, Any], field_manager: str) -> tuple:
    """The other field managers' entries of `live` (status writes aside, which never touch what
    we apply): who, how, when and which fields. Any change here is someone else's edit."""
    entries = []
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == field_manager or entry.get("subresource") == "status":
            continue
        fields = json.dumps(entry.get("fieldsV1"), sort_keys=True)
        entries.append((entry.get("manager") or "", entry.get("operation") or "", entry.get("subresource") or "",
                        entry.get("time") or "", hashlib.sha256(fields.encode()).hexdigest()[:16]))
    return tuple(sorted(entries))


def _our_apply_time(live: Mapping[str, Any], field_manager: str) -> str | None:
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("manager") == field_manager and entry.get("operation") == "Apply" \
                and entry.get("subresource") in (None, ""):
            return entry.get("time") or ""
    return None


def apply_reason(desired: str, applied: str | None, others_after_apply: tuple | None,
                 others_seen: tuple | None, age: float = 0.0) -> ApplyReason | None:
    """Why the object must be applied now, or None to skip it. `applied` is the hash we last
    applied (None: never, as far as this process knows); `others_after_apply` the other managers'
    entries in our apply's answer, `others_seen` the same in the latest live object a watch showed;
    `age` the seconds since that apply: past REFRESH_SECONDS it is applied anyway, in case a
    watch event was lost."""
    if applied is None:
        return "never-applied"
    if desired != applied:
        return "desired-changed"
    if others_seen != others_after_apply:
        return "changed-by-others"
    if age >= REFRESH_SECONDS:
        return "refresh"
    return None


@dataclass
class _Applied:
    desired_hash: str
    others_after_apply: tuple
    others_seen: tuple
    at: float  # when applied (or adopted), on the caller's monotonic clock


class ApplyMemory:
    """What this process applied and last saw of each owned object, and each cluster's desired
    set at its last complete prune. Memory only: a restart costs at most one apply per object."""

    def __init__(self, field_manager: str) -> None:
        self.field_manager = field_manager
        self._applied: dict[ObjectKey, _Applied] = {}
        self._deleted: set[ObjectKey] = set()
        self._pruned: dict[tuple[str, str], frozenset] = {}

    def reason(self, key: ObjectKey, desired: str, now: float) -> ApplyReason | None:
        """Why `key` needs an apply of the desired object hashed `desired`; None: skip it."""
        known = self._applied.get(key)
        if known is None:
            return "deleted" if key in self._deleted else apply_reason(desired, None, None, None)
        return apply_reason(desired, known.desired_hash, known.others_after_apply, known.others_seen,
                            now - known.at)

    def applied(self, key: ObjectKey, desired: str, live: Mapping[str, Any], now: float) -> None:
        """Our apply of `desired` succeeded; `live` is the API server's answer."""
        others = others_changes(live, self.field_manager)
        self._applied[key] = _Applied(desired, others, others, now)
        self._deleted.discard(key)

    def seen(self, key: ObjectKey, live: Mapping[str, Any], now: float) -> None:
        """A watch showed the live object. An object we have no record of is adopted when it is
        exactly as we left it, so a restarted operator does not apply it again."""
        known = self._applied.get(key)
        others = others_changes(live, self.field_manager)
        if known is not None:
            known.others_seen = others
            return
        meta = live.get("metadata") or {}
        stamped = (meta.get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
        ours = _our_apply_time(live, self.field_manager)
        if not stamped or ours is None:
            return
        if any(time >= ours for _, _, _, time, _ in others):
            return  # changed by someone at or after our last apply: let the next pass apply it
        self._applied[key] = _Applied(stamped, others, others, now)

    def deleted(self, key: ObjectKey, cluster_alive: bool = True) -> None:
        """A watch saw the object deleted: the next pass applies it again. The children of a
        deleted cluster (`cluster_alive` False) are simply forgotten."""
        if self._applied.pop(key, None) is not None and cluster_alive:
            self._deleted.add(key)

    def prune_needed(self, namespace: str, cluster: str, wanted: frozenset) -> bool:
        """Whether a prune can find anything: not when the desired set is the one last pruned to."""
        return self._pruned.get((namespace, cluster)) != wanted

    def pruned(self, namespace: str, cluster: str, wanted: frozenset) -> None:
        """A prune left nothing undesired behind (nothing kept back, such as a running Job)."""
        self._pruned[(namespace, cluster)] = wanted

    def forget_cluster(self, namespace: str, cluster: str) -> None:
        """The cluster is gone: drop what was kept of it."""
        self._pruned.pop((namespace, cluster), None)
