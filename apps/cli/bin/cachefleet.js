#!/usr/bin/env node
// The workspace ships TypeScript without a build step: register tsx, then run the real entry point.
import { register } from 'tsx/esm/api';

register();
await import(new URL('../src/main.ts', import.meta.url).href);
