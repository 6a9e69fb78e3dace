"""Casework: work orders (departments, deadlines on the working-day calendar, escalation,
follow-up), the policy knowledge base, and quality scores of recorded calls. Imports only `core`."""
