// Live captions of one room: joins as a hidden, subscribe-only participant and shows the
// lk.transcription text streams. One line per segment (lk.segment_id): interim text is
// replaced in place by later updates, the final is kept. No build step.
(() => {
  "use strict";

  const TOPIC = "lk.transcription";
  const ATTR_SEGMENT_ID = "lk.segment_id";
  const ATTR_FINAL = "lk.transcription_final";
  const ATTR_SPEAKER_NAME = "greffier.speaker_name";
  const MAX_LINES = 300;
  const RETRY_MS = 3000;

  const room = decodeURIComponent(location.pathname.replace(/\/+$/, "").split("/").pop() || "");
  const captions = document.getElementById("captions");
  const statusEl = document.getElementById("status");
  const notice = document.getElementById("notice");
  document.getElementById("room").textContent = room ? `— ${room}` : "";
  document.title = room ? `Live captions — ${room}` : "Live captions";

  const lines = new Map();  // segment id -> {el, final}
  let retryTimer = null;

  function retry() {
    if (retryTimer === null) {
      retryTimer = setTimeout(() => { retryTimer = null; connect(); }, RETRY_MS);
    }
  }

  function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
    document.body.dataset.state = state;
  }

  function showNotice(html) {
    notice.innerHTML = html;
    notice.hidden = false;
  }

  function nearBottom() {
    return captions.scrollHeight - captions.scrollTop - captions.clientHeight < 80;
  }

  function upsert(segmentId, speaker, text, final) {
    const stick = nearBottom();
    let line = lines.get(segmentId);
    if (line && line.final && !final) return;  // a late interim never undoes a final
    if (!line) {
      const el = document.createElement("p");
      el.className = "caption";
      el.dataset.segmentId = segmentId;
      const who = document.createElement("span");
      who.className = "speaker";
      const what = document.createElement("span");
      what.className = "text";
      el.append(who, what);
      captions.append(el);
      line = { el, final: false };
      lines.set(segmentId, line);
      while (lines.size > MAX_LINES) {
        const [oldest, old] = lines.entries().next().value;
        old.el.remove();
        lines.delete(oldest);
      }
    }
    line.final = final;
    line.el.classList.toggle("final", final);
    line.el.classList.toggle("interim", !final);
    line.el.dataset.speaker = speaker;
    line.el.querySelector(".speaker").textContent = speaker;
    line.el.querySelector(".text").textContent = text;
    if (!text.trim() && final) {  // an emptied segment: nothing to keep
      line.el.remove();
      lines.delete(segmentId);
    }
    if (stick) captions.scrollTop = captions.scrollHeight;
  }

  function speakerName(lkRoom, attrs, identity) {
    if (attrs[ATTR_SPEAKER_NAME]) return attrs[ATTR_SPEAKER_NAME];
    const p = lkRoom.getParticipantByIdentity ? lkRoom.getParticipantByIdentity(identity) : null;
    return (p && p.name) || identity || "?";
  }

  async function connect() {
    if (!room) {
      setStatus("error", "No room");
      showNotice("Open <code>/live/&lt;room&gt;</code> with the name of a room.");
      return;
    }
    if (typeof LivekitClient === "undefined") {
      setStatus("error", "Unavailable");
      showNotice("The LiveKit browser library is missing on this server: run " +
                 "<code>scripts/fetch-web-deps</code> and reload the page.");
      return;
    }
    setStatus("connecting", "Connecting…");
    let grant;
    try {
      const resp = await fetch(`/api/token?room=${encodeURIComponent(room)}`);
      if (!resp.ok) throw new Error(`token request failed (${resp.status})`);
      grant = await resp.json();
    } catch (err) {
      setStatus("error", "Cannot get a token");
      showNotice(`Cannot get access to the room: ${String(err.message || err)}. Retrying…`);
      retry();
      return;
    }
    const lkRoom = new LivekitClient.Room({ adaptiveStream: false, dynacast: false });
    lkRoom.registerTextStreamHandler(TOPIC, (reader, participantInfo) => {
      const attrs = (reader.info && reader.info.attributes) || {};
      const segmentId = attrs[ATTR_SEGMENT_ID] || (reader.info && reader.info.id);
      const final = attrs[ATTR_FINAL] === "true";
      const speaker = speakerName(lkRoom, attrs, participantInfo.identity);
      reader.readAll().then(
        (text) => upsert(segmentId, speaker, text, final),
        (err) => console.warn("caption stream failed", err),
      );
    });
    lkRoom.on(LivekitClient.RoomEvent.Disconnected, () => {
      setStatus("disconnected", "Disconnected — reconnecting…");
      retry();
    });
    lkRoom.on(LivekitClient.RoomEvent.Reconnecting, () => setStatus("connecting", "Reconnecting…"));
    lkRoom.on(LivekitClient.RoomEvent.Reconnected, () => setStatus("connected", "Live"));
    try {
      await lkRoom.connect(grant.url, grant.token, { autoSubscribe: false });
    } catch (err) {
      setStatus("error", "Cannot connect");
      showNotice(`Cannot reach the meeting server: ${String(err.message || err)}. Retrying…`);
      retry();
      return;
    }
    notice.hidden = true;
    setStatus("connected", "Live");
  }

  connect();
})();
