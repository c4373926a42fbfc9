//! The client's address a request reports to its guest (`spin-client-addr`): the connection's
//! peer, or, when that peer is a proxy the operator trusts (`shop up --trusted-proxies`), the
//! address the proxies recorded in `X-Forwarded-For`. Without the flag the header is ignored:
//! anyone can write it, and the services throttle logins by this address.

use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Context, Result};

/// An address block: an address and how many of its leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrBlock {
    addr: IpAddr,
    prefix: u8,
}

impl AddrBlock {
    /// Parses `10.0.0.0/8`, `fd00::/8` or a bare address (a block of one).
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .with_context(|| format!("`{text}` is not an IP address or block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(prefix) if prefix <= max => prefix,
                _ => bail!("`{text}`: the prefix length must be 0 to {max}"),
            },
        };
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let (block, ip, bits) = match (self.addr, ip) {
            (IpAddr::V4(block), IpAddr::V4(ip)) => (
                u128::from(u32::from(block)) << 96,
                u128::from(u32::from(ip)) << 96,
                32,
            ),
            (IpAddr::V6(block), IpAddr::V6(ip)) => (u128::from(block), u128::from(ip), 128),
            _ => return false,
        };
        let prefix = u32::from(self.prefix.min(bits));
        let mask = if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - prefix)
        };
        block & mask == ip & mask
    }
}

/// The blocks of `--trusted-proxies`, as one command-line value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(pub Vec<AddrBlock>);

/// Parses a comma-separated list of blocks (`--trusted-proxies`).
pub fn parse_blocks(text: &str) -> Result<TrustedProxies, String> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| AddrBlock::parse(part).map_err(|err| format!("{err:#}")))
        .collect::<Result<_, _>>()
        .map(TrustedProxies)
}

/// The address to report for a request from `peer` carrying `forwarded_for` (every
/// `X-Forwarded-For` header, in order): the peer itself unless it is trusted; then, walking
/// the header from its right end (the hop nearest this host), the first address that is not a
/// trusted proxy. An entry that does not parse ends the walk at the last trusted hop.
pub fn client_ip(peer: SocketAddr, forwarded_for: &[&str], trusted: &[AddrBlock]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|block| block.contains(ip));
    let mut client = canonical(peer.ip());
    if !is_trusted(client) {
        return client;
    }
    let hops = forwarded_for
        .iter()
        .flat_map(|header| header.split(','))
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|socket| socket.ip()))
        .ok()
        .map(canonical)
}

/// An IPv4-mapped IPv6 address as its IPv4 address; others as they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_match() {
        let block = AddrBlock::parse("10.0.0.0/8").unwrap();
        assert!(block.contains(ip("10.200.3.4")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(block.contains(ip("::ffff:10.1.1.1")));
        let one = AddrBlock::parse("192.168.1.7").unwrap();
        assert!(one.contains(ip("192.168.1.7")) && !one.contains(ip("192.168.1.8")));
        let v6 = AddrBlock::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(AddrBlock::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129"] {
            assert!(AddrBlock::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_blocks("127.0.0.1, 10.0.0.0/8").unwrap().0.len(), 2);
        assert!(parse_blocks("127.0.0.1,bad").is_err());
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let trusted = parse_blocks("10.0.0.0/8").unwrap().0;
        // Untrusted peer: its header is anyone's words.
        assert_eq!(
            client_ip(peer("203.0.113.9"), &["1.2.3.4"], &trusted),
            ip("203.0.113.9")
        );
        // No list at all: the same.
        assert_eq!(
            client_ip(peer("10.0.0.2"), &["1.2.3.4"], &[]),
            ip("10.0.0.2")
        );
        // Trusted peer: the nearest untrusted hop, not what the client wrote at the left.
        assert_eq!(
            client_ip(peer("10.0.0.2"), &["6.6.6.6, 1.2.3.4, 10.0.0.5"], &trusted),
            ip("1.2.3.4")
        );
        // Several headers read as one list.
        assert_eq!(
            client_ip(peer("10.0.0.2"), &["6.6.6.6", "1.2.3.4:555"], &trusted),
            ip("1.2.3.4")
        );
        // A trusted peer that forwarded nothing is the client.
        assert_eq!(client_ip(peer("10.0.0.2"), &[], &trusted), ip("10.0.0.2"));
        // Garbage ends the walk at the last trusted hop.
        assert_eq!(
            client_ip(peer("10.0.0.2"), &["1.2.3.4, garbage, 10.0.0.9"], &trusted),
            ip("10.0.0.9")
        );
    }
}
