//! Health reports (`UpdateInstanceInformation`) with platform facts and the node's tags.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use tagrun_wire::ssm::{Tag, UpdateInstanceInformationRequest};
use tokio::sync::watch;
use tokio::time::sleep;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::client::Client;
use crate::reply::{AGENT_NAME, AGENT_VERSION};
use crate::spool::error_chain;

/// What the node reports about its platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Host name.
    pub computer_name: String,
    /// First non-loopback address, IPv4 preferred.
    pub ip_address: String,
    /// OS name, e.g. `Debian GNU/Linux`.
    pub platform_name: String,
    /// OS version, e.g. `12`.
    pub platform_version: String,
}

/// Reads the platform facts from the running system.
pub fn gather_facts() -> Facts {
    Facts {
        computer_name: sysinfo::System::host_name().unwrap_or_default(),
        ip_address: pick_address(&interface_addresses())
            .map(|a| a.to_string())
            .unwrap_or_default(),
        platform_name: sysinfo::System::name().unwrap_or_default(),
        platform_version: sysinfo::System::os_version().unwrap_or_default(),
    }
}

fn interface_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter_map(|interface| interface.address)
        .filter_map(|address| {
            let v4 = address.as_sockaddr_in().map(|a| IpAddr::V4(a.ip()));
            v4.or_else(|| address.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
        })
        .collect()
}

/// The address to report: the first IPv4 that is neither loopback nor link-local, else the
/// first such IPv6, else the first loopback address (a node with no network).
pub fn pick_address(addresses: &[IpAddr]) -> Option<IpAddr> {
    let usable = |a: &&IpAddr| match a {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    };
    let first_v4 = addresses.iter().filter(usable).find(|a| a.is_ipv4());
    first_v4
        .or_else(|| addresses.iter().find(|a| usable(a)))
        .or_else(|| addresses.iter().find(|a| a.is_loopback()))
        .copied()
}

/// The first report after start, as AWS's agent sends it: name, version, id, platform type.
pub fn minimal_report(instance_id: &str) -> UpdateInstanceInformationRequest {
    UpdateInstanceInformationRequest {
        agent_name: AGENT_NAME.to_owned(),
        agent_version: AGENT_VERSION.to_owned(),
        instance_id: instance_id.to_owned(),
        platform_type: "Linux".to_owned(),
        ..Default::default()
    }
}

/// A full report: facts, `Active`, the message channel in use, and the node's tags.
pub fn full_report(
    instance_id: &str,
    facts: &Facts,
    tags: &BTreeMap<String, String>,
) -> UpdateInstanceInformationRequest {
    let tags = (!tags.is_empty()).then(|| {
        tags.iter()
            .map(|(key, value)| Tag {
                key: key.clone(),
                value: value.clone(),
            })
            .collect()
    });
    UpdateInstanceInformationRequest {
        agent_status: Some("Active".to_owned()),
        availability_zone: Some(String::new()),
        availability_zone_id: Some(String::new()),
        computer_name: Some(facts.computer_name.clone()),
        ip_address: Some(facts.ip_address.clone()),
        platform_name: Some(facts.platform_name.clone()),
        platform_version: Some(facts.platform_version.clone()),
        ssm_connection_channel: Some("ec2messages".to_owned()),
        tags,
        ..minimal_report(instance_id)
    }
}

/// Sends the minimal report until it succeeds; returns false if shut down first. AWS's
/// agent does not poll before this report succeeds.
pub async fn wait_until_accepted(client: &Client, mut shutdown: watch::Receiver<bool>) -> bool {
    let mut backoff = Backoff::for_network();
    let request = minimal_report(client.instance_id());
    loop {
        match client.update_instance_information(&request).await {
            Ok(()) => {
                info!(instance_id = %client.instance_id(), "health report accepted");
                return true;
            }
            Err(error) => {
                let delay = backoff.next_delay();
                let error = error_chain(&error);
                if backoff.attempts() == 1 {
                    warn!(%error, "health report failed, retrying before polling");
                } else {
                    debug!(%error, attempt = backoff.attempts(), "health report failed again");
                }
                tokio::select! {
                    () = sleep(delay) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return false,
                }
            }
        }
    }
}

/// Sends a full report now and then every `interval` until shutdown.
pub async fn run(
    client: &Client,
    tags: &BTreeMap<String, String>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        let facts = tokio::task::spawn_blocking(gather_facts)
            .await
            .unwrap_or_else(|_| Facts {
                computer_name: String::new(),
                ip_address: String::new(),
                platform_name: String::new(),
                platform_version: String::new(),
            });
        let request = full_report(client.instance_id(), &facts, tags);
        match client.update_instance_information(&request).await {
            Ok(()) if failing => {
                info!("health reports accepted again");
                failing = false;
            }
            Ok(()) => debug!("health report sent"),
            Err(error) if !failing => {
                warn!(error = %error_chain(&error), "health report failed");
                failing = true;
            }
            Err(error) => debug!(error = %error_chain(&error), "health report failed again"),
        }
        tokio::select! {
            () = sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn prefers_a_routable_ipv4_address() {
        let addresses = [
            ip("127.0.0.1"),
            ip("fe80::1"),
            ip("2001:db8::5"),
            ip("10.1.2.3"),
        ];

        assert_eq!(pick_address(&addresses), Some(ip("10.1.2.3")));
    }

    #[test]
    fn falls_back_to_ipv6_then_loopback() {
        assert_eq!(
            pick_address(&[ip("::1"), ip("2001:db8::5")]),
            Some(ip("2001:db8::5"))
        );
        assert_eq!(
            pick_address(&[ip("169.254.1.1"), ip("127.0.0.1")]),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(pick_address(&[]), None);
    }

    #[test]
    fn full_report_carries_tags_and_facts() {
        let facts = Facts {
            computer_name: "node1".to_owned(),
            ip_address: "10.1.2.3".to_owned(),
            platform_name: "Debian GNU/Linux".to_owned(),
            platform_version: "12".to_owned(),
        };
        let tags = BTreeMap::from([("Env".to_owned(), "prod".to_owned())]);

        let report = full_report("mi-0123456789abcdef0", &facts, &tags);

        assert_eq!(report.agent_status.as_deref(), Some("Active"));
        assert_eq!(report.ip_address.as_deref(), Some("10.1.2.3"));
        let tags = report.tags.expect("tags");
        assert_eq!(
            (tags[0].key.as_str(), tags[0].value.as_str()),
            ("Env", "prod")
        );
    }

    #[test]
    fn no_tags_means_no_tags_field() {
        let facts = gather_facts();

        let report = full_report("mi-0123456789abcdef0", &facts, &BTreeMap::new());

        assert_eq!(report.tags, None);
        assert!(!facts.ip_address.is_empty());
    }
}
