//! `netstat`: TCP sockets by state and the number of UDP sockets, from
//! `/proc/net/{tcp,tcp6,udp,udp6}`.
//!
//! Reading the tables directly avoids gopsutil's walk of every process's file descriptors. A
//! missing table (IPv6 disabled) counts as empty. `tcp_none` is always 0: the kernel has no TCP
//! state by that name (gopsutil counted unix sockets there, which are not TCP).

use super::{Host, Sample, Tags, no_tags, read_path_into};

/// Kernel TCP state numbers (`include/net/tcp_states.h`) and their field names.
const TCP_STATES: [(u8, &str); 11] = [
    (0x01, "tcp_established"),
    (0x02, "tcp_syn_sent"),
    (0x03, "tcp_syn_recv"),
    (0x04, "tcp_fin_wait1"),
    (0x05, "tcp_fin_wait2"),
    (0x06, "tcp_time_wait"),
    (0x07, "tcp_close"),
    (0x08, "tcp_close_wait"),
    (0x09, "tcp_last_ack"),
    (0x0A, "tcp_listen"),
    (0x0B, "tcp_closing"),
];

/// The `netstat` plugin.
#[derive(Debug)]
pub struct NetstatCollector {
    tags: Tags,
    buf: String,
}

impl Default for NetstatCollector {
    fn default() -> Self {
        Self {
            tags: no_tags(),
            buf: String::new(),
        }
    }
}

impl NetstatCollector {
    /// Counts sockets. Never fails: unreadable tables count as empty.
    ///
    /// # Errors
    /// None; the signature matches the other collectors.
    pub fn collect(
        &mut self,
        host: &Host,
        out: &mut Vec<Sample>,
    ) -> Result<(), super::CollectError> {
        let mut by_state = [0u64; 16];
        for table in ["proc/net/tcp", "proc/net/tcp6"] {
            if read_path_into(&host.path(table), &mut self.buf).is_ok() {
                for line in self.buf.lines().skip(1) {
                    let state = line
                        .split_ascii_whitespace()
                        .nth(3)
                        .and_then(|s| u8::from_str_radix(s, 16).ok());
                    if let Some(state) = state {
                        by_state[usize::from(state & 0x0F)] += 1;
                    }
                }
            }
        }
        let mut udp = 0u64;
        for table in ["proc/net/udp", "proc/net/udp6"] {
            if read_path_into(&host.path(table), &mut self.buf).is_ok() {
                udp += self
                    .buf
                    .lines()
                    .skip(1)
                    .filter(|l| !l.trim().is_empty())
                    .count() as u64;
            }
        }
        for (state, field) in TCP_STATES {
            out.push(Sample {
                field,
                value: by_state[usize::from(state)] as f64,
                tags: self.tags.clone(),
            });
        }
        out.push(Sample {
            field: "tcp_none",
            value: 0.0,
            tags: self.tags.clone(),
        });
        out.push(Sample {
            field: "udp_socket",
            value: udp as f64,
            tags: self.tags.clone(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, value};
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    fn row(state: &str) -> String {
        format!(
            "   0: 0100007F:1F90 00000000:0000 {state} 00000000:00000000 00:00000000 00000000     0        0 12345 1\n"
        )
    }

    #[test]
    fn sockets_are_counted_by_state_across_v4_and_v6() {
        let fixture = Fixture::new();
        fixture.write(
            "proc/net/tcp",
            &format!("{HEADER}{}{}{}", row("0A"), row("01"), row("01")),
        );
        fixture.write(
            "proc/net/tcp6",
            &format!("{HEADER}{}{}", row("0A"), row("06")),
        );
        fixture.write("proc/net/udp", &format!("{HEADER}{}", row("07")));
        // No udp6 table: IPv6 disabled.
        let mut out = Vec::new();
        NetstatCollector::default()
            .collect(&fixture.host(), &mut out)
            .unwrap();
        assert_eq!(value(&out, "tcp_listen", None), Some(2.0));
        assert_eq!(value(&out, "tcp_established", None), Some(2.0));
        assert_eq!(value(&out, "tcp_time_wait", None), Some(1.0));
        assert_eq!(value(&out, "udp_socket", None), Some(1.0));
        assert_eq!(
            value(&out, "tcp_close_wait", None),
            Some(0.0),
            "zero counts are sent too"
        );
        assert_eq!(out.len(), 13);
    }
}
