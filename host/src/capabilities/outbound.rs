//! `allowed_outbound_hosts`, with Spin's rules: the one check of every capability that dials
//! out of the host (today the Postgres client; outgoing HTTP is not offered).

use std::net::IpAddr;

use crate::config::database_url::address_host_port;

/// `Ok` if `allowed` (a component's `allowed_outbound_hosts`) lets it reach the Postgres
/// server of `address`; else the reason, for `connection-failed`.
pub fn check_address_allowed(address: &str, allowed: &[String]) -> Result<(), String> {
    let (host, port) = address_host_port(address)?;
    if allowed
        .iter()
        .any(|entry| allowed_host_matches(entry, &host, port))
    {
        Ok(())
    } else {
        Err(format!(
            "address postgres://{host}:{port} is not permitted: add it to the component's allowed_outbound_hosts"
        ))
    }
}

/// Whether one `allowed_outbound_hosts` entry (`scheme://host[:port]`) admits `host:port`.
fn allowed_host_matches(entry: &str, host: &str, port: u16) -> bool {
    if entry == "insecure:allow-all" {
        return true;
    }
    let Some((scheme, rest)) = entry.split_once("://") else {
        return false;
    };
    if !(scheme == "*" || scheme.eq_ignore_ascii_case("postgres")) {
        return false;
    }
    let rest = rest.trim_end_matches('/');
    // `host[:port]`, where host may be `[v6]` and port `*`, `N` or `A..B`.
    let (pattern_host, pattern_port) = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return false,
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (rest, None),
        }
    };
    let port_ok = match pattern_port {
        None => port == 5432,
        Some("*") => true,
        Some(range) => match range.split_once("..") {
            Some((low, high)) => match (low.parse::<u16>(), high.parse::<u16>()) {
                (Ok(low), Ok(high)) => (low..high).contains(&port),
                _ => false,
            },
            None => range.parse::<u16>() == Ok(port),
        },
    };
    port_ok && host_matches(pattern_host, host)
}

fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" || pattern.eq_ignore_ascii_case(host) {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        let host_len = host.len();
        return host_len > suffix.len() + 1
            && host[host_len - suffix.len()..].eq_ignore_ascii_case(suffix)
            && host.as_bytes()[host_len - suffix.len() - 1] == b'.';
    }
    if let Some((network, bits)) = pattern.split_once('/') {
        return match (
            network.parse::<IpAddr>(),
            bits.parse::<u32>(),
            host.parse::<IpAddr>(),
        ) {
            (Ok(IpAddr::V4(n)), Ok(bits), Ok(IpAddr::V4(h))) if bits <= 32 => {
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(n) & mask == u32::from(h) & mask
            }
            (Ok(IpAddr::V6(n)), Ok(bits), Ok(IpAddr::V6(h))) if bits <= 128 => {
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(n) & mask == u128::from(h) & mask
            }
            _ => false,
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_hosts_follow_spins_rules() {
        let check = |address: &str, allowed: &[&str]| {
            let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
            check_address_allowed(address, &allowed).is_ok()
        };
        let url = "postgres://user:pw@db.example.com:5433/shop?sslmode=disable";
        assert!(check(url, &["postgres://*:*"]));
        assert!(check(url, &["postgres://db.example.com:5433"]));
        assert!(check(url, &["postgres://*.example.com:*"]));
        assert!(check(url, &["*://db.example.com:5433"]));
        assert!(check(url, &["postgres://db.example.com:5000..6000"]));
        assert!(
            !check(url, &["postgres://db.example.com"]),
            "default port is 5432"
        );
        assert!(!check(url, &["postgres://example.com:*"]));
        assert!(!check(url, &["mysql://*:*"]));
        assert!(!check(url, &[]));
        assert!(check(
            "postgres://postgres@127.0.0.1/test",
            &["postgres://127.0.0.1"]
        ));
        assert!(check(
            "postgresql://10.1.2.3:5432/db",
            &["postgres://10.0.0.0/8:5432"]
        ));
        assert!(check(
            "postgres://[::1]:5432/db",
            &["postgres://[::1]:5432"]
        ));
        assert!(check(
            "postgres://x@h/db?host=localhost&port=6000",
            &["postgres://localhost:6000"]
        ));
        assert!(!check(
            "postgres://x@h/db?host=/var/run/postgresql",
            &["postgres://*.*:*"]
        ));
        assert!(check("postgres://anything:1/x", &["insecure:allow-all"]));
    }
}
