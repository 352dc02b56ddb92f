#!/usr/bin/env bash
# compose's `mongodb-init`, as root, on every `up`: makes the one-node replica set (once),
# waits for it to elect itself primary, then creates or updates the per-service roles and
# users (init-users.js, generated from services/infra/database_access.py).
set -euo pipefail
as_root() {
  mongosh --host mongodb --quiet --authenticationDatabase admin \
    -u "$MONGODB_ROOT_USER" -p "$MONGODB_ROOT_PASSWORD" "$@"
}
as_root --eval 'try { rs.status() } catch (e) {
  rs.initiate({_id: "rs0", members: [{_id: 0, host: "mongodb:27017"}]}) }'
as_root --eval 'for (let i = 0; !db.hello().isWritablePrimary; i++) {
  if (i > 60) { print("no primary after 60 s"); quit(1) } sleep(1000) }'
as_root /deploy/init-users.js
