complete -c nsq-pub -l topic -d 'NSQ topic to publish to' -r
complete -c nsq-pub -l delimiter -d 'Byte that ends each message (not part of the message); one byte, or an escape: \\n, \\t, \\r, \\0, \\xNN' -r
complete -c nsq-pub -l nsqd-tcp-address -d 'nsqd TCP address (host:port, or a unix socket path; may be given multiple times)' -r
complete -c nsq-pub -l rate -d 'Throttle to this many messages per second (0: no limit)' -r
complete -c nsq-pub -l batch-size -d 'Most messages per MPUB (1: one PUB per message, as to_nsq)' -r
complete -c nsq-pub -l dial-timeout -d 'Give up connecting to an nsqd (TCP connect and IDENTIFY) after this long' -r
complete -c nsq-pub -l consumer-opt -l producer-opt -d 'go-nsq option as key=value, as NSQ\'s tools take it (may be given multiple times): heartbeat_interval, msg_timeout, output_buffer_size, output_buffer_timeout, dial_timeout, user_agent; others are ignored with a warning' -r
complete -c nsq-pub -l tls-root-ca-file -d 'PEM CA bundle to trust for nsqd\'s certificate (default: the system\'s roots)' -r
complete -c nsq-pub -l tls-cert -d 'PEM client certificate to present (with --tls-key)' -r
complete -c nsq-pub -l tls-key -d 'PEM key of the client certificate' -r
complete -c nsq-pub -l deflate-level -d 'Deflate level, 1 (fast) to 9 (small); nsqd may lower it' -r
complete -c nsq-pub -s q -l quiet -d 'No progress bar'
complete -c nsq-pub -l tls -d 'Upgrade connections to nsqd to TLS (fails if nsqd does not offer it)'
complete -c nsq-pub -l tls-insecure-skip-verify -d 'Accept any certificate from nsqd (encrypts without authenticating; testing only)'
complete -c nsq-pub -l snappy -d 'Compress connections with snappy (if nsqd allows it)'
complete -c nsq-pub -l deflate -d 'Compress connections with deflate (if nsqd allows it)'
complete -c nsq-pub -s h -l help -d 'Print help'
complete -c nsq-pub -s V -l version -d 'Print version'
