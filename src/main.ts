#!/usr/bin/env node
/** The `snode` executable: the command line is in cli.ts (tests build it without running it). */
import { main } from './cli.js';

await main(process.argv);
