//! The demo's processor fleet: starting one more, crashing one (SIGKILL),
//! stopping one gracefully (SIGTERM), as the dashboard's buttons ask.

use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::Mutex;

use super::children::ManagedChild;
use crate::dashboard::demo::{DemoAction, DemoControl, DemoFuture};

/// How every demo processor is started.
#[derive(Debug, Clone)]
pub struct ProcessorTemplate {
    /// The `tickshard` binary.
    pub exe: PathBuf,
    /// Redis URL.
    pub redis: String,
    /// Feed URL.
    pub feed: String,
    /// Cluster namespace.
    pub namespace: String,
    /// Partitions.
    pub partitions: u32,
    /// Where logs go.
    pub log_dir: PathBuf,
}

#[derive(Debug, Default)]
struct Fleet {
    running: Vec<ManagedChild>,
    next: u32,
}

/// The demo's processors.
#[derive(Debug)]
pub struct DemoProcesses {
    template: ProcessorTemplate,
    max: usize,
    fleet: Mutex<Fleet>,
}

impl DemoProcesses {
    /// No processors yet; at most `max` at once.
    pub fn new(template: ProcessorTemplate, max: usize) -> Self {
        Self {
            template,
            max,
            fleet: Mutex::new(Fleet::default()),
        }
    }

    /// Starts one more processor; returns its id.
    pub async fn start_one(&self) -> Result<String, String> {
        let mut fleet = self.fleet.lock().await;
        fleet.running.retain_mut(ManagedChild::is_running);
        if fleet.running.len() >= self.max {
            return Err(format!(
                "already {} processors running",
                fleet.running.len()
            ));
        }
        fleet.next += 1;
        let id = format!("p{}", fleet.next);
        let t = &self.template;
        let args = vec![
            "processor".to_owned(),
            "--redis".to_owned(),
            t.redis.clone(),
            "--feed".to_owned(),
            t.feed.clone(),
            "--id".to_owned(),
            id.clone(),
            "--cluster".to_owned(),
            t.namespace.clone(),
            "--partitions".to_owned(),
            t.partitions.to_string(),
            "--http".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        let child = ManagedChild::spawn(&id, &t.exe, &args, &t.log_dir)
            .map_err(|e| format!("cannot start {id}: {e}"))?;
        tracing::info!(instance = %id, pid = ?child.pid(), "processor started");
        fleet.running.push(child);
        Ok(id)
    }

    async fn signal_one(&self, instance: Option<String>, signal: Signal) -> Result<String, String> {
        let mut fleet = self.fleet.lock().await;
        fleet.running.retain_mut(ManagedChild::is_running);
        let index = match &instance {
            Some(id) => fleet.running.iter().position(|c| &c.name == id),
            None => (!fleet.running.is_empty()).then_some(0),
        }
        .ok_or_else(|| match &instance {
            Some(id) => format!("no running processor {id}"),
            None => "no processor is running".to_owned(),
        })?;
        let child = fleet.running.remove(index);
        child
            .signal(signal)
            .map_err(|e| format!("cannot signal {}: {e}", child.name))?;
        let verb = if signal == Signal::SIGKILL {
            "killed (SIGKILL)"
        } else {
            "asked to stop (SIGTERM)"
        };
        tracing::info!(instance = %child.name, verb, "demo action");
        let name = child.name.clone();
        // Reap it in the background so it does not linger as a zombie.
        tokio::spawn(async move {
            let mut child = child;
            child.stop(Duration::from_secs(10)).await;
        });
        Ok(format!("{name} {verb}"))
    }

    /// Stops every processor gracefully, SIGKILL after `grace`.
    pub async fn stop_all(&self, grace: Duration) {
        let mut fleet = self.fleet.lock().await;
        let stopping = fleet.running.drain(..).map(|mut c| async move {
            c.stop(grace).await;
        });
        futures_util::future::join_all(stopping).await;
    }
}

impl DemoControl for DemoProcesses {
    fn act(&self, action: DemoAction, instance: Option<String>) -> DemoFuture<'_> {
        Box::pin(async move {
            match action {
                DemoAction::Start => self.start_one().await.map(|id| format!("{id} started")),
                DemoAction::Kill => self.signal_one(instance, Signal::SIGKILL).await,
                DemoAction::Stop => self.signal_one(instance, Signal::SIGTERM).await,
            }
        })
    }
}
