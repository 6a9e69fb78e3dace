// The agent desk's softphone: JsSIP (bundled into /static/jssip.js at install time) over a
// secure WebSocket to Asterisk (RFC 7118), media DTLS-SRTP with ICE (webrtc=yes endpoint).
// It registers when the desk opens, rings, answers, hangs up, holds, mutes, sends RFC 4733
// DTMF and blind-transfers (SIP REFER, RFC 3515) to a department's number.
"use strict";

const softphone = (() => {
  const $ = (id) => document.getElementById(id);
  const strings = JSON.parse(document.getElementById("strings").textContent);
  const tr = (key) => strings[key] || key;
  let ua = null;
  let session = null;
  let host = "";
  let registered = false;

  function setState(state) {
    const el = $("phone-state");
    el.dataset.state = state;
    el.textContent = tr("phone." + state);
  }

  function toggleLabel(button, on) {
    button.textContent = on ? button.dataset.on : button.dataset.off;
    button.dataset.active = on ? "1" : "";
  }

  function showCall() {
    const ringing = !!session && !session.isEstablished() && !session.isEnded();
    const talking = !!session && session.isEstablished() && !session.isEnded();
    $("phone-ringing").hidden = !ringing;
    $("btn-answer").disabled = !ringing;
    $("btn-hangup").disabled = !(ringing || talking);
    for (const id of ["btn-hold", "btn-mute", "btn-transfer"]) $(id).disabled = !talking;
    $("btn-transfer").disabled = !talking || $("transfer-to").options.length === 0;
    for (const key of document.querySelectorAll("#phone-keypad .dtmf")) key.disabled = !talking;
    if (!talking) {
      toggleLabel($("btn-hold"), false);
      toggleLabel($("btn-mute"), false);
    }
    if (ringing) setState("ringing");
    else if (talking) setState(session.isOnHold().local ? "held" : "talking");
    else setState(registered ? "registered" : "unregistered");
  }

  function showError(message) {
    $("phone-error").hidden = !message;
    $("phone-error").textContent = message || "";
  }

  function attachAudio(connection) {
    connection.addEventListener("track", (event) => {
      $("phone-audio").srcObject = event.streams[0] || new MediaStream([event.track]);
    });
  }

  function incoming(newSession) {
    if (session && !session.isEnded()) {
      newSession.terminate({ status_code: 486 }); // one call at a time: busy here
      return;
    }
    session = newSession;
    $("phone-from").textContent = session.remote_identity.uri.user || "";
    for (const name of ["progress", "accepted", "confirmed", "hold", "unhold"]) session.on(name, showCall);
    for (const name of ["ended", "failed"]) {
      session.on(name, () => {
        $("phone-audio").srcObject = null;
        showCall();
      });
    }
    if (session.connection) attachAudio(session.connection);
    else session.on("peerconnection", (event) => attachAudio(event.peerconnection));
    showCall();
  }

  function buttons() {
    $("btn-answer").onclick = () => {
      session.answer({ mediaConstraints: { audio: true, video: false }, pcConfig: { iceServers: [] } });
    };
    $("btn-hangup").onclick = () => session.terminate();
    $("btn-hold").onclick = () => {
      if (session.isOnHold().local) session.unhold();
      else session.hold();
      toggleLabel($("btn-hold"), !session.isOnHold().local);
    };
    $("btn-mute").onclick = () => {
      const muted = session.isMuted().audio;
      if (muted) session.unmute({ audio: true });
      else session.mute({ audio: true });
      toggleLabel($("btn-mute"), !muted);
    };
    for (const key of document.querySelectorAll("#phone-keypad .dtmf")) {
      key.onclick = () => session.sendDTMF(key.dataset.key, { transportType: "RFC2833" });
    }
    $("btn-transfer").onclick = () => {
      // Blind: Asterisk takes the caller to the number in the phone's context
      // (hotline-phones, which reaches 12333 and the departments only). The NOTIFY with
      // 200 says the caller has gone (RFC 3515 §2.4.5): then we hang up our leg.
      const refer = session.refer("sip:" + $("transfer-to").value + "@" + host);
      const current = session;
      refer.on("accepted", () => { if (!current.isEnded()) current.terminate(); });
      refer.on("failed", (event) => showError(String(event.cause || event.status_line || "REFER failed")));
    };
  }

  function departments(list) {
    const select = $("transfer-to");
    select.replaceChildren();
    for (const d of list) {
      const option = document.createElement("option");
      option.value = d.number;
      option.textContent = tr("dept." + d.queue) + " (" + d.number + ")";
      select.appendChild(option);
    }
  }

  async function start() {
    const response = await fetch("/api/softphone", { credentials: "same-origin" });
    if (response.status === 404) return; // the site runs without softphones
    const account = await response.json();
    if (!response.ok) throw new Error(account.error || response.statusText);
    host = new URL(account.uri.replace(/^sip:/, "sip://")).hostname;
    departments(account.departments);
    buttons();
    setState("connecting");
    ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(account.ws_url)],
      uri: account.uri,
      password: account.password,
      display_name: account.display_name,
      register: true,
      session_timers: false,
    });
    ua.on("registered", () => { registered = true; showError(""); showCall(); });
    ua.on("unregistered", () => { registered = false; showCall(); });
    ua.on("registrationFailed", (event) => { registered = false; showError(String(event.cause)); showCall(); });
    ua.on("disconnected", () => { registered = false; showCall(); });
    ua.on("newRTCSession", (event) => { if (event.originator === "remote") incoming(event.session); });
    window.addEventListener("beforeunload", () => ua.stop());
    ua.start();
  }

  return {
    start: () => start().catch((error) => showError(error.message)),
    registered: () => registered,
  };
})();
