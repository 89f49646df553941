//! The demo control hook: what the page's buttons call. The dashboard
//! itself starts and stops nothing; the demo installs a [`DemoControl`]
//! and the server then exposes `POST /api/demo/{kill|start|stop}` (404
//! without one).

use std::future::Future;
use std::pin::Pin;

/// A button of the demo page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoAction {
    /// `kill -9` a processor (the named one, or one picked by the demo).
    Kill,
    /// Start one more processor.
    Start,
    /// Stop a processor gracefully (SIGTERM).
    Stop,
}

impl DemoAction {
    /// Parses the path segment of `/api/demo/{action}`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kill" => Some(Self::Kill),
            "start" => Some(Self::Start),
            "stop" => Some(Self::Stop),
            _ => None,
        }
    }
}

/// The future a [`DemoControl`] returns: a message for the page, or why
/// it could not be done.
pub type DemoFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

/// Carries out the demo page's buttons. `instance` is the row the button
/// was pressed on (`None` for "start" or when the page did not say).
pub trait DemoControl: Send + Sync {
    /// Does `action`, and says what was done.
    fn act(&self, action: DemoAction, instance: Option<String>) -> DemoFuture<'_>;
}
