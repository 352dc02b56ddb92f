#!/usr/bin/env bash
# compose's `mongodb` entrypoint: writes the replica set's key file from MONGODB_REPLICA_KEY,
# then hands over to the image's own entrypoint (which makes the root user on a first start).
# Replica set members authenticate to each other with the key; with it MongoDB also requires
# every client to authenticate.
set -euo pipefail
key_dir=/run/mongodb
mkdir -p "$key_dir"
printf '%s' "$MONGODB_REPLICA_KEY" > "$key_dir/replica.key"
unset MONGODB_REPLICA_KEY
chown -R mongodb:mongodb "$key_dir"
chmod 400 "$key_dir/replica.key"  # mongod refuses a key file others can read
exec docker-entrypoint.sh "$@"
