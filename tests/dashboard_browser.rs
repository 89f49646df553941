//! The dashboard page in a real headless browser (Chromium) against a
//! running `tickshard demo`: after the page's scripts ran, the rendered DOM
//! has one live row per processor and a partition grid whose every cell is
//! coloured by its owner.
//!
//! Chromium is installed by `scripts/setup chromium` when missing (Debian
//! and Ubuntu); set `TICKSHARD_CHROMIUM` to use another binary. Set
//! `TICKSHARD_SCREENSHOT=FILE.png` to also save a screenshot of the page.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::demo::{alive_ids, all_owned_by, Demo};

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

/// Runs headless Chromium on `url` with `extra` flags; its output, or a
/// panic after `timeout`.
fn headless(bin: &Path, url: &str, extra: &[String], timeout: Duration) -> Output {
    let profile = tempfile::Builder::new()
        .prefix("tickshard-chromium-")
        .tempdir()
        .unwrap();
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_renders_live_instances_and_a_fully_owned_partition_grid() {
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

    if let Some(path) = std::env::var_os("TICKSHARD_SCREENSHOT") {
        let path = PathBuf::from(path);
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
