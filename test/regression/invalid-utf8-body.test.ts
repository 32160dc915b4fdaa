// Bug: a POST /metrics body with bytes that are not UTF-8 was accepted and stored with U+FFFD in their place.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postMetrics } from "../support/legacy.js";
import { countIn, startTestService, type TestService } from "../support/service.js";

/** A valid batch whose metadata string holds `bytes` between "a" and "b". */
function bodyWith(bytes: number[]): Buffer {
  return Buffer.concat([
    Buffer.from(
      '{"service":"test-service","metrics":[{"type":"custom","value":1,"metadata":{"m":"a',
    ),
    Buffer.from(bytes),
    Buffer.from('b"}}]}'),
  ]);
}

describe("regression: a JSON body that is not valid UTF-8", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startTestService();
  });
  afterAll(async () => {
    await svc.close();
  });

  it.each([
    ["0xff", [0xff]],
    ["a lone continuation byte", [0x80]],
    ["an overlong slash", [0xc0, 0xaf]],
    ["an encoded surrogate", [0xed, 0xa0, 0x80]],
    ["a truncated sequence", [0xe2, 0x82]],
  ])("should answer 400 to %s inside a string and store nothing", async (_name, bytes) => {
    const res = await postMetrics(svc.url, undefined, { key: svc.key, raw: bodyWith(bytes) });
    expect(res.status).toBe(400);
    expect(res.json).toEqual({
      detail: "There was an error parsing the body: it is not valid UTF-8",
    });
    expect(await countIn(svc.sql, "metrics")).toBe(0);
  });

  it("should still store the same batch in valid UTF-8", async () => {
    const res = await postMetrics(svc.url, undefined, {
      key: svc.key,
      raw: bodyWith([...Buffer.from("€")]),
    });
    expect(res.json).toMatchObject({ accepted: 1 });
    expect(await svc.sql.all("SELECT metadata FROM metrics")).toEqual([
      { metadata: '{"m":"a€b"}' },
    ]);
  });
});
