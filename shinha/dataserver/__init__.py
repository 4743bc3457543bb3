"""The data-server's storage: current states, check results, events, behind one interface."""
