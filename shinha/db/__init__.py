"""The MariaDB layer: the one boundary where asyncmy is used (connections, node probes,
replication administration). Everything above it sees our own models and exceptions."""
