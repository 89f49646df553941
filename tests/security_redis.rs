//! Redis credentials and TLS against a real redis-server: an ACL user and
//! `requirepass`, a TLS-only server with a throwaway CA made in the test;
//! wrong credentials and plain-to-TLS each give one clear line; the
//! password never shows up in logs, `--help`, errors, `/api/ownership`,
//! member hashes or the dashboard.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::fleet::{spawn_tickshard, tickshard_bin, ProcessorArgs};
use support::procs::{get_text, Proc};
use support::{redis, wait_for, wait_until, RedisServer};
use tickshard::keys::Keys;

const PASSWORD: &str = "pw-Requirepass-7f3a91";
const ACL_PASSWORD: &str = "pw-AclUser-c41d88";
const P: u32 = 8;

/// Runs `tickshard args...` to completion with `envs`: (exit code, stderr).
fn run(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(tickshard_bin());
    cmd.args(args).env("NO_COLOR", "1").env("RUST_LOG", "info");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run tickshard");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// Exactly one `tickshard processor:` line, mentioning `needle`.
fn assert_one_line(out: &str, needle: &str) {
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("tickshard processor:"))
        .collect();
    assert_eq!(lines.len(), 1, "want one error line, got:\n{out}");
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
    assert!(!out.contains("panicked"), "{out}");
}

fn assert_secret_free(what: &str, text: &str) {
    for secret in [PASSWORD, ACL_PASSWORD] {
        assert!(!text.contains(secret), "{what} shows a password:\n{text}");
    }
}

/// A server that wants `PASSWORD` for `default` and has ACL user `app`.
async fn secured_redis() -> (RedisServer, redis::aio::MultiplexedConnection) {
    let server = redis();
    let mut plain = support::connect(&server).await;
    redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "app",
            "on",
            &format!(">{ACL_PASSWORD}"),
            "~*",
            "&*",
            "+@all",
        ])
        .query_async::<()>(&mut plain)
        .await
        .unwrap();
    redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", PASSWORD])
        .query_async::<()>(&mut plain)
        .await
        .unwrap();
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/", server.port());
    let conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    (server, conn)
}

async fn owned_by(conn: &mut redis::aio::MultiplexedConnection, ns: &str) -> Vec<String> {
    let keys = Keys::new(ns).all_leases(P);
    let v: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(conn)
        .await
        .unwrap_or_default();
    v.into_iter().flatten().collect()
}

fn spawn(name: &str, url: &str, ns: &str, extra: &[&str], envs: &[(&str, &str)]) -> Proc {
    let args = ProcessorArgs::new(url, name)
        .cluster(ns)
        .lease_ms(1000)
        .opt("--partitions", &P.to_string())
        .raw(extra);
    let mut envs = envs.to_vec();
    envs.push(("RUST_LOG", "debug"));
    spawn_tickshard(name, args, &envs)
}

#[tokio::test]
async fn wrong_password_is_one_clear_line_without_the_password() {
    let (server, _conn) = secured_redis().await;
    let port = server.port();
    let wrong = "pw-Wrong-0000aaaa";
    // A wrong password for an ACL user in the URL.
    let url = format!("redis://app:{wrong}@127.0.0.1:{port}/");
    let (code, out) = run(&["processor", "--redis", &url, "--cluster", "wp"], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert_one_line(&out, "refused the credentials");
    assert!(!out.contains(wrong), "{out}");
    // No password at all.
    let url = format!("redis://127.0.0.1:{port}/");
    let (code, out) = run(&["processor", "--redis", &url, "--cluster", "wp"], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert_one_line(&out, "refused the credentials");
    // The right URL with a wrong TICKSHARD_REDIS_PASSWORD: the variable wins.
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{port}/");
    let (code, out) = run(
        &["processor", "--redis", &url, "--cluster", "wp"],
        &[("TICKSHARD_REDIS_PASSWORD", wrong)],
    );
    assert_eq!(code, Some(1), "{out}");
    assert_one_line(&out, "refused the credentials");
    assert_secret_free("the error", &out);
    assert!(!out.contains(wrong), "{out}");
}

#[tokio::test]
async fn right_credentials_work_end_to_end_and_stay_secret() {
    let (server, mut conn) = secured_redis().await;
    let port = server.port();
    let ns = "creds";
    // ACL user and password in the URL.
    let acl_url = format!("redis://app:{ACL_PASSWORD}@127.0.0.1:{port}/");
    let a = spawn("a", &acl_url, ns, &[], &[]);
    // Password from the environment only.
    let bare_url = format!("redis://127.0.0.1:{port}/");
    let b = spawn(
        "b",
        &bare_url,
        ns,
        &[],
        &[("TICKSHARD_REDIS_PASSWORD", PASSWORD)],
    );
    wait_until(Duration::from_secs(20), "both own partitions", || {
        let mut c = conn.clone();
        async move {
            let owners = owned_by(&mut c, ns).await;
            owners.len() == P as usize
                && owners.iter().any(|o| o.starts_with("a:"))
                && owners.iter().any(|o| o.starts_with("b:"))
        }
    })
    .await;

    // Nothing they serve or store carries a password.
    for p in [&a, &b] {
        let addr = p.http_addr(Duration::from_secs(5)).await;
        for path in ["/api/ownership", "/metrics", "/healthz"] {
            let body = get_text(&addr, path, Duration::from_secs(5)).await.unwrap();
            assert_secret_free(path, &body);
        }
    }
    for id in ["a", "b"] {
        let member: Vec<String> = redis::cmd("HGETALL")
            .arg(Keys::new(ns).member(&id.parse().unwrap()))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!member.is_empty());
        assert_secret_free("member hash", &member.join(" "));
    }

    // The dashboard, with the password in the URL, serves the page and data.
    let dport = tickshard::redis_server::free_port().unwrap();
    let dash = Proc::spawn(
        "dashboard",
        tickshard_bin().to_str().unwrap(),
        &[
            "dashboard".into(),
            "--redis".into(),
            acl_url.clone(),
            "--cluster".into(),
            ns.into(),
            "--listen".into(),
            format!("127.0.0.1:{dport}"),
        ],
        &[("RUST_LOG", "debug")],
    );
    let daddr = format!("127.0.0.1:{dport}");
    let snap = wait_for(Duration::from_secs(15), "dashboard sees both", || {
        let daddr = daddr.clone();
        async move {
            let s = get_text(&daddr, "/api/snapshot", Duration::from_secs(2)).await?;
            (s.contains("\"a\"") && s.contains("\"b\"")).then_some(s)
        }
    })
    .await;
    assert_secret_free("dashboard snapshot", &snap);
    let page = get_text(&daddr, "/", Duration::from_secs(5)).await.unwrap();
    assert_secret_free("dashboard page", &page);

    // --help shows neither the variable's value nor the URL's.
    let (code, help) = run(
        &["processor", "--help"],
        &[
            ("TICKSHARD_REDIS_PASSWORD", PASSWORD),
            ("TICKSHARD_REDIS", &acl_url),
        ],
    );
    assert_eq!(code, Some(0));
    assert!(
        help.contains("TICKSHARD_REDIS_PASSWORD") && help.contains("--redis-ca"),
        "{help}"
    );
    assert_secret_free("--help", &help);
    let (_, help) = run(
        &["dashboard", "--help"],
        &[
            ("TICKSHARD_REDIS_PASSWORD", PASSWORD),
            ("TICKSHARD_REDIS", &acl_url),
        ],
    );
    assert_secret_free("dashboard --help", &help);

    // A clean stop, then every log line of every process is checked.
    drop(dash);
    for p in [&a, &b] {
        p.term();
    }
    let logs = [a.log(), b.log()];
    for log in &logs {
        assert!(log.contains("joined the cluster"), "{log}");
        assert_secret_free("processor log", log);
    }
}

/// A throwaway CA and a server certificate for localhost/127.0.0.1.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "tickshard test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let (ca_file, cert_file, key_file) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (ca_file, cert_file, key_file)
}

/// A TLS-only redis-server (`--port 0 --tls-port N`), killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_redis() -> TlsRedis {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let port = tickshard::redis_server::free_port().unwrap();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--tls-port", &port.to_string()])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&ca)
        .args(["--tls-auth-clients", "no", "--requirepass", PASSWORD])
        .arg("--dir")
        .arg(dir.path())
        .arg("--logfile")
        .arg(dir.path().join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "TLS redis-server did not start: {}",
            std::fs::read_to_string(dir.path().join("redis.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsRedis { child, port, dir }
}

#[tokio::test]
async fn tls_with_a_private_ca_works_and_plain_to_tls_is_one_clear_line() {
    let server = tls_redis();
    let ca = server.dir.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let port = server.port;
    let url = format!("rediss://:{PASSWORD}@localhost:{port}/");

    // Plain TCP to the TLS port.
    let plain = format!("redis://:{PASSWORD}@127.0.0.1:{port}/");
    let started = Instant::now();
    let (code, out) = run(&["processor", "--redis", &plain, "--cluster", "tls"], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert_one_line(&out, "cannot reach Redis");
    assert!(out.contains("rediss://"), "the error hints at TLS: {out}");
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
    assert_secret_free("plain-to-TLS error", &out);

    // TLS without trusting the private CA: refused certificate.
    let (code, out) = run(&["processor", "--redis", &url, "--cluster", "tls"], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert_one_line(&out, "cannot reach Redis");
    assert_secret_free("untrusted-CA error", &out);

    // A CA file that does not exist.
    let (code, out) = run(
        &[
            "processor",
            "--redis",
            &url,
            "--redis-ca",
            "/nonexistent/ca.pem",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{out}");
    assert_one_line(&out, "/nonexistent/ca.pem");

    // With --redis-ca (and the env variable form) the cluster works.
    let a = spawn("a", &url, "tls", &["--redis-ca", ca], &[]);
    let b = spawn(
        "b",
        &format!("rediss://localhost:{port}/"),
        "tls",
        &[],
        &[
            ("TICKSHARD_REDIS_CA", ca),
            ("TICKSHARD_REDIS_PASSWORD", PASSWORD),
        ],
    );
    let client = tickshard::redis_conn::RedisConfig::new(url.clone())
        .with_ca_file(Some(ca.into()))
        .client()
        .unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    wait_until(
        Duration::from_secs(20),
        "both own partitions over TLS",
        || {
            let mut c = conn.clone();
            async move {
                let owners = owned_by(&mut c, "tls").await;
                owners.len() == P as usize
                    && owners.iter().any(|o| o.starts_with("a:"))
                    && owners.iter().any(|o| o.starts_with("b:"))
            }
        },
    )
    .await;
    let addr = a.http_addr(Duration::from_secs(5)).await;
    let body = get_text(&addr, "/api/ownership", Duration::from_secs(5))
        .await
        .unwrap();
    assert_secret_free("/api/ownership", &body);
    let _: () = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    for p in [&a, &b] {
        assert_secret_free("log", &p.log());
    }
}
