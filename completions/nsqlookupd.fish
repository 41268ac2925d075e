complete -c nsqlookupd -l config -d 'Load options from this TOML file (keys are flag names with `_` for `-`); flags given on the command line win' -r -F
complete -c nsqlookupd -l log-level -d 'Log level: debug, info, warn, error or fatal' -r
complete -c nsqlookupd -l verbose -d 'Deprecated (no effect); accepted for compatibility' -r
complete -c nsqlookupd -l log-prefix -d 'Prefix of every log line' -r
complete -c nsqlookupd -l tcp-address -d 'Address to listen on for nsqd connections (host:port, or a unix socket path)' -r
complete -c nsqlookupd -l http-address -d 'Address to listen on for HTTP clients (host:port, or a unix socket path)' -r
complete -c nsqlookupd -l broadcast-address -d 'Address of this lookupd node, returned to nsqd in the IDENTIFY response (default: the OS hostname)' -r
complete -c nsqlookupd -l inactive-producer-timeout -d 'Drop a producer from lookups when it has not pinged for this long' -r
complete -c nsqlookupd -l tombstone-lifetime -d 'How long a producer tombstoned for a topic stays hidden from its lookups' -r
complete -c nsqlookupd -l version -d 'Print the version and exit'
complete -c nsqlookupd -s h -l help -d 'Print help'
