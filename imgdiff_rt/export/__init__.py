"""Exporting models (segmenter, CLIP, captioner encoders) to ONNX and TensorRT artifacts."""
