# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_nsq_bench_global_optspecs
    string join \n json with-baseline nsqd-pid= h/help V/version
end

function __fish_nsq_bench_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_nsq_bench_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_nsq_bench_using_subcommand
    set -l cmd (__fish_nsq_bench_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -l nsqd-pid -d 'The nsqd\'s process ID (on this machine): report its CPU time per message (or per connection) and its resident memory' -r
complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -l json -d 'Print one JSON object instead of a text line'
complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -l with-baseline -d 'Also measure the raw-TCP baseline first and print figures as fractions of it'
complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -s h -l help -d 'Print help'
complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -s V -l version -d 'Print version'
complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -f -a "pub" -d 'Publish as fast as possible (PUB, or MPUB with --batch-size > 1)'
complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -f -a "sub" -d 'Consume and FIN as fast as possible'
complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -f -a "latency" -d 'Publish at a fixed rate while consuming; report end-to-end latency percentiles'
complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -f -a "baseline" -d 'Raw loopback TCP stream: this machine\'s wire speed'
complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -f -a "connections" -d 'Open many subscribed connections at once; report how long they took (and, with --nsqd-pid, nsqd\'s memory per connection)'
complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -f -a "idle" -d 'Create many topics (each with its channels) over HTTP, then measure nsqd\'s CPU and memory while nothing happens (needs --nsqd-pid)'
complete -c nsq-bench -n "__fish_nsq_bench_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l nsqd-tcp-address -d 'nsqd TCP address (host:port, or a unix socket path)' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l topic -d 'Topic to use' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l runfor -d 'How long to run' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l size -d 'Message body size in bytes' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l batch-size -d 'Messages per MPUB (1 = single PUB commands)' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l connections -d 'Concurrent connections (default: one per core)' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l pipeline -d 'Commands in flight per connection (1 = wait for each response)' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l nsqd-pid -d 'The nsqd\'s process ID (on this machine): report its CPU time per message (or per connection) and its resident memory' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l tls -d 'Connect with TLS (any certificate trusted: for measuring only)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l snappy -d 'Compress connections with snappy'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l deflate -d 'Compress connections with deflate (level 6)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l via-client -d 'Use the library\'s client even for plain connections (to compare TLS and compression with plain on the same path)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l json -d 'Print one JSON object instead of a text line'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -l with-baseline -d 'Also measure the raw-TCP baseline first and print figures as fractions of it'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand pub" -s h -l help -d 'Print help'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l nsqd-tcp-address -d 'nsqd TCP address (host:port, or a unix socket path)' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l topic -d 'Topic to use' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l runfor -d 'How long to run' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l channel -d 'Channel to consume from' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l connections -d 'Concurrent connections (default: one per core)' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l rdy -d 'RDY count per connection' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l nsqd-pid -d 'The nsqd\'s process ID (on this machine): report its CPU time per message (or per connection) and its resident memory' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l tls -d 'Connect with TLS (any certificate trusted: for measuring only)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l snappy -d 'Compress connections with snappy'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l deflate -d 'Compress connections with deflate (level 6)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l via-client -d 'Use the library\'s client even for plain connections (to compare TLS and compression with plain on the same path)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l json -d 'Print one JSON object instead of a text line'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -l with-baseline -d 'Also measure the raw-TCP baseline first and print figures as fractions of it'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand sub" -s h -l help -d 'Print help'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l nsqd-tcp-address -d 'nsqd TCP address (host:port, or a unix socket path)' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l topic -d 'Topic to use' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l runfor -d 'How long to run' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l channel -d 'Channel to consume from' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l rate -d 'Messages per second to publish' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l size -d 'Message body size in bytes (at least 8: the send time travels in it)' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l nsqd-pid -d 'The nsqd\'s process ID (on this machine): report its CPU time per message (or per connection) and its resident memory' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l tls -d 'Connect with TLS (any certificate trusted: for measuring only)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l snappy -d 'Compress connections with snappy'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l deflate -d 'Compress connections with deflate (level 6)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l via-client -d 'Use the library\'s client even for plain connections (to compare TLS and compression with plain on the same path)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l json -d 'Print one JSON object instead of a text line'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -l with-baseline -d 'Also measure the raw-TCP baseline first and print figures as fractions of it'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand latency" -s h -l help -d 'Print help'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand baseline" -l runfor -d 'How long to run' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand baseline" -l write-size -d 'Bytes per write' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand baseline" -l nsqd-pid -d 'The nsqd\'s process ID (on this machine): report its CPU time per message (or per connection) and its resident memory' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand baseline" -l json -d 'Print one JSON object instead of a text line'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand baseline" -l with-baseline -d 'Also measure the raw-TCP baseline first and print figures as fractions of it'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand baseline" -s h -l help -d 'Print help'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand connections" -l nsqd-tcp-address -d 'nsqd TCP address (host:port, or a unix socket path)' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand connections" -l count -d 'Connections to open, all at once' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand connections" -l topic -d 'Topic each connection subscribes to' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand connections" -l channel -d 'Channel each connection subscribes to' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand connections" -l nsqd-pid -d 'The nsqd\'s process ID (on this machine): report its CPU time per message (or per connection) and its resident memory' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand connections" -l json -d 'Print one JSON object instead of a text line'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand connections" -l with-baseline -d 'Also measure the raw-TCP baseline first and print figures as fractions of it'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand connections" -s h -l help -d 'Print help'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand idle" -l nsqd-http-address -d 'nsqd HTTP address' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand idle" -l topics -d 'Topics to create' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand idle" -l channels -d 'Channels per topic' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand idle" -l topic-prefix -d 'Topic names are this prefix and a number' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand idle" -l runfor -d 'How long to watch nsqd idle' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand idle" -l nsqd-pid -d 'The nsqd\'s process ID (on this machine): report its CPU time per message (or per connection) and its resident memory' -r
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand idle" -l json -d 'Print one JSON object instead of a text line'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand idle" -l with-baseline -d 'Also measure the raw-TCP baseline first and print figures as fractions of it'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand idle" -s h -l help -d 'Print help'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand help; and not __fish_seen_subcommand_from pub sub latency baseline connections idle help" -f -a "pub" -d 'Publish as fast as possible (PUB, or MPUB with --batch-size > 1)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand help; and not __fish_seen_subcommand_from pub sub latency baseline connections idle help" -f -a "sub" -d 'Consume and FIN as fast as possible'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand help; and not __fish_seen_subcommand_from pub sub latency baseline connections idle help" -f -a "latency" -d 'Publish at a fixed rate while consuming; report end-to-end latency percentiles'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand help; and not __fish_seen_subcommand_from pub sub latency baseline connections idle help" -f -a "baseline" -d 'Raw loopback TCP stream: this machine\'s wire speed'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand help; and not __fish_seen_subcommand_from pub sub latency baseline connections idle help" -f -a "connections" -d 'Open many subscribed connections at once; report how long they took (and, with --nsqd-pid, nsqd\'s memory per connection)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand help; and not __fish_seen_subcommand_from pub sub latency baseline connections idle help" -f -a "idle" -d 'Create many topics (each with its channels) over HTTP, then measure nsqd\'s CPU and memory while nothing happens (needs --nsqd-pid)'
complete -c nsq-bench -n "__fish_nsq_bench_using_subcommand help; and not __fish_seen_subcommand_from pub sub latency baseline connections idle help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
