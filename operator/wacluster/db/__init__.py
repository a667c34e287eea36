"""PostgreSQL adapters (psycopg 3, async, pooled): the only modules that speak SQL."""
