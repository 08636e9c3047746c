/**
 * Draws a V8 CPU profile (`.cpuprofile`, as `node --cpu-prof` or the http bench's
 * `BENCH_HTTP_CPU_PROFILE` write it) as a flame graph SVG, offline, with no dependency, and prints the
 * heaviest functions by self and by total time (docs/profile-api.md).
 *
 *   node --import tsx scripts/flamegraph.ts <in.cpuprofile> <out.svg> [title]
 *
 * Stacks are merged by frame (function, file, line): a box is as wide as the samples that had it on
 * their stack at that depth, roots at the bottom. `(idle)` samples (the event loop waiting) are left
 * out, so widths are shares of the CPU the process used. Hover a box for its share.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';

const callFrameSchema = z.object({
  functionName: z.string(),
  url: z.string(),
  lineNumber: z.number(),
});
const profileSchema = z.object({
  nodes: z.array(
    z.object({
      id: z.number(),
      callFrame: callFrameSchema,
      hitCount: z.number().optional(),
      children: z.array(z.number()).optional(),
    }),
  ),
  samples: z.array(z.number()).optional(),
});
type Profile = z.infer<typeof profileSchema>;

interface Frame {
  readonly name: string;
  /** Samples with this frame on the stack at this place. */
  total: number;
  /** Samples with this frame on top. */
  self: number;
  readonly children: Map<string, Frame>;
}

const WIDTH = 1200;
const ROW = 16;
const FONT = 11;
const CHAR = 6.2;
const MIN_PX = 0.3;

/** `functionName file:line`, the file shortened to what tells it apart (package or repo path). */
function label(frame: z.infer<typeof callFrameSchema>): string {
  const fn = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  if (frame.url === '') return fn;
  let file = frame.url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('/node_modules/');
  if (nm >= 0) file = file.slice(nm + '/node_modules/'.length);
  else {
    const at = file.search(/\/(apps|libs|test|scripts)\//);
    if (at >= 0) file = file.slice(at + 1);
  }
  return `${fn} ${file}:${frame.lineNumber + 1}`;
}

function build(profile: Profile): Frame {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  // Self samples per node: from `samples` when present (exact), else `hitCount`.
  const hits = new Map<number, number>();
  if (profile.samples !== undefined) for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  else for (const n of profile.nodes) hits.set(n.id, n.hitCount ?? 0);
  const root: Frame = { name: 'all', total: 0, self: 0, children: new Map() };
  const walk = (id: number, parent: Frame): number => {
    const node = byId.get(id);
    if (node === undefined) return 0;
    const name = label(node.callFrame);
    if (name === '(idle)') return 0;
    const isRoot = name === '(root)';
    let frame = parent;
    if (!isRoot) {
      const existing = parent.children.get(name);
      frame = existing ?? { name, total: 0, self: 0, children: new Map() };
      if (existing === undefined) parent.children.set(name, frame);
    }
    const self = hits.get(id) ?? 0;
    let total = self;
    for (const child of node.children ?? []) total += walk(child, frame);
    if (!isRoot) {
      frame.self += self;
      frame.total += total;
    } else root.self += self;
    return total;
  };
  const first = profile.nodes[0];
  if (first !== undefined) root.total = walk(first.id, root);
  return root;
}

function xmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Warm colours for JavaScript, by where it lives; grey for V8 and Node's own. */
function colour(name: string): string {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  const jitter = h % 40;
  if (/^\([^)]*\)$/.test(name))
    return `rgb(${170 + (jitter >> 1)},${170 + (jitter >> 1)},${170 + (jitter >> 1)})`;
  if (/ (apps|libs)\//.test(name)) return `rgb(${90 + jitter},${170 + (jitter >> 1)},${90 + jitter})`;
  if (name.includes(' node:') || !name.includes(' ')) return `rgb(${120 + jitter},${150 + jitter},220)`;
  return `rgb(230,${110 + jitter * 2},${50 + jitter})`;
}

function svg(root: Frame, title: string): string {
  const total = Math.max(1, root.total);
  const scale = WIDTH / total;
  const depthOf = (frame: Frame): number => {
    let d = 0;
    for (const child of frame.children.values())
      if (child.total * scale >= MIN_PX) d = Math.max(d, 1 + depthOf(child));
    return d;
  };
  const height = (depthOf(root) + 1) * ROW + 50;
  const boxes: string[] = [];
  // Roots at the bottom: level 0 (all) is the last row.
  const draw = (frame: Frame, x: number, level: number) => {
    const w = frame.total * scale;
    if (w < MIN_PX) return;
    boxes.push(box(frame, x, height - 10 - (level + 1) * ROW, w, total));
    let cx = x;
    for (const child of [...frame.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      draw(child, cx, level + 1);
      cx += child.total * scale;
    }
  };
  draw(root, 0, 0);
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="monospace" font-size="${FONT}" role="img" aria-label="${xmlText(`Flame graph: ${title}`)}">
<title>${xmlText(`Flame graph: ${title}`)}</title>
<style>.f rect{stroke:#fff;stroke-width:0.5}.f:hover rect{stroke:#000}</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="${WIDTH / 2}" y="16" text-anchor="middle" font-size="14">${xmlText(title)}</text>
<text x="4" y="32" fill="#555">${root.total} samples (idle left out); width = share of the process's CPU; hover a box for its figures</text>
${boxes.join('\n')}
</svg>
`;
}

function box(frame: Frame, x: number, y: number, w: number, total: number): string {
  const share = ((100 * frame.total) / total).toFixed(2);
  const self = ((100 * frame.self) / total).toFixed(2);
  const tip = `${frame.name}: ${share}% total, ${self}% self (${frame.total} samples)`;
  const fits = Math.floor((w - 4) / CHAR);
  const text =
    fits >= 3
      ? `<text x="${(x + 2).toFixed(2)}" y="${ROW - 4}">${xmlText(frame.name.length <= fits ? frame.name : `${frame.name.slice(0, fits - 2)}..`)}</text>`
      : '';
  return `<g class="f" transform="translate(0,${y})"><title>${xmlText(tip)}</title><rect x="${x.toFixed(2)}" width="${w.toFixed(2)}" height="${ROW - 1}" fill="${colour(frame.name)}"/>${text}</g>`;
}

/** Self and total time by function (merged over every place it appears; recursion counted once). */
function summary(root: Frame, top = 25): string {
  const self = new Map<string, number>();
  const totals = new Map<string, number>();
  const walk = (frame: Frame, onStack: Set<string>) => {
    self.set(frame.name, (self.get(frame.name) ?? 0) + frame.self);
    if (!onStack.has(frame.name)) totals.set(frame.name, (totals.get(frame.name) ?? 0) + frame.total);
    const next = new Set(onStack).add(frame.name);
    for (const child of frame.children.values()) walk(child, next);
  };
  for (const child of root.children.values()) walk(child, new Set());
  const total = Math.max(1, root.total);
  const list = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, n]) => `${((100 * n) / total).toFixed(1).padStart(5)}%  ${name}`)
      .join('\n');
  const areas = new Map<string, number>();
  for (const [name, n] of self) areas.set(areaOf(name), (areas.get(areaOf(name)) ?? 0) + n);
  return `samples (idle left out): ${root.total}\n\nself time by area:\n${list(areas)}\n\nby self time:\n${list(self)}\n\nby total time:\n${list(totals)}\n`;
}

/** Where a frame's code lives: an npm package, a file of ours, Node's own JavaScript, or native. */
function areaOf(name: string): string {
  if (/^\([^)]*\)$/.test(name)) return name;
  const space = name.indexOf(' ');
  if (space < 0) return `native ${name}`;
  const file = name.slice(space + 1);
  if (file.startsWith('node:')) return `node ${file.slice(5).replace(/:\d+$/, '')}`;
  if (/^(apps|libs|test|scripts)\//.test(file)) return file.replace(/:\d+$/, '');
  const parts = file.split('/');
  return `npm ${parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]}`;
}

function main(): void {
  const [input, output, title] = process.argv.slice(2);
  if (input === undefined || output === undefined) {
    process.stderr.write(
      'usage: node --import tsx scripts/flamegraph.ts <in.cpuprofile> <out.svg> [title]\n',
    );
    process.exitCode = 2;
    return;
  }
  const profile = profileSchema.parse(JSON.parse(readFileSync(input, 'utf8')));
  const root = build(profile);
  writeFileSync(output, svg(root, title ?? input));
  process.stdout.write(summary(root));
}

main();
