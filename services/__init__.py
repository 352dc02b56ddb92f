"""ResultFlow services: ingest, render, convert, notify, gateway, and their shared infra."""
