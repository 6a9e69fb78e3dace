"""The web console for agents and supervisors (issue 3)."""
