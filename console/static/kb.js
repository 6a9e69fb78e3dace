// The desk's knowledge panel: search published articles, read one, mark it used on the call.
// Uses console.js's helpers ($, tr, post), run once every deferred script has loaded.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  if (!$("kb-card")) return;
  let openId = null;

  function showError(error) {
    $("kb-error").hidden = !error;
    $("kb-error").textContent = error ? error.message : "";
  }

  async function getJson(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    const data = await response.json().catch(() => ({ error: response.statusText }));
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  function showResults(results) {
    const list = $("kb-results");
    list.replaceChildren();
    list.hidden = false;
    $("kb-article").hidden = true;
    $("kb-none").hidden = results.length > 0;
    for (const hit of results) {
      const item = document.createElement("li");
      item.className = "kb-hit";
      item.dataset.id = hit.id;
      const title = document.createElement("a");
      title.href = "#";
      title.className = "kb-hit-title";
      title.textContent = hit.title;
      title.onclick = (event) => { event.preventDefault(); openArticle(hit.id).catch(showError); };
      item.append(title, " ");
      const meta = document.createElement("span");
      meta.className = "muted";
      meta.textContent = hit.category + " · " + hit.effective_date;
      item.append(meta);
      const snippet = document.createElement("div");
      snippet.className = "kb-snippet";
      for (const [piece, matched] of hit.snippet) {
        const node = matched ? document.createElement("mark") : document.createTextNode(piece);
        if (matched) node.textContent = piece;
        snippet.append(node);
      }
      item.append(snippet);
      list.append(item);
    }
  }

  async function openArticle(id) {
    const a = await getJson("/api/kb/articles/" + id);
    openId = a.id;
    $("kb-results").hidden = true;
    $("kb-article").hidden = false;
    $("kb-article-title").textContent = a.title;
    const tags = a.tags.length ? " · " + a.tags.join("、") : "";
    $("kb-article-meta").textContent = a.category + " · " + tr("kb.effective") + " " + a.effective_date + tags
      + (a.sample ? " · " + tr("kb.sample") : "");
    $("kb-article-body").innerHTML = a.html; // the server escaped the text (console/markdown.py)
    $("kb-used-done").hidden = !a.used;
    $("kb-used").disabled = a.used;
  }

  $("kb-search-form").onsubmit = (event) => {
    event.preventDefault();
    showError(null);
    const q = $("kb-q").value.trim();
    if (!q) return;
    getJson("/api/kb/search?q=" + encodeURIComponent(q)).then((data) => showResults(data.results)).catch(showError);
  };
  $("kb-used").onclick = () => {
    showError(null);
    post("/api/kb/articles/" + openId + "/used", {})
      .then(() => { $("kb-used-done").hidden = false; $("kb-used").disabled = true; })
      .catch(showError);
  };
  $("kb-back").onclick = () => {
    $("kb-article").hidden = true;
    $("kb-results").hidden = false;
  };
});
