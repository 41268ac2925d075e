_nsq__to__nsq() {
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
                cmd="nsq__to__nsq"
                ;;
            *)
                ;;
        esac
    done

    case "${cmd}" in
        nsq__to__nsq)
            opts="-h -V --topic --channel --nsqd-tcp-address --lookupd-http-address --destination-nsqd-tcp-address --destination-topic --mode --max-in-flight --status-every --require-json-field --require-json-value --whitelist-json-field --producer-opt --lookupd-poll-interval --dial-timeout --tls --tls-root-ca-file --tls-cert --tls-key --tls-insecure-skip-verify --snappy --deflate --deflate-level --consumer-opt --help --version"
            if [[ ${cur} == -* || ${COMP_CWORD} -eq 1 ]] ; then
                COMPREPLY=( $(compgen -W "${opts}" -- "${cur}") )
                return 0
            fi
            case "${prev}" in
                --topic)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --channel)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --nsqd-tcp-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --lookupd-http-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --destination-nsqd-tcp-address)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --destination-topic)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --mode)
                    COMPREPLY=($(compgen -W "round-robin hostpool epsilon-greedy" -- "${cur}"))
                    return 0
                    ;;
                --max-in-flight)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --status-every)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --require-json-field)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --require-json-value)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --whitelist-json-field)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --producer-opt)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --lookupd-poll-interval)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --dial-timeout)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --tls-root-ca-file)
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
                --deflate-level)
                    COMPREPLY=($(compgen -f "${cur}"))
                    return 0
                    ;;
                --consumer-opt)
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
    complete -F _nsq__to__nsq -o nosort -o bashdefault -o default nsq-to-nsq
else
    complete -F _nsq__to__nsq -o bashdefault -o default nsq-to-nsq
fi
