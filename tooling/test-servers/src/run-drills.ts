/**
 * `pnpm drills`: runs the standard reliability drills against dedicated redis-server processes and prints their
 * figures as the markdown table of docs/reliability.md.
 */
import { cpus, loadavg } from "node:os";
import { DRILL_TABLE_HEADER, drillRow, runBurstDrill, STANDARD_DRILLS } from "./drills.js";
import { startRedisCluster, startRedisServer } from "./redis.js";

const [server, cluster] = await Promise.all([startRedisServer(), startRedisCluster()]);
const rows: string[] = [];
try {
  for (const d of STANDARD_DRILLS) {
    const f = await runBurstDrill({ ...d.options, ...(d.topology === "cluster" ? { cluster } : { server }) });
    console.error(`${f.name}: ${f.discrepancies.length === 0 ? "exact" : f.discrepancies.join("; ")}`);
    rows.push(`| ${drillRow(f)} |`);
  }
} finally {
  await Promise.all([server.stop(), cluster.stop()]);
}
console.log(
  `Measured ${new Date().toISOString()}, ${cpus().length} cores, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(" ")}.\n`,
);
console.log(DRILL_TABLE_HEADER);
console.log(rows.join("\n"));
process.exit(0);
