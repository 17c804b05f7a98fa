"""The parts :class:`asched.Scheduler` is made of, grouped by concern.

``assembly`` builds the engine and its collaborators from the configuration;
``recurring`` and ``observing`` hold the public methods for recurring schedules
and for watching the scheduler.  Import :class:`~asched.Scheduler` from
``asched``; nothing here is meant to be used on its own.
"""
