"""The receiver: the front door for passive results and external commands."""
