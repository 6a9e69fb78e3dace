"""Ground floor: settings, store, business port, audit, masking."""
