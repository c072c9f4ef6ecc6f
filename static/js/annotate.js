/* The annotation screen's keyboard, ranking widget and draft keeping.
 *
 * The form's radios and selects are the single source of truth: everything here only sets them,
 * so the server sees exactly what a no-JS form would send. htmx swaps #work after a submit or a
 * skip; init() runs again on the new content. The draft of the open item lives in sessionStorage,
 * so a reload, a lost connection or an accidental navigation loses nothing.
 */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  const LETTERS = "abcdefghijklmnop";
  const DRAFT = "hybridpref-draft-";
  let lastRenew = 0;

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const work = () => $("#work");
  const form = () => $("#judge-form");
  const aspects = () => $$("#judge-form .aspect");
  const current = () => $("#judge-form .aspect.current") || aspects()[0];
  const taskType = () => (work()?.className.match(/task-(\w+)/) || [])[1];

  // ---- Completeness --------------------------------------------------------------------------
  function aspectDone(fs) {
    if (fs.querySelector(".ranking")) {
      return $$("select", fs).every((s) => s.value !== "");
    }
    if (fs.querySelector(".bws")) {
      return !!fs.querySelector("input[name$='-best']:checked") && !!fs.querySelector("input[name$='-worst']:checked");
    }
    return !!fs.querySelector("input:checked");
  }

  function refresh() {
    const f = form();
    if (!f) return;
    let complete = true;
    for (const fs of aspects()) {
      const done = aspectDone(fs);
      fs.classList.toggle("done", done);
      complete = complete && done;
    }
    f.classList.toggle("incomplete", !complete);
    markResponses();
    const ta = f.querySelector("textarea[name=rationale]");
    if (ta) ta.classList.toggle("filled", ta.value.trim() !== "");
  }

  // Show the current aspect's choice on the response cards (rank, best, worst).
  function markResponses() {
    const fs = current();
    for (const card of $$(".response")) {
      const p = card.dataset.position;
      const mark = card.querySelector("[data-mark]");
      let text = "";
      card.classList.remove("is-best", "is-worst", "is-ranked");
      if (fs && fs.querySelector(".bws")) {
        if (fs.querySelector(`input[name$='-best'][value='${p}']:checked`)) { text = "Best"; card.classList.add("is-best"); }
        if (fs.querySelector(`input[name$='-worst'][value='${p}']:checked`)) { text = "Worst"; card.classList.add("is-worst"); }
      } else if (fs && fs.querySelector(".ranking")) {
        const sel = fs.querySelector(`select[data-position='${p}']`);
        if (sel && sel.value) { text = "#" + sel.value; card.classList.add("is-ranked"); }
      }
      if (mark) mark.textContent = text;
    }
  }

  function setCurrent(fs, { scroll = true } = {}) {
    if (!fs) return;
    aspects().forEach((a) => a.classList.toggle("current", a === fs));
    if (scroll) fs.scrollIntoView({ block: "nearest" });
    markResponses();
  }

  function advance() {
    const all = aspects();
    const i = all.indexOf(current());
    const next = all.slice(i + 1).concat(all.slice(0, i)).find((fs) => !aspectDone(fs));
    if (next) setCurrent(next);
    else $("#judge-form .submit")?.focus({ preventScroll: true });
  }

  function changed() {
    refresh();
    saveDraft();
  }

  // ---- Ranking widget ------------------------------------------------------------------------
  // State: the placement sequence `seq` (positions, best first) and which entries tie with the
  // one before. Ranks are dense (1, 1, 2, 3), so "two ranks apart" means two levels apart.
  function rankState(fs) {
    const sels = $$("select", fs);
    const placed = sels.filter((s) => s.value !== "").map((s) => ({ p: +s.dataset.position, r: +s.value }));
    placed.sort((a, b) => a.r - b.r || a.p - b.p);
    const seq = placed.map((x) => x.p);
    const tie = placed.map((x, i) => i > 0 && x.r === placed[i - 1].r);
    return { seq, tie, k: sels.length };
  }

  function writeRanks(fs, seq, tie) {
    const ranks = {};
    let r = 0;
    seq.forEach((p, i) => { r += i > 0 && tie[i] ? 0 : 1; ranks[p] = r; });
    for (const s of $$("select", fs)) s.value = ranks[s.dataset.position] ? String(ranks[s.dataset.position]) : "";
    drawRanking(fs);
    changed();
  }

  function place(fs, p) {
    const { seq, tie } = rankState(fs);
    if (seq.includes(p)) return;
    seq.push(p); tie.push(false);
    writeRanks(fs, seq, tie);
    if (rankState(fs).seq.length === rankState(fs).k) advance();
  }

  function unplace(fs, p) {
    const { seq, tie } = rankState(fs);
    const i = seq.indexOf(p);
    if (i < 0) return;
    // The one after inherits "tied with previous" only if both neighbours were tied to it.
    if (i + 1 < seq.length) tie[i + 1] = tie[i + 1] && tie[i];
    seq.splice(i, 1); tie.splice(i, 1);
    if (seq.length) tie[0] = false;
    writeRanks(fs, seq, tie);
  }

  function undoLast(fs) {
    const { seq } = rankState(fs);
    if (seq.length) unplace(fs, seq[seq.length - 1]);
  }

  function toggleTie(fs) {
    if (fs.querySelector(".ranking")?.dataset.ties !== "1") return;
    const { seq, tie } = rankState(fs);
    if (seq.length < 2) return;
    tie[seq.length - 1] = !tie[seq.length - 1];
    writeRanks(fs, seq, tie);
  }

  function move(fs, p, delta) {
    const { seq, tie } = rankState(fs);
    const i = seq.indexOf(p);
    const j = i + delta;
    if (i < 0 || j < 0 || j >= seq.length) return;
    [seq[i], seq[j]] = [seq[j], seq[i]];
    writeRanks(fs, seq, tie);
    fs.querySelector(`.chip[data-position='${p}']`)?.focus();
  }

  function moveBefore(fs, p, before) {
    const { seq, tie } = rankState(fs);
    const from = seq.indexOf(p);
    if (from >= 0) { seq.splice(from, 1); tie.splice(from, 1); }
    let to = before === null ? seq.length : seq.indexOf(before);
    if (to < 0) to = seq.length;
    seq.splice(to, 0, p); tie.splice(to, 0, false);
    tie[0] = false;
    writeRanks(fs, seq, tie);
  }

  function chip(p, label, ranked) {
    const el = document.createElement("button");
    el.type = "button";
    el.className = "chip" + (ranked ? "" : " unranked");
    el.dataset.position = p;
    el.draggable = true;
    el.innerHTML = ranked ? `<span class="n"></span>${label}` : `<kbd>${label}</kbd>`;
    el.title = ranked ? "Click to take back; drag or ←/→ to move" : "Click or press the letter to rank next";
    return el;
  }

  function drawRanking(fs) {
    const box = fs.querySelector(".ranking");
    const ol = box.querySelector(".ranked");
    const { seq, tie, k } = rankState(fs);
    ol.replaceChildren();
    let r = 0;
    seq.forEach((p, i) => {
      r += i > 0 && tie[i] ? 0 : 1;
      const li = document.createElement("li");
      if (i > 0) {
        const sign = document.createElement("span");
        sign.className = tie[i] ? "tie-sign" : "gt-sign";
        sign.textContent = tie[i] ? "=" : "›";
        li.append(sign);
      }
      const c = chip(p, LETTERS[p].toUpperCase(), true);
      c.querySelector(".n").textContent = r;
      li.append(c);
      ol.append(li);
    });
    box.querySelectorAll(".pool-label, .chip.unranked").forEach((el) => el.remove());
    const left = [...Array(k).keys()].filter((p) => !seq.includes(p));
    if (left.length) {
      const label = document.createElement("span");
      label.className = "pool-label";
      label.textContent = seq.length ? "then:" : "Rank best first:";
      box.append(label);
      left.forEach((p) => box.append(chip(p, LETTERS[p].toUpperCase(), false)));
    }
  }

  function wireRanking(fs) {
    const box = fs.querySelector(".ranking");
    if (!box || box.dataset.wired) return;
    box.dataset.wired = "1";
    drawRanking(fs);
    box.addEventListener("click", (e) => {
      const c = e.target.closest(".chip");
      if (!c) return;
      setCurrent(fs, { scroll: false });
      const p = +c.dataset.position;
      if (c.classList.contains("unranked")) place(fs, p); else unplace(fs, p);
    });
    box.addEventListener("keydown", (e) => {
      const c = e.target.closest(".chip:not(.unranked)");
      if (!c) return;
      const delta = { ArrowLeft: -1, ArrowRight: 1 }[e.key];
      if (delta) { e.preventDefault(); e.stopPropagation(); move(fs, +c.dataset.position, delta); }
    });
    // Drag and drop: drop on a chip to go before it, on empty space to go last, on the pool
    // (an unranked chip) to take it back.
    let dragged = null;
    box.addEventListener("dragstart", (e) => {
      const c = e.target.closest(".chip");
      if (!c) return;
      dragged = +c.dataset.position;
      c.classList.add("dragging");
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData("text/plain", String(dragged));
    });
    box.addEventListener("dragend", () => {
      dragged = null;
      $$(".chip", box).forEach((c) => c.classList.remove("dragging", "drop-before"));
    });
    box.addEventListener("dragover", (e) => {
      if (dragged === null) return;
      e.preventDefault();
      $$(".chip", box).forEach((c) => c.classList.remove("drop-before"));
      const c = e.target.closest(".chip:not(.unranked)");
      if (c) c.classList.add("drop-before");
    });
    box.addEventListener("drop", (e) => {
      if (dragged === null) return;
      e.preventDefault();
      setCurrent(fs, { scroll: false });
      const target = e.target.closest(".chip");
      if (target && target.classList.contains("unranked")) unplace(fs, dragged);
      else moveBefore(fs, dragged, target ? +target.dataset.position : null);
      if (rankState(fs).seq.length === rankState(fs).k) refresh();
    });
  }

  // ---- Drafts --------------------------------------------------------------------------------
  function draftKey() {
    const id = work()?.dataset.assignment;
    return id ? DRAFT + id : null;
  }

  function saveDraft() {
    const key = draftKey();
    const f = form();
    if (!key || !f) return;
    const data = {};
    for (const el of f.elements) {
      if (!el.name || el.name === "csrfmiddlewaretoken") continue;
      if (el.type === "radio") { if (el.checked) data[el.name] = el.value; }
      else if (el.tagName === "SELECT" || el.tagName === "TEXTAREA") data[el.name] = el.value;
    }
    try { sessionStorage.setItem(key, JSON.stringify(data)); } catch (_) { /* storage full or off */ }
  }

  function restoreDraft() {
    const key = draftKey();
    const f = form();
    if (!key || !f) return;
    let data = null;
    try { data = JSON.parse(sessionStorage.getItem(key) || "null"); } catch (_) { data = null; }
    if (!data) return;
    for (const el of f.elements) {
      if (!(el.name in data)) continue;
      if (el.type === "radio") el.checked = el.value === data[el.name];
      else if (el.tagName === "SELECT" || el.tagName === "TEXTAREA") el.value = data[el.name];
    }
  }

  function forgetOtherDrafts() {
    const keep = draftKey();
    try {
      for (let i = sessionStorage.length - 1; i >= 0; i--) {
        const k = sessionStorage.key(i);
        if (k && k.startsWith(DRAFT) && k !== keep) sessionStorage.removeItem(k);
      }
    } catch (_) { /* ignore */ }
  }

  // ---- Holding the item while working --------------------------------------------------------
  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"]; } catch (_) { return ""; }
  }

  function renewSoon() {
    const w = work();
    if (!w || !w.dataset.renewUrl) return;
    // Renew at most every fifth of the hold (30 min → every 6 min) while there is activity.
    const every = Math.max(30000, (+w.dataset.holdMinutes || 30) * 60000 / 5);
    const now = Date.now();
    if (now - lastRenew < every) return;
    lastRenew = now;
    fetch(w.dataset.renewUrl, { method: "POST", headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" })
      .then((r) => { if (r.status === 409) showProblem("Your hold on this item expired; it went back to the pool. Press N for the next item.", false); })
      .catch(() => { lastRenew = 0; });
  }

  // ---- Messages ------------------------------------------------------------------------------
  function showProblem(text, info) {
    const box = $("#problem");
    if (!box) return;
    box.className = "problem shown" + (info ? " info" : "");
    box.textContent = text;
  }

  function clearProblem() {
    const box = $("#problem");
    if (box && box.classList.contains("info")) { box.className = "problem"; box.textContent = ""; }
  }

  // ---- Keys ----------------------------------------------------------------------------------
  function pick(input) {
    if (!input) return;
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function submit() {
    const f = form();
    if (!f) return;
    const missing = aspects().find((fs) => !aspectDone(fs));
    if (missing) {
      setCurrent(missing);
      showProblem(`Choose “${missing.querySelector("legend").textContent.trim()}” first.`, true);
      return;
    }
    if (f.querySelector("button[type=submit]:disabled")) return; // already on its way
    f.requestSubmit();
  }

  function openDialog(id) {
    const d = document.getElementById(id);
    if (d && !d.open) d.showModal();
  }

  function onKey(e) {
    if (e.defaultPrevented || e.ctrlKey && e.key !== "Enter" || e.metaKey && e.key !== "Enter" || e.altKey) return;
    const t = e.target;
    const typing = t.closest && (t.closest("textarea") || t.closest("input[type=text]") || t.closest("select"));
    const dialog = $("dialog[open]");

    if (dialog) {
      if (dialog.id === "guidelines" && (e.key === "?" || e.key === "g")) { e.preventDefault(); dialog.close(); }
      if (dialog.id === "skip-dialog" && !typing && /^[1-9]$/.test(e.key)) {
        e.preventDefault();
        pick(dialog.querySelector(`input[data-key='${e.key}']`));
      }
      return; // Esc closes dialogs natively; Enter submits the skip form natively
    }
    if (typing) {
      if (e.key === "Escape") { t.blur(); e.preventDefault(); }
      else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
      return;
    }
    if (e.ctrlKey || e.metaKey) {
      if (e.key === "Enter") { e.preventDefault(); submit(); }
      return;
    }
    const key = e.key;
    const fs = current();
    const task = taskType();

    // "g" too, unless it names a response (K ≥ 7 in ranking or best–worst).
    const gFree = task === "pairwise" || $$(".response").length < 7;
    if (key === "?" || (key === "g" && gFree)) { e.preventDefault(); openDialog("guidelines"); return; }
    const nextLink = $("#problem a.btn");
    if ((key === "n" || key === "N") && nextLink) { e.preventDefault(); nextLink.click(); return; }
    if (!form()) return;
    if (key === "Enter") {
      if (t.closest && t.closest("a, button:not([type=submit])")) return; // let links and buttons work
      e.preventDefault(); submit(); return;
    }
    if (key === "ArrowDown" || key === "ArrowUp" || key === "]" || key === "[") {
      if (t.closest && t.closest(".scroll")) return; // arrows scroll the text being read
      const all = aspects();
      const i = all.indexOf(fs) + (key === "ArrowDown" || key === "]" ? 1 : -1);
      if (i >= 0 && i < all.length) { e.preventDefault(); setCurrent(all[i]); }
      return;
    }
    if (key === "7" || key === "8" || key === "9") {
      e.preventDefault(); pick($(`#judge-form .confidence input[data-key='${key}']`)); return;
    }
    if (key === "s" || key === "S") { e.preventDefault(); openDialog("skip-dialog"); return; }
    if (key === "r" || key === "R") { e.preventDefault(); $("#judge-form textarea[name=rationale]")?.focus(); return; }
    if (!fs) return;

    if (task === "pairwise" && /^[1-5]$/.test(key)) {
      const input = fs.querySelector(`input[data-key='${key}']`);
      if (input) { e.preventDefault(); pick(input); advance(); }
      return;
    }
    const index = LETTERS.indexOf(key.toLowerCase());
    const letterOk = key.length === 1 && index >= 0;
    if (task === "kwise" && letterOk) {
      const which = e.shiftKey ? "worst" : "best";
      const input = fs.querySelector(`input[name$='-${which}'][data-letter='${key.toLowerCase()}']`);
      if (!input) return;
      e.preventDefault();
      pick(input);
      if (aspectDone(fs)) advance();
      return;
    }
    if (task === "ranking") {
      if (letterOk && index < rankState(fs).k) { e.preventDefault(); place(fs, index); return; }
      if (key === "Backspace") { e.preventDefault(); undoLast(fs); return; }
      if (key === "=") { e.preventDefault(); toggleTie(fs); return; }
    }
  }

  // ---- Wiring --------------------------------------------------------------------------------
  function init() {
    const top = $("header.top");
    if (top) document.documentElement.style.setProperty("--top", top.offsetHeight + "px");
    forgetOtherDrafts();
    const f = form();
    if (!f || f.dataset.wired) return; // htmx:load and afterSwap may both call this
    f.dataset.wired = "1";
    restoreDraft();
    aspects().forEach(wireRanking);
    // One best and one worst per aspect must differ: choosing one clears the other.
    f.addEventListener("change", (e) => {
      const el = e.target;
      const fs = el.closest(".aspect");
      if (fs && fs.querySelector(".bws") && el.checked) {
        const other = el.name.endsWith("-best") ? "-worst" : "-best";
        const clash = fs.querySelector(`input[name$='${other}'][value='${el.value}']:checked`);
        if (clash) clash.checked = false;
      }
      if (fs) setCurrent(fs, { scroll: false });
      clearProblem();
      changed();
    });
    f.addEventListener("input", (e) => { if (e.target.name === "rationale") saveDraft(); });
    f.addEventListener("click", (e) => {
      const fs = e.target.closest(".aspect");
      if (fs) setCurrent(fs, { scroll: false });
    });
    refresh();
    lastRenew = Date.now();
    // Start where the work is: the first aspect without a choice.
    const first = aspects().find((fs) => !aspectDone(fs));
    if (first) setCurrent(first, { scroll: false });
    $(".responses")?.scrollTo?.(0, 0);
  }

  document.addEventListener("keydown", onKey);
  ["keydown", "pointerdown", "wheel"].forEach((t) => document.addEventListener(t, renewSoon, { passive: true }));
  document.addEventListener("click", (e) => {
    const a = e.target.closest("[data-action]");
    if (!a) return;
    if (a.dataset.action === "guidelines") openDialog("guidelines");
    else if (a.dataset.action === "skip") openDialog("skip-dialog");
    else if (a.dataset.action === "close") a.closest("dialog")?.close();
  });
  // Clicking the backdrop of a dialog closes it.
  document.addEventListener("click", (e) => {
    if (e.target.tagName === "DIALOG") e.target.close();
  });

  // htmx: 4xx answers that name a target (HX-Retarget) carry a message and are swapped in; a
  // failure to reach the server keeps the form as it is, with the draft, and says so.
  document.addEventListener("htmx:beforeSwap", (e) => {
    const xhr = e.detail.xhr;
    $$("dialog[open]").forEach((d) => d.close());
    if (xhr.status >= 400 && xhr.status < 500 && xhr.getResponseHeader("HX-Retarget")) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
  document.addEventListener("htmx:sendError", () =>
    showProblem("Not saved: the server could not be reached. Your choices are kept; press Enter to try again.", false));
  document.addEventListener("htmx:responseError", (e) => {
    if (e.detail.xhr.getResponseHeader("HX-Retarget")) return;
    showProblem(`Not saved: the server answered ${e.detail.xhr.status}. Your choices are kept; press Enter to try again.`, false);
  });
  document.addEventListener("htmx:afterSwap", (e) => {
    if (e.detail.target && (e.detail.target.id === "work" || e.detail.elt?.id === "work" || $("#work") === e.detail.elt)) init();
  });
  document.addEventListener("htmx:load", (e) => { if (e.detail.elt && e.detail.elt.id === "work") init(); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
