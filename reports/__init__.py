"""Supervisor reports: the figures of a period (`report`), its renderers (`render`)."""
