complete -c nsqadmin -l config -d 'Load options from this TOML file (keys are flag names with `_` for `-`); flags given on the command line win' -r -F
complete -c nsqadmin -l log-level -d 'Log level: debug, info, warn, error or fatal' -r
complete -c nsqadmin -l verbose -d 'Deprecated (no effect); accepted for compatibility' -r
complete -c nsqadmin -l log-prefix -d 'Prefix of every log line' -r
complete -c nsqadmin -l http-address -d 'Address to listen on for HTTP clients (host:port)' -r
complete -c nsqadmin -l base-path -d 'URL path under which every page and API route is served (behind a reverse proxy, for example `/nsqadmin`)' -r
complete -c nsqadmin -l dev-static-dir -d 'Serve the web UI\'s files from this directory instead of the copies built into the binary (for working on the UI)' -r
complete -c nsqadmin -l lookupd-http-address -d 'nsqlookupd HTTP address (host:port; may be given multiple times). Give these or --nsqd-http-address, not both' -r
complete -c nsqadmin -l nsqd-http-address -d 'nsqd HTTP address (host:port; may be given multiple times), to watch nsqd instances without nsqlookupd' -r
complete -c nsqadmin -l graphite-url -d 'Graphite HTTP address (accepted; the pages chart nsqadmin\'s own history instead)' -r
complete -c nsqadmin -l proxy-graphite -d 'Proxy /render requests to --graphite-url' -r -f -a "true\t''
false\t''"
complete -c nsqadmin -l statsd-prefix -d 'Prefix of nsqd\'s statsd keys (%s for the host), as nsqd is configured' -r
complete -c nsqadmin -l statsd-counter-format -d 'Counter key format of the statsd implementation (empty for none)' -r
complete -c nsqadmin -l statsd-gauge-format -d 'Gauge key format of the statsd implementation (empty for none)' -r
complete -c nsqadmin -l statsd-interval -d 'How often nsqd pushes to statsd (as nsqd is configured)' -r
complete -c nsqadmin -l notification-http-endpoint -d 'URL to which every admin action (pause, empty, delete, tombstone, create) is POSTed as a JSON event' -r
complete -c nsqadmin -l http-client-connect-timeout -d 'Give up connecting to an nsqd or nsqlookupd after this long' -r
complete -c nsqadmin -l http-client-request-timeout -d 'Give up on a request to an nsqd or nsqlookupd after this long' -r
complete -c nsqadmin -l http-client-tls-insecure-skip-verify -d 'Accept any certificate from nsqd and nsqlookupd over HTTPS (testing only)' -r -f -a "true\t''
false\t''"
complete -c nsqadmin -l http-client-tls-root-ca-file -d 'PEM CA bundle to trust for HTTPS to nsqd and nsqlookupd' -r
complete -c nsqadmin -l http-client-tls-cert -d 'PEM client certificate to present over HTTPS (with --http-client-tls-key)' -r
complete -c nsqadmin -l http-client-tls-key -d 'PEM key of the client certificate' -r
complete -c nsqadmin -l allow-config-from-cidr -d 'Only clients in this CIDR may use /config (empty: anyone)' -r
complete -c nsqadmin -l acl-http-header -d 'HTTP header that names the authenticated user (set by a proxy in front)' -r
complete -c nsqadmin -l admin-user -d 'A user allowed to perform actions (may be given multiple times); when any is given, only these users (per --acl-http-header) may pause, empty, delete, tombstone or create' -r
complete -c nsqadmin -l sample-interval -d 'How often nsqadmin reads every nsqd\'s counters for the live pages and charts (not in NSQ; 0 turns live updates and charts off)' -r
complete -c nsqadmin -l history -d 'How much history the charts show (not in NSQ)' -r
complete -c nsqadmin -l version -d 'Print the version and exit'
complete -c nsqadmin -s h -l help -d 'Print help'
