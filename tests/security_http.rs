//! HTTP exposure: the processor and the dashboard refuse a non-loopback
//! address without `--auth-token` (unless `--insecure`); with a token every
//! route but `/healthz` answers 401 without it, and accepts it as a bearer
//! header, a `?token=` query (WebSocket clients, the dashboard page) or
//! the cookie the query sets; the dashboard's `/ws` has a client limit.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use support::fleet::{spawn_tickshard, tickshard_bin, ProcessorArgs};
use support::procs::Proc;
use support::wait_for;

const TOKEN: &str = "tok-0123456789abcdef";

/// GET with extra header lines: (status, headers, body).
async fn get(addr: &str, path: &str, headers: &str) -> (u16, String, String) {
    support::fleet::http_get_with(addr, path, headers)
        .await
        .unwrap_or_else(|| panic!("GET {path} from {addr} failed"))
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(tickshard_bin())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("TICKSHARD_AUTH_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn non_loopback_needs_a_token_or_insecure() {
    let redis = support::redis();
    let url = redis.url();
    let (code, err) = run(&["processor", "--redis", &url, "--http", "0.0.0.0:0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--auth-token") && err.contains("--insecure"),
        "{err}"
    );
    let (code, err) = run(&["dashboard", "--redis", &url, "--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--auth-token"), "{err}");
    let (code, err) = run(&["processor", "--redis", &url, "--auth-token", "short"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("16 characters"), "{err}");
    // Defaults are loopback.
    let (_, help) = {
        let out = Command::new(tickshard_bin())
            .args(["processor", "--help"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(help.contains("[default: 127.0.0.1:0]"), "{help}");
    let out = Command::new(tickshard_bin())
        .args(["dashboard", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("[default: 127.0.0.1:8080]"));

    // --insecure allows it.
    let args = ProcessorArgs::new(&url, "ins")
        .cluster("ins")
        .lease_ms(1000)
        .http("0.0.0.0:0")
        .raw(["--insecure"]);
    let p = spawn_tickshard("ins", args, &[]);
    let addr = p.http_addr(Duration::from_secs(10)).await;
    let port = addr.rsplit(':').next().unwrap();
    let (status, _, _) = get(&format!("127.0.0.1:{port}"), "/metrics", "").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn with_a_token_every_route_but_healthz_needs_it() {
    let redis = support::redis();
    let args = ProcessorArgs::new(&redis.url(), "tk")
        .cluster("tk")
        .lease_ms(1000)
        .http("0.0.0.0:0");
    let p = spawn_tickshard("tk", args, &[("TICKSHARD_AUTH_TOKEN", TOKEN)]);
    let addr = p.http_addr(Duration::from_secs(10)).await;
    let addr = format!("127.0.0.1:{}", addr.rsplit(':').next().unwrap());
    assert_eq!(get(&addr, "/healthz", "").await.0, 200);
    for path in ["/metrics", "/api/ownership", "/api/symbols/AAPL", "/ingest"] {
        let (status, head, _) = get(&addr, path, "").await;
        assert_eq!(status, 401, "{path}");
        assert!(
            head.to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
            "{head}"
        );
        let wrong = get(
            &addr,
            path,
            "Authorization: Bearer tok-0123456789abcdeX\r\n",
        )
        .await
        .0;
        assert_eq!(wrong, 401, "{path} with a wrong token");
    }
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    let (status, _, metrics) = get(&addr, "/metrics", &bearer).await;
    assert_eq!(status, 200);
    assert!(!metrics.contains(TOKEN));
    let unauthorized = tickshard_testkit::exposition::counter(
        &metrics,
        "tickshard_bad_input_total",
        &[("kind", "unauthorized")],
    );
    assert!(unauthorized >= 8, "refusals are counted");
    assert_eq!(get(&addr, "/api/ownership", &bearer).await.0, 200);
    assert_eq!(
        get(&addr, &format!("/api/ownership?token={TOKEN}"), "")
            .await
            .0,
        200
    );
    // WebSocket with ?token= works; without it the upgrade is refused.
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{addr}/ingest"))
            .await
            .is_err()
    );
    let (_ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ingest?token={TOKEN}"))
        .await
        .unwrap();
    assert!(!p.log().contains(TOKEN), "the token is never logged");
}

#[tokio::test]
async fn the_dashboard_page_works_with_a_token_and_limits_clients() {
    let redis = support::redis();
    let port = tickshard::redis_server::free_port().unwrap();
    let d = Proc::spawn(
        "dash",
        tickshard_bin().to_str().unwrap(),
        &[
            "dashboard".into(),
            "--redis".into(),
            redis.url(),
            "--listen".into(),
            format!("0.0.0.0:{port}"),
            "--auth-token".into(),
            TOKEN.into(),
            "--max-clients".into(),
            "1".into(),
        ],
        &[("RUST_LOG", "info")],
    );
    let addr = format!("127.0.0.1:{port}");
    wait_for(Duration::from_secs(10), "dashboard up", || {
        let addr = addr.clone();
        async move { tokio::net::TcpStream::connect(&addr).await.ok() }
    })
    .await;
    assert_eq!(get(&addr, "/", "").await.0, 401);
    assert_eq!(get(&addr, "/api/snapshot", "").await.0, 401);
    // Opened once with ?token=: the page, and a cookie for its assets.
    let (status, head, body) = get(&addr, &format!("/?token={TOKEN}"), "").await;
    assert_eq!(status, 200);
    assert!(body.contains("<html") || body.contains("<!doctype") || body.contains("<!DOCTYPE"));
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .expect("a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("tickshard_token="));
    let with_cookie = format!("Cookie: {cookie}\r\n");
    assert_eq!(get(&addr, "/app.js", &with_cookie).await.0, 200);
    assert_eq!(get(&addr, "/style.css", &with_cookie).await.0, 200);
    // The page's WebSocket URL carries the token.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={TOKEN}"))
        .await
        .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(frame.into_text().unwrap().contains("\"snapshot\""));
    // A second client is over --max-clients 1.
    let second = tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={TOKEN}")).await;
    match second {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
        other => panic!("second client should get 503, got {other:?}"),
    }
    drop(ws);
    wait_for(Duration::from_secs(5), "a slot frees up", || {
        let addr = addr.clone();
        async move {
            tokio_tungstenite::connect_async(format!("ws://{addr}/ws?token={TOKEN}"))
                .await
                .ok()
        }
    })
    .await;
    assert!(!d.log().contains(TOKEN));
}
