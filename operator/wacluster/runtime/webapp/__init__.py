"""`wacluster webapp`: the REST API, routed by the shard map."""
