// Copies the browser assets installed from the npm registry into ivoryos_plugin/static/vendor,
// where the framework serves them (pages work on an offline lab network). Run by `npm ci`.
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const out = path.join(root, "ivoryos_plugin", "static", "vendor");
const files = {
  "socket.io.min.js": "node_modules/socket.io-client/dist/socket.io.min.js",
  "uPlot.iife.min.js": "node_modules/uplot/dist/uPlot.iife.min.js",
  "uPlot.min.css": "node_modules/uplot/dist/uPlot.min.css",
};
fs.mkdirSync(out, { recursive: true });
for (const [name, src] of Object.entries(files)) {
  fs.copyFileSync(path.join(root, src), path.join(out, name));
  console.log(`vendor: ${name} <- ${src}`);
}
