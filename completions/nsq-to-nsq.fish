complete -c nsq-to-nsq -l topic -d 'NSQ topic to read (may be given multiple times)' -r
complete -c nsq-to-nsq -l channel -d 'NSQ channel' -r
complete -c nsq-to-nsq -l nsqd-tcp-address -d 'nsqd TCP address (host:port, or a unix socket path; may be given multiple times)' -r
complete -c nsq-to-nsq -l lookupd-http-address -d 'nsqlookupd HTTP address (host:port; may be given multiple times)' -r
complete -c nsq-to-nsq -l destination-nsqd-tcp-address -d 'Destination nsqd TCP address (host:port, or a unix socket path; may be given multiple times)' -r
complete -c nsq-to-nsq -l destination-topic -d 'Publish everything to this topic (default: the topic it came from)' -r
complete -c nsq-to-nsq -l mode -d 'With several destinations: round-robin (each message to the next), hostpool (in turn, skipping destinations that fail for a while) or epsilon-greedy (mostly the fastest)' -r -f -a "round-robin\t''
hostpool\t''
epsilon-greedy\t''"
complete -c nsq-to-nsq -l max-in-flight -d 'Messages in flight from nsqd (and so publishes under way)' -r
complete -c nsq-to-nsq -l status-every -d 'Log publish times every this many publishes (per destination, and in total); 0: never' -r
complete -c nsq-to-nsq -l require-json-field -d 'For JSON messages: only pass those that have this field (others are FINished unsent)' -r
complete -c nsq-to-nsq -l require-json-value -d 'For JSON messages: only pass those whose required field has this value (a string, or a number)' -r
complete -c nsq-to-nsq -l whitelist-json-field -d 'For JSON messages: keep only this field (may be given multiple times)' -r
complete -c nsq-to-nsq -l producer-opt -d 'go-nsq option for the destination connections, as key=value or key,value (may be given multiple times)' -r
complete -c nsq-to-nsq -l lookupd-poll-interval -d 'How often to ask nsqlookupd for producers' -r
complete -c nsq-to-nsq -l dial-timeout -d 'Give up connecting to an nsqd (TCP connect and IDENTIFY) after this long' -r
complete -c nsq-to-nsq -l tls-root-ca-file -d 'PEM CA bundle to trust for nsqd\'s certificate (default: the system\'s roots)' -r
complete -c nsq-to-nsq -l tls-cert -d 'PEM client certificate to present (with --tls-key)' -r
complete -c nsq-to-nsq -l tls-key -d 'PEM key of the client certificate' -r
complete -c nsq-to-nsq -l deflate-level -d 'Deflate level, 1 (fast) to 9 (small); nsqd may lower it' -r
complete -c nsq-to-nsq -l consumer-opt -d 'go-nsq option for the source connections, as key=value or key,value (may be given multiple times): heartbeat_interval, msg_timeout, output_buffer_size, output_buffer_timeout, dial_timeout, user_agent, max_in_flight, and the requeue and backoff options below' -r
complete -c nsq-to-nsq -l tls -d 'Upgrade connections to nsqd to TLS (fails if nsqd does not offer it)'
complete -c nsq-to-nsq -l tls-insecure-skip-verify -d 'Accept any certificate from nsqd (encrypts without authenticating; testing only)'
complete -c nsq-to-nsq -l snappy -d 'Compress connections with snappy (if nsqd allows it)'
complete -c nsq-to-nsq -l deflate -d 'Compress connections with deflate (if nsqd allows it)'
complete -c nsq-to-nsq -s h -l help -d 'Print help'
complete -c nsq-to-nsq -s V -l version -d 'Print version'
