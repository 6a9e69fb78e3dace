"""Supervisor reports: KPI queries and renderers (issue 5)."""
