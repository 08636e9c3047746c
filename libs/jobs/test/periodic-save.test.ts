import { describe, expect, it } from 'vitest';
import { PeriodicSave } from '../src/handlers/context.js';

describe('PeriodicSave: a walk writes its cursor when due or when told, and only what changed', () => {
  it('writes once per change on flush, nothing when nothing changed', async () => {
    let writes = 0;
    const saves = new PeriodicSave(60_000, async () => {
      writes++;
    });
    await saves.flush();
    expect(writes).toBe(0);
    saves.changed();
    saves.changed();
    await saves.flush();
    expect(writes).toBe(1);
    await saves.flush();
    expect(writes).toBe(1);
  });

  it('is due only once its interval has passed since the last flush', async () => {
    const never = new PeriodicSave(60_000, async () => {});
    expect(never.due).toBe(false);
    const always = new PeriodicSave(0, async () => {});
    always.changed();
    expect(always.due).toBe(true);
  });
});
