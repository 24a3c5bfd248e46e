"""Dispatch: claiming deliveries, recording outcomes, the arq queue, jobs and worker, the
channels a worker runs, and the embedded Redis."""
