"""The ``audiograd`` command line."""
