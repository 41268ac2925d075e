//! `/metrics`: the counters of `/stats` in Prometheus' text format, so that
//! nsqd can be scraped without a sidecar (NSQ has no such endpoint).

use super::stats::Stats;
use std::fmt::Write;

/// A label value, escaped as the text format wants.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

/// Render every topic and channel family.
pub fn render(stats: &Stats) -> String {
    let mut families = vec![
        Family {
            name: "nsq_topic_depth",
            kind: "gauge",
            help: "Messages queued in the topic (memory and disk), waiting for a channel.",
            samples: vec![],
        },
        Family {
            name: "nsq_topic_backend_depth",
            kind: "gauge",
            help: "Messages of the topic's queue on disk.",
            samples: vec![],
        },
        Family {
            name: "nsq_topic_messages_total",
            kind: "counter",
            help: "Messages published to the topic.",
            samples: vec![],
        },
        Family {
            name: "nsq_topic_message_bytes_total",
            kind: "counter",
            help: "Bytes of message bodies published to the topic.",
            samples: vec![],
        },
        Family {
            name: "nsq_channel_depth",
            kind: "gauge",
            help: "Messages queued in the channel (memory and disk).",
            samples: vec![],
        },
        Family {
            name: "nsq_channel_backend_depth",
            kind: "gauge",
            help: "Messages of the channel's queue on disk.",
            samples: vec![],
        },
        Family {
            name: "nsq_channel_in_flight",
            kind: "gauge",
            help: "Messages delivered and not yet finished.",
            samples: vec![],
        },
        Family {
            name: "nsq_channel_deferred",
            kind: "gauge",
            help: "Messages deferred (DPUB, REQ with a delay).",
            samples: vec![],
        },
        Family {
            name: "nsq_channel_messages_total",
            kind: "counter",
            help: "Messages that reached the channel.",
            samples: vec![],
        },
        Family {
            name: "nsq_channel_requeued_total",
            kind: "counter",
            help: "Messages requeued (REQ).",
            samples: vec![],
        },
        Family {
            name: "nsq_channel_timed_out_total",
            kind: "counter",
            help: "Messages whose in-flight timeout passed.",
            samples: vec![],
        },
        Family {
            name: "nsq_channel_clients",
            kind: "gauge",
            help: "Consumers connected to the channel.",
            samples: vec![],
        },
        Family {
            name: "nsq_channel_dead_letter_total",
            kind: "counter",
            help: "Messages moved to the dead-letter topic (channels with a maximum of attempts).",
            samples: vec![],
        },
        Family {
            name: "nsq_channel_e2e_processing_latency_seconds",
            kind: "gauge",
            help:
                "Publish-to-FIN latency percentiles over the --e2e-processing-latency-window-time.",
            samples: vec![],
        },
    ];
    let mut push = |i: usize, labels: String, v: f64| families[i].samples.push((labels, v));
    for t in stats.topics.iter().flatten() {
        let tl = format!("topic=\"{}\"", label(&t.topic_name));
        push(0, tl.clone(), t.depth as f64);
        push(1, tl.clone(), t.backend_depth as f64);
        push(2, tl.clone(), t.message_count as f64);
        push(3, tl.clone(), t.message_bytes as f64);
        for c in &t.channels {
            let cl = format!("{tl},channel=\"{}\"", label(&c.channel_name));
            push(4, cl.clone(), c.depth as f64);
            push(5, cl.clone(), c.backend_depth as f64);
            push(6, cl.clone(), c.in_flight_count as f64);
            push(7, cl.clone(), c.deferred_count as f64);
            push(8, cl.clone(), c.message_count as f64);
            push(9, cl.clone(), c.requeue_count as f64);
            push(10, cl.clone(), c.timeout_count as f64);
            push(11, cl.clone(), c.client_count as f64);
            if let Some(d) = &c.dead_letters {
                push(12, cl.clone(), d.dead_letter_count as f64);
            }
            for p in c.e2e_processing_latency.percentiles.iter().flatten() {
                push(
                    13,
                    format!("{cl},quantile=\"{}\"", p.quantile),
                    p.value / 1e9,
                );
            }
        }
    }
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
        for (labels, v) in f.samples {
            let _ = writeln!(out, "{}{{{labels}}} {v}", f.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
