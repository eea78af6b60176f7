// ChanCenter dashboard: the few behaviours htmx attributes do not cover (no inline
// scripts: the pages' Content-Security-Policy allows only these files).
document.addEventListener("htmx:afterRequest", (event) => {
  const form = event.detail.elt.closest ? event.detail.elt.closest("form.composer") : null;
  if (!form || !event.detail.successful) return;
  form.reset();
  const key = form.querySelector("input[name=key]");
  if (key) key.value = crypto.randomUUID(); // the next message is a new one, not a retry
  form.querySelector("textarea").focus();
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
