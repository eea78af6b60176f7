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
