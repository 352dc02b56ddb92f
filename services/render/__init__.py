"""Render: fill the lab's Word template for one report (docxtpl, sandboxed Jinja)."""
