// The console's one script. Every page works without it; it adds:
// - live updates: a page with a live region follows the organization's
//   events (/console/events) and reloads when one concerns it;
// - the try-it form: fields generated from a function's JSON Schema that
//   write the arguments' JSON into the form's text field;
// - the audit page's check of the hash chain, in the browser (WebCrypto).
"use strict";

(function live() {
  const region = document.getElementById("live");
  if (!region || !window.EventSource) return;
  const watch = region.dataset.watch;
  const source = new EventSource("/console/events?after=" + encodeURIComponent(region.dataset.after));
  let fresh = 0;
  for (const type of region.dataset.types.split(" ")) {
    source.addEventListener(type, (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (_) { return; }
      if (watch === "audit") {
        // The log grows under the reader: say so, and let them reload
        // (which checks the chain again) when they choose.
        fresh += 1;
        region.replaceChildren(fresh + (fresh === 1 ? " new entry: " : " new entries: "));
        const link = document.createElement("a");
        link.href = location.pathname + location.search;
        link.textContent = "show them";
        region.append(link);
        return;
      }
      if (watch !== "release " + event.subject) return;
      region.textContent = "Changed (" + event.type + "): reloading…";
      source.close();
      window.location.reload();
    });
  }
  source.addEventListener("error", () => {
    // Closed by the server (the session ended, too many streams) or the
    // network: stop, and say how to see changes.
    if (source.readyState === EventSource.CLOSED) {
      region.textContent = "Live updates stopped; reload the page to see changes.";
    }
  });
})();

// ---- the try-it form ----

(function tryIt() {
  const form = document.getElementById("try-form");
  if (!form || !form.dataset.schema) return;
  const text = document.getElementById("args");
  const holder = document.getElementById("generated-fields");
  let schema;
  try { schema = JSON.parse(form.dataset.schema); } catch (_) { return; }
  let counter = 0;
  const nextId = () => "field-" + (++counter);

  function element(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== undefined && value !== null) node.setAttribute(name, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function labelled(label, input, hint) {
    const id = nextId();
    input.id = id;
    const row = element("div", { class: "field" }, [element("label", { for: id }, [label]), input]);
    if (hint) row.append(element("span", { class: "hint" }, [hint]));
    return row;
  }

  // The cases of a variant or result schema: [{name, payload}] (payload
  // null for a case without one).
  function cases(oneOf) {
    const found = [];
    const seen = new Set();
    for (const option of oneOf) {
      if (typeof option.const === "string") {
        // A case without a payload, written as its bare name.
        found.push({ name: option.const, payload: null, bare: true });
        seen.add(option.const);
      } else if (option.type === "object" && option.properties) {
        const name = Object.keys(option.properties)[0];
        const payload = option.properties[name];
        if (seen.has(name)) continue;
        seen.add(name);
        found.push({ name, payload: payload && payload.type === "null" ? null : payload, bare: false });
      }
    }
    return found;
  }

  // A field for `schema`: { node, get() } where get() returns its JSON.
  function build(schema, label) {
    if (schema === false) {
      const node = element("p", {}, [label + ": cannot be given here"]);
      return { node, get: () => null };
    }
    if (schema.anyOf && schema.anyOf.length === 2 && schema.anyOf[0].type === "null") {
      return optional(schema.anyOf[1], label);
    }
    if (schema.anyOf) {
      // A float: a number, or NaN / Infinity / -Infinity.
      const input = element("input", { type: "text", inputmode: "decimal" });
      return {
        node: labelled(label, input, "a number, NaN, Infinity or -Infinity"),
        get: () => {
          const value = input.value.trim();
          return ["NaN", "Infinity", "-Infinity"].includes(value) ? value : Number(value || 0);
        },
      };
    }
    if (schema.oneOf) return variant(schema.oneOf, label);
    if (schema.type === "boolean") {
      const input = element("input", { type: "checkbox" });
      return { node: labelled(label, input), get: () => input.checked };
    }
    if (schema.type === "integer") {
      const input = element("input", { type: "number", step: "1", min: schema.minimum, max: schema.maximum, value: "0" });
      return { node: labelled(label, input), get: () => Number(input.value || 0) };
    }
    if (schema.type === "string" && schema.enum) {
      const select = element("select", {}, schema.enum.map((name) => element("option", { value: name }, [name])));
      return { node: labelled(label, select), get: () => select.value };
    }
    if (schema.type === "string") {
      const input = element("input", { type: "text", maxlength: schema.maxLength });
      return { node: labelled(label, input), get: () => input.value };
    }
    if (schema.type === "object") return record(schema, label);
    if (schema.type === "array" && schema.prefixItems) return tuple(schema.prefixItems, label);
    if (schema.type === "array") return list(schema.items, label);
    return { node: element("p", {}, [label + ": unknown type"]), get: () => null };
  }

  function group(label, children) {
    return element("fieldset", {}, [element("legend", {}, [label]), ...children]);
  }

  function record(schema, label) {
    const fields = Object.entries(schema.properties || {}).map(([name, property]) => [name, build(property, name)]);
    return {
      node: group(label, fields.map(([, field]) => field.node)),
      get: () => {
        const value = {};
        for (const [name, field] of fields) {
          const item = field.get();
          if (!(item === null && !(schema.required || []).includes(name))) value[name] = item;
        }
        return value;
      },
    };
  }

  function tuple(items, label) {
    const fields = items.map((item, i) => build(item, label + " " + (i + 1)));
    return { node: group(label, fields.map((field) => field.node)), get: () => fields.map((field) => field.get()) };
  }

  function list(items, label) {
    const entries = [];
    const body = element("div", { class: "items" });
    const add = element("button", { type: "button" }, ["Add " + label + " item"]);
    add.addEventListener("click", () => {
      const field = build(items, label + " item " + (entries.length + 1));
      const remove = element("button", { type: "button" }, ["Remove"]);
      const row = element("div", { class: "item" }, [field.node, remove]);
      const entry = { field, row };
      remove.addEventListener("click", () => {
        entries.splice(entries.indexOf(entry), 1);
        row.remove();
        update();
      });
      entries.push(entry);
      body.append(row);
      update();
    });
    return { node: group(label, [body, add]), get: () => entries.map((entry) => entry.field.get()) };
  }

  function optional(some, label) {
    const present = element("input", { type: "checkbox" });
    const inner = build(some, label);
    const content = element("div", { class: "optional" }, [inner.node]);
    const sync = () => { content.hidden = !present.checked; };
    present.addEventListener("change", sync);
    sync();
    return {
      node: group(label, [labelled("Give " + label, present), content]),
      get: () => (present.checked ? inner.get() : null),
    };
  }

  function variant(oneOf, label) {
    const found = cases(oneOf);
    const select = element("select", {}, found.map((c) => element("option", { value: c.name }, [c.name])));
    const payloads = found.map((c) => (c.payload ? build(c.payload, c.name) : null));
    const holder = element("div", { class: "payload" });
    const sync = () => {
      holder.replaceChildren();
      const payload = payloads[select.selectedIndex];
      if (payload) holder.append(payload.node);
    };
    select.addEventListener("change", sync);
    sync();
    return {
      node: group(label, [labelled("Case of " + label, select), holder]),
      get: () => {
        const i = select.selectedIndex;
        if (found[i].bare) return found[i].name;
        return { [found[i].name]: payloads[i] ? payloads[i].get() : null };
      },
    };
  }

  const root = record(schema.params, "Arguments");
  function update() { text.value = JSON.stringify(root.get()); }
  holder.append(root.node);
  // The fields write the text field; what someone types there directly
  // stays as typed (and the arguments a page was sent back with too).
  holder.addEventListener("input", update);
  holder.addEventListener("change", update);
  if (text.value.trim() === "") update();
})();

// ---- the audit chain ----

(function auditChain() {
  const status = document.getElementById("chain-status");
  if (!status || !window.crypto || !crypto.subtle) return;
  const genesis = "0".repeat(64);

  // JSON with every number kept as its text, so that 64-bit integers hash
  // as the server wrote them.
  function parse(text) {
    let at = 0;
    const fail = () => { throw new Error("not JSON"); };
    const space = () => { while (/\s/.test(text[at] || "")) at++; };
    function value() {
      space();
      const c = text[at];
      if (c === "{") {
        at++;
        const object = new Map();
        space();
        if (text[at] === "}") { at++; return object; }
        for (;;) {
          space();
          const key = string();
          space();
          if (text[at++] !== ":") fail();
          object.set(key, value());
          space();
          if (text[at] === ",") { at++; continue; }
          if (text[at++] !== "}") fail();
          return object;
        }
      }
      if (c === "[") {
        at++;
        const array = [];
        space();
        if (text[at] === "]") { at++; return array; }
        for (;;) {
          array.push(value());
          space();
          if (text[at] === ",") { at++; continue; }
          if (text[at++] !== "]") fail();
          return array;
        }
      }
      if (c === '"') return string();
      const literal = /^(true|false|null|-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)/.exec(text.slice(at));
      if (!literal) fail();
      at += literal[0].length;
      if (literal[0] === "true") return true;
      if (literal[0] === "false") return false;
      if (literal[0] === "null") return null;
      return { number: literal[0] };
    }
    function string() {
      const match = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/.exec(text.slice(at));
      if (!match) fail();
      at += match[0].length;
      return JSON.parse(match[0]);
    }
    const result = value();
    space();
    if (at !== text.length) fail();
    return result;
  }

  // The canonical form the server hashes: keys sorted by UTF-16 code
  // units, no spaces.
  function canonical(value) {
    if (value instanceof Map) {
      const keys = [...value.keys()].sort();
      return "{" + keys.map((key) => JSON.stringify(key) + ":" + canonical(value.get(key))).join(",") + "}";
    }
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    if (value && typeof value === "object" && "number" in value) return value.number;
    return JSON.stringify(value);
  }

  async function hashOf(entry) {
    let details;
    try { details = parse(entry.details); } catch (_) { details = entry.details; }
    const body = new Map([
      ["org", entry.org], ["seq", { number: String(entry.seq) }], ["at", { number: String(entry.at) }],
      ["actor", entry.actor], ["action", entry.action], ["target", entry.target], ["details", details],
    ]);
    const bytes = new TextEncoder().encode(entry.prev_hash + canonical(body));
    const digest = await crypto.subtle.digest("SHA-256", bytes);
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function verify() {
    let previous = genesis;
    let through = 0;
    let head = null;
    for (;;) {
      const answer = await fetch(status.dataset.chain + "?after=" + through, { credentials: "same-origin" });
      if (!answer.ok) throw new Error("the server answered " + answer.status);
      const page = await answer.json();
      head = head || page.head;
      for (const entry of page.entries) {
        if (entry.seq !== through + 1) return "The chain breaks after entry " + through + ": entry " + (through + 1) + " is missing.";
        if (entry.prev_hash !== previous) return "The chain breaks at entry " + entry.seq + ": it does not follow entry " + through + ".";
        if ((await hashOf(entry)) !== entry.hash) return "The chain breaks at entry " + entry.seq + ": it does not match its hash (it was edited).";
        previous = entry.hash;
        through = entry.seq;
        if (through >= head.seq) break;
      }
      status.textContent = "Checking… " + through + " of " + head.seq;
      if (through >= head.seq || page.entries.length === 0) break;
    }
    if (through < head.seq) return "The chain breaks after entry " + through + ": the head says " + head.seq + ".";
    if (head.seq > 0 && head.hash !== previous) return "The chain breaks at entry " + through + ": the head's hash differs.";
    return "Verified in this browser through entry " + through + ".";
  }

  status.textContent = "Checking the chain…";
  verify().then(
    (outcome) => { status.textContent = outcome; status.dataset.done = "true"; },
    (error) => { status.textContent = "Could not check the chain: " + error.message; status.dataset.done = "true"; },
  );
})();
