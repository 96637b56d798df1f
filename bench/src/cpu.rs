//! Keeping the server on one CPU and the load generator on the others.
//!
//! Pinning is inherited: a thread spawned by a pinned thread gets the same CPUs. The
//! server's thread is pinned before it builds its runtime, so the threads the runtime
//! and the SQLite driver start later share that one CPU with it.

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

/// Which CPUs the server and the client run on; empty means anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The server's one CPU.
    pub server: Option<usize>,
    /// The client's CPUs.
    pub client: Vec<usize>,
}

impl Placement {
    /// The first allowed CPU for the server and the rest for the client, when at least
    /// two are allowed; otherwise no pinning at all.
    pub fn split(allowed: &[usize]) -> Placement {
        match allowed {
            [server, client @ ..] if !client.is_empty() => Placement {
                server: Some(*server),
                client: client.to_vec(),
            },
            _ => Placement::default(),
        }
    }

    /// [`Placement::split`] over the CPUs this process may use.
    pub fn for_this_process() -> nix::Result<Placement> {
        Ok(Placement::split(&allowed_cpus()?))
    }
}

/// The CPUs the calling thread may run on, in ascending order.
pub fn allowed_cpus() -> nix::Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0))?;
    let mut cpus = Vec::new();
    for cpu in 0..CpuSet::count() {
        if set.is_set(cpu)? {
            cpus.push(cpu);
        }
    }
    Ok(cpus)
}

/// Restricts the calling thread (and the threads it spawns from now on) to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> nix::Result<()> {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_takes_the_first_cpu_and_the_client_the_rest() {
        let placement = Placement::split(&[2, 5, 7]);

        assert_eq!(placement.server, Some(2));
        assert_eq!(placement.client, [5, 7]);
    }

    #[test]
    fn one_cpu_is_not_split() {
        assert_eq!(Placement::split(&[0]), Placement::default());
        assert_eq!(Placement::split(&[]), Placement::default());
    }

    #[test]
    fn this_thread_may_run_somewhere() {
        assert!(!allowed_cpus().unwrap().is_empty());
    }
}
