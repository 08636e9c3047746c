import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastCounter, FastHistogram } from '../src/index.js';

/** The value of one sample line of the exposition text, or undefined when absent. */
function sampleOf(text: string, line: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('FastCounter: plain numbers on the hot path, prom-client at scrape time', () => {
  it('exports what each series counted, advancing between scrapes, a bound series from 0', async () => {
    const registry = new Registry();
    const c = new FastCounter({ name: 'x_total', help: 'x', labelNames: ['route', 'method'], registry });
    const get = c.series({ route: '/a', method: 'GET' });
    const head = c.series({ route: '/a', method: 'HEAD' });
    get.inc();
    get.inc();
    get.inc(3);
    let text = await registry.metrics();
    expect(sampleOf(text, 'x_total{route="/a",method="GET"}')).toBe(5);
    expect(sampleOf(text, 'x_total{route="/a",method="HEAD"}')).toBe(0);
    // The same labels give the same series.
    c.series({ route: '/a', method: 'GET' }).inc();
    head.inc();
    text = await registry.metrics();
    expect(sampleOf(text, 'x_total{route="/a",method="GET"}')).toBe(6);
    expect(sampleOf(text, 'x_total{route="/a",method="HEAD"}')).toBe(1);
    // A scrape with nothing new changes nothing.
    text = await registry.metrics();
    expect(sampleOf(text, 'x_total{route="/a",method="GET"}')).toBe(6);
    expect(text).toContain('# TYPE x_total counter');
  });
});

describe('FastHistogram: registered on a registry', () => {
  it('exports cumulative buckets, sum and count per series', async () => {
    const registry = new Registry();
    const h = new FastHistogram('d_seconds', 'd', [0.01, 0.1]).registerOn(registry);
    const s = h.series({ route: '/a' });
    for (const v of [0.005, 0.05, 0.5]) s.observe(v);
    const text = await registry.metrics();
    expect(sampleOf(text, 'd_seconds_bucket{route="/a",le="0.01"}')).toBe(1);
    expect(sampleOf(text, 'd_seconds_bucket{route="/a",le="0.1"}')).toBe(2);
    expect(sampleOf(text, 'd_seconds_bucket{route="/a",le="+Inf"}')).toBe(3);
    expect(sampleOf(text, 'd_seconds_count{route="/a"}')).toBe(3);
    expect(sampleOf(text, 'd_seconds_sum{route="/a"}')).toBeCloseTo(0.555, 9);
  });
});
