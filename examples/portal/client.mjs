// A portal backend's view of Warden, in plain JavaScript (Node 18+, no
// dependencies): list the catalog, read a function's schema, invoke it, and
// tell the kinds of failure apart.
//
//   WARDEN_URL=http://127.0.0.1:8080 WARDEN_TOKEN=$(cat warden-demo/portal-token) node examples/portal/client.mjs

const base = process.env.WARDEN_URL ?? "http://127.0.0.1:8080";
const token = process.env.WARDEN_TOKEN;
const org = process.env.ORG ?? "acme";
if (!token) {
  console.error("set WARDEN_TOKEN to an invoker token");
  process.exit(2);
}

class WardenError extends Error {
  constructor(status, error) {
    super(`${error.code}: ${error.message}`);
    this.status = status;
    this.code = error.code;
    this.details = error.details;
  }
}

async function call(method, path, body) {
  const response = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json();
  if (!response.ok) throw new WardenError(response.status, json.error);
  return json;
}

/** Calls `function` of the newest approved release of `plugin` (or `version`, a semver requirement). */
export async function invoke(plugin, fn, args, version) {
  return call("POST", `/v1/plugins/${org}/${plugin}/invoke/${fn}`, { args, version });
}

const catalog = await call("GET", `/v1/orgs/${org}/plugins?limit=100`);
for (const p of catalog.items) console.log(`${p.name.padEnd(24)} ${p.latest_approved ?? "-"}  ${p.description}`);

const detail = await call("GET", `/v1/plugins/${org}/text-tools`);
const count = detail.functions.find((f) => f.name === "text.count");
console.log("text.count takes", JSON.stringify(count.schema.params));

const ran = await invoke("text-tools", "text.count", { text: "the portal calls plugins" });
console.log("result", JSON.stringify(ran.result), "from", `${ran.release.name}@${ran.release.version}`, `fuel ${ran.metering.fuel_used}`);

try {
  await invoke("text-tools", "text.slugify", ["!!!", {}]);
} catch (e) {
  if (e.code === "plugin_error") console.log("the plugin said:", JSON.stringify(e.details.error));
  else throw e;
}
