"""The scheduler: ECS-style task definitions, services and tasks placed on local workers.

    taskdef.py    task definitions (ECS JSON), validation by JSON pointer
    placement.py  filters and strategies: which worker takes a task, and why not the others
    reconcile.py  a service's next step (scale, roll out a new definition)
    backoff.py    restart backoff for failing tasks

docs/scheduler.md explains the concepts and how they map to Amazon ECS.
"""
