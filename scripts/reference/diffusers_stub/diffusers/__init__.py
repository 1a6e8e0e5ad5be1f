# Stand-in package root: only diffusers.schedulers (copied in by make_scheduler_traces.py) is used.
