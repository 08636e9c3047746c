#!/bin/sh
# Prints a deploy/.env of fresh secrets (32 random bytes in hex each: BACKUP_ENCRYPTION_KEY needs
# exactly that) for compose.yaml: sh compose-secrets.sh > .env
set -eu
for name in REDIS_QUEUE_APP_PASSWORD REDIS_CACHE_APP_PASSWORD REDIS_REPLICA_PASSWORD \
  REDIS_SENTINEL_PASSWORD REDIS_ADMIN_PASSWORD REDIS_KEDA_PASSWORD REDIS_BACKUP_PASSWORD POSTGRES_PASSWORD ADMIN_TOKEN \
  BACKUP_HMAC_KEY BACKUP_ENCRYPTION_KEY GRAFANA_ADMIN_PASSWORD; do
  echo "$name=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
done
