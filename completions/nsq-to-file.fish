complete -c nsq-to-file -l topic -d 'NSQ topic (may be given multiple times)' -r
complete -c nsq-to-file -l topic-pattern -d 'Only archive topics matching this regular expression (applies to --topic, and to topics found through nsqlookupd when none is given)' -r
complete -c nsq-to-file -l topic-refresh -d 'How often to look for new topics in nsqlookupd (without --topic)' -r
complete -c nsq-to-file -l channel -d 'NSQ channel' -r
complete -c nsq-to-file -l nsqd-tcp-address -d 'nsqd TCP address (host:port, or a unix socket path; may be given multiple times)' -r
complete -c nsq-to-file -l lookupd-http-address -d 'nsqlookupd HTTP address (host:port; may be given multiple times)' -r
complete -c nsq-to-file -l max-in-flight -d 'Messages in flight, and the most written between two syncs' -r
complete -c nsq-to-file -l output-dir -d 'Directory for finished files' -r -F
complete -c nsq-to-file -l work-dir -d 'Directory for files being written (default: the output directory)' -r
complete -c nsq-to-file -l datetime-format -d 'strftime format of <DATETIME> (%Y %y %m %d %H %I %M %S %p %B %b %A %a %Z %z %%)' -r
complete -c nsq-to-file -l filename-format -d 'File name; tokens <TOPIC>, <HOST>, <PID>, <DATETIME>, <REV>' -r
complete -c nsq-to-file -l host-identifier -d 'Replaces <HOST> (default: the short host name); may contain <SHORT_HOST> and <HOSTNAME>' -r
complete -c nsq-to-file -l gzip-level -d 'Gzip compression level, 1 (fast) to 9 (small)' -r
complete -c nsq-to-file -l rotate-size -d 'Start a new file once one exceeds this many bytes (0: never)' -r
complete -c nsq-to-file -l rotate-interval -d 'Start a new file this often (0: only when <DATETIME> changes)' -r
complete -c nsq-to-file -l sync-interval -d 'Longest time between an fsync (and the FINs it allows) and the next' -r
complete -c nsq-to-file -l lookupd-poll-interval -d 'How often to ask nsqlookupd for producers' -r
complete -c nsq-to-file -l http-client-connect-timeout -d 'Timeout for connecting to nsqlookupd\'s HTTP API' -r
complete -c nsq-to-file -l http-client-request-timeout -d 'Timeout for a whole request to nsqlookupd\'s HTTP API' -r
complete -c nsq-to-file -l log-level -d 'Log level: debug, info, warn, error or fatal' -r
complete -c nsq-to-file -l log-prefix -d 'Prefix of every log line' -r
complete -c nsq-to-file -l dial-timeout -d 'Give up connecting to an nsqd (TCP connect and IDENTIFY) after this long' -r
complete -c nsq-to-file -l consumer-opt -l producer-opt -d 'go-nsq option as key=value, as NSQ\'s tools take it (may be given multiple times): heartbeat_interval, msg_timeout, output_buffer_size, output_buffer_timeout, dial_timeout, user_agent; others are ignored with a warning' -r
complete -c nsq-to-file -l tls-root-ca-file -d 'PEM CA bundle to trust for nsqd\'s certificate (default: the system\'s roots)' -r
complete -c nsq-to-file -l tls-cert -d 'PEM client certificate to present (with --tls-key)' -r
complete -c nsq-to-file -l tls-key -d 'PEM key of the client certificate' -r
complete -c nsq-to-file -l deflate-level -d 'Deflate level, 1 (fast) to 9 (small); nsqd may lower it' -r
complete -c nsq-to-file -l gzip -d 'Gzip the files'
complete -c nsq-to-file -l skip-empty-files -d 'Do not create a file for an interval with no messages'
complete -c nsq-to-file -l tls -d 'Upgrade connections to nsqd to TLS (fails if nsqd does not offer it)'
complete -c nsq-to-file -l tls-insecure-skip-verify -d 'Accept any certificate from nsqd (encrypts without authenticating; testing only)'
complete -c nsq-to-file -l snappy -d 'Compress connections with snappy (if nsqd allows it)'
complete -c nsq-to-file -l deflate -d 'Compress connections with deflate (if nsqd allows it)'
complete -c nsq-to-file -s h -l help -d 'Print help'
complete -c nsq-to-file -s V -l version -d 'Print version'
