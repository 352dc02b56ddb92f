"""Convert: a rendered report's .docx to PDF through a warm LibreOffice owned by the worker."""
