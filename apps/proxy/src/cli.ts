#!/usr/bin/env node
console.error("tollgate: the proxy is being written; see apps/proxy/README.md");
process.exit(1);
