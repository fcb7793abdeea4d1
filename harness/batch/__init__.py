"""Batches: many ideas at once, on this machine (a process per idea) or on a Ray cluster.

The expensive resource is the device an experiment runs on, not the agent: an agent
spends most of its time waiting for the model. So an idea holds a device slot only while
one of its experiment or plot processes runs (slots.py), and more ideas are worked on at
once than there are slots (scheduler.py). Each idea runs in its own worker process
(worker.py) exactly as a single idea would; a crash there takes down only that idea.
"""
