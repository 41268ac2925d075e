_nsqd() {
    local i cur prev opts cmd
    COMPREPLY=()
    if [[ "${BASH_VERSINFO[0]}" -ge 4 ]]; then
        cur="$2"
    else
        cur="${COMP_WORDS[COMP_CWORD]}"
    fi
    prev="$3"
    cmd=""
    opts=""

    for i in "${COMP_WORDS[@]:0:COMP_CWORD}"
    do
        case "${cmd},${i}" in
            ",$1")
                cmd="nsqd"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        nsqd)
            opts="-h --version --config --log-level --verbose --log-prefix --node-id --worker-id --tcp-address --http-address --https-address --broadcast-address --broadcast-tcp-port --broadcast-http-port --lookupd-tcp-address --auth-http-address --auth-http-request-method --http-client-connect-timeout --http-client-request-timeout --http-read-timeout --max-http-connections --auth-required --topology-region --topology-zone --data-path --mem-queue-size --mem-queue-bytes --max-bytes-per-file --sync-every --sync-timeout --queue-scan-worker-pool-max --queue-scan-selection-count --msg-timeout --max-msg-timeout --max-msg-size --max-body-size --max-req-timeout --max-defer-timeout --max-heartbeat-interval --max-rdy-count --max-output-buffer-size --max-output-buffer-timeout --min-output-buffer-timeout --output-buffer-timeout --max-channel-consumers --max-attempts --statsd-address --statsd-interval --statsd-mem-stats --statsd-prefix --statsd-udp-packet-size --statsd-exclude-ephemeral --e2e-processing-latency-percentile --e2e-processing-latency-window-time --tls-cert --tls-key --tls-client-auth-policy --tls-root-ca-file --tls-required --tls-min-version --deflate --max-deflate-level --snappy --enable-experiment --help"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --config)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --log-level)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --verbose)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --log-prefix)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --node-id)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --worker-id)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tcp-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --http-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --https-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --broadcast-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --broadcast-tcp-port)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --broadcast-http-port)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --lookupd-tcp-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --auth-http-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --auth-http-request-method)
                    COMPREPLY=($(compgen -W "get post" -- "${cur}"))
                    return 0
                    ;;
                --http-client-connect-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --http-client-request-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --http-read-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-http-connections)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --auth-required)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --topology-region)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --topology-zone)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --data-path)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --mem-queue-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --mem-queue-bytes)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-bytes-per-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --sync-every)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --sync-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --queue-scan-worker-pool-max)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --queue-scan-selection-count)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --msg-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-msg-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-msg-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-body-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-req-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-defer-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-heartbeat-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-rdy-count)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-output-buffer-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-output-buffer-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --min-output-buffer-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --output-buffer-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-channel-consumers)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --max-attempts)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --statsd-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --statsd-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --statsd-mem-stats)
                    COMPREPLY=($(compgen -W "true false" -- "${cur}"))
                    return 0
                    ;;
                --statsd-prefix)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --statsd-udp-packet-size)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --statsd-exclude-ephemeral)
                    COMPREPLY=($(compgen -W "true false" -- "${cur}"))
                    return 0
                    ;;
                --e2e-processing-latency-percentile)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --e2e-processing-latency-window-time)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-cert)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-key)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-client-auth-policy)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-root-ca-file)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-required)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-min-version)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --deflate)
                    COMPREPLY=($(compgen -W "true false" -- "${cur}"))
                    return 0
                    ;;
                --max-deflate-level)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --snappy)
                    COMPREPLY=($(compgen -W "true false" -- "${cur}"))
                    return 0
                    ;;
                --enable-experiment)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                *)
                    COMPREPLY=()
                    ;;
            esac
            COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
            return 0
            ;;
    esac
}

if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _nsqd -o nosort -o bashdefault -o default nsqd
else
    complete -F _nsqd -o bashdefault -o default nsqd
fi
