//! Who may talk to the HTTP servers (the processor's and the dashboard's).
//!
//! - [`check_exposure`]: a pure start-up decision. Loopback addresses are
//!   always allowed; any other address needs a bearer token
//!   (`--auth-token`), or an explicit `--insecure`.
//! - [`require_token`]: with a token set, every route except `/healthz`
//!   answers 401 unless the request carries the token, compared in
//!   constant time, in one of three ways:
//!   1. `Authorization: Bearer TOKEN` (scripts, Prometheus);
//!   2. `?token=TOKEN` in the query (WebSocket clients and opening the
//!      dashboard in a browser: `http://host:8080/?token=TOKEN`);
//!   3. the `tickshard_token` cookie, which a request authorised by the
//!      query parameter receives (`HttpOnly; SameSite=Strict`), so the
//!      page's own assets, its WebSocket and its buttons work after the
//!      token was given once.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use subtle::ConstantTimeEq;

/// The cookie that keeps a browser's token.
pub const COOKIE: &str = "tickshard_token";
/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// A bearer token. `Debug` never prints it.
#[derive(Clone)]
pub struct AuthToken(Arc<str>);

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(***)")
    }
}

/// Why a token was refused at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Too short to resist guessing.
    #[error("the auth token must be at least {MIN_TOKEN_LEN} characters")]
    TooShort,
    /// Has characters that do not survive a URL or a header unescaped.
    #[error("the auth token may use only A-Z a-z 0-9 and - . _ ~")]
    Charset,
}

impl std::str::FromStr for AuthToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        {
            return Err(TokenError::Charset);
        }
        Ok(Self(s.into()))
    }
}

impl AuthToken {
    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// The start-up decision about where a server may listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// Loopback only: no token needed.
    Local,
    /// Reachable from elsewhere, protected by the token.
    Protected,
    /// Reachable from elsewhere without a token, as asked with `--insecure`.
    Insecure,
}

/// Refusal to listen on a non-loopback address without protection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to listen on {addr} (not loopback) without --auth-token \
     (or TICKSHARD_AUTH_TOKEN); pass --insecure to allow it anyway"
)]
pub struct ExposureError {
    /// The address.
    pub addr: SocketAddr,
}

/// Decides whether `addr` may be served with this token and flag.
pub fn check_exposure(
    addr: SocketAddr,
    token: Option<&AuthToken>,
    insecure: bool,
) -> Result<Exposure, ExposureError> {
    match (addr.ip().is_loopback(), token.is_some(), insecure) {
        (_, true, _) => Ok(Exposure::Protected),
        (true, false, _) => Ok(Exposure::Local),
        (false, false, true) => Ok(Exposure::Insecure),
        (false, false, false) => Err(ExposureError { addr }),
    }
}

/// How a request presented the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// `Authorization: Bearer`.
    Header,
    /// `?token=`.
    Query,
    /// The cookie.
    Cookie,
}

/// Checks a request's headers and query against `token`.
pub fn authorize(token: &AuthToken, headers: &HeaderMap, query: Option<&str>) -> Option<Presented> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if bearer.is_some_and(|b| token.matches(b)) {
        return Some(Presented::Header);
    }
    let from_query = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.strip_prefix("token="));
    for candidate in from_query {
        if token.matches(candidate) {
            return Some(Presented::Query);
        }
    }
    let cookies = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='));
    for candidate in cookies {
        if token.matches(candidate) {
            return Some(Presented::Cookie);
        }
    }
    None
}

/// Called once per refused request (e.g. to count it).
pub type OnReject = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
struct Guard {
    token: AuthToken,
    on_reject: OnReject,
}

/// Wraps `router` so that every route but `/healthz` needs `token`
/// (no-op without a token). Each refusal calls `on_reject`.
pub fn require_token(router: Router, token: Option<AuthToken>, on_reject: OnReject) -> Router {
    match token {
        None => router,
        Some(token) => router.layer(middleware::from_fn_with_state(
            Guard { token, on_reject },
            check,
        )),
    }
}

async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    match authorize(&guard.token, request.headers(), request.uri().query()) {
        Some(Presented::Query) => {
            let mut response = next.run(request).await;
            let cookie = format!(
                "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
                guard.token.0
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Some(_) => next.run(request).await,
        None => {
            (guard.on_reject)();
            tracing::debug!(path = %request.uri().path(), "request without a valid token refused");
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "missing or wrong token: send `Authorization: Bearer TOKEN` or `?token=TOKEN`\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AuthToken {
        "0123456789abcdef-XYZ".parse().unwrap()
    }

    #[test]
    fn tokens_are_validated() {
        assert_eq!(
            "short".parse::<AuthToken>().unwrap_err(),
            TokenError::TooShort
        );
        assert_eq!(
            "0123456789abcdef gh".parse::<AuthToken>().unwrap_err(),
            TokenError::Charset
        );
        assert!(!format!("{:?}", token()).contains("0123"));
    }

    #[test]
    fn exposure_needs_a_token_or_insecure() {
        let local: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6_local: SocketAddr = "[::1]:80".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:80".parse().unwrap();
        let t = token();
        assert_eq!(check_exposure(local, None, false), Ok(Exposure::Local));
        assert_eq!(check_exposure(v6_local, None, false), Ok(Exposure::Local));
        assert_eq!(
            check_exposure(any, Some(&t), false),
            Ok(Exposure::Protected)
        );
        assert_eq!(check_exposure(any, None, true), Ok(Exposure::Insecure));
        let e = check_exposure(any, None, false).unwrap_err();
        assert!(e.to_string().contains("--auth-token"), "{e}");
    }

    #[test]
    fn each_way_of_presenting_the_token() {
        let t = token();
        let mut h = HeaderMap::new();
        assert_eq!(authorize(&t, &h, None), None);
        assert_eq!(
            authorize(&t, &h, Some("a=1&token=0123456789abcdef-XYZ")),
            Some(Presented::Query)
        );
        assert_eq!(authorize(&t, &h, Some("token=0123456789abcdef-XY")), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer 0123456789abcdef-XYZ"),
        );
        assert_eq!(authorize(&t, &h, None), Some(Presented::Header));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer wrong"),
        );
        assert_eq!(authorize(&t, &h, None), None);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; tickshard_token=0123456789abcdef-XYZ"),
        );
        assert_eq!(authorize(&t, &h, None), Some(Presented::Cookie));
    }
}
