import { TollgateError } from "@tollgate/core";
import { describe, expect, it } from "vitest";
import { checkTimeZone, createSchedule, parseDuration } from "../src/index.js";

const T = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

function period(
  duration: string,
  at: string,
  opts: { timeZone?: string; reset?: "calendar" | "rolling"; anchor?: string } = {},
) {
  const s = createSchedule({
    duration: parseDuration(duration),
    timeZone: opts.timeZone ?? "UTC",
    reset: opts.reset ?? "calendar",
    ...(opts.anchor === undefined ? {} : { anchor: T(opts.anchor) }),
  });
  const p = s.periodAt(T(at));
  return [iso(p.start), iso(p.end)];
}

describe("calendar boundaries in UTC (LiteLLM's standardized reset times)", () => {
  it("1d resets at the next midnight", () => {
    expect(period("1d", "2026-11-23T12:00:00Z")).toEqual(["2026-11-23T00:00:00.000Z", "2026-11-24T00:00:00.000Z"]);
  });
  it("7d and 1w reset on Monday 00:00", () => {
    const monday = ["2026-11-23T00:00:00.000Z", "2026-11-30T00:00:00.000Z"];
    expect(period("7d", "2026-11-23T00:00:00Z")).toEqual(monday);
    expect(period("1w", "2026-11-29T23:59:59.999Z")).toEqual(monday);
  });
  it("30d and 1mo reset on the 1st of the next month, across year and month ends", () => {
    expect(period("30d", "2026-12-31T23:59:59.999Z")).toEqual(["2026-12-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z"]);
    expect(period("1mo", "2027-01-01T00:00:00Z")).toEqual(["2027-01-01T00:00:00.000Z", "2027-02-01T00:00:00.000Z"]);
    expect(period("1mo", "2026-04-30T23:59:59.999Z")).toEqual(["2026-04-01T00:00:00.000Z", "2026-05-01T00:00:00.000Z"]);
  });
  it("handles the leap day 2028-02-29", () => {
    expect(period("1mo", "2028-02-29T23:59:59.999Z")).toEqual(["2028-02-01T00:00:00.000Z", "2028-03-01T00:00:00.000Z"]);
    expect(period("1d", "2028-02-29T00:00:00Z")).toEqual(["2028-02-29T00:00:00.000Z", "2028-03-01T00:00:00.000Z"]);
    expect(period("1d", "2028-02-28T23:59:59.999Z")).toEqual(["2028-02-28T00:00:00.000Z", "2028-02-29T00:00:00.000Z"]);
    // 2028-02-29 is a Tuesday: its week started Monday the 28th.
    expect(period("1w", "2028-02-29T12:00:00Z")).toEqual(["2028-02-28T00:00:00.000Z", "2028-03-06T00:00:00.000Z"]);
  });
  it("Nh resets at the next hour divisible by N, Nm and Ns likewise", () => {
    expect(period("6h", "2026-11-23T13:00:00Z")).toEqual(["2026-11-23T12:00:00.000Z", "2026-11-23T18:00:00.000Z"]);
    expect(period("1h", "2026-11-23T23:30:00Z")).toEqual(["2026-11-23T23:00:00.000Z", "2026-11-24T00:00:00.000Z"]);
    expect(period("15m", "2026-11-23T10:44:59Z")).toEqual(["2026-11-23T10:30:00.000Z", "2026-11-23T10:45:00.000Z"]);
    expect(period("30s", "2026-11-23T10:44:59Z")).toEqual(["2026-11-23T10:44:30.000Z", "2026-11-23T10:45:00.000Z"]);
  });
  it("a boundary instant starts the new period (reset is exact)", () => {
    expect(period("1d", "2026-11-24T00:00:00Z")[0]).toBe("2026-11-24T00:00:00.000Z");
    expect(period("1d", "2026-11-23T23:59:59.999Z")[1]).toBe("2026-11-24T00:00:00.000Z");
  });
  it("other day counts step every N days from the anchor's midnight", () => {
    const opts = { anchor: "2026-11-23T12:00:00Z" };
    expect(period("3d", "2026-11-27T05:00:00Z", opts)).toEqual([
      "2026-11-26T00:00:00.000Z",
      "2026-11-29T00:00:00.000Z",
    ]);
    expect(period("3d", "2026-11-23T12:00:00Z", opts)).toEqual([
      "2026-11-23T00:00:00.000Z",
      "2026-11-26T00:00:00.000Z",
    ]);
  });
  it("hours that do not divide a day follow LiteLLM's arithmetic without a start: 5h resets at 01, 05, 10, 15, 20", () => {
    expect(period("5h", "2026-11-23T13:00:00Z")).toEqual(["2026-11-23T10:00:00.000Z", "2026-11-23T15:00:00.000Z"]);
    // past 20:00 the next multiple (25) wraps to 01:00 the next day, as LiteLLM's _handle_hour_reset does
    expect(period("5h", "2026-11-23T22:30:00Z")).toEqual(["2026-11-23T20:00:00.000Z", "2026-11-24T01:00:00.000Z"]);
    expect(period("5h", "2026-11-24T00:30:00Z")).toEqual(["2026-11-23T20:00:00.000Z", "2026-11-24T01:00:00.000Z"]);
    expect(period("5h", "2026-11-24T01:00:00Z")).toEqual(["2026-11-24T01:00:00.000Z", "2026-11-24T05:00:00.000Z"]);
    expect(period("7h", "2026-11-23T02:00:00Z")).toEqual(["2026-11-22T21:00:00.000Z", "2026-11-23T04:00:00.000Z"]);
    expect(period("7h", "2026-11-23T05:00:00Z")).toEqual(["2026-11-23T04:00:00.000Z", "2026-11-23T07:00:00.000Z"]);
    // more than a day: LiteLLM resets daily at N mod 24 (30h at 06:00, 48h at midnight)
    expect(period("30h", "2026-11-23T05:00:00Z")).toEqual(["2026-11-22T06:00:00.000Z", "2026-11-23T06:00:00.000Z"]);
    expect(period("48h", "2026-11-23T05:00:00Z")).toEqual(["2026-11-23T00:00:00.000Z", "2026-11-24T00:00:00.000Z"]);
    // in the budget's zone: Kolkata is UTC+05:30, so 5h resets at 01:00 local = 19:30 UTC the day before
    expect(period("5h", "2026-11-23T19:00:00Z", { timeZone: "Asia/Kolkata" })).toEqual([
      "2026-11-23T14:30:00.000Z",
      "2026-11-23T19:30:00.000Z",
    ]);
  });
  it("hour grids match a chain of LiteLLM's next-reset arithmetic for every N from 1 to 50", () => {
    // LiteLLM: next hour = the next multiple of N after the current hour; at 24 or more, that hour mod 24 the next day
    const nextReset = (t: number, n: number): number => {
      const d = new Date(t);
      const dayStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
      const hour = d.getUTCHours();
      const next = hour + n - (hour % n);
      return next >= 24 ? dayStart + 86_400_000 + (next % 24) * 3_600_000 : dayStart + next * 3_600_000;
    };
    for (let n = 1; n <= 50; n++) {
      const s = createSchedule({ duration: parseDuration(`${n}h`) });
      // first reset after creation, then the chain of resets the reset job computes, for 10 days
      let at = nextReset(T("2026-11-23T09:17:00Z"), n);
      while (at < T("2026-12-03T00:00:00Z")) {
        const next = nextReset(at, n);
        expect(s.periodAt(at), `${n}h at ${iso(at)}`).toMatchObject({ start: at, end: next });
        expect(s.periodAt(next - 1).start, `${n}h before ${iso(next)}`).toBe(at);
        at = next;
      }
    }
  });
  it("5h with a start of 0 and 5h without a start are different schedules", () => {
    const grid = createSchedule({ duration: parseDuration("5h") });
    const fixed = createSchedule({ duration: parseDuration("5h"), anchor: 0 });
    expect(grid.tag).not.toBe(fixed.tag);
  });
  it("durations that do not divide a day use fixed periods from the anchor", () => {
    expect(period("7h", "2026-11-23T13:00:00Z", { anchor: "2026-11-23T10:00:00Z" })).toEqual([
      "2026-11-23T10:00:00.000Z",
      "2026-11-23T17:00:00.000Z",
    ]);
  });
  it("never-resetting budgets have one endless period", () => {
    const s = createSchedule({ duration: parseDuration("none") });
    expect(s.periodAt(0).end).toBe(Number.POSITIVE_INFINITY);
    expect(s.periodAt(T("2030-01-01T00:00:00Z")).id).toBe("never");
  });
});

describe("calendar boundaries in a time zone", () => {
  const ny = { timeZone: "America/New_York" };
  const kolkata = { timeZone: "Asia/Kolkata" };
  it("Asia/Kolkata (+05:30): midnight and the 1st of the month are local", () => {
    expect(period("1d", "2026-11-23T18:00:00Z", kolkata)).toEqual([
      "2026-11-22T18:30:00.000Z",
      "2026-11-23T18:30:00.000Z",
    ]);
    expect(period("1d", "2026-11-23T18:30:00Z", kolkata)).toEqual([
      "2026-11-23T18:30:00.000Z",
      "2026-11-24T18:30:00.000Z",
    ]);
    expect(period("1mo", "2026-11-30T18:29:59.999Z", kolkata)).toEqual([
      "2026-10-31T18:30:00.000Z",
      "2026-11-30T18:30:00.000Z",
    ]);
    expect(period("1mo", "2028-02-29T18:30:00Z", kolkata)).toEqual([
      "2028-02-29T18:30:00.000Z",
      "2028-03-31T18:30:00.000Z",
    ]);
  });
  it("America/New_York spring forward: the day has 23 hours, 1h periods skip the missing hour", () => {
    expect(period("1d", "2026-03-08T05:30:00Z", ny)).toEqual(["2026-03-08T05:00:00.000Z", "2026-03-09T04:00:00.000Z"]);
    // 01:30 EST -> the next local hour is 03:00 EDT (02:00 does not exist), at 07:00Z.
    expect(period("1h", "2026-03-08T06:30:00Z", ny)).toEqual(["2026-03-08T06:00:00.000Z", "2026-03-08T07:00:00.000Z"]);
    expect(period("1h", "2026-03-08T07:00:00Z", ny)).toEqual(["2026-03-08T07:00:00.000Z", "2026-03-08T08:00:00.000Z"]);
  });
  it("America/New_York fall back: the day has 25 hours", () => {
    expect(period("1d", "2026-11-01T12:00:00Z", ny)).toEqual(["2026-11-01T04:00:00.000Z", "2026-11-02T05:00:00.000Z"]);
    // The repeated 01:00-02:00 hour belongs to one period that ends at 02:00 EST.
    expect(period("1h", "2026-11-01T05:30:00Z", ny)).toEqual(["2026-11-01T05:00:00.000Z", "2026-11-01T07:00:00.000Z"]);
    expect(period("1h", "2026-11-01T06:30:00Z", ny)).toEqual(["2026-11-01T05:00:00.000Z", "2026-11-01T07:00:00.000Z"]);
  });
  it("America/New_York weeks start Monday 00:00 local and months on the 1st local", () => {
    expect(period("1w", "2026-11-23T04:59:59Z", ny)).toEqual(["2026-11-16T05:00:00.000Z", "2026-11-23T05:00:00.000Z"]);
    expect(period("30d", "2026-12-01T04:59:59.999Z", ny)).toEqual([
      "2026-11-01T04:00:00.000Z",
      "2026-12-01T05:00:00.000Z",
    ]);
  });
  it("consecutive periods tile time without gaps across a DST change", () => {
    const s = createSchedule({ duration: parseDuration("1h"), timeZone: "America/New_York" });
    let t = T("2026-03-07T20:00:00Z");
    for (let i = 0; i < 48; i++) {
      const p = s.periodAt(t);
      expect(p.start).toBeLessThanOrEqual(t);
      expect(s.periodAt(p.end - 1).end).toBe(p.end);
      expect(s.periodAt(p.end).start).toBe(p.end);
      t = p.end;
    }
  });
  it("rejects an unknown zone", () => {
    expect(() => checkTimeZone("Mars/Olympus")).toThrowError(TollgateError);
  });
});

describe("rolling periods from the budget's start", () => {
  it("1mo from Jan 31 clamps to the month end (leap year) and keeps the anchor day", () => {
    const opts = { reset: "rolling" as const, anchor: "2028-01-31T10:00:00Z" };
    expect(period("1mo", "2028-02-15T00:00:00Z", opts)).toEqual([
      "2028-01-31T10:00:00.000Z",
      "2028-02-29T10:00:00.000Z",
    ]);
    expect(period("1mo", "2028-02-29T10:00:00Z", opts)).toEqual([
      "2028-02-29T10:00:00.000Z",
      "2028-03-31T10:00:00.000Z",
    ]);
  });
  it("1d rolls every 24h from the start", () => {
    const opts = { reset: "rolling" as const, anchor: "2026-11-23T13:37:00Z" };
    expect(period("1d", "2026-11-25T00:00:00Z", opts)).toEqual([
      "2026-11-24T13:37:00.000Z",
      "2026-11-25T13:37:00.000Z",
    ]);
  });
  it("needs a start time", () => {
    expect(() => createSchedule({ duration: parseDuration("1d"), reset: "rolling" })).toThrowError(/start/);
  });
});

describe("schedule identity", () => {
  it("a different duration, zone or mode is a different schedule (a fresh period)", () => {
    const tags = new Set(
      [
        createSchedule({ duration: parseDuration("1d") }),
        createSchedule({ duration: parseDuration("2d") }),
        createSchedule({ duration: parseDuration("1d"), timeZone: "Asia/Kolkata" }),
        createSchedule({ duration: parseDuration("1d"), reset: "rolling", anchor: 5 }),
      ].map((s) => s.tag),
    );
    expect(tags.size).toBe(4);
  });
  it("the store window outlasts the longest period", () => {
    const s = createSchedule({ duration: parseDuration("1mo") });
    expect(s.windowMs).toBeGreaterThan(31 * 86_400_000);
  });
});

describe("periods tile time in many zones (no gaps, no overlaps, local boundaries)", () => {
  const zones = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
  ];
  const wallClock = (t: number, timeZone: string) =>
    new Intl.DateTimeFormat("en-GB", {
      timeZone,
      hourCycle: "h23",
      hour: "2-digit",
      minute: "2-digit",
      day: "2-digit",
      weekday: "short",
    })
      .formatToParts(t)
      .reduce<Record<string, string>>((acc, p) => {
        acc[p.type] = p.value;
        return acc;
      }, {});
  const cases: Array<[string, string, string]> = [
    ["1d", "2027-01-01T00:00:00Z", "2029-01-01T00:00:00Z"],
    ["1w", "2027-01-01T00:00:00Z", "2029-01-01T00:00:00Z"],
    ["1mo", "2027-01-01T00:00:00Z", "2029-01-01T00:00:00Z"],
    ["1h", "2027-03-25T00:00:00Z", "2027-04-08T00:00:00Z"],
    ["30m", "2027-10-28T00:00:00Z", "2027-11-10T00:00:00Z"],
    ["5h", "2027-03-20T00:00:00Z", "2027-04-10T00:00:00Z"],
    ["7h", "2027-10-25T00:00:00Z", "2027-11-10T00:00:00Z"],
    ["30h", "2027-03-20T00:00:00Z", "2027-04-10T00:00:00Z"],
  ];
  for (const timeZone of zones) {
    it.each(cases)(`${timeZone} %s`, (duration, from, to) => {
      const s = createSchedule({ duration: parseDuration(duration), timeZone });
      let t = T(from);
      let p = s.periodAt(t);
      let n = 0;
      while (p.end < T(to)) {
        const next = s.periodAt(p.end);
        expect(next.start).toBe(p.end);
        expect(s.periodAt(p.end - 1).id).toBe(p.id);
        expect(next.end).toBeGreaterThan(next.start);
        const w = wallClock(next.start, timeZone);
        if (duration === "1d" || duration === "1w" || duration === "1mo") {
          // Local midnight exists in these zones on every day of the range.
          expect(`${w.hour}:${w.minute}`).toBe("00:00");
          if (duration === "1w") expect(w.weekday).toBe("Mon");
          if (duration === "1mo") expect(w.day).toBe("01");
        }
        t = p.end;
        p = next;
        n++;
      }
      expect(n).toBeGreaterThan(10);
    });
  }
});
