"""``atelier doctor`` and ``GET /api/v1/diagnostics``: see :mod:`backend.diagnostics.checks`."""
