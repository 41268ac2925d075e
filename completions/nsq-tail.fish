complete -c nsq-tail -l topic -d 'NSQ topic (may be given multiple times)' -r
complete -c nsq-tail -l channel -d 'NSQ channel (default: a new ephemeral one, tailNNNNNN#ephemeral)' -r
complete -c nsq-tail -l nsqd-tcp-address -d 'nsqd TCP address (host:port, or a unix socket path; may be given multiple times)' -r
complete -c nsq-tail -l lookupd-http-address -d 'nsqlookupd HTTP address (host:port; may be given multiple times)' -r
complete -c nsq-tail -s n -d 'Exit after this many messages (0: run until interrupted)' -r
complete -c nsq-tail -l max-in-flight -d 'Messages in flight at once' -r
complete -c nsq-tail -l timeout -d 'With -n: fail (status 1) if the messages have not all arrived after this long (e.g. 30s)' -r
complete -c nsq-tail -l nsqd-http-address -d 'nsqd HTTP address for --peek (host:port, or a unix socket path; may be given multiple times)' -r
complete -c nsq-tail -l lookupd-poll-interval -d 'How often to ask nsqlookupd for producers' -r
complete -c nsq-tail -l dial-timeout -d 'Give up connecting to an nsqd (TCP connect and IDENTIFY) after this long' -r
complete -c nsq-tail -l consumer-opt -l producer-opt -d 'go-nsq option as key=value, as NSQ\'s tools take it (may be given multiple times): heartbeat_interval, msg_timeout, output_buffer_size, output_buffer_timeout, dial_timeout, user_agent; others are ignored with a warning' -r
complete -c nsq-tail -l tls-root-ca-file -d 'PEM CA bundle to trust for nsqd\'s certificate (default: the system\'s roots)' -r
complete -c nsq-tail -l tls-cert -d 'PEM client certificate to present (with --tls-key)' -r
complete -c nsq-tail -l tls-key -d 'PEM key of the client certificate' -r
complete -c nsq-tail -l deflate-level -d 'Deflate level, 1 (fast) to 9 (small); nsqd may lower it' -r
complete -c nsq-tail -l print-topic -d 'Print the topic name before each message (`topic | body`)'
complete -c nsq-tail -l peek -d 'Show the next messages of --channel without consuming them (nsqd\'s /channel/peek, beyond NSQ): nothing is delivered, finished or counted. -n says how many (default 10). Needs --nsqd-http-address, or --lookupd-http-address to find the nsqd'
complete -c nsq-tail -l tls -d 'Upgrade connections to nsqd to TLS (fails if nsqd does not offer it)'
complete -c nsq-tail -l tls-insecure-skip-verify -d 'Accept any certificate from nsqd (encrypts without authenticating; testing only)'
complete -c nsq-tail -l snappy -d 'Compress connections with snappy (if nsqd allows it)'
complete -c nsq-tail -l deflate -d 'Compress connections with deflate (if nsqd allows it)'
complete -c nsq-tail -s h -l help -d 'Print help'
complete -c nsq-tail -s V -l version -d 'Print version'
