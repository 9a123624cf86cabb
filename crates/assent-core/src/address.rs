//! The address guard's write-time half: which URLs Assent may ever call. DNS answers are
//! checked by the shell that resolves them, with the same range rules ([`check_ip`]).

use std::fmt;
use std::net::IpAddr;

/// Operator exemptions from the address rules.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    /// Permit plain `http` (local development only).
    pub allow_http: bool,
    /// Named hosts exempt from the named-host rule, and whose answers are exempt from the
    /// range rules.
    pub allowed_hosts: Vec<String>,
    /// Ranges whose addresses are exempt from the range rules, as `(network, prefix_len)`.
    pub allowed_ranges: Vec<(IpAddr, u8)>,
}

/// Why an address was refused; its `Display` names the rule, worded to follow a field name
/// (`webhookUrl must use https scheme`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a URL an HTTP client could call.
    Malformed,
    /// Not `https` (or `http` when the operator allows it).
    Scheme,
    /// A named host that is never called (`localhost`, `metadata`, `*.internal`, …).
    NamedHost(String),
    /// An address in a range that is not globally reachable.
    Range { address: IpAddr, range: &'static str },
}

impl fmt::Display for Refusal {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!("refusal wording")
    }
}

/// Checks a URL without DNS: scheme, named hosts, and literal addresses in every spelling a
/// URL parser accepts. Returns the parsed URL.
pub fn check_url(_raw: &str, _policy: &AddressPolicy) -> Result<url::Url, Refusal> {
    todo!("address guard")
}

/// Checks one address (a literal host, or a DNS answer) against the range rules.
pub fn check_ip(_address: IpAddr, _policy: &AddressPolicy) -> Result<(), Refusal> {
    todo!("address ranges")
}
