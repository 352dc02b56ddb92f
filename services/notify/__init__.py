"""The notify service: access links, the result-ready SMS, delivery receipts."""
