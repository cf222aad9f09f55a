// The example frontend server: serves the built static page and /health, on $PORT (Cloud Run
// sets it) or 8080. No dependencies, so the runtime image needs nothing but this directory.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const port = Number(process.env.PORT || 8080);
const backend = process.env.BACKEND_URL || "http://localhost:8080";

const server = createServer(async (req, res) => {
  if (req.url === "/health") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ status: "ok" }));
    return;
  }
  if (req.url === "/" || req.url === "/index.html") {
    const page = await readFile(join(here, "public", "index.html"), "utf8");
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page.replace("__BACKEND_URL__", backend));
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
});

server.listen(port, "0.0.0.0", () => {
  console.log(`frontend listening on :${port}`);
});

// Cloud Run sends SIGTERM before stopping an instance: finish in-flight requests, then exit.
process.on("SIGTERM", () => server.close(() => process.exit(0)));
