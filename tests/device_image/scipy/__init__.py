"""scipy as the GPU machine's image has it: not at all (its ~37 MB wheel does not fit beside the tree in the 64 MiB
the device takes). On PYTHONPATH in the GPU scripts' dry runs (conftest.dry_run), so that a demonstration stage
that came to need scipy fails here first."""

raise ImportError("scipy is not on the GPU machine's image (tests/device_image: the dry runs hold the demos to it)")
