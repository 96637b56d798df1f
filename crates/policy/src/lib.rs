//! AWS IAM policy language: parse, evaluate, explain.
