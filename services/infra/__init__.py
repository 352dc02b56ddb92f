"""Plumbing every service uses: settings, logging, broker, MongoDB, file store, report state."""
