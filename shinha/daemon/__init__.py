"""The runtime every daemon shares: process entry, state dir, tasks, peers, HTTP, metrics."""
