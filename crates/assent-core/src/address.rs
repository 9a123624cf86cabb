//! The address guard's write-time half: which URLs Assent may ever call. DNS answers are
//! checked by the shell that resolves them, with the same range rules ([`check_ip`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

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

impl AddressPolicy {
    /// Whether `host` (a name, or an address literal with or without brackets) is listed in
    /// `allowed_hosts`. Names compare without regard to ASCII case or a trailing dot.
    pub fn allows_host(&self, host: &str) -> bool {
        let wanted = canonical_host(host);
        self.allowed_hosts.iter().any(|listed| canonical_host(listed) == wanted)
    }

    /// The operator's `--webhook-allow` entries: an address or CIDR range exempts those
    /// addresses from the range rules; a host name is exempt from the named-host rule and
    /// its answers from the range rules.
    pub fn with_allow_list(allow_http: bool, entries: &[String]) -> Result<AddressPolicy, String> {
        let mut policy = AddressPolicy { allow_http, ..AddressPolicy::default() };
        for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let looks_like_address = entry.contains('/') || entry.parse::<IpAddr>().is_ok();
            if looks_like_address {
                policy.allowed_ranges.push(parse_range(entry)?);
            } else if Url::parse(&format!("https://{entry}/")).is_ok_and(|u| {
                matches!(u.host(), Some(Host::Domain(_))) && u.port().is_none() && u.path() == "/"
            }) {
                policy.allowed_hosts.push(canonical_host(entry));
            } else {
                return Err(format!("{entry:?} is not a host name, an IP address or a CIDR range"));
            }
        }
        Ok(policy)
    }

    fn allows_address(&self, address: IpAddr) -> bool {
        self.allowed_ranges
            .iter()
            .any(|&(network, prefix_len)| in_range(address, network, prefix_len))
    }
}

/// Why an address was refused; its `Display` names the rule, worded to follow a field name
/// (`webhookUrl must use https scheme`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a URL an HTTP client could call.
    Malformed,
    /// Not `https` (or `http` when the operator allows it).
    Scheme,
    /// A user name or password in the URL: it would be stored and shown with the URL.
    Userinfo,
    /// A named host that is never called (`localhost`, `metadata`, `*.internal`, …).
    NamedHost(String),
    /// An address in a range that is not globally reachable. For an IPv6 address that embeds
    /// an IPv4 address, `range` is the rule that refused the embedded address.
    Range { address: IpAddr, range: &'static str },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed => f.write_str("is not a valid absolute URL"),
            Refusal::Scheme => f.write_str("must use https scheme"),
            Refusal::Userinfo => f.write_str("must not contain a user name or password"),
            Refusal::NamedHost(host) => write!(f, "host \"{host}\" is not allowed"),
            Refusal::Range { range, .. } => {
                write!(f, "host resolves to a private, loopback, or link-local address ({range})")
            }
        }
    }
}

impl std::error::Error for Refusal {}

impl Refusal {
    /// A short name of the rule that refused, for error codes: `https-only`, `userinfo`,
    /// `named-host`, `malformed-url`, or the range's name (`loopback`, `private`,
    /// `link-local`, `shared-address-space`, …).
    pub fn rule(&self) -> String {
        match self {
            Refusal::Malformed => "malformed-url".into(),
            Refusal::Scheme => "https-only".into(),
            Refusal::Userinfo => "userinfo".into(),
            Refusal::NamedHost(_) => "named-host".into(),
            Refusal::Range { range, .. } => {
                let name = range.split_once(", ").map_or(*range, |(_, name)| name);
                name.to_ascii_lowercase().replace(' ', "-")
            }
        }
    }
}

/// Checks a URL without DNS: scheme, credentials, named hosts, and literal addresses in every
/// spelling a URL parser accepts. Returns the parsed URL.
///
/// The WHATWG parser has already turned `2130706433`, `0x7f.1`, `0177.0.0.1` and `127.1` into
/// `127.0.0.1`, lowercased names and decoded percent-escapes in them, so every check below
/// sees one spelling per address.
pub fn check_url(raw: &str, policy: &AddressPolicy) -> Result<Url, Refusal> {
    let url = Url::parse(raw).map_err(|_| Refusal::Malformed)?;

    let scheme_allowed = url.scheme() == "https" || (policy.allow_http && url.scheme() == "http");
    if !scheme_allowed {
        return Err(Refusal::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Userinfo);
    }

    match url.host() {
        None => return Err(Refusal::Malformed),
        Some(Host::Domain(name)) => check_name(name, policy)?,
        Some(Host::Ipv4(address)) => check_literal(IpAddr::V4(address), policy)?,
        Some(Host::Ipv6(address)) => check_literal(IpAddr::V6(address), policy)?,
    }
    Ok(url)
}

fn check_name(name: &str, policy: &AddressPolicy) -> Result<(), Refusal> {
    let name = canonical_host(name);
    let refused = name == "localhost"
        || name.ends_with(".localhost")
        || name == "metadata"
        || name == "internal"
        || name.ends_with(".internal");
    if refused && !policy.allows_host(&name) {
        return Err(Refusal::NamedHost(name));
    }
    Ok(())
}

fn check_literal(address: IpAddr, policy: &AddressPolicy) -> Result<(), Refusal> {
    if policy.allows_host(&address.to_string()) {
        return Ok(());
    }
    check_ip(address, policy)
}

/// Lowercase, without brackets or trailing dots; an address literal in its canonical form.
fn canonical_host(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.');
    match host.parse::<IpAddr>() {
        Ok(address) => address.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

/// Checks one address (a literal host, or a DNS answer) against the range rules.
pub fn check_ip(address: IpAddr, policy: &AddressPolicy) -> Result<(), Refusal> {
    if policy.allows_address(address) {
        return Ok(());
    }
    match address {
        IpAddr::V4(v4) => check_ipv4(v4),
        IpAddr::V6(v6) => check_ipv6(v6, policy),
    }
}

/// How an IPv6 rule treats an address in its range.
#[derive(Clone, Copy)]
enum V6Rule {
    Refuse,
    /// The range carries an IPv4 address; the verdict is the one for that address.
    Embeds(fn(Ipv6Addr) -> Ipv4Addr),
}

/// IPv4 ranges that are not globally reachable, most specific first. Taken from the IANA
/// IPv4 special-purpose registry, plus multicast, the cloud metadata address, and the
/// deprecated 6to4 relay anycast block.
const IPV4_REFUSED: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(255, 255, 255, 255), 32, "255.255.255.255/32, limited broadcast"),
    (Ipv4Addr::new(168, 63, 129, 16), 32, "168.63.129.16/32, cloud metadata"),
    (Ipv4Addr::new(0, 0, 0, 0), 8, "0.0.0.0/8, this network"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "10.0.0.0/8, private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "100.64.0.0/10, shared address space"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "127.0.0.0/8, loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "169.254.0.0/16, link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "172.16.0.0/12, private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "192.0.0.0/24, IETF protocol assignments"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "192.0.2.0/24, documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "192.88.99.0/24, deprecated 6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "192.168.0.0/16, private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "198.18.0.0/15, benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "198.51.100.0/24, documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "203.0.113.0/24, documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "224.0.0.0/4, multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "240.0.0.0/4, reserved"),
];

/// IPv6 ranges, most specific first, from the IANA IPv6 special-purpose registry. Ranges that
/// carry an IPv4 address are judged by it; the last rule refuses everything outside global
/// unicast 2000::/3, which IANA keeps reserved.
const IPV6_RULES: &[(Ipv6Addr, u8, &str, V6Rule)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0]), 128, "::/128, unspecified", V6Rule::Refuse),
    (v6([0, 0, 0, 0, 0, 0, 0, 1]), 128, "::1/128, loopback", V6Rule::Refuse),
    (v6([0, 0, 0, 0, 0, 0xffff, 0, 0]), 96, "::ffff:0:0/96", V6Rule::Embeds(low_32_bits)),
    (v6([0, 0, 0, 0, 0xffff, 0, 0, 0]), 96, "::ffff:0:0:0/96", V6Rule::Embeds(low_32_bits)),
    (v6([0, 0, 0, 0, 0, 0, 0, 0]), 96, "::/96", V6Rule::Embeds(low_32_bits)),
    (v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]), 96, "64:ff9b::/96", V6Rule::Embeds(low_32_bits)),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48, "64:ff9b:1::/48, local-use NAT64", V6Rule::Refuse),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0]), 64, "100::/64, discard-only", V6Rule::Refuse),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32, "2001::/32, Teredo", V6Rule::Refuse),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 23, "2001::/23, IETF protocol assignments", V6Rule::Refuse),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]), 32, "2001:db8::/32, documentation", V6Rule::Refuse),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0]), 16, "2002::/16", V6Rule::Embeds(six_to_four)),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0]), 20, "3fff::/20, documentation", V6Rule::Refuse),
    (v6([0x5f00, 0, 0, 0, 0, 0, 0, 0]), 16, "5f00::/16, segment routing", V6Rule::Refuse),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7, "fc00::/7, unique-local", V6Rule::Refuse),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10, "fe80::/10, link-local", V6Rule::Refuse),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]), 10, "fec0::/10, site-local", V6Rule::Refuse),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8, "ff00::/8, multicast", V6Rule::Refuse),
];

const GLOBAL_UNICAST: (Ipv6Addr, u8) = (v6([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3);
const OUTSIDE_GLOBAL_UNICAST: &str = "outside 2000::/3, reserved";

const fn v6(s: [u16; 8]) -> Ipv6Addr {
    Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
}

fn low_32_bits(address: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from(address.to_bits() as u32)
}

/// 6to4 carries the site's IPv4 address in bits 16..48.
fn six_to_four(address: Ipv6Addr) -> Ipv4Addr {
    Ipv4Addr::from((address.to_bits() >> 80) as u32)
}

fn check_ipv4(address: Ipv4Addr) -> Result<(), Refusal> {
    let refusing = IPV4_REFUSED
        .iter()
        .find(|&&(network, prefix_len, _)| in_range_v4(address, network, prefix_len));
    match refusing {
        Some(&(_, _, range)) => Err(Refusal::Range { address: IpAddr::V4(address), range }),
        None => Ok(()),
    }
}

fn check_ipv6(address: Ipv6Addr, policy: &AddressPolicy) -> Result<(), Refusal> {
    let rule = IPV6_RULES
        .iter()
        .find(|&&(network, prefix_len, _, _)| in_range_v6(address, network, prefix_len));
    let refused = |range| Err(Refusal::Range { address: IpAddr::V6(address), range });
    match rule {
        Some(&(_, _, range, V6Rule::Refuse)) => refused(range),
        Some(&(_, _, _, V6Rule::Embeds(extract))) => check_ip(IpAddr::V4(extract(address)), policy)
            .or_else(|refusal| match refusal {
                Refusal::Range { range, .. } => refused(range),
                other => Err(other),
            }),
        None if !in_range_v6(address, GLOBAL_UNICAST.0, GLOBAL_UNICAST.1) => {
            refused(OUTSIDE_GLOBAL_UNICAST)
        }
        None => Ok(()),
    }
}

fn in_range(address: IpAddr, network: IpAddr, prefix_len: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => in_range_v4(a, n, prefix_len),
        (IpAddr::V6(a), IpAddr::V6(n)) => in_range_v6(a, n, prefix_len),
        _ => false,
    }
}

/// A prefix longer than the address matches nothing.
fn in_range_v4(address: Ipv4Addr, network: Ipv4Addr, prefix_len: u8) -> bool {
    if prefix_len > 32 {
        return false;
    }
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix_len)).unwrap_or(0);
    address.to_bits() & mask == network.to_bits() & mask
}

fn in_range_v6(address: Ipv6Addr, network: Ipv6Addr, prefix_len: u8) -> bool {
    if prefix_len > 128 {
        return false;
    }
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix_len)).unwrap_or(0);
    address.to_bits() & mask == network.to_bits() & mask
}

/// Parses an operator's `10.0.0.0/8` or `fd00::/8` (a bare address is its own /32 or /128).
pub fn parse_range(text: &str) -> Result<(IpAddr, u8), String> {
    let (address, prefix_len) = match text.split_once('/') {
        Some((address, len)) => (address, Some(len)),
        None => (text, None),
    };
    let address: IpAddr =
        address.parse().map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?;
    let bits = if address.is_ipv4() { 32 } else { 128 };
    let prefix_len = match prefix_len {
        None => bits,
        Some(len) => len
            .parse::<u8>()
            .ok()
            .filter(|&len| len <= bits)
            .ok_or_else(|| format!("{text:?} has a prefix length outside 0-{bits}"))?,
    };
    Ok((address, prefix_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(raw: &str, policy: &AddressPolicy) -> Option<String> {
        check_url(raw, policy).err().map(|r| r.to_string())
    }

    #[test]
    fn allow_lists_sort_names_from_ranges() {
        let entries: Vec<String> =
            ["127.0.0.1", "10.0.0.0/8", "Hooks.Example.", "::1", " "].map(String::from).to_vec();
        let policy = AddressPolicy::with_allow_list(true, &entries).unwrap();
        assert!(policy.allow_http);
        assert_eq!(policy.allowed_hosts, vec!["hooks.example".to_owned()]);
        assert_eq!(policy.allowed_ranges.len(), 3);
        assert!(check_url("https://10.1.2.3/x", &policy).is_ok());
        assert!(check_url("https://127.0.0.1:9/x", &policy).is_ok());
        assert!(check_url("https://127.0.0.2/x", &policy).is_err());
        for bad in ["10.0.0.0/33", "a b", "https://x.example", "host:80", "x/y"] {
            let refused = AddressPolicy::with_allow_list(false, &[bad.to_owned()]);
            assert!(refused.is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn refused_forms_name_their_rule() {
        let private = "host resolves to a private, loopback, or link-local address";
        let cases: &[(&str, &str)] = &[
            // not a URL, or not https
            ("", "is not a valid absolute URL"),
            ("example.com", "is not a valid absolute URL"),
            ("/hooks/x", "is not a valid absolute URL"),
            ("https://", "is not a valid absolute URL"),
            ("https://exa mple.com/", "is not a valid absolute URL"),
            ("https://[::1/", "is not a valid absolute URL"),
            ("https://999.1.1.1/", "is not a valid absolute URL"),
            ("https://1.2.3.0x100/", "is not a valid absolute URL"),
            ("http://example.com/", "must use https scheme"),
            ("HTTP://example.com/", "must use https scheme"),
            ("ftp://example.com/", "must use https scheme"),
            ("file:///etc/passwd", "must use https scheme"),
            ("gopher://example.com/", "must use https scheme"),
            ("javascript:alert(1)", "must use https scheme"),
            ("data:text/plain,hi", "must use https scheme"),
            ("localhost:8080/x", "must use https scheme"),
            ("wss://example.com/", "must use https scheme"),
            // credentials
            ("https://user:pass@example.com/", "must not contain a user name or password"),
            ("https://user@example.com/", "must not contain a user name or password"),
            ("https://:pass@example.com/", "must not contain a user name or password"),
            ("https://example.com@127.0.0.1/", "must not contain a user name or password"),
            // named hosts, any case, trailing dots, escapes and IDNA folding
            ("https://localhost/", r#"host "localhost" is not allowed"#),
            ("https://LOCALHOST:8443/x", r#"host "localhost" is not allowed"#),
            ("https://localhost./", r#"host "localhost" is not allowed"#),
            ("https://api.localhost/", r#"host "api.localhost" is not allowed"#),
            ("https://a.b.LocalHost./", r#"host "a.b.localhost" is not allowed"#),
            ("https://%6c%6fcalhost/", r#"host "localhost" is not allowed"#),
            ("https://ｌｏｃａｌｈｏｓｔ/", r#"host "localhost" is not allowed"#),
            ("https://metadata/", r#"host "metadata" is not allowed"#),
            ("https://METADATA./computeMetadata/v1/", r#"host "metadata" is not allowed"#),
            ("https://metadata.google.internal/", r#"host "metadata.google.internal" is"#),
            ("https://Metadata.Google.Internal./", r#"host "metadata.google.internal" is"#),
            ("https://db.corp.internal/", r#"host "db.corp.internal" is not allowed"#),
            ("https://internal/", r#"host "internal" is not allowed"#),
            // IPv4 in every spelling the URL parser accepts
            ("https://127.0.0.1/", "(127.0.0.0/8, loopback)"),
            ("https://127.0.0.1./", "(127.0.0.0/8, loopback)"),
            ("https://127.1/", "(127.0.0.0/8, loopback)"),
            ("https://2130706433/", "(127.0.0.0/8, loopback)"),
            ("https://0x7f.1/", "(127.0.0.0/8, loopback)"),
            ("https://0x7F000001/", "(127.0.0.0/8, loopback)"),
            ("https://0177.0.0.1/", "(127.0.0.0/8, loopback)"),
            ("https://017700000001/", "(127.0.0.0/8, loopback)"),
            ("https://%31%32%37.0.0.1/", "(127.0.0.0/8, loopback)"),
            ("https://127.255.255.254:443/", "(127.0.0.0/8, loopback)"),
            ("https://0.0.0.0/", "(0.0.0.0/8, this network)"),
            ("https://0/", "(0.0.0.0/8, this network)"),
            ("https://10.1.2.3/", "(10.0.0.0/8, private)"),
            ("https://100.64.0.1/", "(100.64.0.0/10, shared address space)"),
            ("https://100.127.255.255/", "(100.64.0.0/10, shared address space)"),
            ("https://169.254.169.254/latest/meta-data/", "(169.254.0.0/16, link-local)"),
            ("https://172.16.0.1/", "(172.16.0.0/12, private)"),
            ("https://172.31.255.255/", "(172.16.0.0/12, private)"),
            ("https://192.0.0.170/", "(192.0.0.0/24, IETF protocol assignments)"),
            ("https://192.0.2.1/", "(192.0.2.0/24, documentation)"),
            ("https://192.88.99.1/", "(192.88.99.0/24, deprecated 6to4 relay anycast)"),
            ("https://192.168.1.1/", "(192.168.0.0/16, private)"),
            ("https://198.18.0.1/", "(198.18.0.0/15, benchmarking)"),
            ("https://198.19.255.255/", "(198.18.0.0/15, benchmarking)"),
            ("https://198.51.100.7/", "(198.51.100.0/24, documentation)"),
            ("https://203.0.113.9/", "(203.0.113.0/24, documentation)"),
            ("https://224.0.0.1/", "(224.0.0.0/4, multicast)"),
            ("https://239.255.255.250/", "(224.0.0.0/4, multicast)"),
            ("https://240.0.0.1/", "(240.0.0.0/4, reserved)"),
            ("https://255.255.255.255/", "(255.255.255.255/32, limited broadcast)"),
            ("https://168.63.129.16/", "(168.63.129.16/32, cloud metadata)"),
            // IPv6, bracketed, including embedded IPv4
            ("https://[::]/", "(::/128, unspecified)"),
            ("https://[::1]/", "(::1/128, loopback)"),
            ("https://[0:0:0:0:0:0:0:1]:8443/", "(::1/128, loopback)"),
            ("https://[::ffff:127.0.0.1]/", "(127.0.0.0/8, loopback)"),
            ("https://[::ffff:7f00:1]/", "(127.0.0.0/8, loopback)"),
            ("https://[::FFFF:10.0.0.1]/", "(10.0.0.0/8, private)"),
            ("https://[::ffff:169.254.169.254]/", "(169.254.0.0/16, link-local)"),
            ("https://[::ffff:0:192.168.0.1]/", "(192.168.0.0/16, private)"),
            ("https://[::127.0.0.1]/", "(127.0.0.0/8, loopback)"),
            ("https://[::10.0.0.1]/", "(10.0.0.0/8, private)"),
            ("https://[64:ff9b::127.0.0.1]/", "(127.0.0.0/8, loopback)"),
            ("https://[64:ff9b::a9fe:a9fe]/", "(169.254.0.0/16, link-local)"),
            ("https://[64:ff9b:1::5db8:d822]/", "(64:ff9b:1::/48, local-use NAT64)"),
            ("https://[100::1]/", "(100::/64, discard-only)"),
            ("https://[2001::1]/", "(2001::/32, Teredo)"),
            ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "(2001::/32, Teredo)"),
            ("https://[2001:2::1]/", "(2001::/23, IETF protocol assignments)"),
            ("https://[2001:db8::1]/", "(2001:db8::/32, documentation)"),
            ("https://[2002:7f00:1::1]/", "(127.0.0.0/8, loopback)"),
            ("https://[2002:c0a8:101::]/", "(192.168.0.0/16, private)"),
            ("https://[3fff::1]/", "(3fff::/20, documentation)"),
            ("https://[5f00::1]/", "(5f00::/16, segment routing)"),
            ("https://[fc00::1]/", "(fc00::/7, unique-local)"),
            ("https://[fd00:ec2::254]/", "(fc00::/7, unique-local)"),
            ("https://[fe80::1]/", "(fe80::/10, link-local)"),
            ("https://[FEBF::1]/", "(fe80::/10, link-local)"),
            ("https://[fec0::1]/", "(fec0::/10, site-local)"),
            ("https://[ff02::1]/", "(ff00::/8, multicast)"),
            ("https://[4000::1]/", "(outside 2000::/3, reserved)"),
            ("https://[::2:1]/", "(0.0.0.0/8, this network)"),
        ];
        let policy = AddressPolicy::default();
        for &(raw, expected) in cases {
            let got = refusal(raw, &policy).unwrap_or_else(|| panic!("{raw} was allowed"));
            assert!(got.contains(expected), "{raw}: got {got:?}, wanted {expected:?}");
            if expected.starts_with('(') {
                assert!(got.starts_with(private), "{raw}: {got}");
            }
        }
        assert!(cases.len() >= 60);
    }

    #[test]
    fn globally_reachable_hosts_are_allowed() {
        let cases = [
            "https://example.com/x",
            "https://EXAMPLE.com./hooks?x=1#frag",
            "https://hooks.example.com:8443/a/b",
            "https://93.184.216.34/",
            "https://8.8.8.8/",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/",
            "https://[2a00:1450:4001:82a::200e]/",
            "https://[::ffff:93.184.216.34]/",
            "https://[2002:5db8:d822::1]/",
            "https://[64:ff9b::808:808]/",
            "https://localhost.example.com/",
            "https://internal.example.com/",
            "https://metadata.example.com/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
            "https://168.63.129.17/",
            "https://xn--bcher-kva.example/",
        ];
        for raw in cases {
            assert_eq!(refusal(raw, &AddressPolicy::default()), None, "{raw}");
        }
        let url = check_url("https://0x5d.0xb8.0xd8.0x22/", &AddressPolicy::default()).unwrap();
        assert_eq!(url.host_str(), Some("93.184.216.34"));
    }

    #[test]
    fn policy_exemptions() {
        let policy = AddressPolicy {
            allow_http: true,
            allowed_hosts: vec!["LocalHost.".into(), "vault.corp.internal".into(), "[::1]".into()],
            allowed_ranges: vec![
                parse_range("10.0.0.0/8").unwrap(),
                parse_range("fd00::/8").unwrap(),
            ],
        };
        let allowed = [
            "http://localhost:3000/hook",
            "https://localhost./",
            "https://VAULT.corp.internal/",
            "http://10.1.2.3/",
            "https://[::ffff:10.1.2.3]/",
            "https://[fd12::1]/",
            "https://[::1]:8080/",
        ];
        for raw in allowed {
            assert_eq!(refusal(raw, &policy), None, "{raw}");
        }
        let refused = [
            ("https://api.localhost/", "is not allowed"),
            ("https://metadata.google.internal/", "is not allowed"),
            ("https://127.0.0.1/", "127.0.0.0/8"),
            ("https://11.0.0.0.0/", "not a valid absolute URL"),
            ("https://192.168.0.1/", "192.168.0.0/16"),
            ("https://[fc00::1]/", "fc00::/7"),
            ("ftp://localhost/", "must use https scheme"),
            ("https://u:p@localhost/", "user name or password"),
        ];
        for (raw, expected) in refused {
            let got = refusal(raw, &policy).unwrap_or_else(|| panic!("{raw} was allowed"));
            assert!(got.contains(expected), "{raw}: {got}");
        }
        assert!(policy.allows_host("localhost"));
        assert!(policy.allows_host("0:0::1"));
        assert!(!policy.allows_host("localhost.localdomain"));
    }

    #[test]
    fn http_needs_the_policy_even_for_exempt_hosts() {
        let policy = AddressPolicy {
            allowed_hosts: vec!["localhost".into()],
            allowed_ranges: vec![(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)],
            ..AddressPolicy::default()
        };
        assert_eq!(check_url("http://localhost/", &policy).unwrap_err(), Refusal::Scheme);
        assert_eq!(check_url("http://93.184.216.34/", &policy).unwrap_err(), Refusal::Scheme);
        assert!(check_url("https://10.0.0.1/", &policy).is_ok(), "0.0.0.0/0 allows all IPv4");
        assert!(check_url("https://[::1]/", &policy).is_err(), "but no IPv6");
    }

    #[test]
    fn refusals_name_their_rule() {
        let policy = AddressPolicy::default();
        let cases = [
            ("http://example.com/", "https-only"),
            ("https://u:p@example.com/", "userinfo"),
            ("https://localhost/", "named-host"),
            ("https://127.0.0.1/", "loopback"),
            ("https://10.1.2.3/", "private"),
            ("https://100.64.0.1/", "shared-address-space"),
            ("https://[::ffff:169.254.0.1]/", "link-local"),
        ];
        for (raw, rule) in cases {
            assert_eq!(check_url(raw, &policy).unwrap_err().rule(), rule, "{raw}");
        }
    }

    #[test]
    fn check_ip_is_the_range_rule_for_dns_answers() {
        let policy = AddressPolicy::default();
        let refused = ["127.0.0.53", "::1", "::ffff:192.168.0.10", "fe80::1%0"];
        for answer in refused {
            let address: IpAddr = answer.split('%').next().unwrap().parse().unwrap();
            assert!(check_ip(address, &policy).is_err(), "{answer}");
        }
        let error = check_ip("::ffff:127.0.0.1".parse().unwrap(), &policy).unwrap_err();
        assert_eq!(
            error,
            Refusal::Range {
                address: "::ffff:127.0.0.1".parse().unwrap(),
                range: "127.0.0.0/8, loopback"
            }
        );
        assert!(check_ip("1.1.1.1".parse().unwrap(), &policy).is_ok());
        assert!(check_ip("2606:4700:4700::1111".parse().unwrap(), &policy).is_ok());
    }

    #[test]
    fn range_edges() {
        let v4 = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(in_range_v4(v4("172.31.255.255"), v4("172.16.0.0"), 12));
        assert!(!in_range_v4(v4("172.32.0.0"), v4("172.16.0.0"), 12));
        assert!(in_range_v4(v4("1.2.3.4"), v4("0.0.0.0"), 0));
        assert!(in_range_v4(v4("1.2.3.4"), v4("1.2.3.4"), 32));
        assert!(!in_range_v4(v4("1.2.3.4"), v4("1.2.3.4"), 33));
        assert!(!in_range_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST, 129));
        assert!(in_range_v6(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED, 0));
    }

    #[test]
    fn parse_range_forms() {
        assert_eq!(parse_range("10.0.0.0/8"), Ok(("10.0.0.0".parse().unwrap(), 8)));
        assert_eq!(parse_range("fd00::/8"), Ok(("fd00::".parse().unwrap(), 8)));
        assert_eq!(parse_range("192.168.1.5"), Ok(("192.168.1.5".parse().unwrap(), 32)));
        assert_eq!(parse_range("::1"), Ok(("::1".parse().unwrap(), 128)));
        assert!(parse_range("10.0.0.0/33").is_err());
        assert!(parse_range("fd00::/129").is_err());
        assert!(parse_range("10.0.0.0/x").is_err());
        assert!(parse_range("example.com/8").is_err());
    }
}
