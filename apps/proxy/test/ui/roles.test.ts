import { describe, expect, it } from "vitest";
import { canAdminister, canKey, canTeam, type Me, meOf, visiblePages } from "../../ui/src/permissions";
import { reportToDaily, topSeries } from "../../ui/src/spend";

const me = (role: Me["role"], extra: Partial<Me> = {}): Me => ({
  role,
  userId: "u1",
  teamId: null,
  keyAlias: null,
  adminTeams: [],
  teams: [],
  ...extra,
});

describe("role-aware views", () => {
  it("proxy admins may do everything", () => {
    const a = me("proxy_admin");
    expect(visiblePages(a)).toHaveLength(10);
    for (const act of ["create", "update", "delete", "regenerate", "block"] as const) {
      expect(canKey(a, act, { user_id: "x", team_id: "t" })).toBe(true);
    }
    expect(canTeam(a, "create")).toBe(true);
    expect(canAdminister(a)).toBe(true);
  });

  it("viewers see everything an admin sees and may change nothing", () => {
    for (const v of [me("proxy_admin_viewer"), me("internal_user_viewer")]) {
      for (const act of ["create", "update", "delete", "regenerate", "block"] as const) {
        expect(canKey(v, act, { user_id: "u1", team_id: null })).toBe(false);
      }
      expect(canTeam(v, "update", "t")).toBe(false);
      expect(canTeam(v, "members", "t")).toBe(false);
      expect(canAdminister(v)).toBe(false);
    }
    expect(visiblePages(me("proxy_admin_viewer"))).toContain("users");
    expect(visiblePages(me("internal_user_viewer"))).not.toContain("users");
  });

  it("internal users manage their own keys (not block) and nobody else's", () => {
    const u = me("internal_user");
    expect(canKey(u, "create")).toBe(true);
    expect(canKey(u, "update", { user_id: "u1" })).toBe(true);
    expect(canKey(u, "delete", { user_id: "u1" })).toBe(true);
    expect(canKey(u, "block", { user_id: "u1" })).toBe(false);
    expect(canKey(u, "update", { user_id: "someone-else" })).toBe(false);
    expect(canTeam(u, "update", "t1")).toBe(false);
    expect(visiblePages(u)).toEqual(["keys", "teams", "spend", "logs", "limits", "models"]);
  });

  it("team admins manage their team's keys and members, not other teams", () => {
    const ta = meOf({
      role: "internal_user",
      user_id: "u1",
      team_id: null,
      key_alias: null,
      teams: [
        { team_id: "t1", role: "admin" },
        { team_id: "t2", role: "user" },
      ],
    });
    expect(ta.adminTeams).toEqual(["t1"]);
    expect(canKey(ta, "block", { user_id: "other", team_id: "t1" })).toBe(true);
    expect(canKey(ta, "delete", { user_id: "other", team_id: "t2" })).toBe(false);
    expect(canTeam(ta, "members", "t1")).toBe(true);
    expect(canTeam(ta, "members", "t2")).toBe(false);
    expect(canTeam(ta, "delete", "t1")).toBe(false);
  });

  it("an unknown role is treated as a viewer", () => {
    expect(meOf({ role: "something_new", user_id: null, team_id: null, key_alias: null }).role).toBe(
      "internal_user_viewer",
    );
  });
});

describe("spend series", () => {
  it("keeps the biggest series and sums the rest into Other", () => {
    const days = ["2026-01-01", "2026-01-02"];
    const series = Array.from({ length: 10 }, (_, i) => ({
      id: `k${i}`,
      label: `key ${i}`,
      spend: [i, 1],
      requests: [1, 1],
    }));
    const top = topSeries({ days, series }, 4);
    expect(top.map((s) => s.id)).toEqual(["k9", "k8", "k7", "__other__"]);
    const other = top[3]!;
    expect(other.label).toBe("Other (7)");
    expect(other.spend).toEqual([0 + 1 + 2 + 3 + 4 + 5 + 6, 7]);
    expect(other.totalRequests).toBe(14);
  });
});

describe("spend report → chart series", () => {
  it("spreads LiteLLM's daily report over every day of the range, names ids, sums duplicates", () => {
    const days = ["2026-03-01", "2026-03-02", "2026-03-03"];
    const report = [
      {
        group_by_day: "2026-03-01",
        api_keys: [
          { api_key: "hash-a", total_spend: 0.5, total_requests: 5 },
          { api_key: null, total_spend: 0.1, total_requests: 1 },
        ],
      },
      {
        group_by_day: "2026-03-03T00:00:00+00:00",
        api_keys: [{ api_key: "hash-a", total_spend: 0.25, total_requests: 2 }],
      },
      { group_by_day: "2026-02-28", api_keys: [{ api_key: "hash-a", total_spend: 9, total_requests: 9 }] },
    ];
    const d = reportToDaily(report, "api_key", days, new Map([["hash-a", "ci-bot"]]));
    expect(d.days).toEqual(days);
    expect(d.series).toEqual([
      { id: "hash-a", label: "ci-bot", spend: [0.5, 0, 0.25], requests: [5, 0, 2] },
      { id: "", label: "(master key)", spend: [0.1, 0, 0], requests: [1, 0, 0] },
    ]);
  });
  it("reads the end-user grouping from LiteLLM's customers lists", () => {
    const d = reportToDaily(
      [{ group_by_day: "2026-03-01", customers: [{ customer: "alice", total_spend: 1, total_requests: 3 }] }],
      "end_user",
      ["2026-03-01"],
    );
    expect(d.series[0]).toMatchObject({ id: "alice", label: "alice", requests: [3] });
  });
});
