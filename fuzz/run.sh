#!/usr/bin/env bash
# fuzz/run.sh: runs every cargo-fuzz target for a bounded time, starting
# from the committed seed corpus (fuzz/seeds/<target>/), and fails on the
# first crash, hang or memory blow-up.
#
#   fuzz/run.sh [TARGET...]        (default: every target)
#
# Each target runs for FUZZ_SECONDS (default 80; eight targets take about
# eleven minutes) with libFuzzer's -timeout (one input taking longer than
# FUZZ_TIMEOUT seconds, default 10, is a hang) and -rss_limit_mb
# (FUZZ_RSS_MB, default 2048: memory that grows without bound is a
# failure). New inputs go to a scratch corpus, never into the repository;
# a crashing input is copied to fuzz/artifacts/<target>/ (KEEP=1 keeps the
# scratch corpora too). To reproduce one:
#
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`);
# both are installed when missing and rustup / the network allow it.
set -euo pipefail

FUZZ_SECONDS=${FUZZ_SECONDS:-80}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
ALL_TARGETS=(xml_stream c2s_stream c2s_websocket jid config scram_server scram_client irc_lines)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root/fuzz"

log() { printf 'fuzz/run.sh: %s\n' "$*" >&2; }

if ! cargo +nightly --version >/dev/null 2>&1; then
    log "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal >&2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked >&2
fi

targets=("$@")
((${#targets[@]} > 0)) || targets=("${ALL_TARGETS[@]}")

log "building ${targets[*]}"
# One build for every target: they share the crates under test. Two
# jobs: CI machines and developers' are shared.
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
timeout 3600 cargo +nightly fuzz build >&2

work=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-fuzz.XXXXXX")
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ ${KEEP:-} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

failed=()
for t in "${targets[@]}"; do
    [[ -d seeds/$t ]] || { log "no seeds for $t (fuzz/seeds/$t)"; exit 2; }
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    log "$t: ${FUZZ_SECONDS}s"
    # The scratch corpus first (libFuzzer writes new inputs there), the
    # seeds after it (only read).
    if timeout $((FUZZ_SECONDS + 120)) cargo +nightly fuzz run "$t" "$work/corpus/$t" "seeds/$t" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb="$FUZZ_RSS_MB" \
        -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 \
        >"$work/$t.log" 2>&1; then
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ *DONE)' "$work/$t.log" | tr '\n' ' ' >&2 || true
        echo >&2
    else
        failed+=("$t")
        tail -n 40 "$work/$t.log" >&2
        mkdir -p "artifacts/$t"
        cp "$work/artifacts/$t/"* "artifacts/$t/" 2>/dev/null || true
        log "$t FAILED; inputs that fail are in fuzz/artifacts/$t/"
    fi
done

if ((${#failed[@]} > 0)); then
    log "failed: ${failed[*]}"
    exit 1
fi
log "every target ran ${FUZZ_SECONDS}s without a crash, hang or memory blow-up"
