// Empties the embed directory except its committed .gitkeep (Vite's own
// emptyOutDir would delete that too, and go:embed needs one file there).
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const dir = new URL('../../internal/webui/dist/', import.meta.url).pathname;
for (const f of readdirSync(dir)) if (f !== '.gitkeep') rmSync(join(dir, f), { recursive: true, force: true });
