"""The poller: runs Nagios plugins in worker processes and native checks, for its schedulers."""
