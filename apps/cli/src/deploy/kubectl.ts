import { execFile } from 'node:child_process';
import { CliError } from '../errors.js';

/**
 * The kubectl verbs `cachefleet deploy` runs, behind one interface: the render is always the real
 * kubectl (offline), the cluster-side verbs (apply, rollout status, rollout undo) talk to the
 * cluster of the current context. Tests on machines without a cluster replace only those.
 */
export interface ClusterVerbs {
  /** `kubectl apply -f -` with the rendered YAML on stdin; returns kubectl's lines. */
  apply(yaml: string): Promise<string>;
  /** `kubectl rollout status <kind>/<name> -n <ns> --timeout=<s>s`; rejects when it does not finish. */
  rolloutStatus(kind: string, name: string, namespace: string, timeoutSeconds: number): Promise<void>;
  /** `kubectl rollout undo deployment/<name> -n <ns>`. */
  rolloutUndo(kind: string, name: string, namespace: string): Promise<void>;
}

export interface Kubectl extends ClusterVerbs {
  /** The kubectl binary, for messages. */
  readonly bin: string;
  /** `kubectl kustomize <dir>`: the rendered YAML. */
  kustomize(dir: string): Promise<string>;
}

function kubectlRun(
  bin: string,
  args: readonly string[],
  input?: string,
  timeoutMs = 60_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      bin,
      args,
      { timeout: timeoutMs, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        if (error === null) return resolve(stdout);
        const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
        reject(
          new CliError(
            missing ? 'E_CLI_USAGE' : 'E_CLI_DEPLOY',
            missing
              ? `KUBECTL_BIN: ${bin} not found (set KUBECTL_BIN or put kubectl on PATH)`
              : `kubectl ${args.join(' ')}: ${(stderr || error.message).trim()}`,
            { cause: error },
          ),
        );
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** The real kubectl: KUBECTL_BIN, else `kubectl` on PATH. */
export function realKubectl(bin: string): Kubectl {
  return {
    bin,
    kustomize: (dir) => kubectlRun(bin, ['kustomize', dir]),
    apply: (yaml) => kubectlRun(bin, ['apply', '-f', '-'], yaml),
    rolloutStatus: async (kind, name, namespace, timeoutSeconds) => {
      await kubectlRun(
        bin,
        [
          'rollout',
          'status',
          `${kind.toLowerCase()}/${name}`,
          '-n',
          namespace,
          `--timeout=${timeoutSeconds}s`,
        ],
        undefined,
        (timeoutSeconds + 30) * 1000,
      );
    },
    rolloutUndo: async (kind, name, namespace) => {
      await kubectlRun(bin, ['rollout', 'undo', `${kind.toLowerCase()}/${name}`, '-n', namespace]);
    },
  };
}
