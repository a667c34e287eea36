"""How every wacluster process writes its log: text for people on call (the one-sentence decisions
as they read today), or JSON for log pipelines (`spec.logFormat: json`, Env.LOG_FORMAT).

It sits with the API because the JSON keys are a contract with whoever parses the lines, and
because both the operator (controller) and the roles (runtime) use it, which import nothing of
each other.

A JSON line always carries the same keys: ts, level, logger, message, cluster, role, pod (null
where a process has none). A log call adds shard, epoch, term or message_id through `extra=`
(`log.info("...", shard, extra={"shard": shard})`); the text line stays the sentence alone, so the
fields never clutter what a person reads.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os

from wacluster.api.interprocess import Env

TEXT = "text"
JSON = "json"
LOG_FORMATS = (TEXT, JSON)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Keys a log call may pass in `extra=`; each appears in the JSON line only when the call gives it.
RECORD_FIELDS = ("shard", "epoch", "term", "message_id")


class JsonFormatter(logging.Formatter):
    """One JSON object a line; the process's identity (cluster, role, pod) on every line."""

    def __init__(self, role: str, cluster: str | None, pod: str | None) -> None:
        super().__init__()
        self.identity = {"cluster": cluster, "role": role, "pod": pod}

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **self.identity,
        }
        for key in RECORD_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes the newlines of a traceback: a record stays one line.
        return json.dumps(line, ensure_ascii=False, default=str)


def chosen_format(flag: str | None = None) -> str:
    """The format a flag names, else Env.LOG_FORMAT, else text; an unknown name is an error."""
    name = (flag or os.environ.get(Env.LOG_FORMAT) or TEXT).strip().lower()
    if name not in LOG_FORMATS:
        raise ValueError(f"unknown log format {name!r}: use one of {', '.join(LOG_FORMATS)} "
                         f"({Env.LOG_FORMAT} or --log-format)")
    return name


def formatter(role: str, log_format: str) -> logging.Formatter:
    """The formatter of `log_format` for a process of `role`, identified from its environment."""
    if log_format == JSON:
        return JsonFormatter(role, os.environ.get(Env.CLUSTER) or None, os.environ.get(Env.POD_NAME) or None)
    return logging.Formatter(TEXT_FORMAT)
