"""Development tools: the local process launcher, `resultflow run`, demo data, the admin HTTP
client the benchmark and end-to-end tests drive, the default template's generator. Not shipped
in the service image."""
