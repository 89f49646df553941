//! The dashboard page in a real headless browser (Chromium) against a
//! running `tickshard demo`: after the page's scripts ran, the rendered DOM
//! has one live row per processor and a partition grid whose every cell is
//! coloured by its owner. Then, driving the page over the DevTools
//! protocol, its symbol view: an invalid symbol typed in is refused with
//! the server's reason, a symbol never traded shows "no data yet", and a
//! symbol clicked in the hot-symbols table shows its last price, a candle
//! and live updates.
//!
//! Chromium is installed by `scripts/setup chromium` when missing (Debian
//! and Ubuntu); set `TICKSHARD_CHROMIUM` to use another binary. Set
//! `TICKSHARD_SCREENSHOT=FILE.png` to also save a screenshot of the page,
//! and one of its symbol view beside it (`FILE-symbol.png`).

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use support::demo::{alive_ids, all_owned_by, Demo, Ws};

const P: usize = 64;

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TICKSHARD_CHROMIUM") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "TICKSHARD_CHROMIUM={} is not a file: point it at a Chromium binary, \
             or unset it and run `scripts/setup chromium`",
            p.display()
        );
        return Some(p);
    }
    ["chromium", "chromium-browser"]
        .iter()
        .find_map(|n| on_path(n))
}

/// Chromium, installed with `scripts/setup chromium` when missing; fails
/// the test (never skips it) when that is not possible.
fn chromium() -> PathBuf {
    if let Some(p) = find_chromium() {
        return p;
    }
    let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup");
    let status = Command::new(&setup).arg("chromium").status();
    match (status, find_chromium()) {
        (Ok(s), Some(p)) if s.success() => p,
        (status, _) => panic!(
            "this test needs Chromium and it could not be installed ({status:?}).\n\
             Install it with `scripts/setup chromium` (as root, or with passwordless sudo),\n\
             or `sudo apt-get install chromium`, or set TICKSHARD_CHROMIUM to a Chromium binary."
        ),
    }
}

/// The flags of every headless Chromium run here.
const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
];

/// Runs headless Chromium on `url` with `extra` flags; its output, or a
/// panic after `timeout`.
fn headless(bin: &Path, url: &str, extra: &[String], timeout: Duration) -> Output {
    let profile = tempfile::Builder::new()
        .prefix("tickshard-chromium-")
        .tempdir()
        .unwrap();
    let mut child = Command::new(bin)
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--virtual-time-budget=8000")
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    // Read both pipes on threads so a chatty browser never blocks.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).ok();
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).ok();
        v
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within {timeout:?}\nstderr:\n{}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A page of headless Chromium driven over the DevTools protocol, for the
/// steps a DOM dump cannot take: typing, clicking, and waiting for the
/// page to reach a state, with a deadline. The browser is killed on drop.
struct Page {
    child: Child,
    devtools: Ws,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Page {
    /// How long one DevTools command may take.
    const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
    /// How often [`Page::wait`] evaluates its condition.
    const POLL: Duration = Duration::from_millis(100);

    /// Starts Chromium with a 1400×1000 page and opens `url` in it.
    async fn open(bin: &Path, url: &str) -> Page {
        let profile = tempfile::Builder::new()
            .prefix("tickshard-chromium-")
            .tempdir()
            .unwrap();
        let mut child = Command::new(bin)
            .args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--remote-debugging-port=0", "about:blank"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        // Chromium prints "DevTools listening on ws://..." on stderr; the
        // thread keeps draining it afterwards so it never blocks.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let endpoint = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut seen = String::new();
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(line) => match line.strip_prefix("DevTools listening on ") {
                        Some(url) => return Ok(url.trim().to_owned()),
                        None => seen += &(line + "\n"),
                    },
                    Err(_) => break,
                }
            }
            Err(format!(
                "chromium printed no DevTools address within 30 s\nstderr:\n{seen}"
            ))
        })
        .await
        .unwrap();
        let connected = match endpoint {
            Ok(url) => tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(|e| format!("devtools connect {url}: {e}")),
            Err(e) => Err(e),
        };
        let devtools = match connected {
            Ok((devtools, _)) => devtools,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{e}");
            }
        };
        let mut page = Page {
            child,
            devtools,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = page
            .call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = page
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        page.session = attached["sessionId"].as_str().unwrap().to_owned();
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
        page.call("Page.navigate", json!({ "url": url })).await;
        page
    }

    /// Sends one command (to the page once attached); its reply, or the
    /// protocol's error.
    async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.devtools
            .send(Message::Text(msg.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("devtools send {method}: {e}"));
        let reply = async {
            loop {
                match self.devtools.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(&t).unwrap();
                        if v["id"] == id {
                            return v;
                        }
                    }
                    Some(Ok(_)) => {}
                    other => panic!("devtools connection ended during {method}: {other:?}"),
                }
            }
        };
        let v = tokio::time::timeout(Self::REPLY_TIMEOUT, reply)
            .await
            .unwrap_or_else(|_| panic!("no reply to {method} within {:?}", Self::REPLY_TIMEOUT));
        match v.get("error") {
            Some(e) => Err(format!("{method}: {e}")),
            None => Ok(v["result"].clone()),
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Evaluates the JavaScript `expr` in the page; its value as JSON.
    async fn try_eval(&mut self, expr: &str) -> Result<Value, String> {
        let params = json!({ "expression": expr, "returnByValue": true });
        let r = self.try_call("Runtime.evaluate", params).await?;
        match r.get("exceptionDetails") {
            Some(e) => Err(format!("{expr}: {e}")),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    async fn eval(&mut self, expr: &str) -> Value {
        self.try_eval(expr).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Evaluates `expr` until it is neither null nor false (nor throws);
    /// that value. Panics after `timeout` naming `what`, with the value
    /// of `explain` then.
    async fn wait(&mut self, timeout: Duration, what: &str, expr: &str, explain: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.try_eval(expr).await;
            match &last {
                Ok(v) if !(v.is_null() || *v == json!(false)) => return v.clone(),
                _ if Instant::now() >= deadline => {
                    let page = self.try_eval(explain).await;
                    panic!(
                        "timed out after {timeout:?} waiting for: {what}\n\
                         last result: {last:?}\npage: {page:?}"
                    );
                }
                _ => tokio::time::sleep(Self::POLL).await,
            }
        }
    }

    /// Presses and releases the left mouse button at the centre of the
    /// element matching `selector`, scrolled into view first.
    async fn click(&mut self, selector: &str) {
        let expr = format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return null; \
             e.scrollIntoView({{ block: 'center' }}); const r = e.getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
            sel = json!(selector)
        );
        let at = self.eval(&expr).await;
        let (Some(x), Some(y)) = (at[0].as_f64(), at[1].as_f64()) else {
            panic!("nothing to click at {selector}: {at}");
        };
        for kind in ["mousePressed", "mouseReleased"] {
            let event = json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 });
            self.call("Input.dispatchMouseEvent", event).await;
        }
    }

    /// Replaces the text of the input `selector` as typed, then presses
    /// Enter.
    async fn type_and_enter(&mut self, selector: &str, text: &str) {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({sel}); e.focus(); e.select(); return true; }})()",
            sel = json!(selector)
        ))
        .await;
        self.call("Input.insertText", json!({ "text": text })).await;
        let enter = json!({ "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13 });
        let mut down = enter.clone();
        down["type"] = json!("keyDown");
        down["text"] = json!("\r");
        self.call("Input.dispatchKeyEvent", down).await;
        let mut up = enter;
        up["type"] = json!("keyUp");
        self.call("Input.dispatchKeyEvent", up).await;
    }

    /// A PNG of the viewport.
    async fn screenshot(&mut self) -> Vec<u8> {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One start tag of the dumped DOM.
#[derive(Debug)]
struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_class(&self, class: &str) -> bool {
        self.attr("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c == class))
    }
}

#[derive(Debug)]
enum Token {
    Open(Tag),
    Close,
}

/// A small tokenizer for the serialized DOM Chromium dumps (well-formed,
/// quoted attributes): start and end tags, text skipped.
fn tokens(html: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let b = html.as_bytes();
    let mut i = 0;
    while let Some(off) = html[i..].find('<') {
        i += off + 1;
        if html[i..].starts_with("!--") {
            i = html[i..].find("-->").map_or(b.len(), |e| i + e + 3);
            continue;
        }
        let closing = b.get(i) == Some(&b'/');
        if closing {
            i += 1;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
            i += 1;
        }
        let name = html[start..i].to_ascii_lowercase();
        let mut attrs = Vec::new();
        loop {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i >= b.len() || b[i] == b'>' || b[i] == b'/' {
                break;
            }
            let k0 = i;
            while i < b.len() && !b"=> \t\n/".contains(&b[i]) {
                i += 1;
            }
            let key = html[k0..i].to_ascii_lowercase();
            let mut value = String::new();
            if b.get(i) == Some(&b'=') {
                i += 1;
                if let Some(&q) = b.get(i).filter(|c| **c == b'"' || **c == b'\'') {
                    let end = html[i + 1..].find(q as char).map_or(b.len(), |e| i + 1 + e);
                    value = html[i + 1..end].to_owned();
                    i = end + 1;
                } else {
                    let v0 = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    value = html[v0..i].to_owned();
                }
            }
            attrs.push((key, value));
        }
        let self_closing = b.get(i) == Some(&b'/');
        i = html[i.min(b.len())..]
            .find('>')
            .map_or(b.len(), |e| i + e + 1);
        if name.is_empty() {
            continue;
        }
        if closing {
            out.push(Token::Close);
        } else {
            let void = self_closing
                || matches!(
                    name.as_str(),
                    "br" | "img" | "input" | "meta" | "link" | "hr" | "col" | "source" | "wbr"
                );
            out.push(Token::Open(Tag {
                name: name.clone(),
                attrs,
            }));
            if void {
                out.push(Token::Close);
            }
        }
    }
    out
}

/// The start tags inside the element whose id is `id` (its descendants).
fn descendants_of<'a>(toks: &'a [Token], id: &str) -> Vec<&'a Tag> {
    let Some(at) = toks
        .iter()
        .position(|t| matches!(t, Token::Open(tag) if tag.attr("id") == Some(id)))
    else {
        return Vec::new();
    };
    let mut depth = 0usize;
    let mut found = Vec::new();
    for t in &toks[at + 1..] {
        match t {
            Token::Open(tag) => {
                depth += 1;
                found.push(tag);
            }
            Token::Close if depth == 0 => break,
            Token::Close => depth -= 1,
        }
    }
    found
}

#[test]
fn tokenizer_reads_attributes_and_nesting() {
    let html = r#"<div id="pmap"><div class="cell flash" data-owner="p1" style="a: b">0</div><br><div class="cell">1</div></div><div class="cell" data-owner="x"></div>"#;
    let toks = tokens(html);
    let inside = descendants_of(&toks, "pmap");
    let cells: Vec<_> = inside.iter().filter(|t| t.has_class("cell")).collect();
    assert_eq!(cells.len(), 2);
    assert_eq!(cells[0].attr("data-owner"), Some("p1"));
    assert_eq!(cells[1].attr("data-owner"), None);
}

#[test]
fn the_selectors_the_browser_test_relies_on_are_in_the_page() {
    let js = include_str!("../dashboards/app.js");
    let html = include_str!("../dashboards/index.html");
    assert!(js.contains("instance-row") && js.contains("data-id"));
    assert!(js.contains(r#""alive" : "dead""#));
    assert!(js.contains("dataset.owner") && js.contains(r#"className = "cell""#));
    assert!(html.contains(r#"id="pmap""#));
    for id in [
        "symbol-view",
        "symbol-input",
        "symbol-name",
        "symbol-last-px",
        "symbol-count",
        "symbol-msg",
        "symbol-conn",
        "symbol-bars",
    ] {
        assert!(html.contains(&format!(r#"id="{id}""#)), "#{id}");
    }
    assert!(js.contains(r#"'<g class="candle '"#) && js.contains("data-symbol"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_renders_live_instances_a_fully_owned_partition_grid_and_a_symbol_view() {
    let bin = chromium();
    let demo = Demo::start(3, 20_000).await;
    let mut ws = demo.ws().await;
    demo.frame_where(
        &mut ws,
        Duration::from_secs(30),
        "3 alive instances owning all 64 partitions",
        |s| {
            let alive = alive_ids(s);
            alive.len() == 3 && all_owned_by(s, P, &alive) && s["ticks_per_s"].as_f64() > Some(0.0)
        },
    )
    .await;
    drop(ws);

    let url = format!("http://{}/", demo.addr);
    let run = {
        let (bin, url) = (bin.clone(), url.clone());
        tokio::task::spawn_blocking(move || {
            headless(
                &bin,
                &url,
                &["--dump-dom".to_owned()],
                Duration::from_secs(60),
            )
        })
    };
    let out = run.await.unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed ({}):\n{stderr}",
        out.status
    );
    let toks = tokens(&dom);

    // `tr.instance-row.alive[data-id]`: one per processor.
    let rows: BTreeSet<&str> = toks
        .iter()
        .filter_map(|t| match t {
            Token::Open(tag)
                if tag.name == "tr" && tag.has_class("instance-row") && tag.has_class("alive") =>
            {
                tag.attr("data-id")
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        rows,
        BTreeSet::from(["p1", "p2", "p3"]),
        "instance rows in the rendered page:\n{dom}"
    );

    // `#pmap .cell[data-owner]`: all 64 cells coloured by a live owner.
    let cells: Vec<&Tag> = descendants_of(&toks, "pmap")
        .into_iter()
        .filter(|t| t.has_class("cell"))
        .collect();
    assert_eq!(cells.len(), P, "partition cells:\n{dom}");
    for (p, c) in cells.iter().enumerate() {
        let owner = c.attr("data-owner");
        assert!(
            owner.is_some_and(|o| rows.contains(o)),
            "cell {p} owner {owner:?}"
        );
        assert!(
            c.attr("style")
                .is_some_and(|s| s.contains("background-color")),
            "cell {p} is not coloured: {c:?}"
        );
    }
    // The connection indicator never went down. (It may read "stalled":
    // virtual time runs ahead of the real frames.)
    let conn = toks.iter().find_map(|t| match t {
        Token::Open(tag) if tag.attr("id") == Some("conn") => tag.attr("data-state"),
        _ => None,
    });
    assert!(
        matches!(conn, Some("live" | "reconnecting")),
        "connection indicator {conn:?}"
    );

    let screenshot = std::env::var_os("TICKSHARD_SCREENSHOT").map(PathBuf::from);
    symbol_view_follows_a_traded_symbol(&bin, &url, screenshot.as_deref()).await;

    if let Some(path) = screenshot {
        let out = tokio::task::spawn_blocking(move || {
            headless(
                &bin,
                &url,
                &[
                    format!("--screenshot={}", path.display()),
                    "--window-size=1400,1000".to_owned(),
                ],
                Duration::from_secs(60),
            )
        })
        .await
        .unwrap();
        assert!(out.status.success(), "screenshot failed");
    }
}

/// The symbol view's state, for the checks and for failure messages.
const SYMBOL_VIEW: &str = "(() => {
    const el = (id) => document.getElementById(id);
    return {
        name: el('symbol-name').textContent,
        last_px: el('symbol-last-px').textContent,
        count: Number(el('symbol-count').textContent.replace(/,/g, '')),
        message: el('symbol-msg').hidden ? '' : el('symbol-msg').textContent,
        message_kind: el('symbol-msg').dataset.kind,
        conn: el('symbol-conn').dataset.state,
        candles: document.querySelectorAll('#symbol-bars .candle').length,
        hash: decodeURIComponent(location.hash),
    };
})()";

/// Waits until the symbol view's state `v` ([`SYMBOL_VIEW`]) satisfies the
/// JavaScript condition `cond`; that state.
async fn wait_view(page: &mut Page, what: &str, cond: &str) -> Value {
    let expr = format!("(() => {{ const v = {SYMBOL_VIEW}; return ({cond}) && v; }})()");
    page.wait(Duration::from_secs(30), what, &expr, SYMBOL_VIEW)
        .await
}

/// The symbol view, driven like a user would: an invalid symbol typed in
/// is refused with the server's reason (and not retried), a valid symbol
/// never traded reads "no data yet", and a symbol clicked in the
/// hot-symbols table (so one the feed trades) shows its last price, its
/// current bar as a candle, and live updates. With `screenshot`, saves
/// the symbol view beside it as `<stem>-symbol.png`.
async fn symbol_view_follows_a_traded_symbol(bin: &Path, url: &str, screenshot: Option<&Path>) {
    let mut page = Page::open(bin, url).await;
    let wait = Duration::from_secs(30);
    page.wait(
        wait,
        "the page loaded",
        "document.readyState === 'complete' && !!document.getElementById('symbol-form')",
        "document.documentElement.outerHTML.slice(0, 2000)",
    )
    .await;

    page.type_and_enter("#symbol-input", "not a symbol").await;
    let refused = wait_view(
        &mut page,
        "an invalid symbol refused with the server's reason",
        "v.message_kind === 'error' && v.message.includes('subscribe:')",
    )
    .await;
    assert_eq!(refused["conn"], "down", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Cannot watch NOT A SYMBOL: subscribe:")),
        "{refused}"
    );

    page.type_and_enter("#symbol-input", "zzzz9").await;
    let untraded = wait_view(
        &mut page,
        "a symbol never stored shown as having no data yet",
        "v.name === 'ZZZZ9' && v.conn === 'live' && v.message.startsWith('No data yet for ZZZZ9')",
    )
    .await;
    assert_eq!(untraded["last_px"], "–", "{untraded}");
    assert_eq!(untraded["candles"], 0, "{untraded}");

    page.wait(
        wait,
        "a row in the hot-symbols table",
        "document.querySelector('#hot tbody tr[data-symbol]') !== null",
        "document.getElementById('hot').outerHTML",
    )
    .await;
    page.click("#hot tbody tr[data-symbol]").await;
    let live = wait_view(
        &mut page,
        "the clicked hot symbol's last price and a candle",
        "v.name !== 'ZZZZ9' && v.name !== '–' && v.conn === 'live' && v.message === '' && \
         v.last_px !== '–' && v.candles > 0",
    )
    .await;
    let name = live["name"].as_str().unwrap().to_owned();
    assert!(
        name.parse::<tickshard::tick::Symbol>().is_ok(),
        "symbol {name:?}: {live}"
    );
    assert_eq!(live["hash"], format!("#symbol={name}"), "{live}");
    let last_px: f64 = live["last_px"]
        .as_str()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("last price is not a number: {live}"));
    assert!(last_px > 0.0, "{live}");
    let count = live["count"].as_f64().unwrap_or(0.0);
    assert!(count > 0.0, "{live}");

    // Live: the tick count moves on with the feed, with no reload.
    let cond = format!("v.name === '{name}' && v.count > {count} && v.candles > 0");
    wait_view(&mut page, "a live update of the symbol view", &cond).await;

    if let Some(path) = screenshot {
        page.eval("document.getElementById('symbol-view').scrollIntoView({ block: 'center' })")
            .await;
        let png = page.screenshot().await;
        let stem = path.file_stem().unwrap().to_string_lossy();
        let file = path.with_file_name(format!("{stem}-symbol.png"));
        std::fs::write(&file, png).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}
