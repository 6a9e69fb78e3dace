"""Entry points: the `hotline` CLI and the wiring of `hotline serve`."""
