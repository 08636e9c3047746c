import { z } from 'zod';

/** Field schemas every job payload shares. */

export const namespaceName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,63}$/, 'a namespace name ([a-z][a-z0-9_-]*)');
export const id = z.string().min(1).max(256);
/** Every `[` closed and no `\` at the end: Redis would otherwise match what the user did not mean. */
function wellFormedGlob(glob: string): boolean {
  for (let i = 0; i < glob.length; i++) {
    if (glob[i] === '\\') {
      if (i === glob.length - 1) return false;
      i++;
    } else if (glob[i] === '[') {
      let j = i + 1;
      if (glob[j] === '^') j++;
      while (j < glob.length && glob[j] !== ']') j += glob[j] === '\\' ? 2 : 1;
      if (j >= glob.length) return false;
      i = j;
    }
  }
  return true;
}

/** A glob over ids within one namespace: no white space or braces (they could leave the namespace). */
export const pattern = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[^\s{}]+$/, 'a glob over ids without white space or braces')
  .refine(wellFormedGlob, 'a glob whose every [ is closed and that does not end in a lone \\');
