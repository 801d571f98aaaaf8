// Setup file of the `replicas` test project (vitest.config.ts): stops the PostgreSQL and
// Ceph a test file started for its replica sets once the file is done.

import { afterAll } from 'vitest';
import { stopSharedServices } from './replicas.js';

afterAll(stopSharedServices, 60_000);
