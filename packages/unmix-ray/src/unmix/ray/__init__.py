"""unmix-ray: `unmix catalogue` separates a whole catalogue on a Ray cluster, resumable and with nothing lost.

- `catalogue.py`: the driver, `separate_catalogue`: lists the songs, skips the finished ones, hands the others
  to workers, retries, publishes stems and keeps the records.
- `workers.py`: the Ray actor that loads the engine once and separates the songs handed to it.
- `records.py`: the per-song records and the summary CSV kept in the output folder.
- `manifest.py`: the songs behind a folder, a glob or a manifest file.
- `catalogue_command.py`: the thin command over `separate_catalogue`.

Nothing is imported here: every `unmix` command loads the plugin module inside this package, so Ray and
NumPy are imported only when a catalogue runs. From Python: `from unmix.ray.catalogue import separate_catalogue`.
"""
