//! ARNs of the resources the server authorizes, in the forms AWS uses.

/// A document's ARN. AWS-owned documents (`AWS-…`) have an empty account segment.
pub fn document(region: &str, account_id: &str, name: &str) -> String {
    let account = if is_aws_owned(name) { "" } else { account_id };
    format!("arn:aws:ssm:{region}:{account}:document/{name}")
}

/// Whether a document name is reserved for AWS-owned documents.
pub fn is_aws_owned(name: &str) -> bool {
    [
        "AWS-",
        "AWSEC2-",
        "AWSSSO-",
        "AWSConfigRemediation-",
        "AWSSupport-",
        "Amazon",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
}

/// A node's ARN: EC2 instances under `ec2`, managed nodes under `ssm`.
pub fn node(region: &str, account_id: &str, instance_id: &str) -> String {
    if crate::ids::is_managed_instance_id(instance_id) {
        format!("arn:aws:ssm:{region}:{account_id}:managed-instance/{instance_id}")
    } else {
        format!("arn:aws:ec2:{region}:{account_id}:instance/{instance_id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_follow_aws_forms() {
        assert_eq!(
            document("us-east-1", "123456789012", "AWS-RunShellScript"),
            "arn:aws:ssm:us-east-1::document/AWS-RunShellScript"
        );
        assert_eq!(
            document("us-east-1", "123456789012", "Mine"),
            "arn:aws:ssm:us-east-1:123456789012:document/Mine"
        );
        assert_eq!(
            node("us-east-1", "123456789012", "i-0123456789abcdef0"),
            "arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0"
        );
        assert_eq!(
            node("us-east-1", "123456789012", "mi-0123456789abcdef0"),
            "arn:aws:ssm:us-east-1:123456789012:managed-instance/mi-0123456789abcdef0"
        );
    }
}
