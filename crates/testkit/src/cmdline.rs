//! Command lines of `tickshard processor` and `feed-sim` for tests, built
//! in one place: the options every test needs come with sane test values
//! (an ephemeral HTTP port, the feed on a given address), and a test adds
//! only what it is about.

/// Arguments of `tickshard processor`.
#[derive(Debug, Clone)]
#[must_use]
pub struct ProcessorArgs {
    args: Vec<String>,
    http: String,
}

impl ProcessorArgs {
    /// `processor --redis URL --id ID`, and `--http 127.0.0.1:0` unless
    /// [`ProcessorArgs::http`] says otherwise.
    pub fn new(redis: &str, id: &str) -> Self {
        Self {
            args: vec!["processor".to_owned()],
            http: "127.0.0.1:0".to_owned(),
        }
        .opt("--redis", redis)
        .opt("--id", id)
    }

    /// `--http ADDR` instead of an ephemeral loopback port.
    pub fn http(mut self, addr: &str) -> Self {
        addr.clone_into(&mut self.http);
        self
    }

    /// `--cluster NS`.
    pub fn cluster(self, ns: &str) -> Self {
        self.opt("--cluster", ns)
    }

    /// `--lease-ms MS`.
    pub fn lease_ms(self, ms: u64) -> Self {
        self.opt("--lease-ms", &ms.to_string())
    }

    /// `--partitions N`.
    pub fn partitions(self, n: u32) -> Self {
        self.opt("--partitions", &n.to_string())
    }

    /// `--feed URL`.
    pub fn feed(self, url: &str) -> Self {
        self.opt("--feed", url)
    }

    /// Any other option with its value.
    pub fn opt(mut self, name: &str, value: &str) -> Self {
        self.args.extend([name.to_owned(), value.to_owned()]);
        self
    }

    /// Arguments as given (flags, or option/value pairs).
    pub fn raw<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The argument list.
    pub fn build(self) -> Vec<String> {
        let mut args = self.args;
        args.extend(["--http".to_owned(), self.http]);
        args
    }

    /// The argument list without the `processor` subcommand: for a
    /// program that runs a processor as its whole job (an operator's
    /// binary).
    pub fn build_standalone(self) -> Vec<String> {
        let mut args = self.build();
        args.remove(0);
        args
    }
}

/// Arguments of `feed-sim`.
#[derive(Debug, Clone)]
#[must_use]
pub struct FeedArgs(Vec<String>);

impl FeedArgs {
    /// `--listen ADDR`.
    pub fn new(listen: &str) -> Self {
        Self(vec!["--listen".to_owned(), listen.to_owned()])
    }

    /// `--record PATH`: the ground truth.
    pub fn record(self, path: &std::path::Path) -> Self {
        self.opt("--record", &path.to_string_lossy())
    }

    /// `--redis URL --cluster NS`: owner-aware distribution.
    pub fn owner_aware(self, redis: &str, ns: &str) -> Self {
        self.opt("--redis", redis).opt("--cluster", ns)
    }

    /// Any other option with its value.
    pub fn opt(mut self, name: &str, value: &str) -> Self {
        self.0.extend([name.to_owned(), value.to_owned()]);
        self
    }

    /// Arguments as given (the scenario: `--symbols`, `--ticks`, ...).
    pub fn raw<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.0
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The argument list.
    pub fn build(self) -> Vec<String> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processor_arguments_in_order() {
        let args = ProcessorArgs::new("redis://x/", "p1")
            .cluster("ns")
            .lease_ms(2000)
            .raw(["--flush-chunk", "5"])
            .build();
        assert_eq!(
            args.join(" "),
            "processor --redis redis://x/ --id p1 --cluster ns --lease-ms 2000 \
             --flush-chunk 5 --http 127.0.0.1:0"
        );
    }

    #[test]
    fn feed_arguments_in_order() {
        let args = FeedArgs::new("127.0.0.1:9")
            .raw(["--ticks", "10"])
            .record(std::path::Path::new("/t/truth.json"))
            .owner_aware("redis://x/", "ns")
            .build();
        assert_eq!(
            args.join(" "),
            "--listen 127.0.0.1:9 --ticks 10 --record /t/truth.json --redis redis://x/ --cluster ns"
        );
    }
}
