// The profile card: the extracted profile as a readable card — one row per non-empty field in
// a fixed order, each fact showing on hover or focus the turns it was taken from (highlighted
// in the transcript).

const HIDDEN_KEYS = new Set(["version", "schema_version", "schemaVersion"]);
// The server stores the profile as jsonb, which does not keep key order: show a person's
// fields in a fixed, sensible order, anything else after them alphabetically.
const FIELD_ORDER = [
  "name",
  "preferred_name",
  "language",
  "location",
  "city",
  "time_zone",
  "goals",
  "preferences",
  "dislikes",
  "facts",
  "constraints",
  "follow_ups",
];

function fieldRank(key) {
  const index = FIELD_ORDER.indexOf(key);
  return index === -1 ? FIELD_ORDER.length : index;
}

function orderedEntries(object) {
  return Object.entries(object).sort(
    ([a], [b]) => fieldRank(a) - fieldRank(b) || a.localeCompare(b),
  );
}

function humanize(key) {
  const words = key
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .replace(/[_-]+/g, " ")
    .trim()
    .toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function isFact(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value) && "value" in value;
}

function isEmpty(value) {
  if (value === null || value === undefined || value === "") return true;
  if (Array.isArray(value)) return value.every(isEmpty);
  if (isFact(value)) return isEmpty(value.value);
  if (typeof value === "object") return Object.values(value).every(isEmpty);
  return false;
}

function scalarText(value) {
  if (Array.isArray(value)) return value.map(scalarText).join(", ");
  if (value !== null && typeof value === "object") {
    return Object.entries(value)
      .filter(([, v]) => !isEmpty(v))
      .map(([k, v]) => `${humanize(k)}: ${scalarText(v)}`)
      .join("; ");
  }
  return String(value);
}

let tooltipCounter = 0;

export class ProfileCard {
  /**
   * @param {HTMLElement} section  @param {HTMLElement} fields  @param {HTMLElement} versionLabel
   * @param {import("./transcript.js").Transcript} transcript
   */
  constructor(section, fields, versionLabel, transcript) {
    this.section = section;
    this.fields = fields;
    this.versionLabel = versionLabel;
    this.transcript = transcript;
    this.version = null;
  }

  clear() {
    this.version = null;
    this.fields.replaceChildren();
    this.section.hidden = true;
  }

  show(profile, version) {
    this.version = version;
    this.versionLabel.textContent = version ? `v${version}` : "";
    const rows = [];
    for (const [key, value] of orderedEntries(profile ?? {})) {
      if (HIDDEN_KEYS.has(key) || isEmpty(value)) continue;
      const dt = document.createElement("dt");
      dt.textContent = humanize(key);
      const dd = document.createElement("dd");
      dd.append(this.valueNode(value));
      rows.push(dt, dd);
    }
    if (rows.length === 0) {
      const dd = document.createElement("dd");
      dd.className = "muted";
      dd.textContent = "Nothing to remember yet — talk a little more, then extract again.";
      rows.push(dd);
    }
    this.fields.replaceChildren(...rows);
    this.section.hidden = false;
  }

  valueNode(value) {
    if (Array.isArray(value)) {
      const list = document.createElement("ul");
      for (const entry of value) {
        if (isEmpty(entry)) continue;
        const item = document.createElement("li");
        item.append(this.valueNode(entry));
        list.append(item);
      }
      return list;
    }
    if (isFact(value)) return this.factNode(value);
    if (value !== null && typeof value === "object") {
      const inner = document.createElement("dl");
      for (const [key, entry] of orderedEntries(value)) {
        if (isEmpty(entry)) continue;
        const dt = document.createElement("dt");
        dt.textContent = humanize(key);
        const dd = document.createElement("dd");
        dd.append(this.valueNode(entry));
        inner.append(dt, dd);
      }
      return inner;
    }
    return document.createTextNode(String(value));
  }

  factNode(fact) {
    const evidence = Array.isArray(fact.evidence) ? fact.evidence.map(String) : [];
    const span = document.createElement("span");
    span.className = "fact";
    span.textContent = scalarText(fact.value);
    if (evidence.length === 0) return span;
    span.tabIndex = 0;
    span.dataset.evidence = evidence.join(" ");
    const tip = document.createElement("span");
    tip.className = "evidence";
    tip.setAttribute("role", "tooltip");
    tooltipCounter += 1;
    tip.id = `evidence-${tooltipCounter}`;
    const quotes = evidence.map((id) => {
      const text = this.transcript.textOf(id);
      return text ? `“${text}”` : id;
    });
    tip.textContent = `From ${evidence.length === 1 ? "turn" : "turns"}: ${quotes.join(" · ")}`;
    span.setAttribute("aria-describedby", tip.id);
    span.append(tip);
    const on = () => this.transcript.highlight(evidence, true);
    const off = () => this.transcript.highlight(evidence, false);
    span.addEventListener("mouseenter", on);
    span.addEventListener("focus", on);
    span.addEventListener("mouseleave", off);
    span.addEventListener("blur", off);
    return span;
  }
}
