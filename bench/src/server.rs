//! The server under test, in this process, on a thread with a single-threaded runtime.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Context, anyhow};
use tagrun_server::Server;
use tagrun_server::config::Config;
use tokio::sync::oneshot;

use crate::cpu;

/// Name of the server's thread and of the blocking threads its runtime starts.
pub const SERVER_THREAD_NAME: &str = "bench-server";

/// Whether a thread called `name` works for the server: its own thread, its runtime's
/// blocking threads, or a SQLite connection thread (the kernel keeps 15 bytes of a
/// name, so `sqlx-sqlite-worker-N` shows as `sqlx-sqlite-wor`).
pub fn is_server_thread(name: &str) -> bool {
    name == SERVER_THREAD_NAME || name.starts_with("sqlx-sqlite-wor")
}

/// A server serving on its own thread until [`ServerThread::stop`].
#[derive(Debug)]
pub struct ServerThread {
    /// The address it listens on.
    pub address: SocketAddr,
    stop: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl ServerThread {
    /// Starts `config` on a new thread, pinned to `cpu` when given, and waits until it
    /// listens.
    pub fn start(config: Config, cpu: Option<usize>) -> anyhow::Result<ServerThread> {
        let (ready, listening) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(SERVER_THREAD_NAME.into())
            .spawn(move || serve(config, cpu, &ready, stopped))
            .context("starting the server thread")?;

        let address = listening
            .recv()
            .context("the server thread ended before listening")?
            .map_err(|message| anyhow!(message))?;
        Ok(ServerThread {
            address,
            stop,
            thread,
        })
    }

    /// Stops the server and waits for its thread, which drains connections first.
    pub fn stop(self) -> anyhow::Result<()> {
        self.stop
            .send(())
            .map_err(|()| anyhow!("the server thread had already ended"))?;
        self.thread
            .join()
            .map_err(|_| anyhow!("the server thread panicked"))
    }
}

/// The thread's body: pin, build the runtime, bind, report the address, serve.
fn serve(
    config: Config,
    cpu: Option<usize>,
    ready: &mpsc::Sender<Result<SocketAddr, String>>,
    stopped: oneshot::Receiver<()>,
) {
    let report = |outcome: Result<SocketAddr, String>| {
        // The starting thread waits for exactly this message; if it has gone, so has
        // everyone who could read it.
        ready.send(outcome).unwrap_or(());
    };
    if let Some(cpu) = cpu
        && let Err(errno) = cpu::pin_current_thread(&[cpu])
    {
        return report(Err(format!(
            "pinning the server to CPU {cpu} failed: {errno}"
        )));
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .thread_name(SERVER_THREAD_NAME)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return report(Err(format!("building the server runtime failed: {error}"))),
    };

    runtime.block_on(async {
        match Server::bind(config).await {
            Ok(server) => {
                report(Ok(server.local_addr()));
                server.serve(async { stopped.await.unwrap_or(()) }).await;
            }
            Err(error) => report(Err(format!(
                "starting the server failed: {}",
                tagrun_server::error_chain(&error)
            ))),
        }
    });
}
