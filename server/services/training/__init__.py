"""Training jobs: the job records (:mod:`.jobs`), worker tokens (:mod:`.tokens`), the training
set handed to workers (:mod:`.dataset`), the backends that run workers (:mod:`.backends`:
``local`` and ``kubernetes``) and the manager that drives them (:mod:`.manager`).

The server never imports torch or ``waferdesk.ml``: training runs in the worker
(``python -m waferdesk.worker``), a separate process that talks to the server over HTTP.
"""
