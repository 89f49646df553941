//! The command lines of `feed-sim` and `tickshard processor`, built in one
//! place. Every option is either required (the run means nothing without
//! it) or optional (a refinement); what a build accepts is read from its
//! own `--help`, so a build from before an option existed is never handed
//! it:
//!
//! - a required option the build does not know makes the run `skipped`
//!   with that reason;
//! - an optional one is passed only when every build of the invocation
//!   knows it (so a before → after comparison runs both builds alike), and
//!   is listed in the result's `options_dropped` otherwise.
//!
//! To give the processors a new option in the bench, add it to
//! [`processor`] as optional: older builds keep running without it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Long options (`--name`) one binary's `--help` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Known(BTreeSet<String>);

impl Known {
    /// Runs `bin [sub] --help` and reads its options.
    pub(crate) fn probe(bin: &Path, sub: Option<&str>) -> Result<Self, String> {
        let mut cmd = Command::new(bin);
        cmd.args(sub).arg("--help");
        let out = cmd
            .output()
            .map_err(|e| format!("{} --help: {e}", bin.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let known = Self::parse_help(&text);
        if !out.status.success() || known.0.is_empty() {
            return Err(format!(
                "{} {}--help listed no options ({})",
                bin.display(),
                sub.map(|s| format!("{s} ")).unwrap_or_default(),
                out.status
            ));
        }
        Ok(known)
    }

    /// The options of a help text: on every line that starts with `-`, the
    /// `--name` tokens before the first token that is not an option
    /// (`  -h, --help`, `      --rate <RATE>`, `  --rate RATE`).
    pub(crate) fn parse_help(text: &str) -> Self {
        let mut out = BTreeSet::new();
        for line in text.lines().map(str::trim_start) {
            if !line.starts_with('-') {
                continue;
            }
            for token in line.split(|c: char| c.is_whitespace() || c == ',') {
                if token.is_empty() {
                    continue;
                }
                if !token.starts_with('-') {
                    break;
                }
                if let Some(name) = token.strip_prefix("--") {
                    let name: String = name
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.insert(name);
                    }
                }
            }
        }
        Self(out)
    }

    pub(crate) fn knows(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    /// Options both know.
    pub(crate) fn intersect(&self, other: &Known) -> Known {
        Known(self.0.intersection(&other.0).cloned().collect())
    }
}

/// What one build's binaries accept, and what every build of the
/// invocation accepts (for optional options).
#[derive(Debug, Clone, Default)]
pub(crate) struct Caps {
    pub(crate) feed: Known,
    pub(crate) processor: Known,
    pub(crate) shared_feed: Known,
    pub(crate) shared_processor: Known,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Required,
    Optional,
}

/// One option with its value (none for a flag).
#[derive(Debug, Clone)]
struct Opt {
    name: &'static str,
    value: Option<String>,
    need: Need,
}

fn req(name: &'static str, value: impl ToString) -> Opt {
    Opt {
        name,
        value: Some(value.to_string()),
        need: Need::Required,
    }
}

fn opt(name: &'static str, value: impl ToString) -> Opt {
    Opt {
        name,
        value: Some(value.to_string()),
        need: Need::Optional,
    }
}

/// A command ready to spawn, and the optional options left out.
#[derive(Debug)]
pub(crate) struct Built {
    pub(crate) cmd: Command,
    pub(crate) dropped: Vec<String>,
}

fn build(
    bin: &Path,
    sub: Option<&str>,
    opts: Vec<Opt>,
    own: &Known,
    shared: &Known,
) -> Result<Built, String> {
    let mut cmd = Command::new(bin);
    cmd.args(sub);
    let mut dropped = Vec::new();
    for o in opts {
        let pass = match o.need {
            Need::Required if !own.knows(o.name) => {
                return Err(format!(
                    "{} does not know --{}, which this scenario needs",
                    bin.display(),
                    o.name
                ))
            }
            Need::Required => true,
            Need::Optional => own.knows(o.name) && shared.knows(o.name),
        };
        if pass {
            cmd.arg(format!("--{}", o.name));
            cmd.args(o.value);
        } else {
            dropped.push(format!("--{}", o.name));
        }
    }
    cmd.env("RUST_LOG", "warn");
    Ok(Built { cmd, dropped })
}

/// How long the feed sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FeedLength {
    Ticks(u64),
    Secs(f64),
}

/// How the feed is driven in one run.
#[derive(Debug, Clone)]
pub(crate) struct FeedSpec {
    pub(crate) listen: String,
    pub(crate) symbols: usize,
    pub(crate) length: FeedLength,
    /// `None`: unthrottled (no `--rate`).
    pub(crate) rate: Option<u64>,
    pub(crate) mode: String,
    pub(crate) redis: String,
    pub(crate) record: PathBuf,
    /// `--universe FILE`: the N most active real symbols (topped up with
    /// synthetic ones past the file's size).
    pub(crate) universe: Option<PathBuf>,
    /// `--wait-clients N`: the first tick waits for every processor.
    pub(crate) wait_clients: usize,
}

/// `feed-sim --listen ADDR --symbols N (--ticks M | --duration S) [--rate R]
/// --mode MODE --redis URL --seed 1 --record FILE [--wait-clients N]
/// [--universe FILE]`.
pub(crate) fn feed(bin: &Path, spec: &FeedSpec, caps: &Caps) -> Result<Built, String> {
    let mut opts = vec![
        req("listen", &spec.listen),
        req("symbols", spec.symbols),
        match spec.length {
            FeedLength::Ticks(t) => req("ticks", t),
            FeedLength::Secs(s) => req("duration", s),
        },
        req("mode", &spec.mode),
        req("redis", &spec.redis),
        req("seed", 1),
        req("record", spec.record.display()),
        opt("wait-clients", spec.wait_clients),
    ];
    if let Some(r) = spec.rate {
        opts.push(req("rate", r));
    }
    if let Some(u) = &spec.universe {
        opts.push(opt("universe", u.display()));
    }
    build(bin, None, opts, &caps.feed, &caps.shared_feed)
}

/// One processor of a run.
#[derive(Debug, Clone)]
pub(crate) struct ProcessorSpec<'a> {
    pub(crate) redis: &'a str,
    /// The feed's `host:port`.
    pub(crate) feed: &'a str,
    pub(crate) id: &'a str,
    pub(crate) http: &'a str,
    pub(crate) cluster: &'a str,
}

/// `tickshard processor --redis URL --feed ws://ADDR --id ID --http ADDR
/// --cluster NS`.
pub(crate) fn processor(bin: &Path, p: &ProcessorSpec<'_>, caps: &Caps) -> Result<Built, String> {
    let opts = vec![
        req("redis", p.redis),
        req("feed", format!("ws://{}", p.feed)),
        req("id", p.id),
        req("http", p.http),
        req("cluster", p.cluster),
    ];
    build(
        bin,
        Some("processor"),
        opts,
        &caps.processor,
        &caps.shared_processor,
    )
}

/// Self-check: reads clap's and argparse's help layouts, and leaves out
/// an optional option one build lacks while refusing a required one.
pub(crate) fn self_check() -> Result<(), String> {
    let clap = "Usage: feed-sim [OPTIONS]\n\nOptions:\n      --listen <LISTEN>\n          Address (give --ticks or --duration)\n  -h, --help\n          Print help\n      --wait-clients <WAIT_CLIENTS>\n";
    let argparse =
        "options:\n  -h, --help            show this help\n  --listen LISTEN\n  --rate RATE\n";
    let a = Known::parse_help(clap);
    let want: BTreeSet<String> = ["listen", "help", "wait-clients"]
        .into_iter()
        .map(String::from)
        .collect();
    if a.0 != want {
        return Err(format!("clap help parsed as {:?}", a.0));
    }
    let b = Known::parse_help(argparse);
    if !b.knows("rate") || !b.knows("listen") || b.knows("LISTEN") {
        return Err(format!("argparse help parsed as {:?}", b.0));
    }
    let shared = a.intersect(&b);
    let built = build(
        Path::new("x"),
        None,
        vec![req("listen", "a"), opt("wait-clients", 3)],
        &a,
        &shared,
    )?;
    if built.dropped != vec!["--wait-clients".to_string()] {
        return Err(format!("dropped {:?}", built.dropped));
    }
    if build(Path::new("x"), None, vec![req("rate", 1)], &a, &a).is_ok() {
        return Err("an unknown required option was passed".to_string());
    }
    Ok(())
}
