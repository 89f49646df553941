//! Redis connection set-up in one place: every `redis::Client` of the
//! cluster layer and of the service using it is built by
//! [`RedisConfig::client`] (or, for a Redis Cluster,
//! [`RedisConfig::cluster_client`]) from the URL and the security options.
//!
//! - Seeds: the URL may list several nodes, comma-separated
//!   (`redis://a:7000,redis://b:7000`): any one of them is enough to find
//!   a Redis Cluster; a single server takes the first.
//! - Credentials: `redis://user:password@host:port/db` (an ACL user) or
//!   `redis://:password@host:port/`; a password given separately (an
//!   option or environment variable of the service) replaces or adds the
//!   URL's password.
//! - TLS: a `rediss://` URL. The server certificate is checked against the
//!   system roots, or only against a given CA file (PEM), for a private
//!   CA.
//!
//! Passwords never leave this type in text: [`RedisConfig`]'s `Debug`,
//! [`RedisConfig::redacted_url`] and every [`RedisConfigError`] show the URL
//! with its `user:password@` part replaced by `***@`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How to reach Redis: URL plus the options that are not part of it.
#[derive(Clone, Default)]
pub struct RedisConfig {
    url: String,
    password: Option<String>,
    ca_file: Option<PathBuf>,
    /// The seed [`RedisConfig::next_seed_client`] hands out next, shared
    /// by every clone.
    next_seed: Arc<AtomicUsize>,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl From<String> for RedisConfig {
    fn from(url: String) -> Self {
        Self::new(url)
    }
}

impl From<&str> for RedisConfig {
    fn from(url: &str) -> Self {
        Self::new(url)
    }
}

/// Why a Redis client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RedisConfigError {
    /// The URL does not parse.
    #[error("invalid Redis URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, with any password removed.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The CA file cannot be read.
    #[error("cannot read the Redis CA file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A CA file was given for a URL without TLS.
    #[error("--redis-ca needs a rediss:// URL (TLS), got `{url}`")]
    CaWithoutTls {
        /// The URL, with any password removed.
        url: String,
    },
    /// The TLS set-up was refused (e.g. the CA file holds no certificate).
    #[error("invalid TLS set-up for `{url}`: {reason}")]
    Tls {
        /// The URL, with any password removed.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

impl RedisConfig {
    /// From a URL alone.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            password: None,
            ca_file: None,
            next_seed: Arc::default(),
        }
    }

    /// Uses `password` instead of (or in addition to) the URL's.
    pub fn with_password(mut self, password: Option<String>) -> Self {
        self.password = password.filter(|p| !p.is_empty());
        self
    }

    /// Trusts only the CA in `file` (PEM) for `rediss://`.
    pub fn with_ca_file(mut self, file: Option<PathBuf>) -> Self {
        self.ca_file = file;
        self
    }

    /// The URL with any credentials replaced, for messages and logs.
    pub fn redacted_url(&self) -> String {
        self.seeds().map(redact_url).collect::<Vec<_>>().join(",")
    }

    /// The seed URLs (the URL split at commas, blanks dropped).
    pub fn seeds(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim).filter(|u| !u.is_empty())
    }

    /// The same options with `seed` as the only URL.
    pub fn only(&self, seed: &str) -> RedisConfig {
        RedisConfig {
            url: seed.to_owned(),
            ..self.clone()
        }
    }

    /// The first seed's URL (the one a single server is reached at).
    fn first_seed(&self) -> &str {
        self.seeds().next().unwrap_or("")
    }

    /// True when the URL asks for TLS.
    pub fn is_tls(&self) -> bool {
        self.url
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("rediss://")
    }

    fn invalid(&self, e: &redis::RedisError) -> RedisConfigError {
        RedisConfigError::InvalidUrl {
            url: self.redacted_url(),
            reason: strip_secrets(&e.to_string(), self),
        }
    }

    /// The connection info of one seed, with the separate password applied.
    fn connection_info(&self, url: &str) -> Result<redis::ConnectionInfo, RedisConfigError> {
        let mut info =
            redis::IntoConnectionInfo::into_connection_info(url).map_err(|e| self.invalid(&e))?;
        if let Some(pw) = &self.password {
            let settings = info.redis_settings().clone().set_password(pw);
            info = info.set_redis_settings(settings);
        }
        Ok(info)
    }

    /// The private CA's certificates, when one is given.
    fn tls_certificates(&self) -> Result<Option<redis::TlsCertificates>, RedisConfigError> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        if !self.is_tls() {
            return Err(RedisConfigError::CaWithoutTls {
                url: self.redacted_url(),
            });
        }
        let root = std::fs::read(path).map_err(|source| RedisConfigError::CaFile {
            path: path.clone(),
            source,
        })?;
        install_crypto_provider();
        Ok(Some(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(root),
        }))
    }

    fn tls_error(&self, e: &redis::RedisError) -> RedisConfigError {
        RedisConfigError::Tls {
            url: self.redacted_url(),
            reason: strip_secrets(&e.to_string(), self),
        }
    }

    /// Builds the client of the first seed, speaking `protocol`. Nothing
    /// is connected yet.
    pub fn client_with(
        &self,
        protocol: redis::ProtocolVersion,
    ) -> Result<redis::Client, RedisConfigError> {
        let mut info = self.connection_info(self.first_seed())?;
        let settings = info.redis_settings().clone().set_protocol(protocol);
        info = info.set_redis_settings(settings);
        match self.tls_certificates()? {
            None => redis::Client::open(info).map_err(|e| self.invalid(&e)),
            Some(certs) => {
                redis::Client::build_with_tls(info, certs).map_err(|e| self.tls_error(&e))
            }
        }
    }

    /// Builds the client of the first seed. Nothing is connected yet.
    pub fn client(&self) -> Result<redis::Client, RedisConfigError> {
        self.client_with(redis::ProtocolVersion::RESP2)
    }

    /// Builds the client of the next seed, round and round the list (one
    /// cursor shared by every clone of this config): a pub/sub session
    /// that reconnects takes the next one, so a session whose node died (a
    /// cluster master) moves on.
    pub fn next_seed_client(&self) -> Result<redis::Client, RedisConfigError> {
        let seeds: Vec<&str> = self.seeds().collect();
        let n = self.next_seed.fetch_add(1, Ordering::Relaxed);
        match seeds.get(n % seeds.len().max(1)) {
            Some(seed) => self.only(seed).client(),
            None => self.client(),
        }
    }

    /// A Redis Cluster client builder over every seed, with the same
    /// credentials and TLS. Nothing is connected yet.
    pub fn cluster_client(&self) -> Result<redis::cluster::ClusterClientBuilder, RedisConfigError> {
        let infos = self
            .seeds()
            .map(|u| self.connection_info(u))
            .collect::<Result<Vec<_>, _>>()?;
        let settings = infos.first().map(|i| i.redis_settings().clone());
        let mut builder = redis::cluster::ClusterClientBuilder::new(infos);
        if let Some(s) = settings {
            if let Some(user) = s.username() {
                builder = builder.username(user);
            }
            if let Some(pw) = s.password() {
                builder = builder.password(pw);
            }
        }
        if let Some(certs) = self.tls_certificates()? {
            builder = builder.certs(certs);
        }
        Ok(builder)
    }
}

/// rustls needs a process-wide crypto provider; install ring's once.
fn install_crypto_provider() {
    // Err only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Makes sure TLS can be used (called before any connection is made).
pub fn init_tls() {
    install_crypto_provider();
}

/// Removes every secret of `config` from an error text, in case a library
/// message quotes the URL.
fn strip_secrets(text: &str, config: &RedisConfig) -> String {
    let mut out = text.replace(&config.url, &config.redacted_url());
    for secret in config.secrets() {
        out = out.replace(&secret, "***");
    }
    out
}

impl RedisConfig {
    /// The passwords this config holds (URL and separate), for scrubbing.
    fn secrets(&self) -> Vec<String> {
        let mut v: Vec<String> = self.password.iter().cloned().collect();
        v.extend(self.seeds().filter_map(url_password));
        v.retain(|s| s.len() >= 3);
        v
    }
}

/// The password part of `scheme://user:password@host`, if any.
fn url_password(url: &str) -> Option<String> {
    let s = url.find("://")? + 3;
    let at = url.rfind('@')?;
    if at <= s {
        return None;
    }
    let userinfo = &url[s..at];
    let pw = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
    (!pw.is_empty()).then(|| pw.to_owned())
}

/// The URL with any `user:password@` part replaced by `***@`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s + 3 => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact_url("rediss://:pw@h:1/"), "rediss://***@h:1/");
        assert_eq!(redact_url("redis://h:1/"), "redis://h:1/");
        assert_eq!(redact_url("garbage"), "garbage");
    }

    #[test]
    fn debug_never_shows_a_password() {
        let c = RedisConfig::new("redis://app:s3cr3t-url@h:1/")
            .with_password(Some("s3cr3t-env".into()));
        let text = format!("{c:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }

    #[test]
    fn the_separate_password_overrides_the_url() {
        let c = RedisConfig::new("redis://app:old@h:1/").with_password(Some("new".into()));
        let client = c.client().unwrap();
        let info = client.get_connection_info().redis_settings();
        assert_eq!(info.username(), Some("app"));
        assert_eq!(info.password(), Some("new"));
        let c = RedisConfig::new("redis://h:1/").with_password(Some("added".into()));
        let client = c.client().unwrap();
        assert_eq!(
            client.get_connection_info().redis_settings().password(),
            Some("added")
        );
    }

    #[test]
    fn seeds_are_taken_round_and_round_with_the_same_options() {
        let c = RedisConfig::new("redis://u:pw1@a:1/, redis://u:pw1@b:2/")
            .with_password(Some("sep".into()));
        assert_eq!(c.seeds().count(), 2);
        assert_eq!(c.redacted_url(), "redis://***@a:1/,redis://***@b:2/");
        let clone = c.clone();
        let addr = |c: &RedisConfig| {
            let client = c.next_seed_client().unwrap();
            let info = client.get_connection_info();
            let password = info.redis_settings().password().map(str::to_owned);
            (info.addr().to_string(), password)
        };
        assert_eq!(addr(&c), ("a:1".into(), Some("sep".into())));
        // Clones share the cursor.
        assert_eq!(addr(&clone), ("b:2".into(), Some("sep".into())));
        assert_eq!(addr(&c), ("a:1".into(), Some("sep".into())));
        assert!(!format!("{c:?}").contains("pw1"));
    }

    #[test]
    fn errors_are_clear_and_secret_free() {
        let e = RedisConfig::new("nonsense://u:pw-xyz@h/")
            .client()
            .unwrap_err();
        assert!(!e.to_string().contains("pw-xyz"), "{e}");
        let e = RedisConfig::new("redis://h:1/")
            .with_ca_file(Some("/nonexistent".into()))
            .client()
            .unwrap_err();
        assert!(matches!(e, RedisConfigError::CaWithoutTls { .. }), "{e}");
        let e = RedisConfig::new("rediss://h:1/")
            .with_ca_file(Some("/nonexistent/ca.pem".into()))
            .client()
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        assert_eq!(url_password("redis://u:pw@h"), Some("pw".into()));
        assert_eq!(url_password("redis://h:1/"), None);
    }
}
