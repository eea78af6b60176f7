"""How a message comes in: webhooks, what arrives made safe, the ingest's commit, the work
queue and the worker."""
