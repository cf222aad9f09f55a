//! The listening TCP sockets of a container, read from its network namespace's
//! `/proc/net/tcp` and `/proc/net/tcp6` tables, and what they say about `$PORT`.
//!
//! Pure parsing and classification: reading the tables (from the host's `/proc/PID/net/` or by
//! exec in the container) is the caller's job.

use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kernel's TCP state number for LISTEN.
const TCP_LISTEN: &str = "0A";

/// One listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
}

impl Listener {
    /// Reachable from outside the container (all addresses, not loopback only).
    pub fn is_wildcard(&self) -> bool {
        self.addr.is_unspecified()
    }

    pub fn is_loopback(&self) -> bool {
        self.addr.is_loopback()
            || matches!(self.addr, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// What the sockets say about `$PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortState {
    /// Something listens on `$PORT` on every address.
    Listening,
    /// `$PORT` is bound to loopback only: Cloud Run's probe and traffic cannot reach it.
    LoopbackOnly,
    /// Nothing on `$PORT`, but these ports listen.
    WrongPort(Vec<u16>),
    /// Nothing listens at all.
    Nothing,
}

/// Listening sockets of one `/proc/net/tcp` or `tcp6` table. Lines that do not parse are
/// skipped: the header, and anything a future kernel adds.
pub fn parse_table(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let _slot = cols.next()?;
            let local = cols.next()?;
            let _remote = cols.next()?;
            let state = cols.next()?;
            if state != TCP_LISTEN {
                return None;
            }
            let (addr, port) = local.split_once(':')?;
            Some(Listener {
                addr: parse_addr(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
            })
        })
        .collect()
}

/// The kernel prints addresses as 32-bit words in host byte order (little endian on amd64
/// and arm64, the platforms Docker runs on).
fn parse_addr(hex: &str) -> Option<IpAddr> {
    let word = |s: &str| u32::from_str_radix(s, 16).ok();
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?.to_le_bytes()))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let w = word(hex.get(i * 8..i * 8 + 8)?)?;
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

/// Classifies the listeners against the port Cloud Run will send traffic to.
pub fn port_state(listeners: &[Listener], port: u16) -> PortState {
    let on_port: Vec<&Listener> = listeners.iter().filter(|l| l.port == port).collect();
    if on_port.iter().any(|l| !l.is_loopback()) {
        return PortState::Listening;
    }
    if !on_port.is_empty() {
        return PortState::LoopbackOnly;
    }
    let mut others: Vec<u16> = listeners.iter().map(|l| l.port).collect();
    others.sort_unstable();
    others.dedup();
    if others.is_empty() {
        PortState::Nothing
    } else {
        PortState::WrongPort(others)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real tables: python's http.server on 0.0.0.0:8080 with a client connected, a socket on
    // 127.0.0.1:8001, and gunicorn on [::]:8080.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 124 1 0000000000000000 100 0 0 10 0
   2: 020011AC:1F90 010011AC:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 125 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 200 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 201 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn tables_parse_to_listeners_only() {
        let v4 = parse_table(TCP);
        assert_eq!(
            v4.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["0.0.0.0:8080", "127.0.0.1:8001"]
        );
        let v6 = parse_table(TCP6);
        assert_eq!(
            v6.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["[::]:8080", "[::1]:3000"]
        );
        assert!(v6[1].is_loopback());
        assert!(parse_table("garbage\n 0: zz:1 0 0A\n").is_empty());
    }

    #[test]
    fn port_state_tells_loopback_and_wrong_ports_apart() {
        let l = parse_table(TCP);
        assert_eq!(port_state(&l, 8080), PortState::Listening);
        assert_eq!(port_state(&l, 8001), PortState::LoopbackOnly);
        assert_eq!(port_state(&l, 9000), PortState::WrongPort(vec![8001, 8080]));
        assert_eq!(port_state(&[], 8080), PortState::Nothing);
        let v6 = parse_table(TCP6);
        assert_eq!(port_state(&v6, 8080), PortState::Listening);
        assert_eq!(port_state(&v6, 3000), PortState::LoopbackOnly);
    }
}
