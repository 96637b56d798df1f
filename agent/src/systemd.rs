//! Talking to systemd: `READY=1` once polling, watchdog pings, `STOPPING=1`.
//!
//! Every call does nothing when the agent does not run under systemd (`NOTIFY_SOCKET`
//! unset), so the same binary runs anywhere.

use sd_notify::NotifyState;
use tokio::sync::watch;
use tokio::time::sleep;
use tracing::debug;

/// Tells systemd the agent is up (polling).
pub fn notify_ready() {
    notify(&[NotifyState::Ready]);
}

/// Tells systemd the agent is stopping.
pub fn notify_stopping() {
    notify(&[NotifyState::Stopping]);
}

/// Pets the watchdog at half its interval, when systemd set one, until shutdown.
pub async fn run_watchdog(mut shutdown: watch::Receiver<bool>) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = interval / 2;
    loop {
        notify(&[NotifyState::Watchdog]);
        tokio::select! {
            () = sleep(period) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

fn notify(state: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(state) {
        debug!(%error, "could not notify systemd");
    }
}
