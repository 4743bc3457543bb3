"""The scheduler: the state machine and check timetable of one part of the configuration."""
