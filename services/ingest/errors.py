"""Ingest's error for a sheet that cannot be read as a whole; light enough for the reader
subprocess to import."""


class SheetError(ValueError):
    """The sheet as a whole cannot be read (wrong file, missing columns)."""
