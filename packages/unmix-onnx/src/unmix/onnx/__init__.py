"""unmix-onnx: exported models that separate on onnxruntime alone, and `unmix export` that writes them.

- `export.py`: `unmix export --run-folder RUN --format onnx`: the run's network as an ONNX graph
  (written by its backend), with everything needed to separate with it in the file's metadata.
- `runtime.py`: the `onnxruntime` runtime that `unmix predict --model FILE.onnx` and
  `unmix.core.api.create_engine(FILE.onnx)` use; it imports no deep-learning framework.
- `spectrogram.py`: the STFT and its inverse in NumPy, for waveform models whose graph stops at them.
- `metadata.py`: the keys of that metadata.
"""
