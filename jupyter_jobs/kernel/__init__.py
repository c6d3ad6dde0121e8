"""The notebook side of jupyter-jobs: the %%job magic, widgets, and the client they use."""
