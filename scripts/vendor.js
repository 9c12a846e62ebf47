// Copies the browser assets installed from the npm registry into ivoryos_plugin/static/vendor,
// where the framework serves them (pages work on an offline lab network). Run by `npm ci`.
//
// Two groups: the framework's own assets (Socket.IO client, uPlot), and the libraries IvoryOS's
// templates load from CDNs, which ivoryos_plugin/offline.py rewrites to these local copies
// (keep the two files' paths in step). A source map next to a file is copied too, so the browser's
// developer tools find it offline.
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const out = path.join(root, "ivoryos_plugin", "static", "vendor");
const files = {
  // the framework's own
  "socket.io.min.js": "node_modules/socket.io-client/dist/socket.io.min.js",
  "uPlot.iife.min.js": "node_modules/uplot/dist/uPlot.iife.min.js",
  "uPlot.min.css": "node_modules/uplot/dist/uPlot.min.css",
  // IvoryOS's CDN libraries (ivoryos_plugin/offline.py: CDN_ASSETS)
  "bootstrap/bootstrap.min.css": "node_modules/bootstrap/dist/css/bootstrap.min.css",
  "bootstrap/bootstrap.bundle.min.js": "node_modules/bootstrap/dist/js/bootstrap.bundle.min.js",
  // bootstrap-icons.css loads ./fonts/bootstrap-icons.woff2: same relative layout here
  "bootstrap-icons/bootstrap-icons.css": "node_modules/bootstrap-icons/font/bootstrap-icons.css",
  "bootstrap-icons/fonts/bootstrap-icons.woff2": "node_modules/bootstrap-icons/font/fonts/bootstrap-icons.woff2",
  "bootstrap-icons/fonts/bootstrap-icons.woff": "node_modules/bootstrap-icons/font/fonts/bootstrap-icons.woff",
  "highlight.js/highlight.min.js": "node_modules/@highlightjs/cdn-assets/highlight.min.js",
  "highlight.js/default.min.css": "node_modules/@highlightjs/cdn-assets/styles/default.min.css",
  "plotly/plotly.min.js": "node_modules/plotly.js-dist-min/plotly.min.js",
  "jquery/jquery.min.js": "node_modules/jquery/dist/jquery.min.js",
  "jquery-ui/jquery-ui.min.js": "node_modules/jquery-ui/dist/jquery-ui.min.js",
  "codemirror/codemirror.css": "node_modules/codemirror/lib/codemirror.css",
  "codemirror/codemirror.js": "node_modules/codemirror/lib/codemirror.js",
  "codemirror/mode/python/python.js": "node_modules/codemirror/mode/python/python.js",
  "sortablejs/Sortable.min.js": "node_modules/sortablejs/Sortable.min.js",
  "vis-timeline/vis-timeline-graph2d.min.js": "node_modules/vis-timeline/standalone/umd/vis-timeline-graph2d.min.js",
  "vis-timeline/vis-timeline-graph2d.min.css": "node_modules/vis-timeline/styles/vis-timeline-graph2d.min.css",
};

function copy(src, dest) {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.copyFileSync(src, dest);
}

let copied = 0;
for (const [name, src] of Object.entries(files)) {
  const from = path.join(root, src);
  if (!fs.existsSync(from)) {
    console.error(`vendor: ${src} is missing; run 'npm ci' in ${root}`);
    process.exit(1);
  }
  copy(from, path.join(out, name));
  copied += 1;
  if (fs.existsSync(`${from}.map`)) copy(`${from}.map`, path.join(out, `${name}.map`));
}
console.log(`vendor: ${copied} files -> ${path.relative(root, out)}/`);
