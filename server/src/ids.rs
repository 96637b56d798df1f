//! Identifiers the server issues and checks: instance ids, activation ids and codes.

use rand::Rng;
use rand::distr::Alphanumeric;

/// Whether `id` is an EC2 (`i-` and 8 or 17 hex digits) or managed (`mi-` and 17) id.
pub fn is_instance_id(id: &str) -> bool {
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    match (id.strip_prefix("mi-"), id.strip_prefix("i-")) {
        (Some(rest), _) => rest.len() == 17 && hex(rest),
        (None, Some(rest)) => (rest.len() == 8 || rest.len() == 17) && hex(rest),
        _ => false,
    }
}

/// Whether `id` names a managed (hybrid) node rather than an EC2 instance.
pub fn is_managed_instance_id(id: &str) -> bool {
    id.starts_with("mi-")
}

/// A new managed instance id: `mi-` and 17 lowercase hex digits.
pub fn new_managed_instance_id() -> String {
    let value: u128 = rand::rng().random();
    format!("mi-{:017x}", value & ((1u128 << 68) - 1))
}

/// A new activation id: a lowercase UUID, as AWS issues them.
pub fn new_activation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A new activation code: 20 characters, letters and digits.
pub fn new_activation_code() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}

/// A new temporary access key id in AWS's shape (`ASIA` and 16 capitals or digits).
pub fn new_temporary_access_key_id() -> String {
    let tail: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .map(|b| char::from(b).to_ascii_uppercase())
        .take(16)
        .collect();
    format!("ASIA{tail}")
}

/// A new secret: 40 characters of letters and digits.
pub fn new_secret() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_ids_have_aws_shapes() {
        for _ in 0..100 {
            let id = new_managed_instance_id();
            assert!(is_instance_id(&id), "{id}");
            assert_eq!(id.len(), 20);
        }
        assert_eq!(new_activation_code().len(), 20);
        assert!(new_temporary_access_key_id().starts_with("ASIA"));
    }

    #[test]
    fn instance_id_shapes() {
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(is_instance_id("i-1234abcd"));
        assert!(!is_instance_id("i-0123456789ABCDEF0"));
        assert!(!is_instance_id("mi-1234abcd"));
        assert!(!is_instance_id("x-0123456789abcdef0"));
    }
}
