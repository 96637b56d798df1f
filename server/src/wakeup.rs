//! Wakes the long polls of nodes that have new messages.
//!
//! Each node has a [`Notify`]; queueing a message for a node notifies it, and a
//! `GetMessages` held open for that node returns at once. Wakeups reach only the
//! polls of this process: with several replicas on PostgreSQL, polls also look at the
//! database every few seconds (see the messages API).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Per-node wakeups, plus the server-wide shutdown signal for held polls.
#[derive(Debug, Default)]
pub struct Wakeups {
    nodes: Mutex<HashMap<String, Arc<Notify>>>,
    shutdown: Notify,
    stopping: AtomicBool,
}

impl Wakeups {
    /// The notifier of one node, created on first use.
    pub fn for_node(&self, instance_id: &str) -> Arc<Notify> {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        nodes.entry(instance_id.to_owned()).or_default().clone()
    }

    /// Wakes the held polls of these nodes.
    pub fn wake(&self, instance_ids: &[String]) {
        let nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        for id in instance_ids {
            if let Some(notify) = nodes.get(id) {
                notify.notify_waiters();
            }
        }
    }

    /// Ends every held poll; used at shutdown so draining does not wait for them.
    pub fn shut_down(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.shutdown.notify_waiters();
    }

    /// Completes when the server starts shutting down (at once if it already has).
    pub async fn shutting_down(&self) {
        let notified = self.shutdown.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_wakeup_reaches_a_poll_that_is_waiting() {
        let wakeups = Arc::new(Wakeups::default());
        let notify = wakeups.for_node("mi-1");
        let waiting = notify.notified();
        tokio::pin!(waiting);
        waiting.as_mut().enable();

        wakeups.wake(&["mi-1".to_string()]);

        let woke = tokio::time::timeout(Duration::from_secs(1), waiting).await;
        assert!(woke.is_ok());
    }
}
