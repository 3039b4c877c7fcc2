//! Which network addresses an outgoing connection made for someone else may
//! reach, in one place: a plugin's `wasi:http` requests and the registry's
//! webhook deliveries both go only to globally routable unicast addresses,
//! unless the one who configures them (the approving admin, the operator)
//! allowed an address explicitly. A host name is resolved once, every
//! address it resolves to must pass (a name that resolves to one public and
//! one private address could otherwise be steered to the private one), and
//! the caller connects to the address that was checked, never to a second
//! lookup (DNS rebinding).

pub use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefusal {
    /// The host resolves to (or is) an address that is not public and not
    /// allowed.
    #[error("{host} is (or resolves to) {address}, which is not a public address")]
    NotPublic {
        /// The host as given.
        host: String,
        /// The address refused, IPv4-mapped ones as the IPv4 address.
        address: IpAddr,
    },
    /// The host name does not resolve.
    #[error("{0} does not resolve")]
    Unresolvable(String),
}

/// IPv4-mapped IPv6 addresses (`::ffff:127.0.0.1`) are judged as the IPv4
/// address they carry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` is a globally routable unicast address: not loopback,
/// private, link-local (the cloud metadata address 169.254.169.254 among
/// them), shared (CGNAT), unique-local, multicast, documentation,
/// unspecified or reserved, in any spelling (IPv4-mapped included).
pub fn is_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 192 && b == 88 && c == 99)) // 6to4 relay anycast
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x2001 && ip.segments()[1] == 0 // Teredo (embeds IPv4)
        || first == 0x0064 && ip.segments()[1] == 0xff9b // NAT64 (embeds IPv4)
        || first == 0x2002 // 6to4 (embeds IPv4)
        || ip.to_ipv4().is_some()) // IPv4-compatible
}

/// The addresses `host:port` stands for (an address literal, with or
/// without brackets, or a name resolved once), each public or `allowed`;
/// refused if any is neither. The caller connects to one of these.
pub async fn resolve_checked(
    host: &str,
    port: u16,
    allowed: impl Fn(IpAddr) -> bool,
) -> Result<Vec<SocketAddr>, AddressRefusal> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| AddressRefusal::Unresolvable(host.to_owned()))?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(AddressRefusal::Unresolvable(host.to_owned()));
    }
    for address in &addresses {
        let ip = canonical(address.ip());
        if !is_public(ip) && !allowed(ip) {
            return Err(AddressRefusal::NotPublic {
                host: host.to_owned(),
                address: ip,
            });
        }
    }
    Ok(addresses)
}

/// A network as the one who allows it writes it: `10.0.0.0/8`, `fd00::/8`,
/// or one address (`127.0.0.1`, a network of one). It is matched against
/// [`canonical`] addresses, so an IPv4 network also covers the IPv4-mapped
/// spelling of its addresses.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    if let Ok(network) = text.parse::<IpNet>() {
        return Ok(network);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is not an address or network (e.g. 10.0.0.0/8)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for text in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "192.88.99.1",
        ] {
            assert!(!is_public(text.parse().unwrap()), "{text}");
        }
        for text in ["1.1.1.1", "93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(text.parse().unwrap()), "{text}");
        }
    }

    #[test]
    fn networks_parse_and_contain() {
        let contains = |net: &str, ip: &str| {
            parse_network(net)
                .unwrap()
                .contains(&canonical(ip.parse().unwrap()))
        };
        assert!(contains("127.0.0.0/8", "127.0.0.1"));
        assert!(contains("127.0.0.0/8", "::ffff:127.9.9.9"));
        assert!(!contains("127.0.0.0/8", "128.0.0.1"));
        assert!(!contains("127.0.0.0/8", "::1"));
        assert!(contains("10.0.0.7", "10.0.0.7"));
        assert!(!contains("10.0.0.7", "10.0.0.8"));
        assert!(contains("fd00::/8", "fd12::1"));
        for bad in ["10.0.0.0/33", "10.0.0.0/", "x/8", "fd00::/129", ""] {
            assert!(parse_network(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn every_address_must_pass() {
        let refused = resolve_checked("[::ffff:127.0.0.1]", 80, |_| false)
            .await
            .unwrap_err();
        assert_eq!(
            refused,
            AddressRefusal::NotPublic {
                host: "[::ffff:127.0.0.1]".into(),
                address: "127.0.0.1".parse().unwrap()
            }
        );
        let loopback = parse_network("127.0.0.0/8").unwrap();
        let ipv6_loopback = parse_network("::1").unwrap();
        let allowed = resolve_checked("localhost", 80, |ip| {
            loopback.contains(&ip) || ipv6_loopback.contains(&ip)
        })
        .await
        .unwrap();
        assert!(allowed.iter().all(|a| a.ip().is_loopback()));
        assert!(matches!(
            resolve_checked("localhost", 80, |_| false).await,
            Err(AddressRefusal::NotPublic { .. })
        ));
    }
}
