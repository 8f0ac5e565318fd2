"""What every network engine shares: a pool of upstreams (least outstanding, backoff, probes:
pool.py) owned with its health, listing and closing by one transport-neutral component
(pooled.py), and the HTTP plumbing on top (http_client.py: client and typed errors; http.py:
the base of the HTTP engines)."""
