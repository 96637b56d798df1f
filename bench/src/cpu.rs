//! Keeping the server on one CPU and the load generator on the others.
//!
//! Pinning is inherited: a thread spawned by a pinned thread gets the same CPUs. The
//! server's thread is pinned before it builds its runtime, so the threads the runtime
//! and the SQLite driver start later share that one CPU with it.
//!
//! On a shared machine the server's CPU also runs other work, so requests per second
//! move with the load. [`thread_cpu_time`] gives the steadier figure: the CPU time the
//! server's own threads used, read from `/proc`.

use std::time::Duration;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::{Pid, SysconfVar, sysconf};

/// Name of the client runtime's threads, which [`thread_cpu_time`] callers leave out.
pub const CLIENT_THREAD_NAME: &str = "bench-client";

/// Why thread CPU times could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CpuTimeError {
    /// A file under `/proc/self/task` could not be read.
    #[error("could not read {path}")]
    Read {
        /// The file.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A `stat` file did not have the expected fields.
    #[error("unexpected contents in {path}")]
    Parse {
        /// The file.
        path: String,
    },
    /// The clock tick length is unknown.
    #[error("the clock tick length is unknown")]
    ClockTick,
}

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

/// User plus system CPU time of this process's threads whose name passes `include`.
///
/// Limitation: a thread that has already exited is not counted, and the kernel
/// reports in clock ticks (usually 10 ms), so short runs are coarse.
pub fn thread_cpu_time(include: impl Fn(&str) -> bool) -> Result<Duration, CpuTimeError> {
    let tick = clock_tick()?;
    let tasks = read_dir("/proc/self/task")?;
    let mut ticks = 0;
    for task in tasks {
        let dir = task.path();
        // A thread may exit between listing and reading: it has nothing to count.
        let Some(name) = read_if_present(&dir.join("comm"))? else {
            continue;
        };
        if include(name.trim_end()) {
            let stat_path = dir.join("stat");
            let Some(stat) = read_if_present(&stat_path)? else {
                continue;
            };
            ticks += busy_ticks(&stat).ok_or_else(|| CpuTimeError::Parse {
                path: stat_path.display().to_string(),
            })?;
        }
    }
    Ok(tick * u32::try_from(ticks).unwrap_or(u32::MAX))
}

/// User plus system CPU time of process `pid`, all its threads included (those that
/// have exited too), read from `/proc/<pid>/stat`.
pub fn process_cpu_time(pid: u32) -> Result<Duration, CpuTimeError> {
    let tick = clock_tick()?;
    let path = std::path::PathBuf::from(format!("/proc/{pid}/stat"));
    let stat = read(&path)?;
    let ticks = busy_ticks(&stat).ok_or_else(|| CpuTimeError::Parse {
        path: path.display().to_string(),
    })?;
    Ok(tick * u32::try_from(ticks).unwrap_or(u32::MAX))
}

/// `utime + stime` from a `/proc/.../stat` line: the 14th and 15th fields, counted
/// after the parenthesised name, which may itself hold spaces.
fn busy_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

fn clock_tick() -> Result<Duration, CpuTimeError> {
    let per_second = sysconf(SysconfVar::CLK_TCK).ok().flatten();
    let per_second = per_second
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0);
    let per_second = per_second.ok_or(CpuTimeError::ClockTick)?;
    Ok(Duration::from_secs(1) / per_second)
}

fn read_dir(path: &str) -> Result<Vec<std::fs::DirEntry>, CpuTimeError> {
    let read_error = |source| CpuTimeError::Read {
        path: path.to_owned(),
        source,
    };
    let entries = std::fs::read_dir(path).map_err(read_error)?;
    entries.collect::<Result<Vec<_>, _>>().map_err(read_error)
}

/// Like [`read`], but `None` when the file is gone.
fn read_if_present(path: &std::path::Path) -> Result<Option<String>, CpuTimeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CpuTimeError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

fn read(path: &std::path::Path) -> Result<String, CpuTimeError> {
    std::fs::read_to_string(path).map_err(|source| CpuTimeError::Read {
        path: path.display().to_string(),
        source,
    })
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
    fn stat_fields_are_counted_after_a_name_with_spaces() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 1 0";

        assert_eq!(busy_ticks(stat), Some(42));
        assert_eq!(busy_ticks("4242 (short) S 1"), None);
    }

    #[test]
    fn busy_thread_shows_cpu_time() {
        let name = "cpu-time-probe";
        let worker = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                let mut spins: u64 = 0;
                loop {
                    for _ in 0..1_000_000 {
                        spins = std::hint::black_box(spins.wrapping_add(1));
                    }
                    let used = thread_cpu_time(|n| n == name).unwrap();
                    if used > Duration::ZERO || std::time::Instant::now() > deadline {
                        return used;
                    }
                }
            });

        let used = worker.unwrap().join().unwrap();

        assert!(used > Duration::ZERO, "{used:?}");
        assert_eq!(thread_cpu_time(|n| n == name).unwrap(), Duration::ZERO);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let mut spins: u64 = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while process_cpu_time(std::process::id()).unwrap() == Duration::ZERO {
            for _ in 0..1_000_000 {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU time after 20 s"
            );
        }
    }

    #[test]
    fn this_thread_may_run_somewhere() {
        assert!(!allowed_cpus().unwrap().is_empty());
    }
}
