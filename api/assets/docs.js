// Renders /openapi.json as a list of operations. Served by autoloader-api itself: this page loads
// nothing from any other origin (the Content-Security-Policy says so too).
"use strict";

const text = (tag, content, cls) => {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  el.textContent = content;
  return el;
};

function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array") return schemaName(schema.items) + "[]";
  return schema.type || "object";
}

function rules(schema) {
  if (!schema) return "";
  const out = [];
  if (schema.enum) out.push("one of " + schema.enum.slice(0, 8).join(", ") + (schema.enum.length > 8 ? ", …" : ""));
  if (schema.minimum !== undefined) out.push("≥ " + schema.minimum);
  if (schema.maximum !== undefined) out.push("≤ " + schema.maximum);
  if (schema.pattern) out.push("pattern " + schema.pattern);
  return out.join("; ");
}

function operation(path, method, op) {
  const details = document.createElement("details");
  details.dataset.search = [method, path, (op.tags || []).join(" "), op.summary || ""].join(" ").toLowerCase();
  const summary = document.createElement("summary");
  summary.append(text("span", method, "method " + method), text("span", path, "path"));
  if (op.summary) summary.append(text("span", op.summary));
  details.append(summary);
  const body = document.createElement("div");
  body.className = "body";
  if (op.description) body.append(text("p", op.description));
  if (op.parameters && op.parameters.length) {
    const table = document.createElement("table");
    const head = table.insertRow();
    ["parameter", "in", "type", "rules", "about"].forEach((h) => head.append(text("th", h)));
    op.parameters.forEach((p) => {
      const row = table.insertRow();
      [p.name + (p.required ? " *" : ""), p.in, schemaName(p.schema), rules(p.schema), p.description || ""]
        .forEach((c) => row.append(text("td", c)));
    });
    body.append(table);
  }
  const request = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  if (request) body.append(text("p", "Body: " + schemaName(request.schema)));
  const responses = document.createElement("table");
  const head = responses.insertRow();
  ["status", "what", "body"].forEach((h) => head.append(text("th", h)));
  Object.entries(op.responses || {}).forEach(([status, r]) => {
    const content = r.content ? Object.values(r.content)[0] : null;
    const row = responses.insertRow();
    [status, r.description || "", content ? schemaName(content.schema) : ""].forEach((c) => row.append(text("td", c)));
  });
  body.append(responses);
  details.append(body);
  return details;
}

function render(doc) {
  const main = document.getElementById("ops");
  main.textContent = "";
  const byTag = new Map();
  Object.entries(doc.paths || {}).forEach(([path, item]) => {
    ["get", "post", "put", "patch", "delete"].forEach((method) => {
      const op = item[method];
      if (!op) return;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(path, method, op));
    });
  });
  byTag.forEach((ops, tag) => {
    const section = document.createElement("section");
    section.append(text("h2", tag));
    ops.forEach((o) => section.append(o));
    main.append(section);
  });
  document.getElementById("filter").addEventListener("input", (e) => {
    const q = e.target.value.trim().toLowerCase();
    main.querySelectorAll("details").forEach((d) => { d.hidden = q !== "" && !d.dataset.search.includes(q); });
  });
}

fetch("/openapi.json")
  .then((r) => r.json())
  .then(render)
  .catch((e) => { document.getElementById("ops").textContent = "Cannot read /openapi.json: " + e; });
