// The console's live pages: server-sent events in, JSON POSTs (with the CSRF token) out.
"use strict";

const strings = JSON.parse(document.getElementById("strings").textContent);
const csrf = document.querySelector('meta[name="csrf"]').content;
const $ = (id) => document.getElementById(id);
const tr = (key) => strings[key] || key;
// A value with its own words (a state, a reason): those, or the value itself as it was
// given (a pause reason typed at the command line), never the lookup key.
const label = (prefix, value) => strings[prefix + value] || value;

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function follow(url, onData) {
  // EventSource reconnects by itself; we only show when the link is down.
  const source = new EventSource(url);
  source.onmessage = (event) => {
    $("link-state").hidden = true;
    onData(JSON.parse(event.data));
  };
  source.onerror = () => {
    $("link-state").hidden = false;
  };
  source.addEventListener("signed-out", () => {
    source.close();
    window.location.assign("/login?expired=1");
  });
}

function text(id, value) {
  $(id).textContent = value === null || value === undefined || value === "" ? "–" : String(value);
}

// --- agent desk ------------------------------------------------------------------------

let wrapupCall = null;
let wrapupOrder = null;

function showMe(me) {
  const state = $("my-state");
  state.textContent = label("state.", me.state);
  state.dataset.state = me.state;
  $("my-reason").textContent = me.reason ? "(" + label("reason.", me.reason) + ")" : "";
  const loggedOut = me.state === "logged_out";
  $("btn-login").disabled = !loggedOut;
  $("btn-logout").disabled = loggedOut;
  $("btn-pause").disabled = loggedOut || me.state === "paused";
  $("btn-unpause").disabled = me.state !== "paused";
  // Whether the queue can ring this agent's phone (PJSIP/<endpoint> registered), live.
  const phone = me.phone_registered === true ? "registered" : me.phone_registered === false ? "unregistered" : "unknown";
  $("my-phone").textContent = tr("deskphone." + phone);
  $("my-phone").dataset.registered = phone;
  // A supervisor listening, whispering or barging (when the site tells its agents).
  const monitored = me.monitored || [];
  $("my-monitored").hidden = !monitored.length;
  $("my-monitored").textContent = tr("monitor.notice") + monitored.map((m) => tr("monitor." + m)).join(", ");
  showPhones(me.phones || []);
}

// Each of the agent's phones with its own state, and the one the queue rings: a phone
// that is not registered is said to be unreachable by the queue only if the queue rings it.
function showPhones(phones) {
  const list = $("my-phones");
  list.replaceChildren();
  for (const p of phones) {
    const state = p.registered === true ? "registered" : p.registered === false ? "unregistered" : "unknown";
    const item = document.createElement("li");
    item.id = "my-phone-" + p.kind;
    item.dataset.registered = state;
    item.dataset.rings = p.rings ? "yes" : "no";
    const words = state === "unregistered" && !p.rings ? tr("phone.unregistered") : tr("deskphone." + state);
    let text = tr("phones." + p.kind) + " " + p.endpoint + ": " + words;
    if (p.rings && state !== "unregistered") text += " · " + tr("phones.rings");
    item.textContent = text;
    list.append(item);
  }
  $("my-phones-none").hidden = phones.some((p) => p.rings) || !phones.length;
}

function showPop(pop) {
  $("screen-pop").hidden = !pop;
  $("no-call").hidden = !!pop;
  // The caller's notification settings, once the IVR knows who they are.
  $("pop-notices").hidden = !(pop && pop.notices_url);
  if (pop && pop.notices_url) $("pop-notices").href = pop.notices_url;
  if (!pop) return;
  text("pop-caller", pop.caller);
  // A call 12345 transferred here: its order number, and ours when 12345 sent it to us.
  for (const el of document.querySelectorAll(".pop-12345")) el.hidden = !pop.order_12345;
  text("pop-12345", pop.order_12345 ? pop.order_12345 + (pop.order_12345_id ? " · " + tr("order") + " #" + pop.order_12345_id : "") : null);
  $("pop-verified-label").textContent = pop.verified ? tr("verified") : tr("not_verified");
  text("pop-verified", pop.verified ? "✓" : "✗");
  text("pop-name", pop.name);
  text("pop-id", pop.id_number);
  text("pop-phone", pop.phone);
  text("pop-pension", pop.pension_balance_yuan === null ? null : pop.pension_balance_yuan + " " + tr("yuan"));
  text("pop-months", pop.pension_months);
  text("pop-medical", pop.medical_balance_yuan === null ? null : pop.medical_balance_yuan + " " + tr("yuan"));
  text("pop-path", pop.menu_path.join(" › "));
  text("pop-queries", pop.queries.join(", "));
}

function showLastCall(last) {
  $("wrapup-form").hidden = !last;
  $("no-last-call").hidden = !!last;
  if (!last) return;
  if (last.call_id !== wrapupCall) {
    // A new call to wrap up: start from what was saved for it, if anything.
    wrapupCall = last.call_id;
    $("wrapup-call").textContent = last.caller + " · " + last.started_at;
    $("wrapup-code").value = last.wrapup_code || "resolved";
    $("wrapup-note").value = last.wrapup_note || "";
    $("wrapup-saved").hidden = !last.wrapup_code;
    $("order-summary").value = "";
  }
  showOrderFields(last.order_id);
}

// "Needs follow-up" opens a work order with the wrap-up, once per call: the resident and
// the caller's number are taken from the call record by the server, not from this page.
function showOrderFields(orderId) {
  if (orderId !== undefined) wrapupOrder = orderId;
  $("order-created").hidden = !wrapupOrder;
  $("order-id").textContent = wrapupOrder ? "#" + wrapupOrder : "";
  $("order-fields").hidden = !!wrapupOrder || $("wrapup-code").value !== "follow_up";
  $("order-summary").required = !$("order-fields").hidden;
}

function showCallbacks(callbacks) {
  const body = $("callbacks").querySelector("tbody");
  body.replaceChildren();
  $("callbacks").hidden = callbacks.length === 0;
  $("no-callbacks").hidden = callbacks.length > 0;
  for (const cb of callbacks) {
    const row = body.insertRow();
    row.id = "callback-" + cb.id;
    row.insertCell().textContent = cb.id;
    row.insertCell().textContent = cb.number + " (" + label("cb.reason.", cb.reason) + ")";
    row.insertCell().textContent = cb.requested_at;
    // How the last call out went (dialing, answered, busy, no_answer, lines_full, failed).
    const dial = row.insertCell();
    dial.className = "cb-dial";
    dial.dataset.state = cb.dial_state || "";
    dial.textContent = cb.dial_state ? label("cb.dial.", cb.dial_state) : "";
    const cell = row.insertCell();
    let buttons = [["take", tr("btn.take")]];
    if (cb.status !== "open") {
      buttons = [["done", tr("btn.done")], ["failed", tr("btn.failed")]];
      if (cb.dial_state !== "dialing") buttons.unshift(["call", tr("btn.call")]);
    }
    for (const [what, label] of buttons) {
      const button = document.createElement("button");
      button.textContent = label;
      button.className = "cb-" + what;
      button.onclick = () => {
        $("state-error").hidden = true;
        const dials = what === "take" || what === "call";
        const url = "/api/callbacks/" + cb.id + (dials ? "/take" : "/finish");
        post(url, dials ? {} : { outcome: what })
          .then((data) => { if (data.error) showError(new Error(data.error)); })
          .catch(showError);
      };
      cell.appendChild(button);
    }
  }
}

// The three-party call card: shown while I am on a call or in a three-party call.
function showConference(me, conference) {
  $("conference-card").hidden = !me.current_call_id && !conference;
  $("conference-leave").hidden = !(conference && conference.state === "active");
  $("conference-add").disabled = !!conference;
  const state = $("conference-state");
  if (!conference) {
    if (state.dataset.state !== "failed") state.textContent = "";
    return;
  }
  state.dataset.state = conference.state;
  if (conference.state === "dialing") state.textContent = tr("conf.dialing").replace("{target}", conference.target);
  if (conference.state === "active") {
    const order = ["caller", "agent", "member"];
    const present = new Set(conference.legs.filter((leg) => !leg.left_at).map((leg) => leg.party));
    const parties = order.filter((party) => present.has(party)).map((party) => tr("conf.party." + party));
    state.textContent = tr("conf.active").replace("{parties}", parties.join(", "));
  }
}

function showError(error) {
  $("state-error").hidden = false;
  $("state-error").textContent = error.message;
}

function agentPage() {
  for (const button of document.querySelectorAll("#state-card button[data-action]")) {
    button.onclick = () => {
      $("state-error").hidden = true;
      const body = { action: button.dataset.action };
      if (body.action === "pause") body.reason = $("pause-reason").value;
      // Joined with the desk's softphone registered: the queues ring that phone.
      if (body.action === "login" && softphone.registered()) body.phone = "softphone";
      post("/api/agent/state", body).catch(showError);
    };
  }
  $("wrapup-form").onsubmit = (event) => {
    event.preventDefault();
    const body = { call_id: wrapupCall, code: $("wrapup-code").value, note: $("wrapup-note").value };
    if (!$("order-fields").hidden) {
      body.order = {
        category: $("order-category").value,
        department: $("order-department").value,
        summary: $("order-summary").value,
      };
    }
    post("/api/wrapup", body)
      .then((data) => {
        $("wrapup-saved").hidden = false;
        showOrderFields(data.order_id || wrapupOrder);
      })
      .catch(showError);
  };
  $("wrapup-code").onchange = () => showOrderFields();
  $("conference-form").onsubmit = (event) => {
    event.preventDefault();
    const state = $("conference-state");
    post("/api/agent/conference", { target: $("conference-target").value }).catch((error) => {
      state.dataset.state = "failed";
      state.textContent = tr("conf.failed").replace("{detail}", error.message);
    });
  };
  $("conference-leave").onclick = () => post("/api/agent/conference/leave", {}).catch(showError);
  softphone.start();
  follow("/agent/stream", (data) => {
    showMe(data.me);
    showConference(data.me, data.conference);
    showPop(data.screen_pop);
    showLastCall(data.last_call);
    showCallbacks(data.callbacks);
  });
}

// --- wallboard -------------------------------------------------------------------------

function percent(rate) {
  return rate === null ? null : Math.round(rate * 1000) / 10 + "%";
}

async function editSkills(agent) {
  const answer = window.prompt(tr("skills.prompt") + " " + agent.name, agent.skills.join(","));
  if (answer === null) return;
  const message = $("wb-monitor-message");
  try {
    await post("/wallboard/skills", { agent: agent.id, skills: answer.split(",").map((s) => s.trim()).filter(Boolean) });
    message.textContent = "";
  } catch (error) {
    message.textContent = error.message;
    message.className = "error";
  }
}

async function startMonitor(agent, mode) {
  const message = $("wb-monitor-message");
  try {
    await post("/wallboard/monitor", { agent, mode });
    message.textContent = tr("monitor.ringing");
    message.className = "";
  } catch (error) {
    message.textContent = error.message;
    message.className = "error";
  }
}

function wallboardPage() {
  follow("/wallboard/stream", (data) => {
    $("not-live").hidden = data.live;
    text("wb-waiting", data.waiting);
    text("wb-longest", data.live ? data.longest_wait_s + " " + tr("seconds") : null);
    const today = data.today;
    text("wb-answered", today.agent_calls);
    text("wb-abandoned", today.abandoned_calls);
    text("wb-automated", today.automated_calls);
    text("wb-sl", percent(today.service_level));
    text("wb-connection", percent(today.connection_rate));
    $("wb-sl").classList.toggle("missed", data.goals_missed.includes("service_level"));
    $("wb-connection").classList.toggle("missed", data.goals_missed.includes("connection_rate"));
    text("wb-hours-missed", data.hours_missed.length ? data.hours_missed.map((h) =>
      String(h.hour).padStart(2, "0") + ":00 " + h.missed.map((g) => tr("goal." + g)).join(", ")).join(" · ") : tr("no_hours_missed"));
    text("wb-avg-wait", today.avg_wait_seconds + " " + tr("seconds"));
    text("wb-avg-talk", today.avg_agent_talk_seconds + " " + tr("seconds"));
    text("wb-satisfaction", percent(today.satisfaction_rate));
    text("wb-overdue", data.overdue_orders);
    $("nav-overdue").textContent = String(data.overdue_orders);
    $("nav-overdue").hidden = !data.overdue_orders;
    $("wb-open").textContent = "(" + tr(data.open ? "open" : "closed") + ")";
    for (const [state, n] of Object.entries(data.agents)) text("wb-state-" + state, n);
    // Per skill: callers waiting in its queue, its agents free.
    const bySkill = $("wb-skills");
    bySkill.hidden = !data.by_skill.length;
    bySkill.replaceChildren(
      ...data.by_skill.map((k) => {
        const item = document.createElement("li");
        item.textContent = label("skill.", k.skill) + ": " + tr("skills.waiting") + " " + (k.waiting ?? "–") +
          ", " + tr("skills.available") + " " + k.available;
        item.dataset.skill = k.skill;
        return item;
      }),
    );
    const body = $("wb-agents").querySelector("tbody");
    body.replaceChildren();
    for (const agent of data.agent_list) {
      const row = body.insertRow();
      row.insertCell().textContent = agent.name;
      row.insertCell().textContent = label("state.", agent.state) + (agent.reason ? " (" + label("reason.", agent.reason) + ")" : "");
      const phone = row.insertCell();
      if (agent.phone_registered === false) {
        phone.textContent = "✗ " + tr("phone_not_registered");
        phone.className = "phone-unregistered";
      }
      // Skills: shown, and changed by the supervisor (at once if logged in).
      const skills = row.insertCell();
      skills.className = "skills";
      skills.append((agent.skills.join(", ") || "–") + " ");
      if (data.by_skill.length) {
        const edit = document.createElement("button");
        edit.textContent = tr("skills.edit");
        edit.addEventListener("click", () => editSkills(agent));
        skills.append(edit);
      }
      // 监听 / 耳语 / 强插: rings the supervisor's own phone into this agent's call.
      const spy = row.insertCell();
      spy.className = "monitor";
      if (agent.monitors.length) {
        spy.append(agent.monitors.map((m) => tr("monitor." + m)).join(", ") + " ");
      } else if (agent.state === "on_call") {
        for (const mode of ["listen", "whisper", "barge"]) {
          const button = document.createElement("button");
          button.textContent = tr("monitor." + mode);
          button.dataset.agent = agent.id;
          button.dataset.mode = mode;
          button.addEventListener("click", () => startMonitor(agent.id, mode));
          spy.append(button);
        }
      }
    }
    text("wb-updated", new Date().toLocaleTimeString());
  });
}

const page = document.body.dataset.page;
if (page === "agent") agentPage();
if (page === "wallboard") wallboardPage();
