/* ChanCenter web-chat widget. Embed with:
 *   <script src="https://HUB/webchat/widget.js" data-channel="CHANNEL_ID" async></script>
 * Options (data-*): channel (required), title, open ("true" to start open).
 * Everything the hub or a visitor sends is rendered with textContent: never as HTML.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.dataset.channel) { console.error("chancenter: data-channel is missing"); return; }
  var channel = script.dataset.channel;
  var hub = new URL(script.src, location.href);
  var origin = hub.origin;
  var wsUrl = (hub.protocol === "https:" ? "wss://" : "ws://") + hub.host + "/webchat/ws?channel=" + encodeURIComponent(channel);
  var storageKey = "chancenter:" + channel;
  var title = script.dataset.title || "Chat with us";

  var CSS = [
    ":host{all:initial;font-family:system-ui,-apple-system,Segoe UI,sans-serif;font-size:14px}",
    ".launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;background:#2f5bea;color:#fff;display:flex;align-items:center;justify-content:center;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483646}",
    ".panel{position:fixed;right:20px;bottom:88px;width:340px;max-width:calc(100vw - 40px);height:480px;max-height:calc(100vh - 110px);background:#fff;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:none;flex-direction:column;overflow:hidden;z-index:2147483647}",
    ".panel.open{display:flex}",
    ".head{background:#2f5bea;color:#fff;padding:12px 14px;font-weight:600;display:flex;justify-content:space-between;align-items:center}",
    ".state{font-weight:400;font-size:12px;opacity:.85}",
    ".log{flex:1;overflow-y:auto;padding:12px;background:#f6f7fb;display:flex;flex-direction:column;gap:6px}",
    ".msg{max-width:80%;padding:8px 10px;border-radius:12px;white-space:pre-wrap;word-wrap:break-word;line-height:1.35}",
    ".msg.in{align-self:flex-end;background:#2f5bea;color:#fff;border-bottom-right-radius:4px}",
    ".msg.out{align-self:flex-start;background:#fff;color:#1d2433;border:1px solid #e3e6ef;border-bottom-left-radius:4px}",
    ".msg img{max-width:100%;border-radius:8px;display:block}",
    ".msg a{color:inherit}",
    ".tick{font-size:11px;opacity:.8;margin-left:6px}",
    ".choice{align-self:flex-end;font-size:12px;color:#5b6478}",
    ".replies{display:flex;flex-wrap:wrap;gap:6px;padding:0 12px 8px;background:#f6f7fb}",
    ".replies button{border:1px solid #2f5bea;color:#2f5bea;background:#fff;border-radius:16px;padding:5px 12px;cursor:pointer;font:inherit}",
    ".typing{padding:0 14px 6px;color:#5b6478;font-size:12px;background:#f6f7fb;min-height:16px}",
    ".error{padding:4px 14px;color:#b3261e;font-size:12px}",
    "form{display:flex;border-top:1px solid #e3e6ef}",
    "input[type=text]{flex:1;border:0;padding:12px;font:inherit;outline:none}",
    "form button,.attach{border:0;background:none;padding:0 12px;cursor:pointer;color:#2f5bea;font:inherit;font-weight:600;display:flex;align-items:center}"
  ].join("\n");

  var host = document.createElement("div");
  host.id = "chancenter-widget";
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML = "<style>" + CSS + "</style>" +
    '<button class="launcher" aria-label="Open chat"><svg viewBox="0 0 24 24" width="26" height="26" fill="currentColor" aria-hidden="true"><path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z"/></svg></button>' +
    '<div class="panel" role="dialog" aria-label="Chat">' +
    '<div class="head"><span class="title"></span><span class="state">connecting…</span></div>' +
    '<div class="log" aria-live="polite"></div><div class="typing"></div><div class="replies"></div>' +
    '<div class="error" hidden></div>' +
    '<form><label class="attach" title="Attach a file"><svg viewBox="0 0 24 24" width="18" height="18" fill="none" stroke="currentColor" stroke-width="2" aria-hidden="true"><path d="M21 11l-9 9a5 5 0 0 1-7-7l9-9a3.5 3.5 0 0 1 5 5l-9 9a2 2 0 0 1-3-3l8-8"/></svg><input type="file" hidden accept="image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain"></label>' +
    '<input type="text" name="text" placeholder="Type a message…" autocomplete="off" maxlength="4096" aria-label="Message">' +
    '<button type="submit">Send</button></form></div>';
  var $ = function (sel) { return root.querySelector(sel); };
  $(".title").textContent = title;
  var panel = $(".panel"), log = $(".log"), replies = $(".replies"), typing = $(".typing");
  var stateEl = $(".state"), errorEl = $(".error"), form = $("form"), input = form.elements.text;
  var fileInput = $("input[type=file]");

  var ws = null, token = null, retry = 0, typingTimer = null, lastTyping = 0;
  var shown = {};      // server message id -> element (dedupes pushes and history)
  var pending = {};    // client id -> {el, frame} until the hub acks it
  var unacked = [];    // frames to resend after a reconnect (same ids: the hub dedupes)
  var read = {};       // server message ids already reported read
  try { token = localStorage.getItem(storageKey); } catch (e) { token = null; }

  function uid() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 10); }
  function send(frame) { if (ws && ws.readyState === 1) { ws.send(JSON.stringify(frame)); return true; } return false; }
  function scroll() { log.scrollTop = log.scrollHeight; }
  function showError(text) { errorEl.textContent = text; errorEl.hidden = !text; }

  function safeUrl(url) {
    try { var u = new URL(url, origin); return (u.protocol === "https:" || u.protocol === "http:") ? u.href : null; }
    catch (e) { return null; }
  }

  function bubble(direction, parts) {
    var el = document.createElement("div");
    el.className = "msg " + direction;
    var quick = null;
    (parts || []).forEach(function (part) {
      var block = document.createElement("div");
      if (part.type === "text") { block.textContent = part.text; }
      else if (part.type === "postback") { block.textContent = part.title || part.payload; }
      else if (part.type === "image" || part.type === "sticker") {
        var src = safeUrl(part.url);
        if (src) { var img = document.createElement("img"); img.src = src; img.alt = part.name || part.caption || "image"; block.appendChild(img); }
        if (part.caption) { var cap = document.createElement("div"); cap.textContent = part.caption; block.appendChild(cap); }
      } else if (part.type === "file" || part.type === "audio" || part.type === "video") {
        var href = safeUrl(part.url), a = document.createElement("a");
        a.textContent = "\uD83D\uDCCE " + (part.name || part.type); if (href) { a.href = href; a.target = "_blank"; a.rel = "noopener"; }
        block.appendChild(a);
      } else if (part.type === "location") { block.textContent = "\uD83D\uDCCD " + (part.name || (part.latitude + ", " + part.longitude)); }
      else if (part.type === "contact_card") { block.textContent = "\uD83D\uDC64 " + part.name + " " + (part.phones || []).join(", "); }
      else if (part.type === "quick_replies") { quick = part.replies; return; }
      else { return; }
      el.appendChild(block);
    });
    if (el.childNodes.length) { log.appendChild(el); scroll(); }
    return { el: el, quick: quick };
  }

  function receipt(id) {
    if (read[id]) return;
    var status = document.hidden ? "delivered" : "read";
    if (send({ type: "receipt", message_id: id, status: status }) && status === "read") read[id] = true;
  }

  function tick(el, text) {
    var t = el.querySelector(".tick");
    if (!t) { t = document.createElement("span"); t.className = "tick"; el.appendChild(t); }
    t.textContent = text;
  }

  function showReplies(list) {
    replies.textContent = "";
    (list || []).forEach(function (r) {
      var b = document.createElement("button");
      b.type = "button"; b.textContent = r.title;
      b.addEventListener("click", function () { choose(r); });
      replies.appendChild(b);
    });
    scroll();  // the buttons took room from the log: keep the newest message in view
  }

  function render(message) {
    if (message.id != null && shown[message.id]) return;
    var shownBubble = bubble(message.direction, message.parts);
    if (message.id != null) shown[message.id] = shownBubble.el;
    if (message.direction === "out") {
      showReplies(shownBubble.quick);
      typing.textContent = "";
      // the hub answered: everything the visitor sent before has been read
      log.querySelectorAll(".msg.in .tick").forEach(function (t) { t.textContent = "✓✓"; });
      if (message.id != null && message.status !== "read") receipt(message.id);
    } else if (message.direction === "in") {
      tick(shownBubble.el, "✓");
    }
  }

  function outgoing(frame, parts) {
    var b = bubble("in", parts);
    pending[frame.id] = { el: b.el, frame: frame };
    tick(b.el, "…");
    unacked.push(frame);
    send(frame);
    showReplies(null);
  }

  function choose(reply) {
    outgoing({ type: "postback", id: uid(), payload: reply.payload, title: reply.title },
             [{ type: "postback", payload: reply.payload, title: reply.title }]);
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value;
    if (!text.trim()) return;
    input.value = "";
    outgoing({ type: "message", id: uid(), text: text }, [{ type: "text", text: text }]);
  });

  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - lastTyping > 3000) { lastTyping = now; send({ type: "typing" }); }
  });

  fileInput.addEventListener("change", function () {
    var file = fileInput.files[0];
    fileInput.value = "";
    if (!file || !token) return;
    var body = new FormData();
    body.append("file", file, file.name);
    fetch(origin + "/webchat/upload?channel=" + encodeURIComponent(channel), {
      method: "POST", headers: { Authorization: "Bearer " + token }, body: body
    }).then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
      .then(function (res) {
        if (!res.ok) { showError(res.body.detail || "upload failed"); return; }
        showError("");
        var part = { type: res.body.mime_type.indexOf("image/") === 0 ? "image" : "file", url: res.body.url, name: res.body.name };
        outgoing({ type: "message", id: uid(), attachments: [{ file_id: res.body.file_id }] }, [part]);
      }).catch(function () { showError("upload failed: check your connection"); });
  });

  function onFrame(frame) {
    if (frame.type === "session") {
      token = frame.token;
      try { localStorage.setItem(storageKey, token); } catch (e) { /* private mode: session lasts the tab */ }
    } else if (frame.type === "history") {
      (frame.messages || []).forEach(function (m) {
        if (m.client_id && pending[m.client_id]) { shown[m.id] = pending[m.client_id].el; return; }
        render(m);
      });
      unacked.forEach(function (f) { send(f); });  // resend what the hub never acked
    } else if (frame.type === "ack") {
      var p = pending[frame.id];
      if (p) {
        tick(p.el, "✓");
        if (frame.message_id != null) shown[frame.message_id] = p.el;
        delete pending[frame.id];
        unacked = unacked.filter(function (f) { return f.id !== frame.id; });
        typing.textContent = "typing…";
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.textContent = ""; }, 8000);
      }
    } else if (frame.type === "message") {
      render(frame.message);
    } else if (frame.type === "typing") {
      typing.textContent = (frame.name || "Someone") + " is typing…";
    } else if (frame.type === "error") {
      showError(frame.detail || "something went wrong");
      if (frame.id && pending[frame.id]) {
        tick(pending[frame.id].el, "!");
        delete pending[frame.id];
        unacked = unacked.filter(function (f) { return f.id !== frame.id; });
      }
    }
  }

  function connect() {
    stateEl.textContent = "connecting…";
    ws = new WebSocket(wsUrl);
    ws.onopen = function () {
      retry = 0; stateEl.textContent = "online";
      ws.send(JSON.stringify({ type: "hello", token: token, language: navigator.language || null }));
    };
    ws.onmessage = function (e) { try { onFrame(JSON.parse(e.data)); } catch (err) { console.error("chancenter:", err); } };
    ws.onclose = function () {
      stateEl.textContent = "reconnecting…";
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 500 * Math.pow(2, retry - 1));
    };
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return;
    Object.keys(shown).forEach(function (id) {
      if (shown[id].classList.contains("out")) receipt(Number(id));
    });
  });

  $(".launcher").addEventListener("click", function () {
    panel.classList.toggle("open");
    if (panel.classList.contains("open")) { input.focus(); scroll(); }
  });
  if (script.dataset.open === "true") panel.classList.add("open");

  (document.body || document.documentElement).appendChild(host);
  connect();
})();
