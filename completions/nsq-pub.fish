complete -c nsq-pub -l topic -d 'NSQ topic to publish to' -r
complete -c nsq-pub -l delimiter -d 'Byte that ends each message (not part of the message); one byte, or an escape: \\n, \\t, \\r, \\0, \\xNN' -r
complete -c nsq-pub -l nsqd-tcp-address -d 'nsqd TCP address (host:port; may be given multiple times)' -r
complete -c nsq-pub -l rate -d 'Throttle to this many messages per second (0: no limit)' -r
complete -c nsq-pub -l batch-size -d 'Most messages per MPUB (1: one PUB per message, as to_nsq)' -r
complete -c nsq-pub -l dial-timeout -d 'Give up connecting to an nsqd (TCP connect and IDENTIFY) after this long' -r
complete -c nsq-pub -l consumer-opt -l producer-opt -d 'go-nsq option as key=value, as NSQ\'s tools take it (may be given multiple times): heartbeat_interval, msg_timeout, output_buffer_size, output_buffer_timeout, dial_timeout, user_agent; others are ignored with a warning' -r
complete -c nsq-pub -s q -l quiet -d 'No progress bar'
complete -c nsq-pub -s h -l help -d 'Print help'
complete -c nsq-pub -s V -l version -d 'Print version'
