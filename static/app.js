// lambdascope: keyboard navigation and labelling. No inline scripts (the CSP forbids them);
// everything here works on whatever the page holds, re-reading the DOM after htmx swaps.
(function () {
  "use strict";
  var CATEGORIES = ["bad_gold", "model_error", "interesting", "other"];

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  function items() { return $$("[data-nav-item]"); }
  function current() { return $("[data-nav-item].is-current"); }

  function setStepInUrl(step) {
    if (!$("#label-form")) return;  // only the trace page keeps its step in the address
    var u = new URL(window.location.href);
    if (step === null) u.searchParams.delete("step"); else u.searchParams.set("step", step);
    window.history.replaceState(window.history.state, "", u.toString());
  }

  function syncLabelTarget() {
    var sel = $("#label-step");
    if (!sel) return;
    var cur = current();
    var step = cur && cur.hasAttribute("data-step") ? cur.getAttribute("data-step") : "";
    if ($('option[value="' + step + '"]', sel)) sel.value = step;
  }

  function select(el) {
    items().forEach(function (x) { x.classList.remove("is-current"); });
    if (!el) { syncLabelTarget(); setStepInUrl(null); return; }
    el.classList.add("is-current");
    el.scrollIntoView({ block: "nearest" });
    syncLabelTarget();
    if (el.hasAttribute("data-step")) {
      setStepInUrl(el.getAttribute("data-step"));
      showBeliefs(el.getAttribute("data-step"));
    }
  }

  // the beliefs panel (templates/_beliefs.html) follows the selected step
  function showBeliefs(step) {
    var panel = $("#beliefs[data-beliefs-base]");
    if (!panel || !window.htmx) return;
    var shown = $(".beliefs[data-step]", panel);
    if (shown && shown.getAttribute("data-step") === step) return;
    var base = panel.getAttribute("data-beliefs-base");
    window.htmx.ajax("GET", base + (base.indexOf("?") < 0 ? "?" : "&") + "step=" + encodeURIComponent(step),
                     { target: "#beliefs", swap: "innerHTML" });
  }

  function move(delta) {
    var list = items();
    if (!list.length) return;
    var i = list.indexOf(current());
    var j = i < 0 ? (delta > 0 ? 0 : list.length - 1) : Math.min(list.length - 1, Math.max(0, i + delta));
    select(list[j]);
  }

  function follow(sel) {
    var a = $(sel);
    if (a && a.href) window.location.href = a.href;
  }

  function label(index) {
    var form = $("#label-form");
    if (!form) return;
    var radio = $('input[name="category"][value="' + CATEGORIES[index] + '"]', form);
    if (!radio) return;
    radio.checked = true;
    syncLabelTarget();
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  }

  function toggleHelp(show) {
    var h = $("#help");
    if (!h) return;
    h.hidden = show === undefined ? !h.hidden : !show;
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var t = ev.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) {
      if (ev.key === "Escape") t.blur();
      return;
    }
    var handled = true;
    switch (ev.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "J": follow("[data-next]"); break;
      case "K": follow("[data-prev]"); break;
      case "s": follow("[data-skip]"); break;
      case "Enter": {
        var cur = current();
        if (cur && cur.getAttribute("data-href")) window.location.href = cur.getAttribute("data-href");
        else handled = false;
        break;
      }
      case "1": case "2": case "3": case "4": label(Number(ev.key) - 1); break;
      case "t": select(null); break;
      case "e": { var n = $("#label-note"); if (n) n.focus(); else handled = false; break; }
      case "/": { var q = $("[data-search]"); if (q) q.focus(); else handled = false; break; }
      case "?": toggleHelp(); break;
      case "Escape": toggleHelp(false); break;
      default: handled = false;
    }
    if (handled) ev.preventDefault();
  });

  document.addEventListener("click", function (ev) {
    var h = $("#help");
    if (h && !h.hidden && ev.target === h) toggleHelp(false);
    // a click on a character of a heatmap with an attention link shows its attention
    var cell = ev.target.closest && ev.target.closest("svg[data-attention-base] .cell[data-i]");
    if (cell && cell.getAttribute("data-i") !== "nf" && window.htmx) {
      var base = cell.closest("svg").getAttribute("data-attention-base");
      $$("svg[data-attention-base] .cell.picked").forEach(function (c) { c.classList.remove("picked"); });
      cell.classList.add("picked");
      window.htmx.ajax("GET", base + (base.indexOf("?") < 0 ? "?" : "&") + "char=" + cell.getAttribute("data-i"),
                       { target: cell.closest(".beliefs").querySelector(".attention-panel"), swap: "innerHTML" });
      return;
    }
    // clicking a step row selects it as the label target (links inside still work)
    var row = ev.target.closest && ev.target.closest("tr[data-step]");
    if (row && !ev.target.closest("a, button, input, select, textarea")) select(row);
  });

  // selects marked data-autosubmit submit their form on change (no inline handlers)
  document.addEventListener("change", function (ev) {
    var el = ev.target;
    if (el && el.hasAttribute && el.hasAttribute("data-autosubmit") && el.form) el.form.submit();
  });

  // a model panel shows its message even when the answer is an error (429: the model is busy,
  // 4xx: a bad character index, an unloadable checkpoint)
  document.addEventListener("htmx:beforeSwap", function (ev) {
    var target = ev.detail.target;
    if (ev.detail.xhr.status >= 400 && target && target.closest && target.closest("[data-model-panel]")) {
      ev.detail.shouldSwap = true;
      ev.detail.isError = false;
    }
  });

  // after htmx replaces the labels panel, keep the label target on the selected step
  document.addEventListener("htmx:afterSwap", function () { syncLabelTarget(); });

  document.addEventListener("DOMContentLoaded", function () {
    var cur = current();
    if (cur) cur.scrollIntoView({ block: "center" });
    syncLabelTarget();
  });
})();
