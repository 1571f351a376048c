"""Runtime sessions (torch, ONNX Runtime, TensorRT, Triton) behind one named-dict interface."""
