#!/bin/sh
# Prints a deploy/.env of fresh secrets for compose.yaml: sh compose-secrets.sh > .env
set -eu
for name in REDIS_QUEUE_APP_PASSWORD REDIS_CACHE_APP_PASSWORD REDIS_REPLICA_PASSWORD \
  REDIS_SENTINEL_PASSWORD REDIS_ADMIN_PASSWORD REDIS_KEDA_PASSWORD POSTGRES_PASSWORD ADMIN_TOKEN; do
  echo "$name=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
done
