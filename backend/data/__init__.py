"""Your work, in open formats: exports, imports and backups of the library (see docs/data.md)."""
