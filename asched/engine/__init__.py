"""The engine: the one event loop that owns every piece of mutable scheduler state.

``loop`` arms, dispatches and settles tasks; ``writeback`` keeps the store in
step; ``shared`` coordinates leases with other processes on one store;
``schedules`` turns recurring schedules into tasks; ``intake``, ``registry``
and ``policies`` decide what a task is and how it may run.  The public
:class:`asched.Scheduler` holds an :class:`Engine` and talks to it through its
public methods only.
"""
