// ChanCenter dashboard: the few behaviours htmx attributes do not cover (no inline
// scripts: the pages' Content-Security-Policy allows only these files).
function freshKey() {
  // crypto.randomUUID exists only on https and localhost; this works on any origin
  return Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
}
document.addEventListener("htmx:afterRequest", (event) => {
  const form = event.detail.elt.closest ? event.detail.elt.closest("form.composer") : null;
  if (!form) return;
  const place = form.querySelector(".form-result");
  if (!event.detail.successful) {
    if (place) place.textContent = problem(event.detail.xhr);
    return;
  }
  if (place) place.textContent = "";
  form.reset();
  const key = form.querySelector("input[name=key]");
  if (key) key.value = freshKey(); // the next message is a new one, not a retry
  form.querySelector("textarea").focus();
});
// "/" in an empty reply box opens the shortcuts, rendered for the contact when sent
document.addEventListener("input", (event) => {
  const box = event.target;
  const pick = document.getElementById("shortcut");
  if (box.id === "reply-text" && box.value === "/" && pick) {
    box.value = "";
    pick.focus();
    if (pick.showPicker) pick.showPicker();
  }
});
document.addEventListener("change", (event) => {
  const select = event.target;
  if (select.id === "space-switch") select.form.submit();
});
// the newest messages in view: on opening a conversation and whenever it refreshes
function toNewest() {
  for (const list of document.querySelectorAll(".transcript")) list.scrollTop = list.scrollHeight;
}
document.addEventListener("DOMContentLoaded", toNewest);
document.addEventListener("htmx:afterSwap", toNewest);
// the Reports page's chart, from the JSON the server wrote beside it
document.addEventListener("DOMContentLoaded", () => {
  const canvas = document.getElementById("report-chart");
  const data = document.getElementById("report-data");
  if (!canvas || !data || !window.Chart) return;
  const figures = JSON.parse(data.textContent);
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: figures.labels,
      datasets: [
        { label: "Opened", data: figures.opened },
        { label: "Closed", data: figures.closed },
        { label: "Messages in", data: figures.in, type: "line", yAxisID: "messages" },
        { label: "Messages out", data: figures.out, type: "line", yAxisID: "messages" },
      ],
    },
    options: {
      animation: false,
      scales: { y: { beginAtZero: true, title: { display: true, text: "conversations" } },
                messages: { position: "right", beginAtZero: true, title: { display: true, text: "messages" } } },
    },
  });
});

// Forms that speak the REST API (`/app/{space}/api/...`): fields named like
// `filter.all.0.field` become nested JSON, empty ones are left out, numbers stay numbers,
// a `data-json` field is parsed as JSON, and `data-yaml` sends that one field as YAML.
function nest(target, path, value) {
  const keys = path.split(".");
  let here = target;
  keys.forEach((key, i) => {
    const last = i === keys.length - 1;
    const nextIsIndex = !last && /^\d+$/.test(keys[i + 1]);
    if (last) here[key] = value;
    else here = here[key] ??= nextIsIndex ? [] : {};
  });
}
function compact(value) {
  if (Array.isArray(value)) return value.filter((v) => v !== undefined).map(compact);
  if (value && typeof value === "object") {
    for (const key of Object.keys(value)) value[key] = compact(value[key]);
  }
  return value;
}
htmx.defineExtension("api-json", {
  onEvent(name, event) {
    if (name !== "htmx:configRequest") return;
    const form = event.detail.elt;
    event.detail.headers["Content-Type"] = form.dataset.yaml ? "application/yaml" : "application/json";
    // a `data-path` field fills its {name} in the URL instead of the body
    for (const field of form.querySelectorAll ? form.querySelectorAll("[data-path]") : []) {
      event.detail.path = event.detail.path.replace(`{${field.name}}`, encodeURIComponent(field.value));
    }
  },
  encodeParameters(xhr, parameters, form) {
    xhr.overrideMimeType("text/json");
    if (form.dataset.yaml) return form.querySelector(`[name="${form.dataset.yaml}"]`).value;
    const body = {};
    parameters.forEach((value, key) => {
      if (key === "csrf" || value === "") return;
      const field = form.querySelector(`[name="${CSS.escape(key)}"]`);
      if (field && field.dataset.path !== undefined) return;
      let given = value;
      if (field && field.type === "number") given = Number(value);
      else if (field && field.type === "checkbox") given = true;
      else if (field && field.dataset.json !== undefined) given = JSON.parse(value); // checked above
      else if (field && field.dataset.list !== undefined) given = value.split(",").map((v) => v.trim()).filter(Boolean);
      nest(body, key, given);
    });
    for (const box of form.querySelectorAll("input[type=checkbox][data-false]")) {
      if (!box.checked) nest(body, box.name, false);
    }
    return JSON.stringify(compact(body));
  },
});
// after an API form: say what went wrong, or refresh what it changed
document.addEventListener("htmx:afterRequest", (event) => {
  const form = event.detail.elt;
  if (!form.matches || !form.matches("form[hx-ext~=api-json], button[hx-ext~=api-json]")) return;
  const place = form.closest("section")?.querySelector(".form-result");
  const xhr = event.detail.xhr;
  if (event.detail.successful) {
    if (form.tagName === "FORM" && form.dataset.keep === undefined) form.reset();
    if (place) {
      const answer = xhr.responseText ? JSON.parse(xhr.responseText) : {};
      place.textContent = answer.token ? `Token (shown once): ${answer.token}` : "Saved.";
      place.classList.remove("error");
      if (answer.merge_id) undoButton(place, form, answer.merge_id);
    }
    const refresh = form.dataset.refresh;
    if (refresh) htmx.trigger(refresh, "refresh");
  } else if (place) {
    place.textContent = problem(xhr);
    place.classList.add("error");
  }
});
function problem(xhr) {
  try { return JSON.parse(xhr.responseText).detail || xhr.statusText; } catch (_) { return xhr.statusText; }
}
// a JSON field that is not JSON: said before anything is sent
document.addEventListener("htmx:configRequest", (event) => {
  const form = event.detail.elt;
  if (!form.querySelectorAll) return;
  for (const field of form.querySelectorAll("[data-json]")) {
    if (!field.value.trim()) continue;
    try { JSON.parse(field.value); } catch (error) {
      event.preventDefault();
      const place = form.closest("section")?.querySelector(".form-result");
      if (place) { place.textContent = `${field.name}: not JSON (${error.message})`; place.classList.add("error"); }
      return;
    }
  }
});

function undoButton(place, form, mergeId) {
  const undo = document.createElement("button");
  undo.type = "button";
  undo.textContent = "Undo the merge";
  undo.setAttribute("hx-post", form.getAttribute("hx-post").replace(/contacts\/.*$/, `merges/${mergeId}/undo`));
  undo.setAttribute("hx-ext", "api-json");
  undo.setAttribute("hx-swap", "none");
  undo.dataset.refresh = form.dataset.refresh;
  place.textContent = "Merged. ";
  place.append(undo);
  htmx.process(undo);
}
