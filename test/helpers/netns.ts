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

export interface LanHost {
  readonly name: string;
  /** The host's address on the LAN (a /24 shared by every host and this namespace). */
  readonly address: string;
  /** Runs `argv` on the host: `ip netns exec <name> …argv`. */
  command(argv: readonly string[]): { readonly file: string; readonly args: string[] };
  /** Takes the host off the LAN (its switch port down: packets dropped, sockets left open) until `heal`. */
  cut(): Promise<void>;
  heal(): Promise<void>;
}

export interface Lan {
  /** This (root) namespace's address on the LAN: tests reach the hosts from here. */
  readonly address: string;
  readonly hosts: readonly LanHost[];
}

/**
 * `count` hosts on one LAN: a switch namespace with a bridge, each host's veth plugged into it, and
 * one more port for this namespace, so hosts reach each other and the test directly (no routing,
 * no forwarding in this namespace). Cutting a host sets its switch port down: it is partitioned
 * from everyone else, alone. One LAN per test process.
 */
export async function createLan(count: number): Promise<Lan> {
  if (count < 1 || count > 20) throw new Error('createLan: 1 to 20 hosts');
  const net = `10.${NET}.250`;
  const sw = `cf${TAG}sw`;
  const register = (name: string) => {
    hosts.push(name);
    if (!hookInstalled) {
      hookInstalled = true;
      process.once('exit', () => {
        for (const h of hosts) removeNow(h);
      });
    }
  };
  register(sw);
  await ip('netns', 'add', sw);
  await ip('-n', sw, 'link', 'add', 'br0', 'type', 'bridge');
  await ip('-n', sw, 'link', 'set', 'br0', 'up');
  const plug = async (port: string, peer: string, peerNs: string | undefined, address: string) => {
    // Made here, then moved: the port into the switch, the peer into its host (or left here).
    await ip('link', 'add', port, 'type', 'veth', 'peer', 'name', peer);
    await ip('link', 'set', port, 'netns', sw);
    await ip('-n', sw, 'link', 'set', port, 'master', 'br0');
    await ip('-n', sw, 'link', 'set', port, 'up');
    if (peerNs !== undefined) await ip('link', 'set', peer, 'netns', peerNs);
    const inPeer = peerNs === undefined ? [] : ['-n', peerNs];
    await ip(...inPeer, 'addr', 'add', `${address}/24`, 'dev', peer);
    await ip(...inPeer, 'link', 'set', peer, 'up');
  };
  const rootPeer = `cf${TAG}lan`;
  await plug(`cf${TAG}p0`, rootPeer, undefined, `${net}.1`);
  const made: LanHost[] = [];
  for (let i = 0; i < count; i++) {
    const name = `cf${TAG}h${i}`;
    register(name);
    await ip('netns', 'add', name);
    await ip('-n', name, 'link', 'set', 'lo', 'up');
    const port = `cf${TAG}p${i + 1}`;
    const address = `${net}.${i + 2}`;
    await plug(port, `cf${TAG}e${i}`, name, address);
    made.push({
      name,
      address,
      command: (argv) => ({ file: 'ip', args: ['netns', 'exec', name, ...argv] }),
      cut: () => ip('-n', sw, 'link', 'set', port, 'down'),
      heal: () => ip('-n', sw, 'link', 'set', port, 'up'),
    });
  }
  // The root side's veth goes with the switch namespace when it is deleted (its peer is there).
  return { address: `${net}.1`, hosts: made };
}
