//! Pushing counters to statsd (`--statsd-address`) with NSQ's metric
//! names: counters as deltas since the last push, gauges as they are,
//! packed into UDP datagrams of at most `--statsd-udp-packet-size` bytes.

use super::stats::{collect, Stats, StatsFilter};
use super::Nsqd;
use std::collections::HashMap;
use std::sync::Arc;

/// The key prefix: `%s` is `<broadcast address>_<HTTP port>` with `.` and
/// `:` made `_`; a trailing `.` is added when missing.
pub fn prefix(template: &str, broadcast: &str, http_port: u16) -> String {
    let node = format!("{broadcast}_{http_port}").replace(['.', ':'], "_");
    let mut p = template.replace("%s", &node);
    if !p.is_empty() && !p.ends_with('.') {
        p.push('.');
    }
    p
}

/// The lines of one push; `last` holds the counters of the previous push
/// (and is updated), so counters go out as deltas.
pub fn lines(
    stats: &Stats,
    prefix: &str,
    exclude_ephemeral: bool,
    last: &mut HashMap<String, u64>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut counter = |out: &mut Vec<String>, key: String, value: u64| {
        let before = last.insert(key.clone(), value).unwrap_or(0);
        out.push(format!("{prefix}{key}:{}|c", value.saturating_sub(before)));
    };
    let gauge = |out: &mut Vec<String>, key: String, value: f64| {
        out.push(format!("{prefix}{key}:{value}|g"));
    };
    for t in stats.topics.iter().flatten() {
        if exclude_ephemeral && crate::protocol::names::is_ephemeral(&t.topic_name) {
            continue;
        }
        let tk = format!("topic.{}", t.topic_name);
        counter(&mut out, format!("{tk}.message_count"), t.message_count);
        counter(&mut out, format!("{tk}.message_bytes"), t.message_bytes);
        gauge(&mut out, format!("{tk}.depth"), t.depth as f64);
        gauge(
            &mut out,
            format!("{tk}.backend_depth"),
            t.backend_depth as f64,
        );
        for p in t.e2e_processing_latency.percentiles.iter().flatten() {
            gauge(
                &mut out,
                format!(
                    "{tk}.e2e_processing_latency_{}",
                    quantile_suffix(p.quantile)
                ),
                p.value,
            );
        }
        for c in &t.channels {
            if exclude_ephemeral && crate::protocol::names::is_ephemeral(&c.channel_name) {
                continue;
            }
            let ck = format!("{tk}.channel.{}", c.channel_name);
            counter(&mut out, format!("{ck}.message_count"), c.message_count);
            gauge(&mut out, format!("{ck}.depth"), c.depth as f64);
            gauge(
                &mut out,
                format!("{ck}.backend_depth"),
                c.backend_depth as f64,
            );
            gauge(
                &mut out,
                format!("{ck}.in_flight_count"),
                c.in_flight_count as f64,
            );
            gauge(
                &mut out,
                format!("{ck}.deferred_count"),
                c.deferred_count as f64,
            );
            counter(&mut out, format!("{ck}.requeue_count"), c.requeue_count);
            counter(&mut out, format!("{ck}.timeout_count"), c.timeout_count);
            gauge(&mut out, format!("{ck}.clients"), c.client_count as f64);
            for p in c.e2e_processing_latency.percentiles.iter().flatten() {
                gauge(
                    &mut out,
                    format!(
                        "{ck}.e2e_processing_latency_{}",
                        quantile_suffix(p.quantile)
                    ),
                    p.value,
                );
            }
        }
    }
    if let Some(m) = &stats.memory {
        gauge(&mut out, "mem.heap_objects".into(), m.heap_objects as f64);
        gauge(
            &mut out,
            "mem.heap_idle_bytes".into(),
            m.heap_idle_bytes as f64,
        );
        gauge(
            &mut out,
            "mem.heap_in_use_bytes".into(),
            m.heap_in_use_bytes as f64,
        );
        gauge(
            &mut out,
            "mem.heap_released_bytes".into(),
            m.heap_released_bytes as f64,
        );
        gauge(
            &mut out,
            "mem.gc_pause_usec_100".into(),
            m.gc_pause_usec_100 as f64,
        );
        gauge(
            &mut out,
            "mem.gc_pause_usec_99".into(),
            m.gc_pause_usec_99 as f64,
        );
        gauge(
            &mut out,
            "mem.gc_pause_usec_95".into(),
            m.gc_pause_usec_95 as f64,
        );
        gauge(&mut out, "mem.next_gc_bytes".into(), m.next_gc_bytes as f64);
        counter(&mut out, "mem.gc_runs".into(), m.gc_total_runs);
    }
    out
}

/// `0.99` → `99`, `0.999` → `999`, `1.0` → `100`: NSQ's key suffix.
pub fn quantile_suffix(q: f64) -> String {
    let percent = format!("{}", (q * 100.0 * 1000.0).round() / 1000.0);
    percent.replace('.', "")
}

/// Lines packed into datagrams of at most `max` bytes (a longer line goes alone).
pub fn packets(lines: &[String], max: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut current = Vec::new();
    for line in lines {
        if !current.is_empty() && current.len() + line.len() + 1 > max {
            out.push(std::mem::take(&mut current));
        }
        current.extend_from_slice(line.as_bytes());
        current.push(b'\n');
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Push every `--statsd-interval` until shutdown.
pub async fn run(nsqd: Arc<Nsqd>) {
    let opts = nsqd.opts.clone();
    if opts.statsd_address.is_empty() {
        return;
    }
    let socket = match tokio::net::UdpSocket::bind("0.0.0.0:0").await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("STATSD: cannot open a UDP socket: {e}");
            return;
        }
    };
    let prefix = prefix(
        &opts.statsd_prefix,
        &opts.effective_broadcast_address(),
        nsqd.broadcast_http_port(),
    );
    let mut last = HashMap::new();
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + opts.statsd_interval,
        opts.statsd_interval
            .max(std::time::Duration::from_millis(10)),
    );
    loop {
        tokio::select! {
            _ = nsqd.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let stats = collect(
            &nsqd,
            &StatsFilter {
                include_mem: opts.statsd_mem_stats,
                ..StatsFilter::default()
            },
        );
        let lines = lines(&stats, &prefix, opts.statsd_exclude_ephemeral, &mut last);
        for packet in packets(&lines, opts.statsd_udp_packet_size.max(64) as usize) {
            if let Err(e) = socket.send_to(&packet, &opts.statsd_address).await {
                tracing::error!("STATSD: sending to {}: {e}", opts.statsd_address);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_suffixes() {
        assert_eq!(
            prefix("nsq.%s", "host.example", 4151),
            "nsq.host_example_4151."
        );
        assert_eq!(prefix("app", "h", 1), "app.");
        assert_eq!(quantile_suffix(0.99), "99");
        assert_eq!(quantile_suffix(0.999), "999");
        assert_eq!(quantile_suffix(1.0), "100");
        assert_eq!(quantile_suffix(0.5), "50");
    }

    #[test]
    fn packets_respect_the_size() {
        let lines: Vec<String> = (0..100).map(|i| format!("nsq.key{i}:1|c")).collect();
        let packets = packets(&lines, 100);
        assert!(packets.iter().all(|p| p.len() <= 100));
        let joined: usize = packets.iter().map(|p| p.len()).sum();
        assert_eq!(joined, lines.iter().map(|l| l.len() + 1).sum::<usize>());
    }
}
