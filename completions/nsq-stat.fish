complete -c nsq-stat -l topic -d 'NSQ topic' -r
complete -c nsq-stat -l channel -d 'NSQ channel' -r
complete -c nsq-stat -l nsqd-http-address -d 'nsqd HTTP address (host:port, no scheme, or a unix socket path; may be given multiple times)' -r
complete -c nsq-stat -l lookupd-http-address -d 'nsqlookupd HTTP address (host:port, no scheme; may be given multiple times)' -r
complete -c nsq-stat -l interval -d 'Time between polls' -r
complete -c nsq-stat -l count -d 'Print this many rows, then exit (default: until interrupted)' -r
complete -c nsq-stat -l http-client-connect-timeout -d 'Timeout for connecting to an HTTP API' -r
complete -c nsq-stat -l http-client-request-timeout -d 'Timeout for a whole HTTP request' -r
complete -c nsq-stat -l json -d 'One JSON object per interval instead of the table'
complete -c nsq-stat -s h -l help -d 'Print help'
complete -c nsq-stat -s V -l version -d 'Print version'
