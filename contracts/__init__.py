"""ResultFlow message contracts: the only definition of every message and of the queues.

Pure data, no I/O. Each version lives in its own module (`v1`); the RabbitMQ topology in
`topology`. `resultflow contracts export DIR` writes their JSON Schema and AsyncAPI document.
"""
