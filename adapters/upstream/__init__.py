"""What every network engine shares: a pool of upstreams (least outstanding, backoff, probe)
and the HTTP plumbing (timeouts, typed errors, incremental audio decoding)."""
