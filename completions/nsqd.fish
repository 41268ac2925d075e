complete -c nsqd -l config -d 'Load options from this TOML file (keys are flag names with `_` for `-`); flags given on the command line win' -r -F
complete -c nsqd -l log-level -d 'Log level: debug, info, warn, error or fatal' -r
complete -c nsqd -l verbose -d 'Deprecated (no effect); accepted for compatibility' -r
complete -c nsqd -l log-prefix -d 'Prefix of every log line' -r
complete -c nsqd -l node-id -d 'Unique part for message IDs, in [0,1024) (default: derived from the hostname)' -r
complete -c nsqd -l worker-id -d 'Deprecated (no effect); accepted for compatibility' -r
complete -c nsqd -l tcp-address -d 'Address to listen on for TCP clients (host:port, or a unix socket path)' -r
complete -c nsqd -l http-address -d 'Address to listen on for HTTP clients (host:port, or a unix socket path; empty disables)' -r
complete -c nsqd -l https-address -d 'Address to listen on for HTTPS clients (host:port; used only with --tls-cert and --tls-key)' -r
complete -c nsqd -l broadcast-address -d 'Address this node is registered under with nsqlookupd (default: the hostname)' -r
complete -c nsqd -l broadcast-tcp-port -d 'TCP port registered with nsqlookupd (0 = the port actually bound; none on a unix socket, so set it to register one)' -r
complete -c nsqd -l broadcast-http-port -d 'HTTP port registered with nsqlookupd (0 = the port actually bound; none on a unix socket, so set it to register one)' -r
complete -c nsqd -l lookupd-tcp-address -d 'nsqlookupd TCP address to register with (host:port, or a unix socket path; repeatable)' -r
complete -c nsqd -l auth-http-address -d 'Authorization server address (host:port or URL; repeatable)' -r
complete -c nsqd -l auth-http-request-method -d 'HTTP method for auth requests: get or post' -r -f -a "get\t''
post\t''"
complete -c nsqd -l http-client-connect-timeout -d 'Timeout for establishing outgoing HTTP connections' -r
complete -c nsqd -l http-client-request-timeout -d 'Timeout for outgoing HTTP requests' -r
complete -c nsqd -l http-read-timeout -d 'Time a client has to send an HTTP(S) request\'s head (counted from when the connection opens or its previous response ends), and then its body; slower clients are disconnected. Not in NSQ' -r
complete -c nsqd -l max-http-connections -d 'Most connections served at once by each of the HTTP and HTTPS listeners; beyond it new clients wait to be accepted (0 = no limit). Not in NSQ' -r
complete -c nsqd -l auth-required -d 'Also require the auth server\'s approval (--auth-http-address) on the HTTP API: any of tcp, http, https, comma-separated. HTTP(S) requests then carry `Authorization: Bearer <secret>`. TCP clients need AUTH whenever --auth-http-address is set, as in NSQ. Not in NSQ' -r
complete -c nsqd -l topology-region -d 'Region of this node (topology-aware consumption experiment)' -r
complete -c nsqd -l topology-zone -d 'Zone of this node (topology-aware consumption experiment)' -r
complete -c nsqd -l data-path -d 'Directory for disk queues and nsqd.dat (default: the current directory)' -r
complete -c nsqd -l mem-queue-size -d 'Messages kept in memory per topic and per channel. Durable queues write every message to disk anyway and keep this many of the next ones to deliver as a cache (a deep one costs about 20 bytes per message beyond the body); ephemeral ones drop what does not fit' -r
complete -c nsqd -l mem-queue-bytes -d 'Body bytes a durable topic\'s or channel\'s cache keeps in memory, on top of --mem-queue-size (not in NSQ): past it, messages are read back from disk, so large messages cannot fill memory. Ephemeral queues are bounded by --mem-queue-size alone, as in NSQ' -r
complete -c nsqd -l max-bytes-per-file -d 'Bytes per disk queue file before rolling over. The file being written has up to 16 MB of disk space reserved past its end (never more than 1/64 of the free space), given back when it is finished or nsqd stops' -r
complete -c nsqd -l sync-every -d 'Disk queue reads+writes between fsyncs' -r
complete -c nsqd -l sync-timeout -d 'Longest time between fsyncs of a disk queue with activity' -r
complete -c nsqd -l queue-scan-worker-pool-max -d 'Accepted for compatibility: timeouts here use exact timers, not a worker pool' -r
complete -c nsqd -l queue-scan-selection-count -d 'Accepted for compatibility: timeouts here use exact timers, not sampling' -r
complete -c nsqd -l msg-timeout -d 'Default time a delivered message may stay unacknowledged before redelivery' -r
complete -c nsqd -l max-msg-timeout -d 'Largest message timeout a client may ask for (IDENTIFY msg_timeout, TOUCH)' -r
complete -c nsqd -l max-msg-size -d 'Largest message body, in bytes' -r
complete -c nsqd -l max-body-size -d 'Largest command body (MPUB, IDENTIFY, AUTH), in bytes' -r
complete -c nsqd -l max-req-timeout -d 'Longest REQ delay (and DPUB defer, unless --max-defer-timeout is set)' -r
complete -c nsqd -l max-defer-timeout -d 'Longest defer of a DPUB or `/pub?defer=` (beyond NSQ; default: the --max-req-timeout)' -r
complete -c nsqd -l max-heartbeat-interval -d 'Longest heartbeat interval a client may ask for' -r
complete -c nsqd -l max-rdy-count -d 'Largest RDY count a client may set' -r
complete -c nsqd -l max-output-buffer-size -d 'Largest output buffer a client may ask for, in bytes' -r
complete -c nsqd -l max-output-buffer-timeout -d 'Longest output buffer timeout a client may ask for' -r
complete -c nsqd -l min-output-buffer-timeout -d 'Shortest output buffer timeout a client may ask for' -r
complete -c nsqd -l output-buffer-timeout -d 'Default output buffer timeout' -r
complete -c nsqd -l max-channel-consumers -d 'Most consumers per channel (0 = unlimited)' -r
complete -c nsqd -l max-attempts -d 'Deliver a message at most this many times per channel, then move it to the channel\'s dead-letter topic (0: no limit, as NSQ). Channels may set their own with `POST /channel/config`' -r
complete -c nsqd -l statsd-address -d 'UDP address of a statsd daemon (empty disables)' -r
complete -c nsqd -l statsd-interval -d 'Interval between pushes to statsd' -r
complete -c nsqd -l statsd-mem-stats -d 'Include memory gauges in statsd output' -r -f -a "true\t''
false\t''"
complete -c nsqd -l statsd-prefix -d 'Prefix of statsd keys (`%s` becomes the broadcast address and HTTP port)' -r
complete -c nsqd -l statsd-udp-packet-size -d 'Largest statsd UDP packet, in bytes' -r
complete -c nsqd -l statsd-exclude-ephemeral -d 'Leave #ephemeral topics and channels out of statsd output' -r -f -a "true\t''
false\t''"
complete -c nsqd -l e2e-processing-latency-percentile -d 'End-to-end latency quantile to report, in (0,1] (repeatable or comma-separated)' -r
complete -c nsqd -l e2e-processing-latency-window-time -d 'Window over which end-to-end latency quantiles are computed' -r
complete -c nsqd -l tls-cert -d 'TLS certificate file' -r
complete -c nsqd -l tls-key -d 'TLS private key file' -r
complete -c nsqd -l tls-client-auth-policy -d 'Client certificate policy: require or require-verify' -r
complete -c nsqd -l tls-root-ca-file -d 'CA file for verifying client certificates' -r
complete -c nsqd -l tls-required -d 'Require TLS from clients: true, false or tcp-https' -r
complete -c nsqd -l tls-min-version -d 'Lowest TLS version accepted: tls1.0, tls1.1, tls1.2 or tls1.3' -r
complete -c nsqd -l deflate -d 'Allow clients to negotiate deflate compression' -r -f -a "true\t''
false\t''"
complete -c nsqd -l max-deflate-level -d 'Highest deflate level a client may ask for, 1-9' -r
complete -c nsqd -l snappy -d 'Allow clients to negotiate snappy compression' -r -f -a "true\t''
false\t''"
complete -c nsqd -l enable-experiment -d 'Enable an experiment (only: topology-aware-consumption)' -r
complete -c nsqd -l version -d 'Print the version and exit'
complete -c nsqd -s h -l help -d 'Print help'
