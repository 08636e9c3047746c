/**
 * Renders the kustomize overlays of deploy/k8s offline, with every kustomize this machine has.
 *
 * - The set-up's kubectl (test/setup/kubectl.ts findKubectl: `KUBECTL_BIN`, else PATH, else Debian's
 *   package installed with apt-get), handed over in `KUBECTL_BIN`: on developers' machines usually
 *   kubectl >= 1.21, which embeds kustomize v4/v5.
 * - Debian's `kubernetes-client` (kubectl 1.20, kustomize v2.0.3): the only kubectl a fresh
 *   machine gets from Debian's packages. Fetched once with `apt-get download` and unpacked with
 *   `dpkg -x` into ~/.cache/cachefleet (nothing is installed system-wide); used whenever apt-get is
 *   there, so the overlays keep rendering on a machine that has only it.
 *
 * Without the first (a run that skipped the set-up), rendering fails with one line saying how to get one.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { onPath } from '../setup/install.js';

const run = promisify(execFile);

interface Kustomizer {
  /** Where it came from, for messages: `KUBECTL_BIN` or `debian`. */
  readonly source: string;
  readonly kubectl: string;
  /** `kubectl version --client` in one line. */
  readonly version: string;
}

const HOW_TO_GET_KUBECTL =
  'no kubectl to render deploy/k8s: set KUBECTL_BIN=/path/to/kubectl or put kubectl on PATH, or run ' +
  'apt-get install -y kubernetes-client (the test set-up does that when it runs as root)';

const CACHE = join(
  process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'),
  'cachefleet',
  'kubernetes-client',
);
const DEBIAN_KUBECTL = join(CACHE, 'usr', 'bin', 'kubectl');

async function describe(source: string, kubectl: string): Promise<Kustomizer> {
  const { stdout } = await run(kubectl, ['version', '--client'], { timeout: 10_000 });
  return { source, kubectl, version: stdout.trim().replace(/\s+/g, ' ') };
}

/** Debian's kubectl, fetched into the cache on first use; undefined without apt-get and dpkg. */
async function debianKubectl(): Promise<string | undefined> {
  if (existsSync(DEBIAN_KUBECTL)) return DEBIAN_KUBECTL;
  if (onPath('apt-get') === undefined || onPath('dpkg') === undefined) return undefined;
  const work = await mkdtemp(join(tmpdir(), 'cachefleet-kubectl-'));
  try {
    const download = () =>
      run('apt-get', ['download', '-qq', 'kubernetes-client'], { cwd: work, timeout: 120_000 });
    try {
      await download();
    } catch (error) {
      // A new machine may have no package lists yet; only root can fetch them.
      if (process.getuid?.() !== 0) throw error;
      await run('apt-get', ['update', '-qq'], { timeout: 300_000 });
      await download();
    }
    const deb = (await readdir(work)).find((f) => f.endsWith('.deb'));
    if (deb === undefined) throw new Error('apt-get download kubernetes-client left no .deb');
    await run('dpkg', ['-x', join(work, deb), join(work, 'root')]);
    await mkdir(dirname(CACHE), { recursive: true });
    await rm(CACHE, { recursive: true, force: true });
    await rename(join(work, 'root'), CACHE).catch((error: Error) => {
      // Another test run unpacked it at the same moment: theirs is as good.
      if (!existsSync(DEBIAN_KUBECTL)) throw error;
    });
    return DEBIAN_KUBECTL;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Every kustomize to render with, the machine's own first. Throws HOW_TO_GET_KUBECTL if none. */
export async function findKustomizers(): Promise<Kustomizer[]> {
  const found: Kustomizer[] = [];
  const own = process.env.KUBECTL_BIN;
  if (own !== undefined && own !== '') found.push(await describe('KUBECTL_BIN', own));
  let debian: string | undefined;
  try {
    debian = await debianKubectl();
  } catch (error) {
    if (found.length === 0) throw new Error(`${HOW_TO_GET_KUBECTL} (${(error as Error).message.trim()})`);
  }
  if (debian !== undefined) {
    const d = await describe('debian', debian);
    // The set-up may have installed that very package: one rendering is enough.
    if (!found.some((k) => k.version === d.version)) found.push(d);
  }
  if (found.length === 0) throw new Error(HOW_TO_GET_KUBECTL);
  return found;
}

/** `kubectl kustomize DIR`: the rendered YAML (deprecation warnings go to stderr). */
export async function kustomize(k: Kustomizer, dir: string): Promise<string> {
  try {
    const { stdout } = await run(k.kubectl, ['kustomize', dir], { timeout: 30_000, maxBuffer: 32 << 20 });
    return stdout;
  } catch (error) {
    const e = error as Error & { stderr?: string };
    throw new Error(`kubectl kustomize ${dir} (${k.source}: ${k.version}) failed: ${e.stderr ?? e.message}`);
  }
}
