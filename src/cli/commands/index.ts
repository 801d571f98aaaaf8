// Every `berth` subcommand, one module each. Add a line here for a new command.
import type { Command } from 'commander';
import { register as serve } from './serve.js';
import { register as user } from './user.js';
import { register as login } from './login.js';
import { register as logout } from './logout.js';
import { register as push } from './push.js';
import { register as pull } from './pull.js';
import { register as cp } from './cp.js';
import { register as tags } from './tags.js';
import { register as catalog } from './catalog.js';
import { register as inspect } from './inspect.js';
import { register as digest } from './digest.js';
import { register as tag } from './tag.js';
import { register as rm } from './rm.js';
import { register as referrers } from './referrers.js';

export function registerCommands(program: Command): void {
  serve(program);
  user(program);
  login(program);
  logout(program);
  push(program);
  pull(program);
  cp(program);
  tags(program);
  catalog(program);
  inspect(program);
  digest(program);
  tag(program);
  rm(program);
  referrers(program);
}
