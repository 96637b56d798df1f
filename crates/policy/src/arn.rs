//! ARN patterns in `Resource` and `NotResource`, matched with IAM's segment rules.
//!
//! An ARN has six colon-separated parts: `arn`, partition, service, region, account and
//! the resource. In the first five, wildcards stay inside their segment, except that a
//! `*` ending a segment may run on across colons. In the resource part they run freely.
//! Matching is case-sensitive, and a `*` segment matches an empty one, so
//! `arn:aws:ssm:*:*:document/*` covers AWS-owned documents (whose ARNs have no account)
//! while `arn:aws:ssm:*:123456789012:document/*` does not.

use std::borrow::Cow;

use crate::context::Scope;
use crate::glob::Glob;
use crate::template::Template;

/// The number of colon-separated parts of a full ARN.
const PARTS: usize = 6;

/// The ARN of a requested resource, split once per decision at its first five colons.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestArn<'a> {
    text: &'a str,
    colons: [usize; PARTS - 1],
    found: usize,
}

impl<'a> RequestArn<'a> {
    /// Finds the colons of `text` (which need not be an ARN: `*` has none).
    pub fn new(text: &'a str) -> RequestArn<'a> {
        let mut colons = [0; PARTS - 1];
        let mut found = 0;
        for (at, byte) in text.bytes().enumerate() {
            if byte == b':' {
                colons[found] = at;
                found += 1;
                if found == colons.len() {
                    break;
                }
            }
        }
        RequestArn {
            text,
            colons,
            found,
        }
    }

    /// One of the first five parts, when the text has a colon after it.
    fn segment(&self, index: usize) -> Option<&'a str> {
        let end = *self.colons[..self.found].get(index)?;
        let start = if index == 0 {
            0
        } else {
            self.colons[index - 1] + 1
        };
        Some(&self.text[start..end])
    }

    /// The first five parts and the resource part, when the text has all six.
    fn parts(&self) -> Option<([&'a str; PARTS - 1], &'a str)> {
        if self.found < PARTS - 1 {
            return None;
        }
        let mut parts = [""; PARTS - 1];
        let mut start = 0;
        for (part, &colon) in parts.iter_mut().zip(&self.colons) {
            *part = &self.text[start..colon];
            start = colon + 1;
        }
        Some((parts, &self.text[start..]))
    }
}

/// A compiled `Resource` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ResourcePattern {
    /// `*`: every resource, including requests for actions without a resource type.
    Any,
    /// An ARN pattern.
    Arn(Box<ArnPattern>),
}

/// An ARN pattern, split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ArnPattern {
    /// The parts before the resource part (fewer than five when the pattern is short and
    /// ends in `*`).
    segment_globs: Vec<Glob>,
    /// For each of those parts, whether it ends in `*` and so may run across colons.
    crossing: Vec<bool>,
    /// The resource part, if the pattern has one.
    resource: Option<ResourcePart>,
    /// The first of those parts that ends in `*` (their count when none does).
    first_crossing: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ResourcePart {
    Static(Glob),
    Dynamic(Template),
}

impl ResourcePattern {
    /// Compiles one `Resource` entry; `variables` is off under Version 2008-10-17.
    pub fn parse(text: &str, variables: bool) -> Result<ResourcePattern, String> {
        if text == "*" {
            return Ok(ResourcePattern::Any);
        }
        let parts: Vec<&str> = text.splitn(PARTS, ':').collect();
        let short_with_star = parts.len() < PARTS && text.ends_with('*');
        if parts[0] != "arn" || (parts.len() < PARTS && !short_with_star) {
            return Err(format!("\"{text}\" must be an ARN or \"*\""));
        }
        check_segments(text, &parts, variables)?;

        let (segments, resource) = if parts.len() == PARTS {
            (
                &parts[..PARTS - 1],
                Some(parse_resource_part(parts[PARTS - 1], variables)?),
            )
        } else {
            (&parts[..], None)
        };
        let crossing: Vec<bool> = segments.iter().map(|s| s.ends_with('*')).collect();
        let first_crossing = crossing
            .iter()
            .position(|&crosses| crosses)
            .unwrap_or(crossing.len());
        let segment_globs = segments.iter().map(|s| Glob::compile(s, false)).collect();
        Ok(ResourcePattern::Arn(Box::new(ArnPattern {
            segment_globs,
            crossing,
            resource,
            first_crossing,
        })))
    }

    /// Whether the resource named `arn` (or `*` for actions without a resource type)
    /// matches. A pattern whose variable has no value matches nothing.
    pub fn matches(&self, arn: &RequestArn<'_>, scope: &Scope<'_>) -> bool {
        match self {
            ResourcePattern::Any => true,
            ResourcePattern::Arn(pattern) => pattern.matches(arn, scope),
        }
    }
}

/// The service may not be a wildcard, and variables belong in the resource part only.
fn check_segments(text: &str, parts: &[&str], variables: bool) -> Result<(), String> {
    if parts
        .get(2)
        .is_some_and(|service| service.contains(['*', '?']))
    {
        return Err(format!(
            "\"{text}\" has a wildcard in the service part of the ARN"
        ));
    }
    let before_resource = &parts[..parts.len().min(PARTS - 1)];
    if variables && before_resource.iter().any(|s| s.contains("${")) {
        return Err(format!(
            "\"{text}\" uses a policy variable outside the resource part of the ARN"
        ));
    }
    Ok(())
}

fn parse_resource_part(text: &str, variables: bool) -> Result<ResourcePart, String> {
    let template = Template::parse(text, variables)?;
    if !template.is_static() {
        return Ok(ResourcePart::Dynamic(template));
    }
    let tokens = template
        .resolve_tokens(None, false)
        .ok_or_else(|| format!("\"{text}\" could not be compiled"))?;
    Ok(ResourcePart::Static(Glob::from_tokens(tokens)))
}

impl ArnPattern {
    fn matches(&self, arn: &RequestArn<'_>, scope: &Scope<'_>) -> bool {
        match self.first_mismatch(arn, scope) {
            None => true,
            // A segment before any crossing star must line up whatever the stars do.
            Some(at) if at < self.first_crossing || !self.crossing.contains(&true) => false,
            Some(_) => self.matches_crossing(arn, scope),
        }
    }

    /// The common case, each segment of the pattern against the same segment of the ARN:
    /// `None` when everything lines up, otherwise the first part that does not (the
    /// resource part counts as part 5; an ARN without six parts fails at the first
    /// crossing star, leaving the decision to the full rule).
    fn first_mismatch(&self, arn: &RequestArn<'_>, scope: &Scope<'_>) -> Option<usize> {
        let (Some(resource), Some((parts, rest))) = (&self.resource, arn.parts()) else {
            return Some(self.first_crossing);
        };
        let mismatch = self
            .segment_globs
            .iter()
            .zip(parts)
            .position(|(glob, part)| !glob.matches(part, false));
        if mismatch.is_some() {
            return mismatch;
        }

        let fits = match resource {
            ResourcePart::Static(glob) => glob.matches(rest, false),
            ResourcePart::Dynamic(template) => template
                .resolve_tokens(Some(scope), false)
                .is_some_and(|tokens| Glob::from_tokens(tokens).matches(rest, false)),
        };
        (!fits).then_some(PARTS - 1)
    }

    /// The full rule, where a `*` that ends a segment may also cover colons (and so
    /// whole segments of the ARN). Segments before the first such star must line up,
    /// which settles most mismatches without looking further.
    fn matches_crossing(&self, request: &RequestArn<'_>, scope: &Scope<'_>) -> bool {
        let prefix = &self.segment_globs[..self.first_crossing];
        for (index, glob) in prefix.iter().enumerate() {
            if !request
                .segment(index)
                .is_some_and(|part| glob.matches(part, false))
            {
                return false;
            }
        }

        let arn = request.text;
        let starts: Vec<usize> = std::iter::once(0)
            .chain(arn.match_indices(':').map(|(at, _)| at + 1))
            .collect();
        let live = self.live_after_segments(arn, &starts);
        let Some(resource) = &self.resource else {
            // A short pattern ends in a crossing `*` that takes all that is left.
            return live[starts.len()];
        };
        let glob = match resource {
            ResourcePart::Static(glob) => Cow::Borrowed(glob),
            ResourcePart::Dynamic(template) => match template.resolve_tokens(Some(scope), false) {
                Some(tokens) => Cow::Owned(Glob::from_tokens(tokens)),
                None => return false,
            },
        };
        (0..starts.len()).any(|at| live[at] && glob.matches(&arn[starts[at]..], false))
    }

    /// After the segments before the resource part, at which ARN segments (by index)
    /// the rest of the pattern may start: `live[i]` means segments `0..i` are consumed.
    fn live_after_segments(&self, arn: &str, starts: &[usize]) -> Vec<bool> {
        let count = starts.len();
        let segment = |at: usize| {
            let end = starts.get(at + 1).map_or(arn.len(), |next| next - 1);
            &arn[starts[at]..end]
        };
        let mut live = vec![false; count + 1];
        live[0] = true;

        for (glob, &crosses) in self.segment_globs.iter().zip(&self.crossing) {
            let mut next = vec![false; count + 1];
            for at in (0..count).filter(|&at| live[at]) {
                if !glob.matches(segment(at), false) {
                    continue;
                }
                next[at + 1] = true;
                if crosses {
                    next[at + 2..].iter_mut().for_each(|slot| *slot = true);
                }
            }
            live = next;
        }
        live
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::context::Context;

    fn matches(pattern: &str, arn: &str) -> bool {
        let empty = Context::new();
        let scope = Scope {
            resource: &empty,
            request: &empty,
        };
        ResourcePattern::parse(pattern, true)
            .expect("valid pattern")
            .matches(&RequestArn::new(arn), &scope)
    }

    /// Plain reference for the segment rule: segments line up one to one, or a segment
    /// ending in `*` also swallows whole further segments; the resource part (the sixth
    /// part of a full pattern) matches all that is left, colons included.
    fn reference(pattern: &[&str], arn: &[&str], full: bool) -> bool {
        let glob = |p: &str, t: &str| Glob::compile(p, false).matches(t, false);
        match (pattern.split_first(), arn.split_first()) {
            (None, None) => true,
            (Some((last, [])), Some(_)) if full => glob(last, &arn.join(":")),
            (Some((p, rest)), Some((first, _))) => (1..=arn.len()).any(|take| {
                let fits = glob(p, first) && (take == 1 || p.ends_with('*'));
                fits && reference(rest, &arn[take..], full)
            }),
            _ => false,
        }
    }

    #[test]
    fn empty_account_matches_star_but_not_an_account_number() {
        let aws_owned = "arn:aws:ssm:us-east-1::document/AWS-RunShellScript";

        assert!(matches("arn:aws:ssm:*:*:document/*", aws_owned));
        assert!(matches("arn:aws:ssm:us-east-1::document/AWS-*", aws_owned));
        assert!(!matches(
            "arn:aws:ssm:us-east-1:123456789012:document/*",
            aws_owned
        ));
    }

    #[test]
    fn matching_is_case_sensitive() {
        assert!(!matches(
            "arn:aws:iam::123456789012:user/Bob",
            "arn:aws:iam::123456789012:user/bob"
        ));
    }

    #[test]
    fn instance_arns_use_the_ec2_service() {
        let instance = "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0";

        assert!(matches("arn:aws:ec2:*:*:instance/*", instance));
        assert!(!matches("arn:aws:ssm:*:*:instance/*", instance));
    }

    #[test]
    fn resource_part_wildcards_cross_slashes_and_colons() {
        let stream = "arn:aws:logs:us-east-1:1:log-group:g:log-stream:s";

        assert!(matches("arn:aws:logs:*:*:log-group:*", stream));
        assert!(matches(
            "arn:aws:s3:::bucket/*",
            "arn:aws:s3:::bucket/a/b/c"
        ));
    }

    #[test]
    fn a_star_ending_a_segment_may_cross_colons() {
        assert!(matches(
            "arn:aws:ssm:*",
            "arn:aws:ssm:us-east-1:1:document/x"
        ));
        assert!(matches(
            "arn:aws:ssm:us-*:document/*",
            "arn:aws:ssm:us-east-1:1:document/x"
        ));
        assert!(!matches(
            "arn:aws:ssm:u*s:1:document/*",
            "arn:aws:ssm:us-east:x:1:document/y"
        ));
    }

    #[test]
    fn star_resource_request_matches_only_star_patterns() {
        assert!(matches("*", "*"));
        assert!(!matches("arn:aws:ssm:*:*:document/*", "*"));
    }

    #[test]
    fn rejects_malformed_patterns() {
        assert!(ResourcePattern::parse("document/x", true).is_err());
        assert!(ResourcePattern::parse("arn:aws:ssm:us-east-1", true).is_err());
        assert!(ResourcePattern::parse("arn:aws:*:us-east-1:1:x", true).is_err());
        assert!(ResourcePattern::parse("arn:aws:iam::${aws:userid}:user/x", true).is_err());
        assert!(ResourcePattern::parse("arn:aws:iam::${aws:userid}:user/x", false).is_ok());
    }

    proptest! {
        #[test]
        fn agrees_with_reference_segment_rule(
            pattern in prop::collection::vec("[ab*?]{0,3}", 1..5),
            arn in prop::collection::vec("[ab]{0,2}", 1..6),
        ) {
            let pattern_text = format!("arn:x:s:{}", pattern.join(":"));
            let Ok(compiled) = ResourcePattern::parse(&pattern_text, false) else {
                return Ok(());
            };
            let pattern_parts: Vec<&str> = pattern_text.splitn(PARTS, ':').collect();
            let arn_text = format!("arn:x:s:{}", arn.join(":"));
            let arn_parts: Vec<&str> = arn_text.split(':').collect();
            let full = pattern_parts.len() == PARTS;

            let expected = reference(&pattern_parts, &arn_parts, full);
            let empty = Context::new();
            let scope = Scope { resource: &empty, request: &empty };

            prop_assert_eq!(compiled.matches(&RequestArn::new(&arn_text), &scope), expected);
        }
    }
}
