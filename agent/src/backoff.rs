//! Capped exponential backoff with jitter, reset by a success.

use std::time::Duration;

use rand::Rng;

/// Delays between retries: `base * 2^attempt`, capped, each scaled by a random factor in
/// `[0.5, 1.0)` so that many nodes cut off together do not return in lock step.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff starting at `base` and never exceeding `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The backoff of the poll and reply loops: 1 s doubling up to 30 s, so a node whose
    /// network returns is polling again within half a minute.
    pub fn for_network() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// The next delay, with jitter from the thread's random generator.
    pub fn next_delay(&mut self) -> Duration {
        let jitter = rand::thread_rng().gen_range(0.0..1.0);
        self.next_delay_with(jitter)
    }

    /// The next delay for a given jitter in `[0, 1)`; advances the attempt count.
    pub fn next_delay_with(&mut self, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(20));
        let raw = self.base.saturating_mul(factor).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        raw.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// Failures in a row so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_until_the_cap() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

        let delays: Vec<u64> = (0..7)
            .map(|_| backoff.next_delay_with(0.999).as_secs())
            .collect();

        assert_eq!(delays, [0, 1, 3, 7, 15, 29, 29]);
    }

    #[test]
    fn jitter_keeps_delays_between_half_and_full() {
        let mut low = Backoff::new(Duration::from_secs(8), Duration::from_secs(30));
        let mut high = low.clone();

        assert_eq!(low.next_delay_with(0.0), Duration::from_secs(4));
        assert!(high.next_delay_with(0.99) < Duration::from_secs(8));
    }

    #[test]
    fn resets_after_success() {
        let mut backoff = Backoff::for_network();
        for _ in 0..10 {
            backoff.next_delay();
        }

        backoff.reset();

        assert_eq!(backoff.attempts(), 0);
        assert!(backoff.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn never_exceeds_the_cap_however_many_failures() {
        let mut backoff = Backoff::for_network();

        let worst = (0..100)
            .map(|_| backoff.next_delay())
            .max()
            .expect("delays");

        assert!(worst <= Duration::from_secs(30));
    }
}
