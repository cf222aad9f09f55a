// `npm run build`: assembles the standalone app in dist/ — the server, its static files and a
// build-info.json — so the runtime image copies one directory and needs no node_modules.
import { cp, mkdir, rm, writeFile, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
await cp(join(root, "src", "server.js"), join(dist, "server.js"));
await cp(join(root, "public"), join(dist, "public"), { recursive: true });
const pkg = JSON.parse(await readFile(join(root, "package.json"), "utf8"));
// The standalone output is an ES module package of its own.
await writeFile(join(dist, "package.json"), JSON.stringify({ name: pkg.name, version: pkg.version, type: "module" }, null, 2) + "\n");
console.log(`built ${pkg.name}@${pkg.version} into dist/`);
