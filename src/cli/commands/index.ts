// Every `berth` subcommand, one module each. Add a line here for a new command.
import type { Command } from 'commander';
import { register as serve } from './serve.js';
import { register as user } from './user.js';

export function registerCommands(program: Command): void {
  serve(program);
  user(program);
}
