// Live captions of one room, for a member of that room. No build step, no external resource.
//
// Access: the page is opened as /live/<room>#token=<the member's LiveKit access token> (the
// fragment never reaches a server) or the token is pasted into a form. The token is removed from
// the address bar, kept in this tab's sessionStorage, and traded at GET /api/token for a
// short-lived viewer token with which the page joins the room (hidden, receives data only).
//
// Captions: the lk.transcription text streams, one line per segment (lk.segment_id). An interim
// is replaced in place by later updates and shown as provisional (italic, dimmed, hidden from
// screen readers); only finals go to the polite live region. Server text is set with
// textContent, never parsed as HTML.
//
// Settings (text size, font and background colours, position) mirror La Suite Meet's caption
// settings and are kept in localStorage.
(() => {
  "use strict";

  const TOPIC = "lk.transcription";
  const ATTR_SEGMENT_ID = "lk.segment_id";
  const ATTR_FINAL = "lk.transcription_final";
  const ATTR_SPEAKER_NAME = "greffier.speaker_name";
  const ATTR_LANGUAGE = "greffier.language";
  const MAX_LINES = 300;
  const MAX_ANNOUNCED = 20;
  const RETRY_MS = 3000;
  const SETTINGS_KEY = "greffier.captions.settings";

  const SIZES = { small: "0.875rem", medium: "1.5rem", large: "2.25rem" };
  // Meet's caption palette: font colours, and backgrounds at 75 % opacity.
  const COLOURS = {
    default: null, white: "#ffffff", black: "#000000", blue: "#0000ff", green: "#00ff00",
    red: "#ff0000", yellow: "#ffff00", cyan: "#00ffff", magenta: "#ff00ff",
  };
  const COLOUR_LABELS = {
    default: "Default", white: "White", black: "Black", blue: "Blue", green: "Green",
    red: "Red", yellow: "Yellow", cyan: "Cyan", magenta: "Magenta",
  };
  const DEFAULT_FONT = "#ffffff";
  const DEFAULT_BACKGROUND = "#000000";
  const BACKGROUND_ALPHA = 0.75;
  const PAGE_BACKGROUND = "#202124";
  const POSITIONS = ["bottom", "top"];
  const DEFAULTS = Object.freeze({ size: "medium", font: "default", background: "default",
                                   position: "bottom" });

  const $ = (id) => document.getElementById(id);
  const room = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop() || "");
  const tokenKey = `greffier.memberToken:${room}`;
  const els = {
    captions: $("captions"), placeholder: $("placeholder"), status: $("status"),
    notice: $("notice"), announcer: $("announcer"), settings: $("settings"),
    toggle: $("settings-toggle"), contrast: $("contrast"), tokenForm: $("token-form"),
    tokenInput: $("token-input"), font: $("font-colour"), background: $("background-colour"),
  };
  $("room").textContent = room ? `— ${room}` : "";
  document.title = room ? `Live captions — ${room}` : "Live captions";

  // ---------------------------------------------------------------- settings

  function storageGet(storage, key) {
    try { return storage.getItem(key); } catch (e) { return null; }
  }
  function storageSet(storage, key, value) {
    try {
      if (value === null) storage.removeItem(key); else storage.setItem(key, value);
    } catch (e) { /* storage disabled: the choice lasts for this page only */ }
  }

  function loadSettings() {
    let saved = {};
    try { saved = JSON.parse(storageGet(localStorage, SETTINGS_KEY) || "{}") || {}; }
    catch (e) { saved = {}; }
    return {
      size: Object.hasOwn(SIZES, saved.size) ? saved.size : DEFAULTS.size,
      font: Object.hasOwn(COLOURS, saved.font) ? saved.font : DEFAULTS.font,
      background: Object.hasOwn(COLOURS, saved.background) ? saved.background
        : DEFAULTS.background,
      position: POSITIONS.includes(saved.position) ? saved.position : DEFAULTS.position,
    };
  }

  function hexRgb(hex) {
    const n = parseInt(hex.slice(1), 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  function luminance([r, g, b]) {
    const lin = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  }
  function contrastRatio(fontHex, backgroundHex) {
    // The caption background is drawn at 75 % over the page's own background.
    const page = hexRgb(PAGE_BACKGROUND);
    const bg = hexRgb(backgroundHex).map(
      (c, i) => c * BACKGROUND_ALPHA + page[i] * (1 - BACKGROUND_ALPHA));
    const [a, b] = [luminance(hexRgb(fontHex)), luminance(bg)];
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }

  function applySettings(s) {
    const font = COLOURS[s.font] || DEFAULT_FONT;
    const background = COLOURS[s.background] || DEFAULT_BACKGROUND;
    const [r, g, b] = hexRgb(background);
    const root = document.documentElement.style;
    root.setProperty("--caption-size", SIZES[s.size]);
    root.setProperty("--caption-colour", font);
    root.setProperty("--caption-background", `rgba(${r}, ${g}, ${b}, ${BACKGROUND_ALPHA})`);
    document.body.dataset.position = s.position;
    document.body.dataset.size = s.size;
    const ratio = contrastRatio(font, background);
    els.contrast.textContent = ratio < 4.5
      ? `Low contrast (${ratio.toFixed(1)}:1): these colours may be hard to read.` : "";
    for (const input of els.settings.querySelectorAll("input[type=radio]")) {
      input.checked = s[input.name] === input.value;
    }
    els.font.value = s.font;
    els.background.value = s.background;
  }

  let settings = loadSettings();

  function setSetting(name, value) {
    settings = { ...settings, [name]: value };
    storageSet(localStorage, SETTINGS_KEY, JSON.stringify(settings));
    applySettings(settings);
    stickToBottom();
  }

  for (const select of [els.font, els.background]) {
    for (const [value, label] of Object.entries(COLOUR_LABELS)) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      select.append(option);
    }
  }
  els.settings.addEventListener("change", (event) => {
    const t = event.target;
    if (t.name && Object.hasOwn(DEFAULTS, t.name)) setSetting(t.name, t.value);
  });
  els.settings.addEventListener("submit", (event) => event.preventDefault());

  function openSettings(open) {
    els.settings.hidden = !open;
    els.toggle.setAttribute("aria-expanded", String(open));
    if (open) {
      (els.settings.querySelector("input[type=radio]:checked")
        || els.settings.querySelector("input, select")).focus();
    }
  }
  els.toggle.addEventListener("click", () => openSettings(els.settings.hidden));
  $("settings-close").addEventListener("click", () => { openSettings(false); els.toggle.focus(); });
  $("settings-reset").addEventListener("click", () => {
    settings = { ...DEFAULTS };
    storageSet(localStorage, SETTINGS_KEY, null);
    applySettings(settings);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !els.settings.hidden) {
      openSettings(false);
      els.toggle.focus();
    }
  });
  applySettings(settings);

  // ---------------------------------------------------------------- captions

  const lines = new Map();  // segment id -> {el, final, text}
  const announced = new Map();  // segment id -> live-region element

  function nearBottom() {
    const c = els.captions;
    return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
  }
  function stickToBottom() {
    els.captions.scrollTop = els.captions.scrollHeight;
  }

  function speakerHue(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
    return `hsl(${h}, 75%, 65%)`;
  }

  function markSpeakerChange(el) {
    if (!el) return;
    const prev = el.previousElementSibling;
    const same = prev && prev.classList.contains("caption")
      && prev.dataset.speaker === el.dataset.speaker;
    el.classList.toggle("new-speaker", !same);
  }

  function removeLine(segmentId) {
    const line = lines.get(segmentId);
    if (!line) return;
    const next = line.el.nextElementSibling;
    line.el.remove();
    lines.delete(segmentId);
    const item = announced.get(segmentId);  // the live region never outlives what it read
    if (item) { item.remove(); announced.delete(segmentId); }
    markSpeakerChange(next);
  }

  // A final split by speaker keeps the interim's id <id> for its first part (that final
  // closes the interim); the next parts, <id>.1, <id>.2, ..., follow the part before them.
  function placeOf(segmentId) {
    const m = /^(.*)\.(\d+)$/.exec(segmentId);
    if (!m) return null;
    const k = Number(m[2]);
    const previous = lines.get(k === 1 ? m[1] : `${m[1]}.${k - 1}`);
    return previous ? { after: previous.el } : null;
  }

  function createLine(segmentId) {
    const el = document.createElement("p");
    el.className = "caption";
    el.dataset.segmentId = segmentId;
    const who = document.createElement("span");
    who.className = "speaker";
    const what = document.createElement("span");
    what.className = "text";
    el.append(who, what);
    const place = placeOf(segmentId);
    if (place) place.after.after(el);
    else els.captions.append(el);
    els.placeholder.remove();
    const line = { el, final: false, text: "" };
    lines.set(segmentId, line);
    while (lines.size > MAX_LINES) removeLine(lines.keys().next().value);
    return line;
  }

  function announce(segmentId, speaker, text, lang) {
    let item = announced.get(segmentId);
    if (!item) {
      item = document.createElement("p");
      item.dataset.segmentId = segmentId;
      els.announcer.append(item);
      announced.set(segmentId, item);
      while (announced.size > MAX_ANNOUNCED) {
        const [oldest, old] = announced.entries().next().value;
        old.remove();
        announced.delete(oldest);
      }
    }
    if (lang) item.lang = lang;
    item.textContent = `${speaker}: ${text}`;
  }

  function upsert(segmentId, speaker, text, final, lang) {
    const stick = nearBottom();
    let line = lines.get(segmentId);
    if (line && line.final && !final) return;  // a late interim never undoes a final
    if (!text.trim()) {  // an emptied segment: nothing to show
      if (line) removeLine(segmentId);
      return;
    }
    if (!line) line = createLine(segmentId);
    const el = line.el;
    const changed = !line.final || line.text !== text;
    line.final = final;
    line.text = text;
    el.classList.toggle("final", final);
    el.classList.toggle("interim", !final);
    // Provisional words are not read out; the final is, once, through the live region.
    if (final) el.removeAttribute("aria-hidden"); else el.setAttribute("aria-hidden", "true");
    if (lang) el.lang = lang;
    el.dataset.speaker = speaker;
    el.style.setProperty("--speaker-hue", speakerHue(speaker));
    el.querySelector(".speaker").textContent = speaker;
    el.querySelector(".text").textContent = text;
    markSpeakerChange(el);
    markSpeakerChange(el.nextElementSibling);
    if (final && changed) announce(segmentId, speaker, text, lang);
    if (stick) stickToBottom();
  }

  function speakerName(lkRoom, attrs, identity) {
    if (attrs[ATTR_SPEAKER_NAME]) return attrs[ATTR_SPEAKER_NAME];
    const p = lkRoom.getParticipantByIdentity ? lkRoom.getParticipantByIdentity(identity) : null;
    return (p && p.name) || identity || "?";
  }

  function languageOf(attrs) {
    const lang = attrs[ATTR_LANGUAGE] || "";
    return /^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$/.test(lang) ? lang : "";
  }

  // ---------------------------------------------------------------- access and connection

  function setStatus(state, text) {
    els.status.dataset.state = state;
    els.status.textContent = text;
    document.body.dataset.state = state;
  }

  function showNotice(text) {
    els.notice.textContent = text;
    els.notice.hidden = false;
  }

  function readFragmentToken() {
    const fragment = location.hash.replace(/^#/, "");
    if (!fragment) return null;
    const params = new URLSearchParams(fragment);
    const token = (params.get("token") || "").trim();
    params.delete("token");
    const rest = params.toString();
    // The token leaves the address bar (and so the history and any shared screen) at once.
    history.replaceState(history.state, "", location.pathname + location.search
      + (rest ? `#${rest}` : ""));
    return token || null;
  }

  let memberToken = readFragmentToken();
  if (memberToken) storageSet(sessionStorage, tokenKey, memberToken);
  else memberToken = storageGet(sessionStorage, tokenKey);

  let lkRoom = null;
  let generation = 0;  // bumped whenever a connection attempt is abandoned
  let retryTimer = null;

  function retry() {
    if (retryTimer === null) {
      retryTimer = setTimeout(() => { retryTimer = null; connect(); }, RETRY_MS);
    }
  }

  function askForToken(message) {
    generation += 1;
    if (retryTimer !== null) { clearTimeout(retryTimer); retryTimer = null; }
    if (lkRoom) { const old = lkRoom; lkRoom = null; old.disconnect(); }
    els.captions.hidden = true;
    els.tokenForm.hidden = false;
    els.tokenInput.value = "";
    if (message) showNotice(message); else els.notice.hidden = true;
    els.tokenInput.focus();
  }

  function denied(status) {
    memberToken = null;
    storageSet(sessionStorage, tokenKey, null);
    const message = status === 403
      ? "This access token is for another room: it does not give access to the captions of "
        + `“${room}”. Open the captions link of this meeting, or paste a token for this room.`
      : "This access token is not accepted: it has expired or was not issued for this "
        + "meeting server. Ask for a new captions link, or paste a valid token.";
    setStatus("denied", status === 403 ? "No access to this room" : "Access refused");
    askForToken(message);
  }

  els.tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = els.tokenInput.value.trim();
    if (!token) return;
    memberToken = token;
    storageSet(sessionStorage, tokenKey, token);
    els.tokenForm.hidden = true;
    els.notice.hidden = true;
    connect();
  });

  async function viewerGrant(mine) {
    const resp = await fetch(`/api/token?room=${encodeURIComponent(room)}`, {
      headers: { Authorization: `Bearer ${memberToken}` },
      cache: "no-store",
      credentials: "omit",
    });
    if (mine !== generation) return null;
    if (resp.status === 401 || resp.status === 403) {
      denied(resp.status);
      return null;
    }
    if (!resp.ok) throw new Error(`the server answered ${resp.status}`);
    const grant = await resp.json();
    if (!grant || typeof grant.token !== "string" || typeof grant.url !== "string") {
      throw new Error("the server's answer has no token");
    }
    return grant;
  }

  async function connect() {
    const mine = ++generation;
    if (!room) {
      setStatus("error", "No room");
      showNotice("Open /live/<room> with the name of a room.");
      return;
    }
    if (typeof LivekitClient === "undefined") {
      setStatus("error", "Unavailable");
      showNotice("The LiveKit browser library is missing on this server: run "
                 + "scripts/fetch-web-deps there and reload the page.");
      return;
    }
    if (!memberToken) {
      setStatus("need-token", "Access token needed");
      askForToken(null);
      return;
    }
    els.tokenForm.hidden = true;
    setStatus("connecting", "Connecting…");
    let grant;
    try {
      grant = await viewerGrant(mine);
    } catch (err) {
      if (mine !== generation) return;
      setStatus("error", "Cannot get access");
      showNotice(`Cannot get access to the room: ${String(err.message || err)}. Retrying…`);
      retry();
      return;
    }
    if (!grant) return;
    const next = new LivekitClient.Room({ adaptiveStream: false, dynacast: false });
    next.registerTextStreamHandler(TOPIC, (reader, participantInfo) => {
      const attrs = (reader.info && reader.info.attributes) || {};
      const segmentId = attrs[ATTR_SEGMENT_ID] || (reader.info && reader.info.id);
      const final = attrs[ATTR_FINAL] === "true";
      const speaker = speakerName(next, attrs, participantInfo.identity);
      const lang = languageOf(attrs);
      reader.readAll().then(
        (text) => { if (next === lkRoom) upsert(segmentId, speaker, text, final, lang); },
        (err) => console.warn("caption stream failed", err),
      );
    });
    next.on(LivekitClient.RoomEvent.Disconnected, () => {
      if (next !== lkRoom) return;  // we left on purpose
      lkRoom = null;
      setStatus("disconnected", "Disconnected — reconnecting…");
      retry();
    });
    next.on(LivekitClient.RoomEvent.Reconnecting, () => setStatus("connecting", "Reconnecting…"));
    next.on(LivekitClient.RoomEvent.Reconnected, () => setStatus("connected", "Live"));
    lkRoom = next;
    try {
      await next.connect(grant.url, grant.token, { autoSubscribe: false });
    } catch (err) {
      if (mine !== generation || next !== lkRoom) return;
      lkRoom = null;
      setStatus("error", "Cannot connect");
      showNotice(`Cannot reach the meeting server: ${String(err.message || err)}. Retrying…`);
      retry();
      return;
    }
    if (mine !== generation) {
      if (lkRoom === next) lkRoom = null;
      next.disconnect();
      return;
    }
    els.notice.hidden = true;
    els.captions.hidden = false;
    setStatus("connected", "Live");
  }

  connect();
})();
