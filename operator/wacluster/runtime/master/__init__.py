"""`wacluster master`: campaigns for the master Lease; every master heartbeats every coreapp;
the primary reads the world once per cycle, decides once (domain/ha.py), acts with fenced
writes and logs one sentence saying what it did and why.

A module per concern: `leadership` (the Lease election and the term the database fences with),
`heartbeats` (every master pings every coreapp), `world` (reading the World `decide` judges),
`actions` (carrying out what was decided), `settings_sync` (the operator's settings file into
the database), `status` (publishing the shard map), `loop` (the Master and its cycle) and
`command` (the `wacluster master` entry point).
"""

from wacluster.runtime.master.command import add_parser, run
from wacluster.runtime.master.loop import Master

__all__ = ["Master", "add_parser", "run"]
