//! The request context: typed values under case-insensitive condition key names.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::scalar;

/// A value in the request context.
///
/// Condition operators convert where AWS does: a `String` holding `"42"` satisfies
/// `NumericEquals 42`, and a `String` holding an address satisfies `IpAddress`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text, compared by the String operators.
    String(String),
    /// `true` or `false`, compared by `Bool`.
    Bool(bool),
    /// A decimal number, compared by the Numeric operators.
    Number(f64),
    /// An instant as milliseconds since 1970-01-01T00:00:00Z, compared by the Date operators.
    Date(i64),
    /// An IPv4 or IPv6 address, compared by `IpAddress` and `NotIpAddress`.
    Ip(IpAddr),
    /// An ARN, compared by the Arn operators (and as text by the String operators).
    Arn(String),
    /// Raw bytes, compared by `BinaryEquals`.
    Binary(Vec<u8>),
    /// Several values: a multivalued key such as `aws:TagKeys`.
    List(Vec<Value>),
}

impl Value {
    /// An ARN value.
    pub fn arn(arn: impl Into<String>) -> Value {
        Value::Arn(arn.into())
    }

    /// A date value from a system time (times before 1970 are allowed).
    pub fn date(time: SystemTime) -> Value {
        let millis = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Value::Date(millis)
    }

    /// A date value from W3C ISO 8601 text or epoch seconds; `None` when it is neither.
    pub fn parse_date(text: &str) -> Option<Value> {
        scalar::parse_date(text).map(Value::Date)
    }

    /// A list of strings: the usual multivalued key.
    pub fn string_list<I, S>(items: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Value::List(items.into_iter().map(|s| Value::String(s.into())).collect())
    }

    /// The value as a policy variable or a String operator sees it; `None` for a list.
    pub fn as_text(&self) -> Option<Cow<'_, str>> {
        let text = match self {
            Value::String(s) | Value::Arn(s) => Cow::Borrowed(s.as_str()),
            Value::Bool(true) => Cow::Borrowed("true"),
            Value::Bool(false) => Cow::Borrowed("false"),
            Value::Number(n) => Cow::Owned(scalar::format_number(*n)),
            Value::Date(millis) => Cow::Owned(scalar::format_date(*millis)),
            Value::Ip(ip) => Cow::Owned(ip.to_string()),
            Value::Binary(bytes) => Cow::Owned(scalar::encode_base64(bytes)),
            Value::List(_) => return None,
        };
        Some(text)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Value {
        Value::Number(n)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        // Precision loss only past 2^53, far beyond any count or epoch a policy compares.
        #[expect(clippy::cast_precision_loss, reason = "see comment above")]
        Value::Number(n as f64)
    }
}

impl From<IpAddr> for Value {
    fn from(ip: IpAddr) -> Value {
        Value::Ip(ip)
    }
}

impl From<SystemTime> for Value {
    fn from(time: SystemTime) -> Value {
        Value::date(time)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::List(items)
    }
}

/// Context keys and their values for one request.
///
/// Key names are case-insensitive, the tag-key part of `aws:ResourceTag/<Key>` included.
/// A name may hold several values ([`Context::add`]): when a node has two tags whose keys
/// differ only in case, both answer to the condition key, as in AWS.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    entries: HashMap<Key, Vec<Value>, BuildHasherDefault<PassThrough>>,
}

/// A key name in lower case with its hash worked out once. Compiled policies hold their
/// condition keys in this form, so a lookup during evaluation hashes nothing.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    hash: u64,
    name: Box<str>,
}

impl Key {
    /// Folds `name` to lower case and hashes it.
    pub fn new(name: &str) -> Key {
        Key::from_folded(name.to_lowercase())
    }

    /// `prefix` (already lower case) followed by `name` folded to lower case, built in one
    /// allocation: the tag keys of every node go through here.
    fn with_prefix(prefix: &str, name: &str) -> Key {
        let mut folded = String::with_capacity(prefix.len() + name.len());
        folded.push_str(prefix);
        folded.extend(name.chars().flat_map(char::to_lowercase));
        Key::from_folded(folded)
    }

    fn from_folded(name: String) -> Key {
        Key {
            hash: hash_name(name.as_bytes()),
            name: name.into_boxed_str(),
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.hash == other.hash && self.name == other.name
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A multiply-rotate hash for short key names. A context holds a few dozen keys set by
/// the server, so flooding is not a concern.
fn hash_name(bytes: &[u8]) -> u64 {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let step = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    let mut chunks = bytes.chunks_exact(8);
    let mut hash = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = step(hash, u64::from_le_bytes(word));
    }
    chunks
        .remainder()
        .iter()
        .fold(hash, |hash, &byte| step(hash, u64::from(byte)))
}

/// Hands a [`Key`]'s precomputed hash to the map unchanged.
#[derive(Default)]
struct PassThrough {
    hash: u64,
}

impl Hasher for PassThrough {
    fn write(&mut self, bytes: &[u8]) {
        self.hash = hash_name(bytes);
    }

    fn write_u64(&mut self, hash: u64) {
        self.hash = hash;
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

impl Context {
    /// An empty context.
    pub fn new() -> Context {
        Context::default()
    }

    /// Sets `key` to `value`, replacing whatever the name held.
    pub fn insert(&mut self, key: &str, value: impl Into<Value>) -> &mut Context {
        self.entries.insert(Key::new(key), vec![value.into()]);
        self
    }

    /// Adds one more value under `key`, keeping the values it already held.
    pub fn add(&mut self, key: &str, value: impl Into<Value>) -> &mut Context {
        self.entries
            .entry(Key::new(key))
            .or_default()
            .push(value.into());
        self
    }

    /// Builder form of [`Context::insert`].
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Context {
        self.insert(key, value);
        self
    }

    /// Sets a string value (`aws:username`, `aws:PrincipalTag/team`).
    pub fn insert_string(&mut self, key: &str, value: &str) -> &mut Context {
        self.insert(key, value)
    }

    /// Sets a list of strings (`aws:TagKeys`).
    pub fn insert_list<I, S>(&mut self, key: &str, items: I) -> &mut Context
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.insert(key, Value::string_list(items))
    }

    /// Sets a boolean (`aws:SecureTransport`).
    pub fn insert_bool(&mut self, key: &str, value: bool) -> &mut Context {
        self.insert(key, value)
    }

    /// Sets a number (`aws:MultiFactorAuthAge`).
    pub fn insert_number(&mut self, key: &str, value: f64) -> &mut Context {
        self.insert(key, value)
    }

    /// Sets a date (`aws:CurrentTime`).
    pub fn insert_date(&mut self, key: &str, time: SystemTime) -> &mut Context {
        self.insert(key, Value::date(time))
    }

    /// Sets an address (`aws:SourceIp`).
    pub fn insert_ip(&mut self, key: &str, ip: IpAddr) -> &mut Context {
        self.insert(key, ip)
    }

    /// Sets an ARN (`aws:PrincipalArn`, `aws:SourceArn`).
    pub fn insert_arn(&mut self, key: &str, arn: &str) -> &mut Context {
        self.insert(key, Value::arn(arn))
    }

    /// Adds a resource's tags as `aws:ResourceTag/<Key>` and `ssm:resourceTag/<Key>`.
    pub fn insert_resource_tags<I, K, V>(&mut self, tags: I) -> &mut Context
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (key, value) in tags {
            let (key, value) = (key.as_ref(), value.as_ref());
            for prefix in ["aws:resourcetag/", "ssm:resourcetag/"] {
                let values = self
                    .entries
                    .entry(Key::with_prefix(prefix, key))
                    .or_default();
                values.push(Value::from(value));
            }
        }
        self
    }

    /// The values held under `key` (any case), if any.
    pub fn get(&self, key: &str) -> Option<&[Value]> {
        self.get_key(&Key::new(key))
    }

    /// Whether `key` (any case) holds a value.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Removes `key` (any case) and returns what it held.
    pub fn remove(&mut self, key: &str) -> Option<Vec<Value>> {
        self.entries.remove(&Key::new(key))
    }

    /// Number of distinct key names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Lookup with a prepared key.
    pub(crate) fn get_key(&self, key: &Key) -> Option<&[Value]> {
        self.entries.get(key).map(Vec::as_slice)
    }
}

/// What one statement sees: a resource's own entries over the request-wide ones.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scope<'a> {
    pub resource: &'a Context,
    pub request: &'a Context,
}

impl<'a> Scope<'a> {
    /// The values under a key, the resource's own entries first.
    pub fn get(&self, key: &Key) -> Option<&'a [Value]> {
        self.resource
            .get_key(key)
            .or_else(|| self.request.get_key(key))
    }

    /// The single text value of a key, as a policy variable needs it; `None` when the key
    /// is absent or holds several values.
    pub fn text(&self, key: &Key) -> Option<Cow<'a, str>> {
        match self.get(key)? {
            [single] => single.as_text(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_ignore_case_including_the_tag_key() {
        let mut context = Context::new();
        context.insert("aws:ResourceTag/Finance", "WebServers");

        assert!(context.contains("AWS:resourcetag/FINANCE"));
        assert_eq!(
            context.get("aws:resourcetag/finance").map(<[Value]>::len),
            Some(1)
        );
    }

    #[test]
    fn tags_differing_only_in_case_both_stay() {
        let mut context = Context::new();
        context.insert_resource_tags([("Env", "prod"), ("env", "dev")]);

        let values = context.get("ssm:resourceTag/ENV").expect("tags present");
        assert_eq!(values, [Value::from("prod"), Value::from("dev")]);
    }

    #[test]
    fn resource_entries_shadow_request_entries() {
        let request = Context::new().with("aws:ResourceTag/env", "dev");
        let resource = Context::new().with("aws:resourcetag/ENV", "prod");
        let scope = Scope {
            resource: &resource,
            request: &request,
        };

        let key = Key::new("aws:resourcetag/env");
        assert_eq!(scope.text(&key).as_deref(), Some("prod"));
    }

    #[test]
    fn values_render_as_text_for_variables() {
        assert_eq!(Value::Bool(true).as_text().as_deref(), Some("true"));
        assert_eq!(Value::Number(42.0).as_text().as_deref(), Some("42"));
        assert_eq!(
            Value::Date(0).as_text().as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
        assert_eq!(Value::string_list(["a"]).as_text(), None);
    }
}
