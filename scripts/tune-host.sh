#!/usr/bin/env bash
# Checks (and with --apply, fixes what can be fixed at run time) the host settings that decide
# the hedging engine's tail latency. Without --apply it changes nothing: it only reads /proc and
# /sys and explains each finding.
#
#   scripts/tune-host.sh                      # check, explain, exit 0 (1 with --strict if any WARN)
#   scripts/tune-host.sh --cores 2-4          # also check that these cores are isolated
#   sudo scripts/tune-host.sh --apply --cores 2-4 --hugepages 512
#
# What is checked, and why:
#   isolcpus / nohz_full / rcu_nocbs  the cores the three processes pin to should run nothing else
#                                     and take no scheduler tick (boot parameters: printed, never
#                                     written; a reboot is needed).
#   CPU frequency governor            "performance": no frequency ramp when a burst arrives.
#   transparent huge pages            "never" (or "madvise"): khugepaged compaction stalls a
#                                     spinning thread for milliseconds.
#   irqbalance                        it moves interrupts onto isolated cores; stop it or ban the
#                                     pinned cores (IRQBALANCE_BANNED_CPULIST).
#   hugepages                         optional: segments on a hugetlbfs mount avoid TLB misses on
#                                     the rings (vm.nr_hugepages).
#   systemd-logind RemoveIPC          "yes" (the default) deletes /dev/shm files of a user when
#                                     its last session ends: running segments vanish under the
#                                     processes. Set RemoveIPC=no, or run as a system user.
#
# Environment: TUNE_HOST_ROOT (default empty) prefixes every /proc, /sys and /etc path, so the
# script can be exercised against a fake tree.
set -euo pipefail

ROOT="${TUNE_HOST_ROOT:-}"
APPLY=0
STRICT=0
CORES=""
HUGEPAGES=""
WARNINGS=0

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
    cat <<'EOF'

Options:
  --apply            change what can be changed at run time (needs root); never edits the boot
                     loader: boot parameters are printed for the operator to add
  --cores LIST       cores the engine pins to, e.g. "2-4" or "2,3,4" (checked against isolcpus,
                     nohz_full, and used for the irqbalance ban list)
  --hugepages N      wanted number of 2 MiB hugepages (checked; set with --apply)
  --strict           exit 1 when any check warns (for provisioning pipelines)
  -h, --help         this text
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --apply) APPLY=1 ;;
        --strict) STRICT=1 ;;
        --cores)
            [[ $# -ge 2 ]] || { echo "tune-host.sh: --cores needs a value, e.g. --cores 2-4" >&2; exit 2; }
            CORES="$2"; shift ;;
        --hugepages)
            [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || { echo "tune-host.sh: --hugepages needs a number" >&2; exit 2; }
            HUGEPAGES="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "tune-host.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [[ "$APPLY" -eq 1 && "$(id -u)" -ne 0 && -z "$ROOT" ]]; then
    echo "tune-host.sh: --apply needs root (run with sudo), nothing changed" >&2
    exit 2
fi

ok()   { printf '  [ OK ] %s\n' "$*"; }
warn() { printf '  [WARN] %s\n' "$*"; WARNINGS=$((WARNINGS + 1)); }
info() { printf '  [INFO] %s\n' "$*"; }
fix()  { printf '         fix: %s\n' "$*"; }
did()  { printf '         applied: %s\n' "$*"; }
read_file() { # read_file PATH -> contents or empty
    if [[ -r "$ROOT$1" ]]; then cat "$ROOT$1"; fi
}
# Expands "2-4,7" into "2 3 4 7".
expand_cpus() {
    local out=() part lo hi i
    local IFS=','
    for part in $1; do
        if [[ "$part" =~ ^([0-9]+)-([0-9]+)$ ]]; then
            lo="${BASH_REMATCH[1]}"; hi="${BASH_REMATCH[2]}"
            for ((i = lo; i <= hi; i++)); do out+=("$i"); done
        elif [[ "$part" =~ ^[0-9]+$ ]]; then
            out+=("$part")
        fi
    done
    echo "${out[*]:-}"
}
# contains_all "2 3" "1 2 3" -> 0 when every cpu of $1 is in $2.
contains_all() {
    local c
    for c in $1; do
        [[ " $2 " == *" $c "* ]] || return 1
    done
    return 0
}

CMDLINE="$(read_file /proc/cmdline)"
NCPU="$(grep -c '^processor' "$ROOT/proc/cpuinfo" 2>/dev/null || echo '?')"
WANTED="$(expand_cpus "$CORES")"
echo "tune-host: $NCPU CPUs; engine cores: ${CORES:-not given (--cores)}; mode: $([[ $APPLY -eq 1 ]] && echo apply || echo check only)"

# --- boot parameters -----------------------------------------------------------------------
echo "boot parameters (need a reboot; this script never edits the boot loader)"
param_value() { # param_value NAME -> value of NAME= in the kernel command line
    local w
    for w in $CMDLINE; do
        if [[ "$w" == "$1="* ]]; then echo "${w#*=}"; return 0; fi
    done
    return 0
}
for p in isolcpus nohz_full rcu_nocbs; do
    v="$(param_value "$p")"
    # isolcpus may carry flags (isolcpus=managed_irq,domain,2-4): expand_cpus skips them.
    list="$(expand_cpus "$v")"
    if [[ -z "$v" ]]; then
        warn "$p not set: the scheduler may run other tasks (or its tick) on the engine's cores"
        fix "add '$p=${CORES:-<cores>}' to GRUB_CMDLINE_LINUX in /etc/default/grub, update-grub, reboot"
    elif [[ -n "$WANTED" ]] && ! contains_all "$WANTED" "$list"; then
        warn "$p=$v does not cover the engine cores $CORES"
        fix "set '$p=$CORES' (or a superset) on the kernel command line and reboot"
    else
        ok "$p=$v"
    fi
done

# --- CPU frequency governor ----------------------------------------------------------------
echo "CPU frequency governor"
govs=()
for g in "$ROOT"/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do
    [[ -r "$g" ]] && govs+=("$g")
done
if [[ ${#govs[@]} -eq 0 ]]; then
    info "no cpufreq interface (a VM, or frequency fixed by firmware): nothing to set"
else
    bad=()
    for g in "${govs[@]}"; do
        [[ "$(cat "$g")" == performance ]] || bad+=("$g")
    done
    if [[ ${#bad[@]} -eq 0 ]]; then
        ok "every CPU uses the 'performance' governor"
    else
        warn "${#bad[@]} CPU(s) not on 'performance' (e.g. $(cat "${bad[0]}")): clock ramps add microseconds after idle"
        if [[ "$APPLY" -eq 1 ]]; then
            for g in "${bad[@]}"; do echo performance > "$g"; done
            did "governor set to performance on ${#bad[@]} CPU(s) (not persistent: add to a boot unit)"
        else
            fix "echo performance | tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor (or cpupower frequency-set -g performance)"
        fi
    fi
fi

# --- transparent huge pages ----------------------------------------------------------------
echo "transparent huge pages"
for knob in enabled defrag; do
    f="/sys/kernel/mm/transparent_hugepage/$knob"
    v="$(read_file "$f")"
    if [[ -z "$v" ]]; then
        info "$f not present"
        continue
    fi
    cur="$(sed -n 's/.*\[\([a-z+_]*\)\].*/\1/p' <<<"$v")"
    cur="${cur:-$v}"
    if [[ "$cur" == never || "$cur" == madvise ]]; then
        ok "THP $knob=$cur"
    else
        warn "THP $knob=$cur: compaction by khugepaged can stall a spinning thread"
        if [[ "$APPLY" -eq 1 ]]; then
            echo never > "$ROOT$f"
            did "THP $knob=never (not persistent: add transparent_hugepage=never to the kernel command line)"
        else
            fix "echo never > $f (persistent: transparent_hugepage=never on the kernel command line)"
        fi
    fi
done

# --- irqbalance ----------------------------------------------------------------------------
echo "irqbalance"
irq_running=0
if [[ -z "$ROOT" ]] && pgrep -x irqbalance >/dev/null 2>&1; then irq_running=1; fi
if [[ -n "$ROOT" && -e "$ROOT/run/irqbalance.pid" ]]; then irq_running=1; fi
if [[ "$irq_running" -eq 0 ]]; then
    ok "irqbalance not running (set IRQ affinity of NICs away from the engine cores by hand)"
else
    banned="$(sed -n 's/^IRQBALANCE_BANNED_CPULIST=//p' "$ROOT/etc/default/irqbalance" 2>/dev/null || true)"
    if [[ -n "$WANTED" && -n "$banned" ]] && contains_all "$WANTED" "$(expand_cpus "${banned//\"/}")"; then
        ok "irqbalance running, engine cores banned ($banned)"
    else
        warn "irqbalance running and may move interrupts onto the engine cores"
        if [[ "$APPLY" -eq 1 && -n "$CORES" ]]; then
            mkdir -p "$ROOT/etc/default"
            touch "$ROOT/etc/default/irqbalance"
            sed -i '/^IRQBALANCE_BANNED_CPULIST=/d' "$ROOT/etc/default/irqbalance"
            echo "IRQBALANCE_BANNED_CPULIST=$CORES" >> "$ROOT/etc/default/irqbalance"
            if [[ -z "$ROOT" ]]; then systemctl restart irqbalance || true; fi
            did "IRQBALANCE_BANNED_CPULIST=$CORES in /etc/default/irqbalance, irqbalance restarted"
        else
            fix "IRQBALANCE_BANNED_CPULIST=${CORES:-<cores>} in /etc/default/irqbalance and restart it, or: systemctl disable --now irqbalance"
        fi
    fi
fi

# --- hugepages -----------------------------------------------------------------------------
echo "hugepages"
nr="$(read_file /proc/sys/vm/nr_hugepages)"
nr="${nr:-0}"
if [[ -n "$HUGEPAGES" ]]; then
    if [[ "$nr" -ge "$HUGEPAGES" ]]; then
        ok "vm.nr_hugepages=$nr (wanted $HUGEPAGES)"
    else
        warn "vm.nr_hugepages=$nr, wanted $HUGEPAGES"
        if [[ "$APPLY" -eq 1 ]]; then
            echo "$HUGEPAGES" > "$ROOT/proc/sys/vm/nr_hugepages"
            did "vm.nr_hugepages=$HUGEPAGES (persistent: vm.nr_hugepages in /etc/sysctl.d/)"
        else
            fix "sysctl vm.nr_hugepages=$HUGEPAGES; mount -t hugetlbfs -o mode=0700,uid=<engine user> none /mnt/hedge-huge"
        fi
    fi
else
    info "vm.nr_hugepages=$nr; segments live in /dev/shm (4 KiB pages). Optional: --hugepages N and a hugetlbfs mount"
fi

# --- systemd RemoveIPC ---------------------------------------------------------------------
echo "systemd-logind RemoveIPC"
remove_ipc=""
for f in "$ROOT"/etc/systemd/logind.conf "$ROOT"/etc/systemd/logind.conf.d/*.conf; do
    [[ -r "$f" ]] || continue
    v="$(sed -n 's/^[[:space:]]*RemoveIPC[[:space:]]*=[[:space:]]*//p' "$f" | tail -n 1)"
    [[ -n "$v" ]] && remove_ipc="$v"
done
if [[ "$remove_ipc" == no ]]; then
    ok "RemoveIPC=no"
else
    warn "RemoveIPC=${remove_ipc:-yes (default)}: when the engine user's last login session ends, systemd deletes its /dev/shm segments under the running processes"
    if [[ "$APPLY" -eq 1 ]]; then
        mkdir -p "$ROOT/etc/systemd/logind.conf.d"
        printf '[Login]\nRemoveIPC=no\n' > "$ROOT/etc/systemd/logind.conf.d/50-hedge-removeipc.conf"
        did "wrote /etc/systemd/logind.conf.d/50-hedge-removeipc.conf (takes effect on: systemctl restart systemd-logind)"
    else
        fix "printf '[Login]\\nRemoveIPC=no\\n' > /etc/systemd/logind.conf.d/50-hedge-removeipc.conf; systemctl restart systemd-logind (or run the engine as a system user, uid < 1000, which RemoveIPC spares)"
    fi
fi

echo "tune-host: $WARNINGS warning(s)$([[ $APPLY -eq 0 ]] && echo '; nothing was changed (use --apply)')"
if [[ "$STRICT" -eq 1 && "$WARNINGS" -gt 0 ]]; then
    exit 1
fi
exit 0
