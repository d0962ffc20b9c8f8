// The master key the test servers run with (KAPSEL_MASTER_KEY is required with DATABASE_URL, and
// every test server has one), and a SecretBox under it for tests that write or read sealed
// secrets directly.
import { parseMasterKey } from "../../server/src/secrets/master-key.ts";
import { SecretBox } from "../../server/src/secrets/secret-box.ts";

export const TEST_MASTER_KEY = Buffer.alloc(32, 0x4b).toString("base64");

export function testSecretBox(base64 = TEST_MASTER_KEY): SecretBox {
  return new SecretBox(parseMasterKey(base64, "test"));
}
