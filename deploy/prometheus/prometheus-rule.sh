#!/bin/sh
# Writes deploy/k8s/base/prometheus-rule.yaml: deploy/prometheus/rules.yaml as a PrometheusRule
# (prometheus-operator), its `groups` under `spec`. Run after changing rules.yaml;
# test/deploy/k8s.test.ts fails while the two differ.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../k8s/base/prometheus-rule.yaml"
{
  echo '# Generated from deploy/prometheus/rules.yaml by deploy/prometheus/prometheus-rule.sh: edit those.'
  echo 'apiVersion: monitoring.coreos.com/v1'
  echo 'kind: PrometheusRule'
  echo 'metadata:'
  echo '  name: cachefleet'
  echo '  labels: {app.kubernetes.io/name: cachefleet, app.kubernetes.io/component: rules}'
  echo 'spec:'
  grep -v '^#' "$here/rules.yaml" | sed 's/^\(.\)/  \1/'
} >"$out"
