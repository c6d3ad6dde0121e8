"""The JupyterHub service of jupyter-jobs (:mod:`.app`) and the per-user forwarder to it (:mod:`.forward`)."""
