complete -c nsq-to-http -l topic -d 'NSQ topic' -r
complete -c nsq-to-http -l channel -d 'NSQ channel' -r
complete -c nsq-to-http -l nsqd-tcp-address -d 'nsqd TCP address (host:port, or a unix socket path; may be given multiple times)' -r
complete -c nsq-to-http -l lookupd-http-address -d 'nsqlookupd HTTP address (host:port; may be given multiple times)' -r
complete -c nsq-to-http -l get -d 'URL to GET for each message, with `%s` replaced by the message (query-escaped); may be given multiple times' -r
complete -c nsq-to-http -l post -d 'URL to POST each message to, as the request body; may be given multiple times' -r
complete -c nsq-to-http -l content-type -d 'Content-Type of POST requests' -r
complete -c nsq-to-http -l header -d 'Extra header for every request, as `Name: value` (may be given multiple times)' -r
complete -c nsq-to-http -l mode -d 'With several URLs: round-robin (each message to the next URL), hostpool (in turn, skipping URLs that fail for a while), epsilon-greedy (mostly the fastest URLs) or all (every message to every URL)' -r -f -a "round-robin\t''
hostpool\t''
epsilon-greedy\t''
all\t''"
complete -c nsq-to-http -s n -d 'Requests under way at once' -r
complete -c nsq-to-http -l max-in-flight -d 'Messages in flight from nsqd' -r
complete -c nsq-to-http -l sample -d 'Fraction of the messages to send (0.0 to 1.0); the others are FINished unsent' -r
complete -c nsq-to-http -l status-every -d 'Log the request times every this many requests (per URL, and in total); 0: never' -r
complete -c nsq-to-http -l http-client-connect-timeout -d 'Timeout for connecting to an endpoint' -r
complete -c nsq-to-http -l http-client-request-timeout -l http-timeout -d 'Timeout for a whole request (a request that takes longer counts as failed)' -r
complete -c nsq-to-http -l lookupd-poll-interval -d 'How often to ask nsqlookupd for producers' -r
complete -c nsq-to-http -l dial-timeout -d 'Give up connecting to an nsqd (TCP connect and IDENTIFY) after this long' -r
complete -c nsq-to-http -l consumer-opt -l producer-opt -d 'go-nsq option as key=value, as NSQ\'s tools take it (may be given multiple times): heartbeat_interval, msg_timeout, output_buffer_size, output_buffer_timeout, dial_timeout, user_agent; others are ignored with a warning' -r
complete -c nsq-to-http -l tls-root-ca-file -d 'PEM CA bundle to trust for nsqd\'s certificate (default: the system\'s roots)' -r
complete -c nsq-to-http -l tls-cert -d 'PEM client certificate to present (with --tls-key)' -r
complete -c nsq-to-http -l tls-key -d 'PEM key of the client certificate' -r
complete -c nsq-to-http -l deflate-level -d 'Deflate level, 1 (fast) to 9 (small); nsqd may lower it' -r
complete -c nsq-to-http -l tls -d 'Upgrade connections to nsqd to TLS (fails if nsqd does not offer it)'
complete -c nsq-to-http -l tls-insecure-skip-verify -d 'Accept any certificate from nsqd (encrypts without authenticating; testing only)'
complete -c nsq-to-http -l snappy -d 'Compress connections with snappy (if nsqd allows it)'
complete -c nsq-to-http -l deflate -d 'Compress connections with deflate (if nsqd allows it)'
complete -c nsq-to-http -s h -l help -d 'Print help'
complete -c nsq-to-http -s V -l version -d 'Print version'
