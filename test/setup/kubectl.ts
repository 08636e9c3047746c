/** kubectl for the deploy tests (test/deploy/kustomize.ts renders deploy/k8s with it). */
import { aptInstall, onPath } from './install.js';
import { type Found, fromVariable, type Say, versionOf } from './tools.js';

/**
 * kubectl, whose embedded kustomize renders deploy/k8s (test/deploy): KUBECTL_BIN when set, else
 * PATH, else Debian's package `kubernetes-client` (kubectl 1.20, kustomize v2: the only kubectl in
 * Debian's repositories; npm has no maintained kubectl or kustomize binary package).
 */
export function findKubectl(say: Say): Found {
  let path = fromVariable('KUBECTL_BIN', 'kubectl');
  let how = 'KUBECTL_BIN';
  if (path === undefined) {
    path = onPath('kubectl');
    how = 'on PATH';
  }
  if (path === undefined) {
    aptInstall('kubernetes-client', 'kubectl: not on PATH, KUBECTL_BIN unset', say);
    path = onPath('kubectl') ?? '/usr/bin/kubectl';
    how = 'installed now with apt-get';
  }
  process.env.KUBECTL_BIN = path;
  return {
    path,
    how,
    version: versionOf(path, ['version', '--client'], /(?:Client Version: |GitVersion:")(v[\w.+-]+)/),
  };
}
