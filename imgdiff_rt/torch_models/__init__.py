"""The PyTorch modules each exported graph comes from (Hugging Face CLIP/BLIP/LLaVA, Ultralytics YOLOv8-seg),
built from real weights, ``--random-init`` or ``--tiny``. The only floor besides export and runtime backends
that imports torch; ``models`` (the contract) never does."""
