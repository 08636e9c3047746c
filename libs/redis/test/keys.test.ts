import { describe, expect, it } from 'vitest';
import { CacheKeys, cacheKeys, entryBase, entryGlob, scopedTag } from '../src/index.js';

describe('the key layout', () => {
  const k = cacheKeys('cf:');

  it('names entries by namespace, version and generation', () => {
    expect(entryBase('product', 1)).toBe('product:v1:');
    expect(entryBase('product', 3, 2)).toBe('product:v3:g2:');
    expect(k.entry(`${entryBase('product', 1)}42`)).toBe('cf:product:v1:42');
    expect(k.entryOf({ name: 'product', version: 1 }, '42', 7)).toBe('cf:product:v1:g7:42');
  });

  it('keeps the fleet state under __ names that no namespace can take', () => {
    expect(k.tag(scopedTag('product', 'category:7'))).toBe('cf:__tag:product:category:7');
    expect(k.lock('product:v1:42')).toBe('cf:__lock:product:v1:42');
    expect(k.generations).toBe('cf:__gen');
    expect(k.invalidations('product')).toBe('cf:__inv:product');
    expect(k.hot('product')).toBe('cf:__hot:product');
    expect(k.hotNamespace('cf:__hot:product')).toBe('product');
    expect(k.bus).toBe('cf:__bus');
    expect(k.busChannel).toBe(k.bus);
  });

  it('reserves keys for the job kinds to come, grouping by hash tag what changes together', () => {
    expect(k.system).toBe('cf:__system');
    expect([k.pod('pod-1'), k.pods]).toEqual(['cf:__{fleet}:pod:pod-1', 'cf:__{fleet}:pods']);
    expect([k.tuneSettings, k.tunePins, k.tuneAudit]).toEqual([
      'cf:__{tune}:settings',
      'cf:__{tune}:pins',
      'cf:__{tune}:audit',
    ]);
    expect(k.ack('1700000000000-0')).toBe('cf:__ack:1700000000000-0');
    expect(k.fenced('pod-1')).toBe('cf:__fenced:pod-1');
    expect([k.captureLease, k.capturePosition]).toEqual(['cf:__{capture}:lease', 'cf:__{capture}:position']);
    expect(k.migration('product')).toBe('cf:__migrate:product');
    expect(k.sweep('product')).toBe('cf:__sweep:product');
    expect(k.backupLock).toBe('cf:__backup:lock');
  });

  it('tells the fleet state that clear() keeps from cached data', () => {
    const kept = [k.generations, k.bus, k.invalidations('product'), k.system, k.tuneAudit, k.capturePosition];
    for (const key of kept) expect(k.isFleetState(key), key).toBe(true);
    const cached = [
      k.entry('product:v1:42'),
      k.tag('product:category:7'),
      k.lock('product:v1:42'),
      k.hot('product'),
      k.pod('pod-1'),
      k.pods,
      k.ack('1-0'),
    ];
    for (const key of cached) expect(k.isFleetState(key), key).toBe(false);
    expect(cacheKeys('other:').isFleetState(k.generations)).toBe(false);
  });

  it('escapes glob metacharacters of the prefix and the entry base, not of the id pattern', () => {
    const odd = new CacheKeys('a*[b]?:');
    expect(odd.entryMatch(entryGlob('product:v1:', 'sku-1*'))).toBe('a\\*\\[b\\]\\?:product:v1:sku-1*');
    expect(odd.hotMatch).toBe('a\\*\\[b\\]\\?:__hot:*');
  });

  it('is built once per prefix', () => {
    expect(cacheKeys('cf:')).toBe(k);
  });
});
