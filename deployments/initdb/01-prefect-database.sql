-- The Prefect server keeps its own state (flow runs, deployments, logs, events) in a database of
-- its own on the same PostgreSQL: PREFECT_API_DATABASE_CONNECTION_URL in compose.yaml points here.
CREATE DATABASE prefect;
