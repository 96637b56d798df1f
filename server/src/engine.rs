//! What happens next to a command, as pure functions: how many invocations may be
//! released, when errors stop a command, how agent statuses map to AWS's, and how a
//! command's status follows from its invocations.
//!
//! The store applies these decisions inside its transactions; nothing here does I/O,
//! so every rule is tested directly.

use std::fmt;

/// An invocation's `StatusDetails`, as AWS spells them on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detail {
    /// Not yet sent to the node.
    Pending,
    /// Sent, or received and running.
    InProgress,
    /// Handed to the node, which did not acknowledge it in time; it is offered again.
    Delayed,
    /// Finished with exit code 0.
    Success,
    /// Not delivered before the delivery timeout.
    DeliveryTimedOut,
    /// Ran past its execution timeout.
    ExecutionTimedOut,
    /// A step failed.
    Failed,
    /// Cancelled on request.
    Cancelled,
    /// The command stopped because it exceeded `MaxErrors`.
    Terminated,
    /// The node does not exist or cannot take messages.
    Undeliverable,
    /// The document does not run on the node's platform.
    InvalidPlatform,
    /// The caller may not run the command on this node.
    AccessDenied,
    /// A cancel was sent and has not been answered yet.
    Cancelling,
}

/// The coarse `Status` enums of invocations and commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Nothing has happened yet.
    Pending,
    /// Under way.
    InProgress,
    /// Offered to the node again after it did not acknowledge (invocations only).
    Delayed,
    /// Finished successfully.
    Success,
    /// Cancelled.
    Cancelled,
    /// A failure.
    Failed,
    /// A timeout.
    TimedOut,
    /// Cancel sent, not yet confirmed.
    Cancelling,
}

impl Detail {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Detail::Pending => "Pending",
            Detail::InProgress => "InProgress",
            Detail::Delayed => "Delayed",
            Detail::Success => "Success",
            Detail::DeliveryTimedOut => "DeliveryTimedOut",
            Detail::ExecutionTimedOut => "ExecutionTimedOut",
            Detail::Failed => "Failed",
            Detail::Cancelled => "Cancelled",
            Detail::Terminated => "Terminated",
            Detail::Undeliverable => "Undeliverable",
            Detail::InvalidPlatform => "InvalidPlatform",
            Detail::AccessDenied => "AccessDenied",
            Detail::Cancelling => "Cancelling",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(text: &str) -> Option<Detail> {
        ALL_DETAILS.iter().copied().find(|d| d.as_str() == text)
    }

    /// The coarse status that goes with this detail.
    pub fn status(self) -> Status {
        match self {
            Detail::Pending => Status::Pending,
            Detail::InProgress => Status::InProgress,
            Detail::Delayed => Status::Delayed,
            Detail::Success => Status::Success,
            Detail::DeliveryTimedOut | Detail::ExecutionTimedOut => Status::TimedOut,
            Detail::Failed
            | Detail::Undeliverable
            | Detail::InvalidPlatform
            | Detail::AccessDenied => Status::Failed,
            Detail::Cancelled | Detail::Terminated => Status::Cancelled,
            Detail::Cancelling => Status::Cancelling,
        }
    }

    /// Whether nothing more will happen to the invocation.
    pub fn is_terminal(self) -> bool {
        !matches!(
            self,
            Detail::Pending | Detail::InProgress | Detail::Cancelling
        )
    }

    /// Whether the detail counts toward `MaxErrors` (`ErrorCount`).
    pub fn is_error(self) -> bool {
        matches!(self, Detail::Failed | Detail::ExecutionTimedOut)
    }

    /// Details that neither succeed nor count as errors: the node was never in reach.
    pub fn is_neutral(self) -> bool {
        matches!(
            self,
            Detail::AccessDenied | Detail::Undeliverable | Detail::InvalidPlatform
        )
    }
}

const ALL_DETAILS: [Detail; 13] = [
    Detail::Pending,
    Detail::InProgress,
    Detail::Delayed,
    Detail::Success,
    Detail::DeliveryTimedOut,
    Detail::ExecutionTimedOut,
    Detail::Failed,
    Detail::Cancelled,
    Detail::Terminated,
    Detail::Undeliverable,
    Detail::InvalidPlatform,
    Detail::AccessDenied,
    Detail::Cancelling,
];

impl Status {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::InProgress => "InProgress",
            Status::Delayed => "Delayed",
            Status::Success => "Success",
            Status::Cancelled => "Cancelled",
            Status::Failed => "Failed",
            Status::TimedOut => "TimedOut",
            Status::Cancelling => "Cancelling",
        }
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an agent's `documentStatus` means for the invocation; `None` keeps it running
/// (`InProgress`, and `SuccessAndReboot`, after which the document resumes).
pub fn detail_from_document_status(status: &str) -> Option<Detail> {
    match status {
        "Success" => Some(Detail::Success),
        "Failed" => Some(Detail::Failed),
        "TimedOut" => Some(Detail::ExecutionTimedOut),
        "Cancelled" => Some(Detail::Cancelled),
        _ => None,
    }
}

/// A step's coarse status and detail from the agent's per-step status.
pub fn plugin_status(status: &str) -> (Status, &'static str) {
    match status {
        "Success" => (Status::Success, "Success"),
        "Skipped" => (Status::Success, "Skipped"),
        "Failed" => (Status::Failed, "Failed"),
        "TimedOut" => (Status::TimedOut, "ExecutionTimedOut"),
        "Cancelled" => (Status::Cancelled, "Cancelled"),
        "NotStarted" => (Status::Pending, "Pending"),
        _ => (Status::InProgress, "InProgress"),
    }
}

/// A `MaxConcurrency` or `MaxErrors` value: a count or a percentage of the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// An absolute number.
    Count(u64),
    /// A percentage, 0 to 100.
    Percent(u64),
}

impl Limit {
    /// Parses `"50"` or `"10%"`.
    pub fn parse(text: &str) -> Option<Limit> {
        match text.strip_suffix('%') {
            Some(number) => number
                .parse()
                .ok()
                .filter(|p| *p <= 100)
                .map(Limit::Percent),
            None => text.parse().ok().map(Limit::Count),
        }
    }

    /// How many invocations may run at once: a percentage rounds up, and at least one
    /// always may.
    pub fn concurrency(self, target_count: u64) -> u64 {
        match self {
            Limit::Count(n) => n.max(1),
            Limit::Percent(p) => (p * target_count).div_ceil(100).max(1),
        }
    }

    /// How many errors are allowed before the command stops: a percentage rounds down,
    /// as AWS's example of 10% of 50 targets stopping at the sixth error shows.
    pub fn allowed_errors(self, target_count: u64) -> u64 {
        match self {
            Limit::Count(n) => n,
            Limit::Percent(p) => p * target_count / 100,
        }
    }
}

/// Running totals over a command's invocations, kept by the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Invocations.
    pub target_count: u64,
    /// Invocations in a terminal state.
    pub completed_count: u64,
    /// Failed and ExecutionTimedOut invocations.
    pub error_count: u64,
    /// DeliveryTimedOut invocations.
    pub delivery_timed_out_count: u64,
    /// Successful invocations.
    pub success_count: u64,
    /// AccessDenied, Undeliverable and InvalidPlatform invocations.
    pub neutral_count: u64,
    /// Cancelled and Terminated invocations.
    pub cancelled_count: u64,
    /// Invocations released to their node and not yet terminal.
    pub in_flight: u64,
    /// Invocations with a cancel on its way.
    pub cancelling: u64,
    /// Invocations handed to their node at least once.
    pub started: u64,
}

impl Counters {
    /// Invocations neither released nor ended: those still waiting for room.
    pub fn unreleased(&self) -> u64 {
        self.target_count
            .saturating_sub(self.completed_count)
            .saturating_sub(self.in_flight)
    }

    /// Accounts for an invocation reaching `detail` (a terminal detail).
    pub fn finish(&mut self, detail: Detail, was_in_flight: bool) {
        self.completed_count += 1;
        if was_in_flight {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        match detail {
            Detail::Success => self.success_count += 1,
            Detail::DeliveryTimedOut => self.delivery_timed_out_count += 1,
            Detail::Cancelled | Detail::Terminated => self.cancelled_count += 1,
            d if d.is_error() => self.error_count += 1,
            d if d.is_neutral() => self.neutral_count += 1,
            _ => {}
        }
    }
}

/// Whether the command has exceeded its error allowance (so nothing more is sent).
pub fn errors_exceeded(counters: &Counters, max_errors: Limit) -> bool {
    counters.error_count > max_errors.allowed_errors(counters.target_count)
}

/// How many more invocations may be released now.
pub fn releasable(counters: &Counters, max_concurrency: Limit, max_errors: Limit) -> u64 {
    if errors_exceeded(counters, max_errors) {
        return 0;
    }
    let limit = max_concurrency.concurrency(counters.target_count);
    limit.saturating_sub(counters.in_flight)
}

/// How far a command's targets have become invocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Every target node has its invocation.
    Complete,
    /// Nodes matching `Targets` remain to be found, so the invocations so far are
    /// not all the command has, and finishing them does not finish the command.
    Partial,
    /// `Targets` matched no node.
    NoneFound,
}

/// The command's status and details, derived from its invocations.
pub fn command_status(
    counters: &Counters,
    max_errors: Limit,
    cancel_requested: bool,
    resolution: Resolution,
) -> (Status, &'static str) {
    if resolution == Resolution::NoneFound {
        return (Status::Failed, "NoInstancesInTag");
    }
    let all_done =
        resolution == Resolution::Complete && counters.completed_count == counters.target_count;
    if !all_done {
        if counters.cancelling > 0 {
            return (Status::Cancelling, "Cancelling");
        }
        if counters.started > 0 || counters.completed_count > 0 {
            return (Status::InProgress, "InProgress");
        }
        return (Status::Pending, "Pending");
    }
    if cancel_requested && counters.cancelled_count > 0 {
        return (Status::Cancelled, "Cancelled");
    }
    finished_status(counters, max_errors)
}

/// The outcome of a command whose invocations are all terminal.
fn finished_status(counters: &Counters, max_errors: Limit) -> (Status, &'static str) {
    let total = counters.target_count;
    if errors_exceeded(counters, max_errors) {
        return (Status::Failed, "Failed");
    }
    if counters.delivery_timed_out_count > 0
        && counters.delivery_timed_out_count + counters.neutral_count == total
    {
        return (Status::TimedOut, "DeliveryTimedOut");
    }
    if counters.success_count == total {
        return (Status::Success, "Success");
    }
    if counters.success_count == 0 && counters.neutral_count == total {
        return (Status::Failed, "Failed");
    }
    if counters.success_count > 0 && counters.success_count + counters.neutral_count == total {
        return (Status::Success, "Success");
    }
    (Status::Failed, "Incomplete")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(details: &[Detail]) -> Counters {
        let mut counters = Counters {
            target_count: details.len() as u64,
            ..Counters::default()
        };
        for detail in details {
            counters.finish(*detail, false);
        }
        counters
    }

    #[test]
    fn limits_parse_counts_and_percentages() {
        assert_eq!(Limit::parse("50"), Some(Limit::Count(50)));
        assert_eq!(Limit::parse("10%"), Some(Limit::Percent(10)));
        assert_eq!(Limit::parse("101%"), None);
        assert_eq!(Limit::parse("x"), None);
    }

    #[test]
    fn percentages_round_as_documented() {
        assert_eq!(Limit::Percent(10).allowed_errors(50), 5);
        assert_eq!(Limit::Percent(10).concurrency(5), 1);
        assert_eq!(Limit::Percent(50).concurrency(3), 2);
        assert_eq!(Limit::Count(0).concurrency(3), 1);
    }

    #[test]
    fn stops_after_the_error_past_the_allowance() {
        let mut counters = Counters {
            target_count: 10,
            ..Counters::default()
        };
        counters.finish(Detail::Failed, false);
        assert_eq!(releasable(&counters, Limit::Count(2), Limit::Count(1)), 2);

        counters.finish(Detail::Failed, false);
        assert_eq!(releasable(&counters, Limit::Count(2), Limit::Count(1)), 0);
    }

    #[test]
    fn concurrency_counts_invocations_in_flight() {
        let counters = Counters {
            target_count: 10,
            in_flight: 3,
            ..Counters::default()
        };

        assert_eq!(releasable(&counters, Limit::Count(5), Limit::Count(0)), 2);
        assert_eq!(
            releasable(&counters, Limit::Percent(20), Limit::Count(0)),
            0
        );
    }

    #[test]
    fn access_denied_does_not_spoil_success() {
        let counters = done(&[Detail::AccessDenied; 4]);
        let mixed = done(&[
            Detail::AccessDenied,
            Detail::AccessDenied,
            Detail::AccessDenied,
            Detail::AccessDenied,
            Detail::Success,
        ]);

        assert_eq!(
            command_status(&counters, Limit::Count(0), false, Resolution::Complete).1,
            "Failed"
        );
        assert_eq!(
            command_status(&mixed, Limit::Count(0), false, Resolution::Complete),
            (Status::Success, "Success")
        );
    }

    #[test]
    fn failures_within_the_allowance_are_incomplete() {
        let counters = done(&[Detail::Success, Detail::Failed, Detail::Success]);

        assert_eq!(
            command_status(&counters, Limit::Count(1), false, Resolution::Complete).1,
            "Incomplete"
        );
        assert_eq!(
            command_status(&counters, Limit::Count(0), false, Resolution::Complete).1,
            "Failed"
        );
    }

    #[test]
    fn delivery_timeouts_time_the_command_out() {
        let counters = done(&[Detail::DeliveryTimedOut, Detail::DeliveryTimedOut]);

        let status = command_status(&counters, Limit::Count(0), false, Resolution::Complete);

        assert_eq!(status, (Status::TimedOut, "DeliveryTimedOut"));
    }

    #[test]
    fn running_and_cancelling_commands() {
        let pending = Counters {
            target_count: 2,
            ..Counters::default()
        };
        let released = Counters {
            in_flight: 1,
            ..pending
        };
        let running = Counters {
            started: 1,
            ..released
        };
        let cancelling = Counters {
            cancelling: 1,
            ..running
        };
        let cancelled = done(&[Detail::Cancelled, Detail::Success]);

        assert_eq!(
            command_status(&pending, Limit::Count(0), false, Resolution::Complete).1,
            "Pending"
        );
        assert_eq!(
            command_status(&running, Limit::Count(0), false, Resolution::Complete).1,
            "InProgress"
        );
        assert_eq!(
            command_status(&cancelling, Limit::Count(0), true, Resolution::Complete).1,
            "Cancelling"
        );
        assert_eq!(
            command_status(&cancelled, Limit::Count(0), true, Resolution::Complete).1,
            "Cancelled"
        );
    }

    #[test]
    fn a_command_still_resolving_targets_is_not_finished_by_its_first_nodes() {
        let first_done = done(&[Detail::Success, Detail::Success]);

        assert_eq!(
            command_status(&first_done, Limit::Count(0), false, Resolution::Partial),
            (Status::InProgress, "InProgress")
        );
        assert_eq!(
            command_status(&first_done, Limit::Count(0), false, Resolution::Complete),
            (Status::Success, "Success")
        );
        assert_eq!(
            command_status(
                &Counters::default(),
                Limit::Count(0),
                false,
                Resolution::NoneFound
            ),
            (Status::Failed, "NoInstancesInTag")
        );
    }

    #[test]
    fn agent_statuses_map_to_invocation_details() {
        assert_eq!(
            detail_from_document_status("TimedOut"),
            Some(Detail::ExecutionTimedOut)
        );
        assert_eq!(detail_from_document_status("SuccessAndReboot"), None);
        assert_eq!(detail_from_document_status("InProgress"), None);
        assert_eq!(plugin_status("Skipped"), (Status::Success, "Skipped"));
    }

    #[test]
    fn details_round_trip_and_classify() {
        for detail in ALL_DETAILS {
            assert_eq!(Detail::parse(detail.as_str()), Some(detail));
        }
        assert!(Detail::ExecutionTimedOut.is_error());
        assert!(!Detail::DeliveryTimedOut.is_error());
        assert!(Detail::Terminated.is_terminal());
        assert!(!Detail::Cancelling.is_terminal());
    }
}
