//! `tagrun`: the operator command line.

fn main() {}
