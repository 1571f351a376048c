"""Triton Inference Server: model repository generation, a local server harness and the ``triton`` client
backend. Heavy pieces (tritonclient, the server environment) are imported on use."""
