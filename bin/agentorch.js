#!/usr/bin/env node
// The `agentorch` executable. It runs the TypeScript sources directly through tsx, so
// `npx agentorch …` works right after `npm ci`, with no build step.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
