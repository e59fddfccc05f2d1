"""The room rehearsal: many learners running the course at once on one real JupyterHub.

``python -m lab_helpers rehearse --learners N`` starts a JupyterHub on 127.0.0.1 in a
temporary folder, gives each learner a home of their own with a copy of the notebooks,
and runs the chosen notebooks in every learner's own Jupyter server at once, the way a
browser does it: the server's REST API opens a session, and the kernel's websocket
executes the cells. It then prints what an instructor needs to size a host: who
completed, which cell failed and why, time per notebook, memory and CPU per learner,
and anything left behind after everything stopped.

- ``plan``: what to run (learners, notebooks, stagger), checked before anything starts
- ``hub``: the JupyterHub, its configuration and its REST API
- ``kernel_socket``: a kernel driven over jupyter_server's websocket protocol
- ``learner``: one learner's run through the notebooks
- ``monitor``: memory and CPU of every process the hub starts; what was left behind
- ``report``: the figures, as text or JSON
- ``command``: the ``rehearse`` subcommand

This package is for instructors and CI, never imported by the notebooks. Importing
``command`` (which ``python -m lab_helpers`` does to list its subcommands) loads no
JupyterHub, tornado or psutil: the rest is imported only when a rehearsal runs.
"""
