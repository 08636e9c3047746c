/**
 * Hosts as Linux network namespaces, for partition tests (issue 9, invariant 9): `createHost`
 * makes a namespace with its own loopback and `links` veth pairs to this (the root) namespace,
 * each a private /30 (`outside` the address on this side, `inside` the host's). A process runs on
 * the host through `host.command(...)` (`ip netns exec`); what it must reach on this side (Redis,
 * PostgreSQL: loopback only) goes through a TCP proxy listening on a link's `outside` address
 * (`startTcpProxy(..., link.outside)`), so cutting that link cuts exactly that traffic.
 *
 * A cut sets the link down: packets are dropped silently on both sides, sockets stay open, as in a
 * real partition (this kernel has no `netem` qdisc for loss or delay). `heal` sets it up again.
 *
 * Needs root and iproute2; `requireNetns` fails with one line when they are missing. Every host is
 * removed by `removeHosts` (afterAll) and, if the test process dies first, on its exit.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface Link {
  /** The address on this (root namespace) side. */
  readonly outside: string;
  /** The host's address. */
  readonly inside: string;
  /** Drops every packet of the link (both directions) until `heal`. */
  cut(): Promise<void>;
  heal(): Promise<void>;
}

export interface NetHost {
  readonly name: string;
  readonly links: readonly Link[];
  /** The argv to run `argv` on the host: `ip netns exec <name> …argv`. */
  command(argv: readonly string[]): { readonly file: string; readonly args: string[] };
}

const TAG = randomInt(0x1000, 0xffff).toString(16);
/** 10.<net>.<host*8+link>.0/30: one private /24 range per test process. */
const NET = 200 + randomInt(0, 50);
const hosts: string[] = [];
let hookInstalled = false;

async function ip(...args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`ip ${args.join(' ')}: ${stderr || (error as Error).message}`);
  }
}

/** Throws one clear line when network namespaces cannot be made here (not root, no iproute2). */
export async function requireNetns(): Promise<void> {
  const probe = `cf${TAG}probe`;
  try {
    await run('ip', ['netns', 'add', probe]);
    await run('ip', ['netns', 'del', probe]);
  } catch (error) {
    const why = ((error as { stderr?: string }).stderr ?? (error as Error).message).trim().split('\n')[0];
    throw new Error(`network namespaces unavailable (needs root and iproute2's ip netns): ${why}`);
  }
}

function removeNow(name: string): void {
  try {
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

/** A namespace `cf<tag><n>` with loopback up and `links` veth pairs to this namespace. */
export async function createHost(links = 1): Promise<NetHost> {
  const n = hosts.length;
  if (n >= 30 || links > 8) throw new Error('createHost: at most 30 hosts of 8 links');
  const name = `cf${TAG}${n}`;
  hosts.push(name);
  if (!hookInstalled) {
    hookInstalled = true;
    process.once('exit', () => {
      for (const h of hosts) removeNow(h);
    });
  }
  await ip('netns', 'add', name);
  await ip('-n', name, 'link', 'set', 'lo', 'up');
  const made: Link[] = [];
  for (let i = 0; i < links; i++) {
    const out = `${name}l${i}o`;
    const inn = `${name}l${i}i`;
    const base = `10.${NET}.${n * 8 + i}`;
    const outside = `${base}.1`;
    const inside = `${base}.2`;
    await ip('link', 'add', out, 'type', 'veth', 'peer', 'name', inn);
    await ip('link', 'set', inn, 'netns', name);
    await ip('addr', 'add', `${outside}/30`, 'dev', out);
    await ip('-n', name, 'addr', 'add', `${inside}/30`, 'dev', inn);
    await ip('link', 'set', out, 'up');
    await ip('-n', name, 'link', 'set', inn, 'up');
    made.push({
      outside,
      inside,
      cut: () => ip('link', 'set', out, 'down'),
      heal: () => ip('link', 'set', out, 'up'),
    });
  }
  return {
    name,
    links: made,
    command: (argv) => ({ file: 'ip', args: ['netns', 'exec', name, ...argv] }),
  };
}

/** Deletes every host made by this process (their veth pairs go with them). */
export async function removeHosts(): Promise<void> {
  for (const name of hosts.splice(0)) {
    await run('ip', ['netns', 'del', name]).catch(() => {});
  }
}
